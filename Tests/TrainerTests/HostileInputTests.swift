import Foundation
import Testing
@testable import ModelRuntime
import TestSupport

/// Model files written to hurt the reader: each hostile value ends in a `ModelError` that names
/// the file and what is wrong, never a trap, an abort or an allocation sized by the input.
@Suite("Hostile model files")
struct HostileInputTests {
    /// Writes `bytes` to a fresh temporary file, runs `body` with its path, and deletes it.
    private func withFile<T>(_ bytes: [UInt8], suffix: String, _ body: (String) throws -> T) throws -> T {
        let path = try TestSupport.temporaryDirectory("hostile").appendingPathComponent("file\(suffix)").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try body(path)
    }

    /// A GGUF with one F32 tensor and the given extra metadata entry.
    private func gguf(metadata key: String, type: UInt32, value: [UInt8]) -> [UInt8] {
        var writer = GGUFWriter()
        writer.metadata.append((key, type, value))
        writer.tensors.append(("w", [32], .f32, [UInt8](repeating: 0, count: 128)))
        return writer.bytes()
    }

    @Test("general.alignment near 2^64 is refused, not an overflow", arguments: [
        UInt64.max, UInt64(Int.max), UInt64(Int.max) - 1, 1 << 62, 3, 0, 1 << 17,
    ])
    func hugeAlignment(_ alignment: UInt64) throws {
        let bytes = gguf(metadata: "general.alignment", type: 10, value: GGUFWriter.le(alignment))
        _ = try withFile(bytes, suffix: ".gguf") { path in
            do {
                _ = try GGUFFile(path: path)
                Issue.record("alignment \(alignment) was accepted")
            } catch let error as ModelError {
                #expect(error.description.hasPrefix("\(path): general.alignment is "))
                #expect(error.description.contains("not a power of two from 1 to 65536"))
            }
        }
    }

    @Test func validAlignmentsStillRead() throws {
        for alignment: UInt32 in [1, 8, 32, 64, 4096] {
            let bytes = gguf(metadata: "general.alignment", type: 4, value: GGUFWriter.le(alignment))
            let file = try withFile(bytes, suffix: ".gguf") { try GGUFFile(path: $0) }
            #expect(file.dataOffset % Int(alignment) == 0)
        }
    }

    /// Arrays of arrays nested 100,000 deep: refused at depth 8 (the file is only ~1.2 MB, so the
    /// recursion would otherwise run 100,000 frames deep).
    @Test func deeplyNestedArraysAreRefused() throws {
        var value: [UInt8] = []
        let depth = 100_000
        for _ in 0..<depth { value += GGUFWriter.le(UInt32(9)) + GGUFWriter.le(UInt64(1)) }
        value += GGUFWriter.le(UInt32(4)) + GGUFWriter.le(UInt64(0))
        // The outer value's type is 9 (array); its payload starts with the element type.
        let bytes = gguf(metadata: "nested", type: 9, value: value)
        _ = try withFile(bytes, suffix: ".gguf") { path in
            do {
                _ = try GGUFFile(path: path)
                Issue.record("arrays nested \(depth) deep were accepted")
            } catch let error as ModelError {
                #expect(error.description.hasPrefix("\(path): metadata nested: arrays nested more than 8 deep at byte "))
            }
        }
    }

    @Test func shallowNestedArraysRead() throws {
        // [[7, 8], [9, 10]] as arrays of uint32.
        var value = GGUFWriter.le(UInt32(9)) + GGUFWriter.le(UInt64(2))
        for pair: [UInt32] in [[7, 8], [9, 10]] {
            value += GGUFWriter.le(UInt32(4)) + GGUFWriter.le(UInt64(2)) + pair.flatMap { GGUFWriter.le($0) }
        }
        let bytes = gguf(metadata: "pairs", type: 9, value: value)
        let file = try withFile(bytes, suffix: ".gguf") { try GGUFFile(path: $0) }
        guard case let .array(outer)? = file.metadata["pairs"] else {
            Issue.record("pairs is not an array")
            return
        }
        #expect(outer.count == 2)
        #expect(outer.map(\.ints) == [[7, 8], [9, 10]])
    }

    /// An array that claims 2^27 strings (under the count limit) in a file of a few hundred bytes:
    /// refused before any memory is reserved for it.
    @Test func arrayLongerThanTheFileIsRefused() throws {
        for (elementType, count) in [(UInt32(8), UInt64(1) << 27), (9, 1 << 27), (12, 100_000), (0, 10_000)] {
            let value = GGUFWriter.le(elementType) + GGUFWriter.le(count)
            let bytes = gguf(metadata: "claims", type: 9, value: value)
            _ = try withFile(bytes, suffix: ".gguf") { path in
                do {
                    _ = try GGUFFile(path: path)
                    Issue.record("an array of \(count) elements of type \(elementType) was accepted")
                } catch let error as ModelError {
                    #expect(error.description.hasPrefix("\(path): metadata claims: array of \(count) elements at byte 54 does not fit in the "))
                }
            }
        }
    }

    /// A tokenizer.json whose vocabulary holds an id of 10^15: the table would need 16 PB.
    @Test func tokenizerIDFarBeyondTheVocabularyIsRefused() throws {
        for id in [1_000_000_000_000_000, Int(Int64.max), 4 + BPETokenizer.maximumIDGap] {
            let json = #"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "huge": \#(id)}, "merges": ["a b"]}, "pre_tokenizer": {"type": "ByteLevel"}}"#
            _ = try withFile(Array(json.utf8), suffix: ".json") { path in
                #expect(throws: ModelError.invalidFile(path: path, detail: "token id \(id) is far beyond the 4 tokens the file defines (ids run 0..<N with at most 65536 unused); the file is damaged")) {
                    try BPETokenizer.fromTokenizerJSON(path: path)
                }
            }
        }
        // The same holds for an added token.
        let added = #"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}, "added_tokens": [{"id": 99999999999, "content": "<x>", "special": true}]}"#
        _ = try withFile(Array(added.utf8), suffix: ".json") { path in
            #expect(throws: ModelError.self) { try BPETokenizer.fromTokenizerJSON(path: path) }
        }
    }

    /// A few unused ids (real vocabularies have them) are fine.
    @Test func smallIDGapsAreAccepted() throws {
        let json = #"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 5}, "merges": ["a b"]}, "pre_tokenizer": {"type": "ByteLevel"}}"#
        let tokenizer = try withFile(Array(json.utf8), suffix: ".json") { try BPETokenizer.fromTokenizerJSON(path: $0) }
        #expect(tokenizer.tokens.count == 6)
    }
}
