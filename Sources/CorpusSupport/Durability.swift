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

    /// A hidden temporary name beside `name`: `.NAME.UUID.tmp`.
    static func temporaryName(for name: String) -> String {
        ".\(name).\(UUID().uuidString).tmp"
    }
}
