import Foundation
import TestSupport
import Testing
@testable import ModelRuntime
@testable import Trainer

/// Locations of test inputs: the fixtures beside this file, and the real test model and the
/// shared reference files (TestInputs: a test that needs one carries `.needsTestModel` or
/// `.needsShared(...)` and shows as skipped without it; in CI it runs and fails).
enum TrainerFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// The SmolLM2 GGUF (scripts/fetch-test-model.sh); records an issue and throws when it is missing.
    static var smolLM2: String { get throws { try TestInputs.model() } }

    /// A file of ../shared/reference (logits.json, tokens.json); records an issue and throws when it is missing.
    static func sharedReference(_ name: String) throws -> Data {
        try Data(contentsOf: TestInputs.shared("reference/\(name)"))
    }

    static func json(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: directory.appendingPathComponent(name))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }
}

/// Writes small GGUF files for tests (version 3, little-endian).
struct GGUFWriter {
    var metadata: [(String, UInt32, [UInt8])] = []
    var tensors: [(name: String, dims: [Int], type: GGMLType, data: [UInt8])] = []

    mutating func add(string key: String, _ value: String) { metadata.append((key, 8, Self.string(value))) }
    mutating func add(uint32 key: String, _ value: UInt32) { metadata.append((key, 4, Self.le(value))) }
    mutating func add(float32 key: String, _ value: Float) { metadata.append((key, 6, Self.le(value.bitPattern))) }
    mutating func add(strings key: String, _ values: [String]) {
        metadata.append((key, 9, Self.le(UInt32(8)) + Self.le(UInt64(values.count)) + values.flatMap(Self.string)))
    }

    static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    static func string(_ s: String) -> [UInt8] { le(UInt64(s.utf8.count)) + Array(s.utf8) }

    func bytes() -> [UInt8] {
        var out = Array("GGUF".utf8) + Self.le(UInt32(3)) + Self.le(UInt64(tensors.count)) + Self.le(UInt64(metadata.count))
        for (key, type, value) in metadata { out += Self.string(key) + Self.le(type) + value }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            offsets.append(offset)
            offset += (t.data.count + 31) / 32 * 32
        }
        for (t, o) in zip(tensors, offsets) {
            out += Self.string(t.name) + Self.le(UInt32(t.dims.count)) + t.dims.flatMap { Self.le(UInt64($0)) }
            out += Self.le(t.type.rawValue) + Self.le(UInt64(o))
        }
        while out.count % 32 != 0 { out.append(0) }
        for t in tensors {
            out += t.data
            while out.count % 32 != 0 { out.append(0) }
        }
        return out
    }
}

