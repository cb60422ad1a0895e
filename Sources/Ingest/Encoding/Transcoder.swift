import CICU

/// A byte sequence that is invalid in the file's encoding. In the decoded text U+FFFD
/// (`EF BF BD`) stands in its place.
public struct InvalidSpan: Sendable, Equatable {
    /// Offset of the replacement in `DecodedText.utf8`.
    public var utf8Offset: Int
    /// Offset of the bad sequence in the original file (BOM included).
    public var originalOffset: Int
    /// The offending original bytes (at most 8).
    public var bytes: [UInt8]

    public init(utf8Offset: Int, originalOffset: Int, bytes: [UInt8]) {
        self.utf8Offset = utf8Offset
        self.originalOffset = originalOffset
        self.bytes = bytes
    }
}

/// A file's text as UTF-8 (the whole file, or one window of it: see `TextStream`), with what is
/// needed to map any position back to the original bytes.
///
/// Offsets into `utf8` are the window's own (0 is its first byte); offsets in the original are
/// always the file's (`originalBase` is where the bytes the window was decoded from begin).
public struct DecodedText: Sendable {
    /// The text, BOM removed, each invalid sequence replaced by U+FFFD.
    public var utf8: [UInt8]
    /// Invalid sequences, sorted by `utf8Offset`.
    public var invalidSpans: [InvalidSpan]
    /// For non-UTF-8 input: positions where decoded and original offsets line up (sorted);
    /// `original` indexes the `original` bytes.
    let checkpoints: [(utf8: Int, original: Int)]
    /// For non-UTF-8 input: the original bytes and the ICU converter name, to refine offsets.
    let original: [UInt8]
    let charset: String?
    /// Bytes skipped at the start of the bytes decoded (the BOM, in the window that starts the file).
    let bomLength: Int
    /// File offset of the first of the bytes this text was decoded from (0 for a whole file).
    var originalBase: Int = 0

    /// Bytes an ASCII character takes in the original encoding, for the encodings where every
    /// ASCII character is one fixed-width unit and never part of a multi-byte sequence; nil for
    /// the others (stateful ones such as ISO-2022), which take the exact character walk.
    var asciiWidth: Int? {
        guard let charset else { return 1 }
        if charset.hasPrefix("UTF-16") { return 2 }
        if charset.hasPrefix("UTF-32") { return 4 }
        return Self.isASCIICompatible(charset) ? 1 : nil
    }

    /// Whether every ASCII byte of text in `charset` is that ASCII character, never part of a
    /// multi-byte sequence (so a line feed byte is always a line feed).
    static func isASCIICompatible(_ charset: String) -> Bool {
        ["GB18030", "Big5", "Shift_JIS", "EUC-", "ISO-8859-", "windows-125", "KOI8", "UTF-8"].contains { charset.hasPrefix($0) }
    }

    /// Byte offset in the original file of the character starting at `utf8Offset` (exact for any
    /// character boundary, in any encoding).
    public func originalOffset(ofUTF8Offset offset: Int) -> Int {
        originalBase + offsetInBytes(ofUTF8Offset: offset)
    }

