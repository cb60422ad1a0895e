import Foundation
import Testing

/// A small file system for disk-full tests: a tmpfs of a given size mounted on a new temporary
/// folder (mounting needs root or CAP_SYS_ADMIN; tests carry `.needsSmallDisk` and are skipped
/// with the reason elsewhere). `fill(leaving:)` takes all its space but a few KiB with a filler
/// file, `free()` removes the filler ("free some space"); the file system is unmounted by
/// `unmount()` or, at the latest, when the object goes away.
public final class SmallDisk {
    /// The mounted folder.
    public let url: URL
    private var mounted = true
    private var filler: URL { url.appendingPathComponent("filler") }

    /// Mounts a tmpfs of `kilobytes` KiB on a new temporary folder.
    public init(kilobytes: Int) throws {
        url = try TestSupport.temporaryDirectory("small-disk")
        let result = try TestSupport.runProcess(URL(fileURLWithPath: "/bin/mount"),
                                                ["-t", "tmpfs", "-o", "size=\(kilobytes)k", "tmpfs", url.path])
        guard result.status == 0 else {
            mounted = false
            throw SmallDiskError(message: "cannot mount a tmpfs on \(url.path): \(result.stderr)")
        }
    }

    deinit { unmount() }

    /// Unmounts (lazily, so an open file elsewhere cannot keep it mounted); idempotent.
    public func unmount() {
        guard mounted else { return }
        mounted = false
        _ = try? TestSupport.runProcess(URL(fileURLWithPath: "/bin/umount"), ["-l", url.path])
    }

    /// Changes the file system's size (`mount -o remount,size=…`), e.g. to give a full disk room.
    public func resize(kilobytes: Int) throws {
        let result = try TestSupport.runProcess(URL(fileURLWithPath: "/bin/mount"), ["-o", "remount,size=\(kilobytes)k", url.path])
        guard result.status == 0 else { throw SmallDiskError(message: "cannot resize \(url.path): \(result.stderr)") }
    }

    /// Bytes still free.
    public var freeBytes: Int {
        var s = statvfs()
        guard statvfs(url.path, &s) == 0 else { return 0 }
        return Int(s.f_bavail) * Int(s.f_frsize)
    }

    /// Writes a filler file until the disk is full, then shortens it so that `kilobytes` KiB stay free.
    public func fill(leaving kilobytes: Int) throws {
        let fd = open(filler.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw SmallDiskError(message: "cannot create \(filler.path)") }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0xA5, count: 64 * 1024)
        var written = 0
        while true {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            written += n
        }
        guard ftruncate(fd, off_t(max(0, written - kilobytes * 1024))) == 0 else {
            throw SmallDiskError(message: "cannot shorten \(filler.path)")
        }
    }

    /// Removes the filler file.
    public func free() throws {
        try FileManager.default.removeItem(at: filler)
    }

    /// True when this process may mount a tmpfs (tried once with a 64 KiB one).
    public static let canMount: Bool = {
        guard let disk = try? SmallDisk(kilobytes: 64) else { return false }
        disk.unmount()
        return true
    }()
}

/// A small disk that could not be set up.
public struct SmallDiskError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

extension Trait where Self == ConditionTrait {
    /// Skips the test, with the reason, where a tmpfs cannot be mounted (not root).
    public static var needsSmallDisk: Self {
        .enabled(if: SmallDisk.canMount, "mounting a small tmpfs needs root (or CAP_SYS_ADMIN); the disk-full test is skipped")
    }
}