@Suite("GGUF reader and dequantization")
struct GGUFTests {
    static func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 2)
            out.append(UInt8(s[i..<j], radix: 16) ?? 0)
            i = j
        }
        return out
    }

    /// Random raw blocks of every supported type, dequantized by ggml's Python package
    /// (scripts/make-gguf-fixtures.py), must dequantize to the same values here.
    @Test func blocksMatchGGMLReference() throws {
        let fixture = try TrainerFixtures.json("gguf-reference.json")
        let blocks = try #require(fixture["blocks"] as? [[String: Any]])
        #expect(blocks.count == 7)
        for block in blocks {
            let name = try #require(block["type"] as? String)
            let type = try #require(GGMLType.allCases.first { $0.name == name })
            let raw = Self.hex(try #require(block["bytes"] as? String))
            let expected = try #require(block["values"] as? [Double])
            var out = [Float](repeating: .nan, count: expected.count)
            raw.withUnsafeBytes { src in
                out.withUnsafeMutableBufferPointer { dst in
                    GGMLDequantize.run(type, source: src.baseAddress!, count: expected.count, into: dst.baseAddress!)
                }
            }
            let worst = zip(out, expected).map { abs(Double($0) - $1) }.max() ?? .infinity
            #expect(worst <= 1e-6, "\(name): largest difference \(worst)")
        }
    }

    @Test func writtenFileReadsBack() throws {
        var writer = GGUFWriter()
        writer.add(string: "general.architecture", "llama")
        writer.add(uint32: "llama.block_count", 2)
        writer.add(strings: "tokenizer.ggml.tokens", ["a", "b", "你好"])
        let values: [Float] = (0..<64).map { Float($0) / 8 - 4 }
        writer.tensors.append(("w", [16, 4], .f32, values.flatMap { GGUFWriter.le($0.bitPattern) }))
        let path = try TestSupport.temporaryDirectory("gguf").appendingPathComponent("t.gguf").path
        try Data(writer.bytes()).write(to: URL(fileURLWithPath: path))
        let file = try GGUFFile(path: path)
        #expect(file.version == 3)
        #expect(file.metadata["general.architecture"]?.string == "llama")
        #expect(file.metadata["llama.block_count"]?.int == 2)
        #expect(file.metadata["tokenizer.ggml.tokens"]?.strings == ["a", "b", "你好"])
        let tensor = try file.tensor(named: "w")
        #expect(tensor.shape == [4, 16])
        #expect(tensor.data == values)

        // Truncated: the tensor data runs past the end; the header names the offset.
        let bytes = writer.bytes()
        try Data(bytes.prefix(bytes.count - 40)).write(to: URL(fileURLWithPath: path))
        #expect(throws: ModelError.self) { try GGUFFile(path: path).tensor(named: "w") }
        try Data(bytes.prefix(30)).write(to: URL(fileURLWithPath: path))
        do {
            _ = try GGUFFile(path: path)
            Issue.record("a truncated header was accepted")
        } catch let error as ModelError {
            #expect(error.description.contains("truncated"))
        }
        try Data(Array("not a gguf file at all".utf8)).write(to: URL(fileURLWithPath: path))
        #expect(throws: ModelError.self) { try GGUFFile(path: path) }
    }

    /// Damaged tensor tables (an offset past any file, a shape whose element count overflows)
    /// are errors naming the tensor, not crashes.
    @Test func damagedTensorTableIsAnError() throws {
        var writer = GGUFWriter()
        writer.tensors.append(("w", [32], .f32, [UInt8](repeating: 0, count: 128)))
        var bytes = writer.bytes()
        // The tensor's offset is the last 8 bytes of its table entry, just before the alignment padding.
        let entryEnd = 4 + 4 + 8 + 8 + (8 + 1) + 4 + 8 + 4 + 8
        for i in 0..<8 { bytes[entryEnd - 8 + i] = 0xFF }
        let path = try TestSupport.temporaryDirectory("gguf").appendingPathComponent("t.gguf").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(throws: ModelError.invalidFile(path: path, detail: "tensor w has data offset 18446744073709551615, past any file; the file is damaged")) {
            try GGUFFile(path: path)
        }
        var big = GGUFWriter()
        big.tensors.append(("huge", [1 << 39, 1 << 39, 2], .f32, []))
        try Data(big.bytes()).write(to: URL(fileURLWithPath: path))
        #expect(throws: ModelError.self) { try GGUFFile(path: path) }
        try? FileManager.default.removeItem(atPath: path)
    }

    @Test func unsupportedTypeIsNamed() throws {
        var writer = GGUFWriter()
        writer.tensors.append(("odd", [32], .q5_0, [UInt8](repeating: 0, count: 22)))
        let path = try TestSupport.temporaryDirectory("gguf").appendingPathComponent("t.gguf").path
        try Data(writer.bytes()).write(to: URL(fileURLWithPath: path))
        do {
            _ = try GGUFFile(path: path).tensor(named: "odd")
            Issue.record("Q5_0 was accepted")
        } catch let error as ModelError {
            #expect(error.description.contains("odd"))
            #expect(error.description.contains("Q5_0"))
            #expect(error.description.contains("Q4_K"))
        }
    }

    @Test(.needsTestModel) func realSmolLM2() throws {
        let path = try TrainerFixtures.smolLM2
        let reference = try #require(try TrainerFixtures.json("gguf-reference.json")["model"] as? [String: Any])
        let file = try GGUFFile(path: path)
        #expect(file.tensors.count == reference["tensor_count"] as? Int)
        #expect(file.metadata["general.architecture"]?.string == reference["architecture"] as? String)
        #expect(file.metadata["llama.block_count"]?.int == reference["block_count"] as? Int)
        #expect(file.metadata["llama.embedding_length"]?.int == reference["embedding_length"] as? Int)
        #expect(file.metadata["llama.rope.freq_base"]?.float == Float(reference["rope_freq_base"] as? Double ?? 0))
        #expect(file.metadata["tokenizer.ggml.tokens"]?.strings?.count == reference["token_count"] as? Int)
        for sample in try #require(reference["samples"] as? [[String: Any]]) {
            let name = try #require(sample["name"] as? String)
            let tensor = try file.tensor(named: name)
            #expect(tensor.shape == sample["shape"] as? [Int], "\(name)")
            let indices = try #require(sample["indices"] as? [Int])
            let values = try #require(sample["values"] as? [Double])
            for (i, v) in zip(indices, values) {
                #expect(abs(Double(tensor.data[i]) - v) <= 1e-6, "\(name)[\(i)]: \(tensor.data[i]) vs \(v)")
            }
        }
    }
}

