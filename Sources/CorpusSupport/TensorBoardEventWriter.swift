import Foundation

/// Writes scalars (loss, learning rate, …) into a TensorBoard event file, so that
/// `tensorboard --logdir DIR` draws a run's curves while it trains, with no TensorFlow or Python
/// on the training side.
///
/// The file is what TensorBoard's own writers produce: TFRecord framing (`TFRecord`) of
/// protobuf-encoded `Event` messages (`TensorBoardEvent`), the first holding
/// `file_version = "brain.Event:2"`, then one event per scalar with its step, wall time, tag and
/// value (stored as a 32-bit float, as TensorBoard's `simple_value` is).
///
/// **One new file per writer.** The name follows TensorBoard's Python writer (and PyTorch's
/// `SummaryWriter`): `events.out.tfevents.<unix seconds, 10 digits>.<hostname>.<pid>.<n>`, where
/// `n` counts up from 0 until the name is free (the file is created with `O_EXCL`), so two
/// writers started in the same second never share a file. A resumed run opens a new writer in
/// the same folder: TensorBoard reads every event file of a folder, in name order (which is time
/// order), as one run. Files are readable and writable by their owner only (0600); the folder is
/// created when missing.
///
/// Events are kept in memory until `flush()` (or `close()`) hands them to the file, where
/// TensorBoard sees them; they are also handed over by themselves at the next `scalar` once 64 KiB
/// are waiting or 5 seconds have passed since the last flush. `close()` also flushes the file to
/// the disk. A writer is not safe to share between threads: use it from one thread or task.
public final class TensorBoardEventWriter {
    /// The event file.
    public let path: URL
    /// The open file, or -1 once closed.
    private var descriptor: Int32
    /// Framed records not yet written to the file.
    private var pending: [UInt8] = []
    private var lastFlush = Date()

    /// Bytes waiting in memory that make the next `scalar` flush.
    static let bufferLimit = 1 << 16
    /// Seconds since the last flush after which the next `scalar` flushes.
    static let flushInterval: TimeInterval = 5

    /// Creates `directory` if needed and a new event file in it, and writes the file's first event
    /// (`file_version`).
    /// - Parameter wallTime: the time the file is named after and the first event carries, in
    ///   seconds since 1970 (now by default).
    /// - Throws: `FileWriteError` naming the folder or the file when it cannot be created or
    ///   written; nothing is left behind then.
    public init(directory: URL, wallTime: Double = Date().timeIntervalSince1970) throws {
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw FileWriteError(path: directory.path, message: "cannot create the folder for TensorBoard's event files (\(error.localizedDescription)); choose a folder you can write to")
        }
        let seconds = Int64(exactly: max(0, wallTime).rounded(.down)) ?? 0
        (path, descriptor) = try Self.createFile(in: directory, seconds: seconds)
        append(TensorBoardEvent(wallTime: wallTime, step: 0, content: .fileVersion(TensorBoardEvent.currentFileVersion)))
        do {
            try flush()
        } catch {
            _ = systemClose(descriptor)
            descriptor = -1
            unlink(path.path)
            throw error
        }
    }

    deinit {
        if descriptor >= 0 {
            try? flush()
            _ = systemClose(descriptor)
        }
    }

    /// Adds one scalar: `value` (stored as a 32-bit float) under `tag` (TensorBoard groups tags by
    /// their part before a `/`, e.g. `train/loss`) at `step`.
    /// - Parameter wallTime: when it was measured, in seconds since 1970 (now by default).
    /// - Throws: `FileWriteError` when the writer is closed, or when the automatic flush fails.
    public func scalar(_ tag: String, _ value: Double, step: Int, wallTime: Double? = nil) throws {
        guard descriptor >= 0 else { throw closedError() }
        let now = Date()
        append(TensorBoardEvent(wallTime: wallTime ?? now.timeIntervalSince1970, step: Int64(step),
                                content: .scalars([(tag: tag, value: Float(value))])))
        if pending.count >= Self.bufferLimit || now.timeIntervalSince(lastFlush) >= Self.flushInterval {
            try flush()
        }
    }

    /// Writes the events waiting in memory to the file, where TensorBoard sees them. It does not
    /// wait for the disk (`close()` does).
    /// - Throws: `FileWriteError` naming the file. Events not written stay waiting, in order, and
    ///   the next flush writes them; a partly written record is completed, never repeated.
    public func flush() throws {
        guard !pending.isEmpty else { return }
        guard descriptor >= 0 else { throw closedError() }
        var written = 0
        defer {
            pending.removeFirst(written)
        }
        while written < pending.count {
            let result = pending.withUnsafeBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return write(descriptor, base + written, buffer.count - written)
            }
            if result > 0 {
                written += result
            } else if result < 0 && errno == EINTR {
                continue
            } else {
                let reason = result < 0 ? FileWriteError.reason(errno) : "nothing was written"
                throw FileWriteError(path: path.path, message: "cannot write TensorBoard events (\(reason)); check free space and permissions")
            }
        }
        lastFlush = Date()
    }

    /// Flushes the waiting events to the file and the file to the disk, and closes it. Closing a
    /// closed writer does nothing.
    /// - Throws: `FileWriteError` naming the file when the last events cannot be written or
    ///   flushed; the file is closed all the same.
    public func close() throws {
        guard descriptor >= 0 else { return }
        let fd = descriptor
        defer {
            _ = systemClose(fd)
            descriptor = -1
            pending = []
        }
        try flush()
        if fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP {
            throw FileWriteError(path: path.path, message: "cannot flush the event file to the disk (\(FileWriteError.reason(errno))); check free space")
        }
    }

    /// Creates the event file with the first free name (`O_EXCL`, mode 0600) and opens it for
    /// appending.
    /// - Throws: `FileWriteError` naming the file.
    private static func createFile(in directory: URL, seconds: Int64) throws -> (URL, Int32) {
        let host = hostname()
        let pid = Int(getpid())
        var counter = 0
        while true {
            let url = directory.appendingPathComponent(fileName(seconds: seconds, host: host, pid: pid, counter: counter))
            let fd = open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o600)
            if fd >= 0 { return (url, fd) }
            let code = errno
            guard code == EEXIST, counter < 10_000 else {
                throw FileWriteError(path: url.path, message: "cannot create the event file (\(FileWriteError.reason(code))); check that \(directory.path) is a folder you can write to")
            }
            counter += 1
        }
    }

    /// `events.out.tfevents.<seconds, 10 digits>.<host>.<pid>.<counter>`.
    static func fileName(seconds: Int64, host: String, pid: Int, counter: Int) -> String {
        let digits = String(seconds)
        let padded = String(repeating: "0", count: max(0, 10 - digits.count)) + digits
        return "events.out.tfevents.\(padded).\(host).\(pid).\(counter)"
    }

    /// The machine's name (`gethostname`) with `/` replaced, or "localhost" when it has none.
    static func hostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name.replacingOccurrences(of: "/", with: "_")
    }

    private func append(_ event: TensorBoardEvent) {
        pending += TFRecord.frame(event.encoded())
    }

    private func closedError() -> FileWriteError {
        FileWriteError(path: path.path, message: "the TensorBoard event file is closed; create a new TensorBoardEventWriter to write more")
    }
}

/// The C library's `close`, which the writer's own `close()` hides inside the class.
private func systemClose(_ fd: Int32) -> Int32 {
    close(fd)
}
