import Foundation

/// Writes one file so that a reader sees either the old file or the whole new one, never a part,
/// even after a crash or power loss.
///
/// The contents go to a hidden temporary file beside the target (`.NAME.HOST.PID.UUID.tmp`, so the rename
/// stays within one file system), which is flushed to the disk (`fsync`), renamed over the target
/// and made durable by flushing the parent folder. On any error the temporary file is removed and
/// the target is left as it was. The parent folder must exist. A target that is a symbolic link is
/// replaced by the file (the rename replaces the link), never written through.
public enum AtomicFile {
    /// Writes `data` to `url`.
    /// - Throws: `FileWriteError` naming the file.
    public static func write(_ data: Data, to url: URL) throws {
        try write(to: url) { handle in
            do {
                try handle.write(contentsOf: data)
            } catch {
                throw FileWriteError(path: url.path, message: "cannot write (\(error.localizedDescription)); check free space and permissions")
            }
        }
    }

    /// Streams the contents into `url`: `body` writes them, in as many pieces as it likes, to the
    /// handle of the temporary file.
    /// - Throws: `FileWriteError` naming the file, or whatever `body` throws (nothing is left behind).
    public static func write(to url: URL, streaming body: (FileHandle) throws -> Void) throws {
        try write(to: url) { temporary in
            let fd = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
            guard fd >= 0 else {
                throw FileWriteError(path: url.path, message: "cannot create a file in \(url.deletingLastPathComponent().path) (\(FileWriteError.reason(errno))); check that the folder exists and is writable")
            }
            let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
            try body(handle)
            try? handle.close()
        }
    }

    /// Lets `produce` write the file itself at the temporary URL it is given (for writers that
    /// take a path), then flushes and renames it over `url`.
    /// - Throws: `FileWriteError` naming the file, or whatever `produce` throws (nothing is left behind).
    public static func write(to url: URL, using produce: (URL) throws -> Void) throws {
        let target = url.standardizedFileURL
        let folder = target.deletingLastPathComponent()
        Durability.removeStale(beside: target.lastPathComponent, in: folder)
        let temporary = folder.appendingPathComponent(Durability.temporaryName(for: target.lastPathComponent))
        do {
            try produce(temporary)
            try Durability.syncFile(temporary)
            try Durability.moveIntoPlace(temporary, over: target, what: "file")
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
        try Durability.syncFolder(folder)
    }
}