@Suite("GGUF to Hugging Face layout")
struct GGUFModelTests {
    /// llama.cpp's forward permutation, written independently of the loader's inverse.
    static func permute(_ rows: [[Float]], heads: Int) -> [[Float]] {
        let headDim = rows.count / heads, half = headDim / 2
        var out = rows
        for h in 0..<heads { for t in 0..<2 { for i in 0..<half { out[h * headDim + 2 * i + t] = rows[h * headDim + t * half + i] } } }
        return out
    }

    @Test func unpermuteInvertsTheConverter() throws {
        let heads = 3, headDim = 8, cols = 5
        let hf: [[Float]] = (0..<(heads * headDim)).map { r in (0..<cols).map { Float(r * 100 + $0) } }
        let gguf = Self.permute(hf, heads: heads)
        #expect(gguf != hf)
        let back = try GGUFFile.unpermuteRows(StoredTensor(try Tensor(shape: [heads * headDim, cols], data: gguf.flatMap { $0 })), heads: heads, name: "q")
        #expect(back.dequantized().data == hf.flatMap { $0 })
    }

    @Test func names() {
        #expect(GGUFFile.huggingFaceName("blk.12.attn_k.weight") == "model.layers.12.self_attn.k_proj.weight")
        #expect(GGUFFile.huggingFaceName("blk.0.attn_q.bias") == "model.layers.0.self_attn.q_proj.bias")
        #expect(GGUFFile.huggingFaceName("blk.3.ffn_norm.weight") == "model.layers.3.post_attention_layernorm.weight")
        #expect(GGUFFile.huggingFaceName("token_embd.weight") == "model.embed_tokens.weight")
        #expect(GGUFFile.huggingFaceName("something.else") == nil)
    }

    @Test(.needsTestModel) func realSmolLM2Configuration() throws {
        let path = try TrainerFixtures.smolLM2
        let file = try GGUFFile(path: path)
        let c = try file.llamaConfiguration()
        #expect(c == LlamaConfiguration(modelType: "llama", hiddenSize: 576, intermediateSize: 1536, numHiddenLayers: 30,
                                        numAttentionHeads: 9, numKeyValueHeads: 3, headDim: 64, vocabSize: 49152,
                                        rmsNormEps: 1e-5, ropeTheta: 100_000, maxPositionEmbeddings: c.maxPositionEmbeddings,
                                        tieWordEmbeddings: true, attentionBias: false, bosTokenId: c.bosTokenId, eosTokenIds: c.eosTokenIds))
        let model = try file.loadModel()
        #expect(model.tensors.count == 272)
        #expect(model.tensors["model.layers.29.self_attn.k_proj.weight"]?.shape == [192, 576])
        #expect(model.tensors["lm_head.weight"] == nil)
        // Row 1 of Hugging Face's q_proj is GGUF row 2 (head 0, first half, i = 1).
        let raw = try file.tensor(named: "blk.0.attn_q.weight")
        let q = try #require(model.tensors["model.layers.0.self_attn.q_proj.weight"])
        #expect(Array(q.data[576..<1152]) == Array(raw.data[1152..<1728]))
        #expect(Array(q.data[32 * 576..<33 * 576]) == Array(raw.data[576..<1152]))
    }
}
