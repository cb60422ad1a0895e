import Foundation
@testable import FuzzTargets
import ModelRuntime
import Testing

/// The heap merge of long words against the scanning reference, and the time a hostile word
/// takes (docs/RELIABILITY.md).
@Suite("BPE merges of long words")
struct BPEMergeTests {
    static var tokenizer: BPETokenizer { get throws { try #require(FuzzTokenizer.tokenizer) } }

    /// Random words over a few letters (so that many merges apply), of every length around the
    /// switch from scanning to the heap: the same tokens either way.
    @Test func heapMergeMatchesScanning() throws {
        let tokenizer = try Self.tokenizer
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("the patient 高血压 ".utf8)
        for length in 2...200 {
            let word = (0..<length).map { _ in tokenizer.byteIDs[Int(alphabet[Int.random(in: 0..<alphabet.count, using: &generator)])] }
            let heap = tokenizer.bpeWithHeap(word), scan = tokenizer.bpeByScanning(word)
            #expect(heap.ids == scan.ids, "length \(length)")
            #expect(heap.lengths == scan.lengths, "length \(length)")
        }
    }

    /// A word of a megabyte (one pre-tokenizer piece: letters only) is encoded in seconds; merging
    /// it by scanning would take hours.
    @Test func megabyteWordIsEncodedQuickly() throws {
        let tokenizer = try Self.tokenizer
        let text = String(repeating: "thetablets", count: 100_000)
        let start = Date()
        let (ids, offsets) = tokenizer.encodeWithOffsets(text)
        #expect(Date().timeIntervalSince(start) < 30)
        #expect(tokenizer.decode(ids) == text)
        #expect(offsets.last?.upperBound == text.utf8.count)
    }

    /// Pieces that Swift's `String` equality calls equal (canonically equivalent) but whose bytes
    /// differ get their own tokens whatever was encoded before: the word cache is keyed by bytes.
    /// (The fuzzer's `bpe` target found U+037E taking the tokens of ";" cached from an earlier
    /// input: decode gave ";" back and the offsets stopped a byte short.)
    @Test func canonicallyEquivalentPiecesKeepTheirOwnBytes() throws {
        for tokenizer in FuzzTokenizer.variants where !tokenizer.normalizeNFC {
            for (plain, other) in [(";", "\u{37E}"), ("\u{8C48}", "\u{F900}"), ("\u{C5}", "\u{212B}"), ("e\u{301}", "\u{E9}")] {
                _ = tokenizer.encode(plain)
                let (ids, offsets) = tokenizer.encodeWithOffsets(other)
                let bytes = Array(other.utf8)
                #expect(offsets.last?.upperBound == bytes.count, "\(tokenizer.preTokenizer) \(bytes)")
                #expect(Array(tokenizer.decode(ids).utf8) == bytes, "\(tokenizer.preTokenizer) \(bytes)")
                #expect(ids != tokenizer.encode(plain), "\(tokenizer.preTokenizer) \(bytes)")
            }
        }
    }
}
