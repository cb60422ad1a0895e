import Crypto
import CorpusDB
import Foundation

/// The bytes of one input: a regular file read where needed (never held whole unless the format
/// needs it), or bytes already in memory (a pipe, or the dry run's input).
final class ByteSource: @unchecked Sendable {
    // @unchecked: `fd`, `bytes` and `size` never change after `init`; `read` uses `pread`, which
    // has no shared file position.
    let path: String
    let size: Int
    private let fd: Int32
    private let bytes: [UInt8]

    init(bytes: [UInt8], path: String) {
        self.path = path
        self.bytes = bytes
        self.size = bytes.count
        self.fd = -1
    }

    /// Opens `path`. A regular file is read where needed; anything else (a pipe, a device) is read
    /// whole now, since it cannot be read twice.
    /// - Throws: `IngestError(.unreadableFile)`.
    init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw IngestError(.unreadableFile, "\(path): cannot open the file for reading (\(String(cString: strerror(errno)))); check that it exists and that you may read it")
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw IngestError(.unreadableFile, "\(path): cannot read the file's size (\(reason))")
        }
        if info.st_mode & S_IFMT == S_IFREG {
            // A file that grows meanwhile is taken up to the size it had when opened.
            self.fd = fd
            self.size = Int(info.st_size)
            self.bytes = []
        } else {
            defer { close(fd) }
            self.bytes = try Self.readToEnd(fd, path: path)
            self.size = bytes.count
            self.fd = -1
        }
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    /// The bytes in `range` (clamped to the file).
    /// - Throws: `IngestError(.unreadableFile)` on a read error or a file that shrank.
    func read(_ range: Range<Int>) throws -> [UInt8] {
        let range = range.clamped(to: 0..<size)
        if fd < 0 { return Array(bytes[range]) }
        var out = [UInt8](repeating: 0, count: range.count)
        var filled = 0
        while filled < out.count {
            let n = out.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return pread(fd, base + filled, min(raw.count - filled, 1 << 30), off_t(range.lowerBound + filled))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw IngestError(.unreadableFile, "\(path): reading failed at byte offset \(range.lowerBound + filled) (\(String(cString: strerror(errno))))")
            }
            if n == 0 {
                throw IngestError(.unreadableFile, "\(path): the file ended at byte offset \(range.lowerBound + filled), shorter than the \(size) bytes it had when opened: the file changed while it was being read; nothing of it was kept, run the same command again once it no longer changes")
            }
            filled += n
        }
        return out
    }

    private static func readToEnd(_ fd: Int32, path: String) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 1 << 20)
        var filled = 0
        while true {
            if filled == bytes.count { bytes += [UInt8](repeating: 0, count: bytes.count) }
            let n = bytes.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return Foundation.read(fd, base + filled, min(raw.count - filled, 1 << 30))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw IngestError(.unreadableFile, "\(path): reading failed after \(filled) bytes (\(String(cString: strerror(errno))))")
            }
            if n == 0 { break }
            filled += n
        }
        bytes.removeLast(bytes.count - filled)
        return bytes
    }
}

/// The first pass over a file: its SHA-256, its start (for the BOM, the binary check and ICU's
/// detector) and the UTF-8 scan of all of it, read 16 MiB at a time.
struct FileScan {
    static let prefixBytes = 1 << 16
    var sha256: String
    var prefix: [UInt8]
    var utf8: UTF8Scan

    init(_ source: ByteSource, piece: Int = 16 << 20) throws {
        var hasher = SHA256()
        var scan = UTF8Scan()
        var carry: [UInt8] = []
        var offset = 0
        prefix = try source.read(0..<min(source.size, Self.prefixBytes))
        repeat {
            let end = min(source.size, offset + piece)
            var bytes = try source.read(offset..<end)
            bytes.withUnsafeBytes { hasher.update(bufferPointer: $0) }
            if !scan.settled {
                if !carry.isEmpty { bytes.insert(contentsOf: carry, at: 0) }
                let scanned = bytes.withUnsafeBufferPointer { scan.scan($0, final: end == source.size) }
                carry = Array(bytes[scanned...])
            }
            offset = end
        } while offset < source.size
        sha256 = hasher.finalize().hexString
        utf8 = scan
    }
}

