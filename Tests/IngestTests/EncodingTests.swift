import Foundation
import Testing
@testable import Ingest

@Suite("Encoding detection and transcoding")
struct EncodingTests {
    /// GB18030 bytes of a few characters (from the GB18030-2005 tables): their UTF-8 length is known.
    static let tokens: [(gb: [UInt8], text: String)] = [
        ([0xD6, 0xD0], "中"), ([0xCE, 0xC4], "文"), ([0x61], "a"), ([0x2C], ","),
        ([0x95, 0x32, 0x82, 0x36], "\u{20000}"), // 𠀀, a four-byte GB18030 sequence
        ([0xA2, 0xE3], "€"), ([0x0A], "\n"),
    ]

    @Test func byteOrderMarks() {
        #expect(EncodingDetector.detect([0xEF, 0xBB, 0xBF, 0x61]) == DetectedEncoding(name: "UTF-8", confidence: 100, bomLength: 3, method: "bom"))
        #expect(EncodingDetector.detect([0xFF, 0xFE, 0x61, 0x00]).name == "UTF-16LE")
        #expect(EncodingDetector.detect([0xFE, 0xFF, 0x00, 0x61]).name == "UTF-16BE")
    }

    @Test func utf8AndASCII() {
        #expect(EncodingDetector.detect(Array("plain ascii, text\n".utf8)) == DetectedEncoding(name: "UTF-8", confidence: 100, bomLength: 0, method: "utf8"))
        #expect(EncodingDetector.detect(Array("高血压患者能吃党参吗？".utf8)).confidence == 100)
    }

    @Test func mostlyUTF8WithAStrayByteStaysUTF8() {
        let bytes = Array("问题,回答\n头痛怎么办,多休息\n".utf8) + [0xFF] + Array("咳嗽,多喝水\n".utf8)
        let detected = EncodingDetector.detect(bytes)
        #expect(detected.name == "UTF-8")
        #expect(detected.confidence < 100)
    }

    @Test func gb18030IsDetected() {
        var bytes: [UInt8] = []
        for _ in 0..<20 { for t in Self.tokens where t.text != "\u{20000}" { bytes += t.gb } }
        #expect(EncodingDetector.detect(bytes).name == "GB18030")
        #expect(EncodingDetector.detect(bytes).method == "icu")
    }

    @Test func utf16WithoutBOM() {
        let text = "question,answer\n失眠怎么办,睡前少看手机。\n"
        var le: [UInt8] = [], be: [UInt8] = []
        for unit in text.utf16 {
            le += [UInt8(unit & 0xFF), UInt8(unit >> 8)]
            be += [UInt8(unit >> 8), UInt8(unit & 0xFF)]
        }
        #expect(EncodingDetector.detect(le).name == "UTF-16LE")
        #expect(EncodingDetector.detect(be).name == "UTF-16BE")
    }

    @Test func forcedNames() throws {
        #expect(try EncodingDetector.forced("GBK", bytes: [0x61]).name == "GB18030")
        #expect(try EncodingDetector.forced("utf-8", bytes: [0xEF, 0xBB, 0xBF]).bomLength == 3)
        #expect(throws: IngestError.self) { try EncodingDetector.forced("no-such-charset", bytes: []) }
    }