    /// `originalOffset(ofUTF8Offset:)` in the bytes decoded (the window's, not the file's).
    private func offsetInBytes(ofUTF8Offset offset: Int) -> Int {
        guard let charset else {
            // UTF-8: the BOM, plus for every replaced sequence before `offset` its length minus 3.
            var shift = bomLength
            var lo = 0, hi = invalidSpans.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if invalidSpans[mid].utf8Offset < offset { lo = mid + 1 } else { hi = mid }
            }
            for span in invalidSpans[..<lo] { shift += span.bytes.count - 3 }
            // (InvalidSpan.originalOffset is the file's; only the lengths are used here.)
            return offset + shift
        }
        // The last checkpoint at or before `offset`, then walk the original characters from there.
        var lo = 0, hi = checkpoints.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if checkpoints[mid].utf8 <= offset { lo = mid + 1 } else { hi = mid }
        }
        let checkpoint = checkpoints[max(lo - 1, 0)]
        if checkpoint.utf8 == offset { return checkpoint.original }
        // A position just before a line start (a row's end, before its CR/LF): every character in
        // between is ASCII, which takes `asciiWidth` bytes in the original (1 in ASCII-compatible
        // encodings such as GB18030, 2 in UTF-16), so no character walk is needed.
        if lo < checkpoints.count, let asciiWidth {
            let next = checkpoints[lo]
            if next.utf8 - offset <= 8, utf8[offset..<next.utf8].allSatisfy({ $0 < 0x80 }) {
                return next.original - (next.utf8 - offset) * asciiWidth
            }
        }
        let refined = original.withUnsafeBufferPointer { p in
            cicu_refine(charset, p.baseAddress, Int64(p.count), Int64(checkpoint.original), Int64(checkpoint.utf8), Int64(offset))
        }
        return refined >= 0 ? Int(refined) : checkpoint.original
    }

    /// The invalid spans whose replacement lies in `range`.
    public func invalidSpans(in range: Range<Int>) -> ArraySlice<InvalidSpan> {
        var lo = 0, hi = invalidSpans.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if invalidSpans[mid].utf8Offset < range.lowerBound { lo = mid + 1 } else { hi = mid }
        }
        var end = lo
        while end < invalidSpans.count && invalidSpans[end].utf8Offset < range.upperBound { end += 1 }
        return invalidSpans[lo..<end]
    }
}

/// Decodes a file's bytes to UTF-8 without losing track of invalid bytes or offsets.
public enum Transcoder {
    /// Distance between offset checkpoints in the decoded text, besides one at every line start.
    static let checkpointEvery: Int64 = 4096

