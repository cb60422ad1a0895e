import CICU

/// The encoding a file was read in, and how sure we are.
public struct DetectedEncoding: Sendable, Equatable {
    /// Canonical name: "UTF-8", "UTF-16LE", "UTF-16BE", "GB18030", "Big5", "Shift_JIS", "ISO-8859-1", ...
    public var name: String
    /// 0...100; 100 for a BOM or strictly valid UTF-8.
    public var confidence: Int
    /// Bytes of byte-order mark at the start of the file.
    public var bomLength: Int
    /// "bom", "utf8", "icu" or "forced".
    public var method: String

    public init(name: String, confidence: Int, bomLength: Int, method: String) {
        self.name = name
        self.confidence = confidence
        self.bomLength = bomLength
        self.method = method
    }
}

/// Decides how to read a file's bytes: BOM first, then strict UTF-8, then ICU's detector.
public enum EncodingDetector {
    /// Detects the encoding of `bytes`.
    ///
    /// Rules, in order:
    /// 1. A BOM (UTF-8 `EF BB BF`, UTF-16LE `FF FE`, UTF-16BE `FE FF`) decides.
    /// 2. UTF-16 without a BOM: in the first 4 KiB, at least a third of the even (BE) or odd (LE)
    ///    bytes are NUL and almost none of the others: text of mostly ASCII/CJK BMP characters.
    /// 3. Strictly valid UTF-8 (pure ASCII included) is UTF-8 with confidence 100.
    /// 4. Mostly UTF-8: at least 3 valid multi-byte sequences and at most one invalid sequence for
    ///    every 10 valid ones (Chinese text in GB18030 read as UTF-8 is mostly invalid, so it cannot
    ///    pass). A UTF-8 export with a few damaged bytes stays UTF-8 (those rows become rejects)
    ///    instead of being misread whole as Latin-1 or GB18030. Confidence drops with the damage.
    /// 5. Otherwise ICU's ucsdet; GBK and GB2312 (and ICU's "GB18030") are read as GB18030.
    public static func detect(_ bytes: [UInt8]) -> DetectedEncoding {
        detect(prefix: bytes, scan: UTF8Scan(bytes))
    }

    /// `detect(_:)` for a file read in pieces: `prefix` is its start (64 KiB or more, or all of
    /// it), `scan` the UTF-8 scan of all of it (rules 3 and 4 count the whole file).
    static func detect(prefix bytes: [UInt8], scan: UTF8Scan) -> DetectedEncoding {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { return DetectedEncoding(name: "UTF-8", confidence: 100, bomLength: 3, method: "bom") }
        if bytes.starts(with: [0xFF, 0xFE]) { return DetectedEncoding(name: "UTF-16LE", confidence: 100, bomLength: 2, method: "bom") }
        if bytes.starts(with: [0xFE, 0xFF]) { return DetectedEncoding(name: "UTF-16BE", confidence: 100, bomLength: 2, method: "bom") }
        if let utf16 = utf16WithoutBOM(bytes) { return DetectedEncoding(name: utf16, confidence: 80, bomLength: 0, method: "utf16-nul") }
        if scan.invalid == 0 { return DetectedEncoding(name: "UTF-8", confidence: 100, bomLength: 0, method: "utf8") }
        if scan.multibyte >= 3 && scan.invalid * 10 <= scan.multibyte {
            let confidence = max(50, 99 - (scan.invalid * 100) / max(scan.multibyte, 1))
            return DetectedEncoding(name: "UTF-8", confidence: confidence, bomLength: 0, method: "utf8")
        }
        var name = [CChar](repeating: 0, count: 64)
        let confidence = cicu_detect(bytes, Int64(bytes.count), &name, Int32(name.count))
        let detected = confidence >= 0 ? String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "GB18030"
        return DetectedEncoding(name: canonical(detected), confidence: max(Int(confidence), 0), bomLength: 0, method: "icu")
    }

