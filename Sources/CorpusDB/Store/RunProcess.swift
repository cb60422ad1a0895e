import Foundation

/// The process that trains a run (columns `runs.pid`, `host`, `process_start`, migration 0011),
/// and whether it is still there.
///
/// A run is `running` in the store from its start until `corpus train` records its outcome. When
/// the process disappears first (SIGKILL, a crash, the OOM killer, a power loss), nothing records
/// it: readers then show the run as `killed` (the stored row keeps `running`; a reader never
/// writes). `corpus train --resume` continues such a run from its last checkpoint.
public struct RunProcess: Sendable, Equatable {
    public var pid: Int32
    public var host: String
    /// Linux: "<boot id>/<start time in clock ticks since boot>", which tells the process from a
    /// later one that got the same id (after it ended, or after a reboot). Nil where unknown.
    public var start: String?

    public init(pid: Int32, host: String, start: String?) {
        self.pid = pid
        self.host = host
        self.start = start
    }

    /// This process.
    public static var current: RunProcess {
        let pid = getpid()
        return RunProcess(pid: pid, host: hostName, start: startIdentity(of: pid))
    }

    /// The status a reader shows for a run stored as `status` and trained by `process`: a
    /// `running` run whose process is known to be gone is `killed`.
    public static func effectiveStatus(_ status: String, process: RunProcess?) -> String {
        guard status == "running", let process, process.isGone else { return status }
        return "killed"
    }

    /// True when this process certainly no longer exists: it ran on this machine and no process
    /// with its id is alive, or one is but started at another time (a reused id), or the machine
    /// was restarted since. False when it is alive or cannot be checked (another machine).
    public var isGone: Bool {
        guard host == Self.hostName else { return false }
        if kill(pid, 0) != 0 && errno == ESRCH { return true }
        guard let start, let now = Self.startIdentity(of: pid) else { return false }
        return now != start
    }

    static var hostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// "<boot id>/<field 22 of /proc/PID/stat>" on Linux, nil elsewhere or when unreadable.
    static func startIdentity(of pid: Int32) -> String? {
        guard let boot = try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8),
              let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command name (which may hold spaces) start at field 3 (state).
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19 else { return nil }
        return boot.trimmingCharacters(in: .whitespacesAndNewlines) + "/" + fields[19]
    }
}