    /// Decodes `bytes` as `encoding`. UTF-8 is validated in Swift; everything else goes through ICU.
    /// - Throws: `IngestError(.unknownEncoding)` when ICU cannot convert from that encoding.
    /// - Parameter chunk: about how many bytes are decoded at a time, in pieces that end after a
    ///   line feed (ICU takes less than 2 GiB at once; the tests use tiny pieces). The result does
    ///   not depend on it. Encodings where a 0x0A byte can be part of another character (UTF-16,
    ///   UTF-32, ISO-2022) are decoded whole, so up to 2 GiB.
    /// - Parameter copyPiece: how many bytes of ICU's output are copied out at a time (the tests
    ///   use tiny pieces); the result does not depend on it either.
    /// - Parameter originalBase: the file offset of `bytes[0]` when `bytes` are a window of the
    ///   file (`TextStream`); a window that does not start the file skips no BOM.
    public static func decode(_ bytes: [UInt8], as encoding: DetectedEncoding, originalBase: Int = 0, chunk: Int = 1 << 30,
                              copyPiece: Int = 64 << 20) throws -> DecodedText {
        let bomLength = originalBase == 0 ? encoding.bomLength : 0
        if encoding.name == "UTF-8" { return decodeUTF8(bytes, bom: bomLength, originalBase: originalBase) }
        var decoded = cicu_decoded()
        // Decode past the BOM in place (no copy of the file).
        let skip = min(bomLength, bytes.count)
        let status = bytes.withUnsafeBufferPointer { p in
            cicu_decode(encoding.name, p.baseAddress.map { $0 + skip }, Int64(p.count - skip), checkpointEvery, Int64(max(1, min(chunk, Int(Int32.max)))),
                        DecodedText.isASCIICompatible(encoding.name) ? 1 : 0, &decoded)
        }
        defer { cicu_decoded_free(&decoded) }
        guard status == 0 else {
            let message = withUnsafeBytes(of: decoded.error) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            throw IngestError(.unknownEncoding, "cannot decode the file as \(encoding.name): \(message); force another one with --encoding")
        }
        let bom = skip
        let checkpoints = UnsafeBufferPointer(start: decoded.checkpoints, count: Int(decoded.checkpoint_count))
            .map { (utf8: Int($0.utf8), original: Int($0.orig) + bom) }
        // The text is copied out of ICU's buffer from its end, 64 MiB at a time, the buffer cut
        // short behind each piece: the two copies never add up to more than the text and a piece
        // (a 2.9 GB GB18030 file is ~4 GB of UTF-8, which a plain copy held twice).
        let count = Int(decoded.utf8_length)
        var utf8: [UInt8] = []
        if count > 0 {
            utf8 = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
                guard let target = buffer.baseAddress else { return }
                var end = count
                // `utf8` stays non-nil while `end > 0` (cut to a length above zero, or kept when
                // realloc fails); the guard below still refuses a text copied short.
                while end > 0, let source = decoded.utf8 {
                    let start = max(0, end - max(1, copyPiece))
                    (target + start).initialize(from: source + start, count: end - start)
                    end = start
                    cicu_decoded_shrink_utf8(&decoded, Int64(start))
                }
                if end == 0 { initialized = count }
            }
        }
        guard utf8.count == count else {
            throw IngestError(.unknownEncoding, "cannot decode the file as \(encoding.name): the decoded text (\(count) bytes) could not be copied; retry with more free memory")
        }
        let spans = UnsafeBufferPointer(start: decoded.invalid, count: Int(decoded.invalid_count)).map { entry -> InvalidSpan in
            let count = Int(min(entry.length, 8))
            let raw = withUnsafeBytes(of: entry.bytes) { Array($0.prefix(count)) }
            return InvalidSpan(utf8Offset: Int(entry.utf8), originalOffset: originalBase + Int(entry.orig) + bom, bytes: raw)
        }
        // Refinement walks the original from a checkpoint; keep the BOM so offsets stay file offsets.
        return DecodedText(utf8: utf8, invalidSpans: spans, checkpoints: checkpoints, original: bytes,
                           charset: encoding.name, bomLength: bom, originalBase: originalBase)
    }

    /// UTF-8: copy as is (BOM dropped) unless there are invalid sequences, which become U+FFFD.
    static func decodeUTF8(_ bytes: [UInt8], bom: Int, originalBase: Int = 0) -> DecodedText {
        var spans: [InvalidSpan] = []
        var out: [UInt8] = []
        bytes.withUnsafeBufferPointer { p in
            var i = bom
            var copiedUpTo = bom
            let n = p.count
            while i < n {
                if p[i] < 0x80 { i += 1; continue }
                let length = UTF8Scan.sequenceLength(p, i)
                if length > 0 { i += length; continue }
                // An invalid byte: maximal subpart as one span (a truncated sequence counts once).
                var end = i + 1
                while end < n && end - i < 4 && p[end] >= 0x80 && p[end] <= 0xBF && UTF8Scan.sequenceLength(p, i) == 0
                    && isPrefixOfSequence(p, i, end - i + 1) { end += 1 }
                if out.isEmpty { out.reserveCapacity(n + 64) }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: p[copiedUpTo..<i]))
                spans.append(InvalidSpan(utf8Offset: out.count, originalOffset: originalBase + i, bytes: Array(p[i..<end])))
                out.append(contentsOf: [0xEF, 0xBF, 0xBD])
                i = end
                copiedUpTo = end
            }
            if spans.isEmpty {
                // Valid UTF-8 without a BOM is the text as it is: share the file's bytes, no copy.
                out = bom == 0 ? bytes : Array(UnsafeBufferPointer(rebasing: p[bom...]))
            } else {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: p[copiedUpTo..<n]))
            }
        }
        return DecodedText(utf8: out, invalidSpans: spans, checkpoints: [], original: [], charset: nil, bomLength: bom,
                           originalBase: originalBase)
    }

    /// Whether bytes `i..<i+count` could start a well-formed sequence (the maximal-subpart rule).
    static func isPrefixOfSequence(_ p: UnsafeBufferPointer<UInt8>, _ i: Int, _ count: Int) -> Bool {
        let b0 = p[i]
        let need: Int
        switch b0 {
        case 0xC2...0xDF: need = 2
        case 0xE0...0xEF: need = 3
        case 0xF0...0xF4: need = 4
        default: return false
        }
        guard count < need else { return false }
        if count >= 2 {
            let b1 = p[i + 1]
            switch b0 {
            case 0xE0: if b1 < 0xA0 { return false }
            case 0xED: if b1 > 0x9F { return false }
            case 0xF0: if b1 < 0x90 { return false }
            case 0xF4: if b1 > 0x8F { return false }
            default: break
            }
        }
        return true
    }
}