    /// The encoding given with `--encoding`: GBK, GB2312 and CP936 are read as GB18030; a BOM in the
    /// bytes is still skipped.
    /// - Throws: `IngestError(.unknownEncoding)` when ICU has no converter of that name.
    public static func forced(_ name: String, bytes: [UInt8]) throws -> DetectedEncoding {
        let upper = name.uppercased()
        var canonicalName = canonical(name)
        if !["UTF-8", "UTF8", "UTF-16LE", "UTF-16BE", "GB18030"].contains(upper) && canonicalName == name {
            var out = [CChar](repeating: 0, count: 64)
            guard cicu_canonical_name(name, &out, Int32(out.count)) == 1 else {
                throw IngestError(.unknownEncoding, "--encoding \(name): not an encoding ICU knows; try UTF-8, GB18030, GBK, Big5, Shift_JIS, UTF-16LE or ISO-8859-1")
            }
            canonicalName = name
        }
        var bom = 0
        if canonicalName == "UTF-8" && bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bom = 3 }
        if canonicalName == "UTF-16LE" && bytes.starts(with: [0xFF, 0xFE]) { bom = 2 }
        if canonicalName == "UTF-16BE" && bytes.starts(with: [0xFE, 0xFF]) { bom = 2 }
        return DetectedEncoding(name: canonicalName, confidence: 100, bomLength: bom, method: "forced")
    }

    /// Our canonical spelling of common names (ICU's for the rest).
    static func canonical(_ name: String) -> String {
        switch name.uppercased().replacingOccurrences(of: "_", with: "-") {
        case "UTF-8", "UTF8": return "UTF-8"
        case "UTF-16LE", "UTF16LE": return "UTF-16LE"
        case "UTF-16BE", "UTF16BE": return "UTF-16BE"
        case "GB18030", "GBK", "GB2312", "CP936", "EUC-CN", "WINDOWS-936", "X-GBK": return "GB18030"
        case "BIG5", "BIG-5", "CP950": return "Big5"
        case "SHIFT-JIS", "SJIS", "CP932": return "Shift_JIS"
        case "ISO-8859-1", "LATIN1", "LATIN-1": return "ISO-8859-1"
        default: return name
        }
    }

    static func utf16WithoutBOM(_ bytes: [UInt8]) -> String? {
        let n = min(bytes.count, 4096) & ~1
        guard n >= 4 else { return nil }
        var evenNUL = 0, oddNUL = 0
        for i in stride(from: 0, to: n, by: 2) {
            if bytes[i] == 0 { evenNUL += 1 }
            if bytes[i + 1] == 0 { oddNUL += 1 }
        }
        let pairs = n / 2
        if oddNUL * 3 >= pairs && evenNUL * 20 < pairs { return "UTF-16LE" }
        if evenNUL * 3 >= pairs && oddNUL * 20 < pairs { return "UTF-16BE" }
        return nil
    }
}

/// Counts of valid multi-byte and invalid sequences in a UTF-8 scan.
struct UTF8Scan {
    var multibyte = 0
    var invalid = 0

    /// Set once the scan has seen enough to rule UTF-8 out: the rest is not looked at.
    private(set) var settled = false

    init() {}

    init(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { _ = scan($0, final: true) }
    }

    /// Scans the next piece of a file. Returns how many of its bytes were scanned: unless `final`,
    /// a sequence that may continue past the piece's end is left for the next piece (the caller
    /// hands those at most 3 bytes in again at its front), so counts never depend on where a
    /// file is cut.
    mutating func scan(_ buffer: UnsafeBufferPointer<UInt8>, final: Bool) -> Int {
        let n = buffer.count
        var i = 0
        while i < n {
            let b = buffer[i]
            if b < 0x80 { i += 1; continue }
            // Clearly not UTF-8 (rule 4 can no longer hold): stop early, the rest does not matter.
            if settled || (invalid > 1000 && invalid * 10 > multibyte) {
                settled = true
                return n
            }
            if !final && n - i < 4 { return i }
            let length = UTF8Scan.sequenceLength(buffer, i)
            if length > 0 { multibyte += 1; i += length } else { invalid += 1; i += 1 }
        }
        return n
    }

    /// Length of the valid UTF-8 sequence starting at `i` (a non-ASCII lead byte), or 0 if invalid.
    /// Follows the Unicode standard's table of well-formed sequences (no overlongs, no surrogates).
    @inline(__always)
    static func sequenceLength(_ p: UnsafeBufferPointer<UInt8>, _ i: Int) -> Int {
        let n = p.count
        let b0 = p[i]
        func cont(_ k: Int, _ lo: UInt8 = 0x80, _ hi: UInt8 = 0xBF) -> Bool { i + k < n && p[i + k] >= lo && p[i + k] <= hi }
        switch b0 {
        case 0xC2...0xDF: return cont(1) ? 2 : 0
        case 0xE0: return cont(1, 0xA0) && cont(2) ? 3 : 0
        case 0xE1...0xEC, 0xEE, 0xEF: return cont(1) && cont(2) ? 3 : 0
        case 0xED: return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0
        case 0xF0: return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0
        case 0xF1...0xF3: return cont(1) && cont(2) && cont(3) ? 4 : 0
        case 0xF4: return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0
        default: return 0
        }
    }
}
