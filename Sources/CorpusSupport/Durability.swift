import Foundation

/// The POSIX steps the atomic writers share: flushing a file or a folder to the disk.
enum Durability {
    /// Flushes the file at `url` to the disk (`fsync`), so a rename that follows publishes
    /// complete contents even across a power loss.
    /// - Throws: `FileWriteError` when the file cannot be opened or flushed.
    static func syncFile(_ url: URL) throws {
        let fd = open(url.path, O_RDONLY)
        guard fd >= 0 else {
            throw FileWriteError(path: url.path, message: "cannot open the written file to flush it (\(FileWriteError.reason(errno)))")
        }
        defer { close(fd) }
        guard fsync(fd) == 0 else {
            throw FileWriteError(path: url.path, message: "cannot flush the file to the disk (\(FileWriteError.reason(errno))); check free space")
        }
    }

    /// Flushes a folder's entries (`fsync` of the folder), so a rename inside it survives a power
    /// loss. File systems that cannot flush a folder (EINVAL, ENOTSUP) are accepted as they are.
    /// - Throws: `FileWriteError` when the folder cannot be opened or flushed.
    static func syncFolder(_ url: URL) throws {
        let fd = open(url.path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else {
            throw FileWriteError(path: url.path, message: "cannot open the folder to flush it (\(FileWriteError.reason(errno)))")
        }
        defer { close(fd) }
        if fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP {
            throw FileWriteError(path: url.path, message: "cannot flush the folder to the disk (\(FileWriteError.reason(errno)))")
        }
    }

    /// Renames `from` over `to` (atomic within one file system).
    /// - Throws: `FileWriteError` naming `to`.
    static func moveIntoPlace(_ from: URL, over to: URL, what: String) throws {
        guard rename(from.path, to.path) == 0 else {
            throw FileWriteError(path: to.path, message: "cannot move the finished \(what) into place (\(FileWriteError.reason(errno)))")
        }
    }

    /// Exchanges two paths in one atomic step (Linux `renameat2(…, RENAME_EXCHANGE)`, looked up at
    /// run time: Swift's Glibc module does not declare it). Returns false where the system or the
    /// file system cannot (the caller falls back to two renames).
    static func exchange(_ a: URL, _ b: URL) -> Bool {
        typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
        #if os(Linux)
        guard let symbol = renameat2Symbol else { return false }
        let renameat2 = unsafeBitCast(symbol, to: RenameAt2.self)
        let exchangeFlag: UInt32 = 2   // RENAME_EXCHANGE in <linux/fs.h>
        return renameat2(AT_FDCWD, a.path, AT_FDCWD, b.path, exchangeFlag) == 0
        #else
        return false
        #endif
    }

    #if os(Linux)
    // A C function pointer from dlsym, looked up once; never written after, hence nonisolated(unsafe).
    nonisolated(unsafe) private static let renameat2Symbol: UnsafeMutableRawPointer? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "renameat2")
    #endif

    /// A hidden temporary name beside `name`: `.NAME.HOST.PID.UUID.tmp` (or `.old` for a folder
    /// renamed aside). The host and process id let a later writer of the same target remove what a
    /// killed process left (`removeStale`).
    static func temporaryName(for name: String, suffix: String = "tmp") -> String {
        ".\(name).\(owner).\(UUID().uuidString).\(suffix)"
    }

    /// "HOST.PID" of this process, as temporary names carry it.
    private static let owner: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        let host = gethostname(&buffer, buffer.count) == 0
            ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "localhost"
        return "\(host).\(getpid())"
    }()

    /// Removes the temporaries (`.NAME.HOST.PID.UUID.tmp|old`, files or folders) that a process of
    /// this host, now gone, left beside `name` in `folder` when it was killed mid-write (a killed
    /// `merge` leaves a whole model's worth). Those of live processes, of other hosts and names
    /// without a process id are left alone; failures are ignored (it is only tidying).
    static func removeStale(beside name: String, in folder: URL) {
        let prefix = ".\(name)."
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return }
        let host = owner.split(separator: ".").dropLast().joined(separator: ".")
        for entry in entries where entry.hasPrefix(prefix) && (entry.hasSuffix(".tmp") || entry.hasSuffix(".old")) {
            // HOST.PID.UUID between the prefix and the suffix; the host may hold dots.
            let parts = entry.dropFirst(prefix.count).dropLast(4).split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count >= 3, UUID(uuidString: String(parts[parts.count - 1])) != nil,
                  let pid = Int32(parts[parts.count - 2]), pid > 0,
                  parts.dropLast(2).joined(separator: ".") == host else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH {
                try? FileManager.default.removeItem(at: folder.appendingPathComponent(entry))
            }
        }
    }
}