/// One window of a file's text: the decoded text of the file's bytes `start..<end`, which end
/// after a line feed unless `final`.
struct TextWindow {
    var text: DecodedText
    var start: Int
    var end: Int
    var final: Bool
}

/// Reads a file's text window by window, so that ingest holds a few dozen MB of it at a time,
/// not the whole file and its UTF-8 text (2.9 GB and 4 GB for ten million rows).
///
/// A window is decoded on its own, which is exact only where a line feed byte always ends a line
/// and a character never spans one: UTF-8 and the ASCII-compatible encodings (GB18030, Big5,
/// Shift_JIS, ...). UTF-16, UTF-32 and stateful encodings are read as one window of the whole
/// file, as is a JSON array (the readers of CSV and JSONL resume at any row; a JSON array's
/// parser does not). Every byte is hashed again as it is read: a file that changes between the
/// first pass and this one fails instead of leaving records that do not match its hash.
final class TextStream {
    let source: ByteSource
    let encoding: DetectedEncoding
    /// Bytes of the file a window starts with (ended at the last line feed in them).
    let windowBytes: Int
    /// The SHA-256 the first pass found.
    let expectedSHA256: String
    /// Whether windows may end before the file does (false: the first window is the whole file).
    private(set) var windowed: Bool
    private var hasher = SHA256()
    private var hashedUpTo = 0

    init(source: ByteSource, encoding: DetectedEncoding, windowBytes: Int, expectedSHA256: String) {
        self.source = source
        self.encoding = encoding
        self.windowBytes = max(1, windowBytes)
        self.expectedSHA256 = expectedSHA256
        self.windowed = encoding.name == "UTF-8" || DecodedText.isASCIICompatible(encoding.name)
    }

    /// From now on the file is read as one window (a JSON array).
    func readWhole() {
        windowed = false
    }

    /// The window that starts at file offset `start` (a line start): about `windowBytes` of the
    /// file, ended after the last line feed in them (more when none is; the whole rest of the
    /// file when the stream is not windowed). With `longerThan`, a window that ends after that
    /// offset: the window before, from the same start, was too short for a row or for what the
    /// format is told from.
    func window(at start: Int, longerThan previousEnd: Int? = nil) throws -> TextWindow {
        var length = max(windowBytes, 2 * ((previousEnd ?? start) - start))
        while true {
            let end = windowed ? min(source.size, start + length) : source.size
            var bytes = try source.read(start..<end)
            var cut = end
            if end < source.size {
                // End after the last line feed: rows never start mid-line.
                guard let lastLF = bytes.lastIndex(of: 0x0A), start + lastLF + 1 > (previousEnd ?? start) else {
                    length *= 2
                    continue
                }
                cut = start + lastLF + 1
                bytes.removeLast(end - cut)
            }
            if cut > hashedUpTo {
                bytes.withUnsafeBytes { raw in
                    hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: raw[max(0, hashedUpTo - start)...]))
                }
                hashedUpTo = cut
            }
            let text = try Transcoder.decode(bytes, as: encoding, originalBase: start)
            return TextWindow(text: text, start: start, end: cut, final: cut == source.size)
        }
    }

    /// Checks, once every byte was read, that they are the bytes the first pass hashed.
    /// - Throws: `IngestError(.unreadableFile)` when the file changed in between.
    func verifyHash() throws {
        guard hashedUpTo == source.size else {
            throw IngestError(.unreadableFile, "\(source.path): only \(hashedUpTo) of its \(source.size) bytes were read; run the same command again")
        }
        let sha256 = hasher.finalize().hexString
        guard sha256 == expectedSHA256 else {
            throw IngestError(.unreadableFile, "\(source.path): the file changed while it was being read (its SHA-256 was \(expectedSHA256) at the start, \(sha256) at the end); nothing of it was kept, run the same command again once it no longer changes")
        }
    }
}
