import CorpusDB
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A temporary file written in appends and read back at any offset: what a check over a large
/// store keeps on disk instead of in memory (docs/QUALITY.md, "Memory"). Writes go through a
/// buffer of 1 MiB; reads (`pread`) see everything appended, the buffer flushed first.
final class SpillFile {
    let path: String
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var flushed = 0
    private static let bufferSize = 1 << 20

    /// Creates the file (it must not exist).
    init(path: String) throws {
        self.path = path
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Self.failure(path, "could not be created", errno) }
        buffer.reserveCapacity(Self.bufferSize)
    }

    deinit { close(fd) }

    /// Bytes appended so far.
    var size: Int { flushed + buffer.count }

    func append(_ bytes: UnsafeRawBufferPointer) throws {
        if buffer.count + bytes.count > Self.bufferSize { try flush() }
        if bytes.count >= Self.bufferSize {
            try write(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    func append<T>(_ values: UnsafeBufferPointer<T>) throws { try append(UnsafeRawBufferPointer(values)) }

    func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try write($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress else { return }
        try transfer(bytes.count, "could not be written", short: ENOSPC) { pwrite(fd, base + $0, bytes.count - $0, off_t(flushed + $0)) }
        flushed += bytes.count
    }

    /// Reads `into.count` bytes from `offset` (which with them must lie within what was appended).
    func read(at offset: Int, into: UnsafeMutableRawBufferPointer) throws {
        if offset + into.count > flushed { try flush() }
        guard let base = into.baseAddress else { return }
        try transfer(into.count, "could not be read back", short: EIO) { pread(fd, base + $0, into.count - $0, off_t(offset + $0)) }
    }

    /// Calls `io(done)` (a `pwrite` or `pread` of what is left after `done` bytes) until `count`
    /// bytes are through, again when interrupted; a call that moves nothing fails with `short`.
    private func transfer(_ count: Int, _ what: String, short: Int32, _ io: (Int) -> Int) throws {
        var done = 0
        while done < count {
            let n = io(done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Self.failure(path, what, n < 0 ? errno : short) }
            done += n
        }
    }

    /// A reader of this file that keeps a window of it (1 MiB, or the largest span asked for):
    /// reading records in the order they were appended costs one `pread` a window.
    final class Reader {
        private let file: SpillFile
        private var window: [UInt8] = []
        private var start = 0

        init(_ file: SpillFile) throws {
            try file.flush()
            self.file = file
        }

        /// The `count` bytes at `offset`.
        func withBytes<R>(at offset: Int, count: Int, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
            if offset < start || offset + count > start + window.count {
                let size = min(max(count, SpillFile.bufferSize), file.size - offset)
                guard size >= count else { throw SpillFile.failure(file.path, "was shorter than written", EIO) }
                if window.count != size { window = [UInt8](repeating: 0, count: size) }
                try window.withUnsafeMutableBytes { try file.read(at: offset, into: $0) }
                start = offset
            }
            return try window.withUnsafeBytes { raw in
                try body(UnsafeRawBufferPointer(rebasing: raw[(offset - start)..<(offset - start + count)]))
            }
        }
    }

    static func failure(_ path: String, _ what: String, _ code: Int32) -> CorpusDBError {
        let reason = String(cString: strerror(code))
        if code == ENOSPC || code == EDQUOT {
            return CorpusDBError(.storageFailed, "the disk holding the store is full: the check's temporary file \(path) \(what) (\(reason)); nothing of the check was stored and the store is intact: free some space (a check holds about 1.3 KB a record beside the store while it runs) and run the command again")
        }
        return CorpusDBError(.storageFailed, "\(path): the check's temporary file \(what) (\(reason)); nothing of the check was stored and the store is intact: check the folder's permissions and the disk, then run the command again")
    }
}

/// The temporary files of one check, in a folder made beside the store and removed when the
/// check ends: each record's own verdicts (`appendOwn`), and with the near-duplicate check its
/// MinHash signature (one row of `permutations` values each, in the order they were added) and
/// each band's LSH keys (a file a band, a key a row).
final class CheckSpill: @unchecked Sendable {
    // @unchecked: written by one thread (the pass's `add`), read after; `read(row:into:)` only
    // preads, which is safe from several threads.
    let folder: String
    let permutations: Int, bands: Int, rows: Int
    private let signatures: SpillFile?
    private let bandKeys: [SpillFile]
    private let own: SpillFile
    private var ownReader: SpillFile.Reader?
    /// Each record's two exact-duplicate keys (pair, then prompt: 64 bytes), in the order added.
    private let keyFile: SpillFile
    private var keyReader: SpillFile.Reader?
    /// Signatures appended.
    private(set) var count = 0

    /// Makes the folder `<store>.check-<pid>-<n>` (removed with this object); `settings`: those
    /// of the near-duplicate check, when it runs.
    init(besideStore store: String, settings s: NearDuplicateSettings?) throws {
        Self.removeAbandoned(besideStore: store)
        var folder = ""
        var attempt = 0
        while true {
            folder = "\(store).check-\(getpid())-\(attempt)"
            if mkdir(folder, 0o700) == 0 { break }
            let code = errno
            guard code == EEXIST, attempt < 100 else { throw SpillFile.failure(folder, "folder could not be made", code) }
            attempt += 1
        }
        self.folder = folder
        permutations = s?.permutations ?? 0
        bands = s?.bands ?? 0
        rows = s?.rows ?? 0
        do {
            own = try SpillFile(path: folder + "/verdicts")
            keyFile = try SpillFile(path: folder + "/keys")
            signatures = s == nil ? nil : try SpillFile(path: folder + "/signatures")
            bandKeys = try (0..<bands).map { try SpillFile(path: folder + "/band-\($0)") }
        } catch {
            try? FileManager.default.removeItem(atPath: folder)
            throw error
        }
    }

    deinit { try? FileManager.default.removeItem(atPath: folder) }

    /// Removes the folders of checks of this store that ended without removing theirs (killed):
    /// those whose process is gone.
    static func removeAbandoned(besideStore store: String) {
        let url = URL(fileURLWithPath: store)
        let directory = url.deletingLastPathComponent().path, prefix = url.lastPathComponent + ".check-"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count).prefix { $0 != "-" }), pid > 0,
                  kill(pid, 0) != 0 && errno == ESRCH else { continue }
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
    }

    /// Appends a signature (`permutations` values); returns its row.
    func append(_ signature: UnsafeBufferPointer<UInt32>) throws -> Int32 {
        guard let signatures, let base = signature.baseAddress, signature.count == permutations else {
            throw CorpusDBError(.invalid, "\(folder): a signature of \(signature.count) values where \(permutations) were expected")
        }
        try signatures.append(signature)
        var key: UInt64 = 0
        for b in 0..<bands {
            key = NearDuplicateFinder.bandKey(band: b, base + b * rows, rows: rows)
            try withUnsafeBytes(of: &key) { try bandKeys[b].append($0) }
        }
        count += 1
        return Int32(clamping: count - 1)
    }

    /// Writes out what is buffered (before reading from several threads).
    func flush() throws {
        try signatures?.flush()
        for f in bandKeys { try f.flush() }
    }

    /// Reads row `row` into `out` (room for `permutations` values).
    func read(row: Int, into out: UnsafeMutablePointer<UInt32>) throws {
        guard let signatures else { return }
        try signatures.read(at: row * permutations * 4, into: UnsafeMutableRawBufferPointer(start: out, count: permutations * 4))
    }

    /// Row `row`, copied out.
    func row(_ row: Int) throws -> [UInt32] {
        var values = [UInt32](repeating: 0, count: permutations)
        try values.withUnsafeMutableBufferPointer { buffer in
            if let base = buffer.baseAddress { try read(row: row, into: base) }
        }
        return values
    }

    /// Every row's key of band `band`, by row.
    func keys(band: Int) throws -> [UInt64] {
        var keys = [UInt64](repeating: 0, count: count)
        try keys.withUnsafeMutableBytes { try bandKeys[band].read(at: 0, into: $0) }
        return keys
    }
}

