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

    /// Expects `body` to throw `ModelError.invalidFile` for `path` whose detail contains `detail`.
    private func expectRefused<T>(_ path: String, _ detail: String, _ body: () throws -> T) {
        do {
            _ = try body()
            Issue.record("\(path) was accepted; expected an error containing \"\(detail)\"")
        } catch let ModelError.invalidFile(errorPath, message) {
            #expect(errorPath == path)
            #expect(message.contains(detail), "\(message)")
        } catch {
            Issue.record("\(path): \(error), expected ModelError.invalidFile")
        }
    }

    /// A GGUF header claiming 2^40 tensors (or metadata entries) in a 24-byte file: refused from
    /// the header, before any table is read or reserved.
    @Test(arguments: [(UInt64(1) << 40, UInt64(0)), (0, 1 << 40), (UInt64.max, UInt64.max), (1_000_000, 0)])
    func ggufClaimingHugeCounts(_ tensors: UInt64, _ entries: UInt64) throws {
        let bytes = Array("GGUF".utf8) + GGUFWriter.le(UInt32(3)) + GGUFWriter.le(tensors) + GGUFWriter.le(entries)
        try withFile(bytes, suffix: ".gguf") { path in
            expectRefused(path, "implausible counts in the header (\(tensors) tensors, \(entries) metadata entries): the file is damaged") {
                try GGUFFile(path: path)
            }
        }
    }

    /// Tensor dimensions whose product overflows (or passes 2^48 elements) are refused naming the
    /// tensor, and so is a data offset past any file.
    @Test func ggufDimensionsThatOverflow() throws {
        for dims in [[1 << 39, 1 << 39], [1 << 20, 1 << 20, 1 << 20], [3, 1 << 39, 1 << 39, 7]] {
            var writer = GGUFWriter()
            writer.tensors.append(("huge", dims, .f32, []))
            try withFile(writer.bytes(), suffix: ".gguf") { path in
                expectRefused(path, "tensor huge has shape \(dims), too many elements for any file; the file is damaged") { try GGUFFile(path: path) }
            }
        }
        var zero = GGUFWriter()
        zero.tensors.append(("zero", [4, 0], .f32, []))
        try withFile(zero.bytes(), suffix: ".gguf") { path in
            expectRefused(path, "tensor zero has dimension 0") { try GGUFFile(path: path) }
        }
        // A shape that is fine but whose data lies far past the end of the file.
        var far = GGUFWriter()
        far.tensors.append(("far", [1 << 30, 1 << 10], .f32, []))
        try withFile(far.bytes(), suffix: ".gguf") { path in
            let file = try GGUFFile(path: path)
            expectRefused(path, "tensor far: its 4398046511104 bytes at offset") { try file.tensorData(file.tensors[0]) }
        }
    }

    /// A safetensors header length claiming petabytes, and an entry whose data claims petabytes:
    /// refused from the 8-byte length or the entry, never allocated.
    @Test func safetensorsClaimingPetabytes() throws {
        let petabytes = UInt64(1) << 50
        try withFile(GGUFWriter.le(petabytes) + Array("{}".utf8), suffix: ".safetensors") { path in
            expectRefused(path, "the header claims \(petabytes) bytes but the file has 2 after the length; the file is truncated") {
                try SafetensorsFile(path: path)
            }
        }
        try withFile(GGUFWriter.le(UInt64.max), suffix: ".safetensors") { path in
            expectRefused(path, "the header claims \(UInt64.max) bytes") { try SafetensorsFile(path: path) }
        }
        for entry in [#"{"w": {"dtype": "F32", "shape": [262144, 262144, 4096], "data_offsets": [0, 4]}}"#,
                      #"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 1125899906842624]}}"#,
                      #"{"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}"#,
                      #"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}"#] {
            let header = Array(entry.utf8)
            try withFile(GGUFWriter.le(UInt64(header.count)) + header + [0, 0, 0, 0], suffix: ".safetensors") { path in
                expectRefused(path, "tensor w: header entry is malformed or its data runs past the end of the file") { try SafetensorsFile(path: path) }
            }
        }
    }

    /// JSON nested 100,000 deep in each JSON file the runtime reads: a clear "not a JSON object"
    /// (Foundation's parser stops at depth 512), quickly.
    @Test func deeplyNestedJSONHeaders() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let deepObject = "{\"a\": " + deep + "}"
        let start = Date()
        let header = Array(deepObject.utf8)
        try withFile(GGUFWriter.le(UInt64(header.count)) + header, suffix: ".safetensors") { path in
            expectRefused(path, "is not a JSON object") { try SafetensorsFile(path: path) }
        }
        try withFile(Array(deepObject.utf8), suffix: ".json") { path in
            expectRefused(path, "not a JSON object") { try BPETokenizer.fromTokenizerJSON(path: path) }
            expectRefused(path, "not a JSON object") { try LoRAAdapter.readPEFTConfiguration(URL(fileURLWithPath: path)) }
            expectRefused(path, "not a readable JSON object") { try LlamaConfiguration(configJSON: path) }
        }
        #expect(Date().timeIntervalSince(start) < 10)
    }

    /// A tokenizer.json of 10^7 merges (60 MB) is refused from its size before it is parsed, which
    /// would cost about ten times the file.
    @Test func tokenizerWithTenMillionMergesIsRefusedBeforeParsing() throws {
        var text = Array(#"{"model": {"type": "BPE", "vocab": {"a": 0, "aa": 1}, "merges": ["a a""#.utf8)
        text.reserveCapacity(60_000_100)
        for _ in 1..<10_000_000 { text += [0x2C, 0x22, 0x61, 0x20, 0x61, 0x22] } // ,"a a"
        text += Array("]}}".utf8)
        let start = Date()
        try withFile(text, suffix: ".json") { path in
            expectRefused(path, "the file holds \(text.count) bytes, more than the 48 MiB of any byte-level BPE tokenizer corpus reads") {
                try BPETokenizer.fromTokenizerJSON(path: path)
            }
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            expectRefused("t.json", "more than the 48 MiB") { try BPETokenizer.fromTokenizerJSON(data: data, path: "t.json") }
        }
        #expect(Date().timeIntervalSince(start) < 10)
    }

    /// More merges or tokens than any tokenizer has, from tokenizer.json under the size limit, from
    /// GGUF metadata, or given directly: refused before the merge table is built.
    @Test func tooManyMergesOrTokens() throws {
        let count = BPETokenizer.maximumMerges + 1
        let merges = [String](repeating: "a a", count: count)
        do {
            _ = try BPETokenizer(tokens: ["a", "aa"], merges: merges, specialTokenIDs: [], preTokenizer: .gpt2, bos: nil, eos: nil)
            Issue.record("\(count) merges were accepted")
        } catch let error as ModelError {
            #expect(error.description == "tokenizer: \(count) merges, more than the 2097152 any tokenizer has; the file is damaged")
        }
        let metadata: [String: GGUFValue] = [
            "tokenizer.ggml.model": .string("gpt2"), "tokenizer.ggml.tokens": .array([.string("a"), .string("aa")]),
            "tokenizer.ggml.merges": .array([GGUFValue](repeating: .string("a a"), count: count)),
        ]
        #expect(throws: ModelError.invalidFile(path: "the GGUF's tokenizer.ggml metadata", detail: "\(count) merges, more than the 2097152 any tokenizer has; the file is damaged")) {
            try BPETokenizer.fromGGUF(metadata)
        }
        let json = #"{"model": {"type": "BPE", "vocab": {"a": 0, "aa": 1}, "merges": ["# + String(repeating: #""a a","#, count: count) + #""a a"]}}"#
        try withFile(Array(json.utf8), suffix: ".json") { path in
            expectRefused(path, "\(count + 1) merges, more than the 2097152 any tokenizer has") { try BPETokenizer.fromTokenizerJSON(path: path) }
        }
    }

    /// A head count from GGUF metadata so large that doubling it overflows: a shape error naming
    /// the tensor, not a trap.
    @Test(arguments: [Int.max, Int.max / 2 + 1, 5, 0, -3])
    func headCountThatCannotDivideTheRows(_ heads: Int) throws {
        let tensor = StoredTensor(try Tensor(shape: [8, 2], data: [Float](repeating: 1, count: 16)))
        #expect(throws: ModelError.self) { try GGUFFile.unpermuteRows(tensor, heads: heads, name: "blk.0.attn_q.weight") }
    }

    /// A LoRA alpha (or dropout) that is a finite Double but infinite as a Float: refused naming
    /// the key, not read as an infinite scale (found by the peft-config fuzz target,
    /// fuzz/regressions/peft-config/alpha-beyond-float.json).
    @Test(arguments: ["lora_alpha", "lora_dropout"])
    func loraNumberBeyondFloat(_ key: String) {
        let json = #"{"r": 8, "target_modules": ["q_proj"], "\#(key)": 4.4e42}"#
        expectRefused("adapter_config.json", "\(key) is ") {
            try LoRAAdapter.readPEFTConfiguration(data: Data(json.utf8), path: "adapter_config.json")
        }
    }
}