    /// Offsets mapped back from the decoded text equal the original offsets at every character, in
    /// a GB18030 text long enough to need checkpoints and walks between them, with invalid bytes.
    @Test func gb18030OffsetsAreExactEverywhere() throws {
        var original: [UInt8] = []
        var expected: [(utf8: Int, original: Int)] = []
        var utf8Length = 0
        var seed: UInt64 = 42
        var invalidAt: [Int] = []
        for k in 0..<6000 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            expected.append((utf8Length, original.count))
            if k % 997 == 500 {
                invalidAt.append(original.count)
                original.append(0xFF)
                utf8Length += 3
                continue
            }
            let token = Self.tokens[Int(seed >> 33) % Self.tokens.count]
            original += token.gb
            utf8Length += token.text.utf8.count
        }
        let decoded = try Transcoder.decode(original, as: DetectedEncoding(name: "GB18030", confidence: 100, bomLength: 0, method: "forced"))
        #expect(decoded.utf8.count == utf8Length)
        #expect(decoded.invalidSpans.map(\.originalOffset) == invalidAt)
        #expect(decoded.invalidSpans.allSatisfy { $0.bytes == [0xFF] })
        for point in expected {
            #expect(decoded.originalOffset(ofUTF8Offset: point.utf8) == point.original, "at utf8 offset \(point.utf8)")
        }
        #expect(decoded.originalOffset(ofUTF8Offset: utf8Length) == original.count)
    }

    /// ICU takes less than 2 GiB a call, so big files are fed to it in pieces: the pieces'
    /// size changes nothing (characters, invalid bytes and offsets across their boundaries).
    @Test(arguments: [1, 2, 3, 5, 7, 64])
    func piecesHandedToICUChangeNothing(chunk: Int) throws {
        // 2- and 4-byte characters, ASCII, line feeds, invalid bytes and a truncated lead byte.
        let gb: [UInt8] = [0xD6, 0xD0, 0x61, 0x95, 0x32, 0x82, 0x36, 0x0A, 0xFF, 0xCE, 0xC4, 0x0A, 0x62, 0xFF, 0xFF,
                           0xD6, 0xD0, 0x95, 0x32, 0x82, 0x36, 0x0A, 0x63, 0xD6]
        let le16: [UInt8] = [0xFF, 0xFE] + "a😀\n中😀".utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        for (bytes, encoding) in [(gb, DetectedEncoding(name: "GB18030", confidence: 100, bomLength: 0, method: "forced")),
                                  (le16, EncodingDetector.detect(le16))] {
            let whole = try Transcoder.decode(bytes, as: encoding)
            let pieces = try Transcoder.decode(bytes, as: encoding, chunk: chunk)
            #expect(pieces.utf8 == whole.utf8, "\(encoding.name)")
            // ICU's output copied out in pieces of `chunk` bytes from its end, the buffer cut behind each.
            let copied = try Transcoder.decode(bytes, as: encoding, chunk: chunk, copyPiece: chunk)
            #expect(copied.utf8 == whole.utf8, "\(encoding.name)")
            #expect(copied.utf8.count == whole.utf8.count && !copied.utf8.isEmpty, "\(encoding.name)")
            #expect(pieces.invalidSpans == whole.invalidSpans, "\(encoding.name)")
            for offset in 0...whole.utf8.count where offset == whole.utf8.count || whole.utf8[offset] & 0xC0 != 0x80 {
                #expect(pieces.originalOffset(ofUTF8Offset: offset) == whole.originalOffset(ofUTF8Offset: offset), "\(encoding.name) at \(offset)")
            }
        }
        let whole = try Transcoder.decode(gb, as: DetectedEncoding(name: "GB18030", confidence: 100, bomLength: 0, method: "forced"))
        #expect(String(decoding: whole.utf8, as: UTF8.self) == "中a\u{20000}\n\u{FFFD}文\nb\u{FFFD}\u{FFFD}中\u{20000}\nc\u{FFFD}")
        #expect(whole.invalidSpans.map(\.originalOffset) == [8, 13, 14, 23])
    }

    @Test func fourByteGB18030Character() throws {
        let bytes: [UInt8] = [0x95, 0x32, 0x82, 0x36, 0x61]
        let decoded = try Transcoder.decode(bytes, as: DetectedEncoding(name: "GB18030", confidence: 100, bomLength: 0, method: "forced"))
        #expect(String(decoding: decoded.utf8, as: UTF8.self) == "\u{20000}a")
        #expect(decoded.originalOffset(ofUTF8Offset: 4) == 4)
    }

    @Test func truncatedLeadByteAtTheEnd() throws {
        let bytes: [UInt8] = [0xD6, 0xD0, 0x0A, 0xD6]
        let decoded = try Transcoder.decode(bytes, as: DetectedEncoding(name: "GB18030", confidence: 100, bomLength: 0, method: "forced"))
        #expect(decoded.invalidSpans == [InvalidSpan(utf8Offset: 4, originalOffset: 3, bytes: [0xD6])])
    }

    @Test func utf8InvalidSpansAndOffsets() {
        let bytes: [UInt8] = [0xEF, 0xBB, 0xBF] + Array("中a".utf8) + [0xFF, 0xE4, 0xB8] + Array("b".utf8)
        let decoded = Transcoder.decodeUTF8(bytes, bom: 3)
        #expect(decoded.invalidSpans == [InvalidSpan(utf8Offset: 4, originalOffset: 7, bytes: [0xFF]),
                                         InvalidSpan(utf8Offset: 7, originalOffset: 8, bytes: [0xE4, 0xB8])])
        #expect(String(decoding: decoded.utf8, as: UTF8.self) == "中a\u{FFFD}\u{FFFD}b")
        #expect(decoded.originalOffset(ofUTF8Offset: 0) == 3)
        #expect(decoded.originalOffset(ofUTF8Offset: 3) == 6)
        #expect(decoded.originalOffset(ofUTF8Offset: 4) == 7)
        #expect(decoded.originalOffset(ofUTF8Offset: 7) == 8)
        #expect(decoded.originalOffset(ofUTF8Offset: 10) == 10)
        #expect(decoded.invalidSpans(in: 0..<4).isEmpty)
        #expect(decoded.invalidSpans(in: 4..<8).count == 2)
    }

    @Test func utf16SurrogatesAndOffsets() throws {
        let text = "a😀\n中"
        var bytes: [UInt8] = [0xFF, 0xFE]
        for unit in text.utf16 { bytes += [UInt8(unit & 0xFF), UInt8(unit >> 8)] }
        let decoded = try Transcoder.decode(bytes, as: EncodingDetector.detect(bytes))
        #expect(String(decoding: decoded.utf8, as: UTF8.self) == text)
        #expect(decoded.originalOffset(ofUTF8Offset: 1) == 4)   // 😀 after BOM + "a"
        #expect(decoded.originalOffset(ofUTF8Offset: 5) == 8)   // "\n"
        #expect(decoded.originalOffset(ofUTF8Offset: 6) == 10)  // 中, a line start
        #expect(decoded.originalOffset(ofUTF8Offset: 9) == 12)  // end
    }
}