extension CheckSpill {
    /// Appends the next record's keys (its whole conversation's and its question's).
    func appendKeys(pair: SHA256Key, prompt: SHA256Key) throws {
        var words = [pair.a, pair.b, pair.c, pair.d, prompt.a, prompt.b, prompt.c, prompt.d].map(\.littleEndian)
        try words.withUnsafeMutableBytes { try keyFile.append(UnsafeRawBufferPointer($0)) }
    }

    /// The keys of the `index`-th record added. `inOrder`: read through a window (fast when
    /// records are read in the order they were added; not for several threads at once);
    /// otherwise one `pread`.
    func keys(_ index: Int, inOrder: Bool = false) throws -> (pair: SHA256Key, prompt: SHA256Key) {
        func decode(_ raw: UnsafeRawBufferPointer) -> (pair: SHA256Key, prompt: SHA256Key) {
            func w(_ k: Int) -> UInt64 { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: k * 8, as: UInt64.self)) }
            return (SHA256Key(w(0), w(1), w(2), w(3)), SHA256Key(w(4), w(5), w(6), w(7)))
        }
        if inOrder {
            if keyReader == nil { keyReader = try SpillFile.Reader(keyFile) }
            if let keyReader { return try keyReader.withBytes(at: index * 64, count: 64, decode) }
        }
        var bytes = [UInt8](repeating: 0, count: 64)
        try bytes.withUnsafeMutableBytes { try keyFile.read(at: index * 64, into: $0) }
        return bytes.withUnsafeBytes(decode)
    }

    /// Appends a record's own verdicts (ran and failed masks, one float64 a check run, then the
    /// reasons of the failed ones, each its length and UTF-8); returns where they start.
    func appendOwn(_ v: PackedVerdicts) throws -> Int {
        let at = own.size
        var bytes: [UInt8] = []
        func put<T: FixedWidthInteger>(_ x: T) { withUnsafeBytes(of: x.littleEndian) { bytes.append(contentsOf: $0) } }
        put(v.ran)
        put(v.failed)
        for score in v.scores { put(score.bitPattern) }
        for d in v.details {
            put(UInt32(clamping: d.utf8.count))
            bytes.append(contentsOf: d.utf8)
        }
        try bytes.withUnsafeBytes { try own.append($0) }
        return at
    }

    /// The own verdicts appended at `offset`, for record `id`. Read through one window: fast in
    /// the order they were appended. Not for several threads at once.
    func readOwn(at offset: Int, id: Int64) throws -> PackedVerdicts {
        if ownReader == nil { ownReader = try SpillFile.Reader(own) }
        guard let reader = ownReader else { return PackedVerdicts(recordId: id) }
        var v = PackedVerdicts(recordId: id)
        try reader.withBytes(at: offset, count: 8) { raw in
            v.ran = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
            v.failed = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        }
        var at = offset + 8
        let scores = v.ran.nonzeroBitCount
        try reader.withBytes(at: at, count: scores * 8) { raw in
            v.scores = (0..<scores).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
        }
        at += scores * 8
        for _ in 0..<v.failed.nonzeroBitCount {
            let length = try reader.withBytes(at: at, count: 4) { Int(UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self))) }
            v.details.append(try reader.withBytes(at: at + 4, count: length) { String(decoding: $0, as: UTF8.self) })
            at += 4 + length
        }
        return v
    }
}
