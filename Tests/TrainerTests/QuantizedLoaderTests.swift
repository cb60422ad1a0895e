import Foundation
import Testing
@testable import ModelRuntime
@testable import Trainer

/// Every GGUF tensor type the reader supports, exercised on data the tests make themselves:
/// quantization round trips against bounds derived from the formats, tiny random Llamas stored
/// with each type (Q/K rows permuted as llama.cpp does), and a tiny random Qwen2 (q/k/v biases,
/// untied output) as GGUF and as a Hugging Face folder.
@Suite("Quantized GGUF on tiny random models")
struct QuantizedLoaderTests {
    /// Row lengths 256 (hidden, NH·HD) and 512 (intermediate): whole Q4_K/Q6_K super-blocks.
    static let config = LlamaConfiguration(modelType: "llama", hiddenSize: 256, intermediateSize: 512, numHiddenLayers: 2,
                                           numAttentionHeads: 4, numKeyValueHeads: 2, vocabSize: 300, rmsNormEps: 1e-5,
                                           ropeTheta: 10_000, maxPositionEmbeddings: 128, tieWordEmbeddings: true)

    static let ids = [5, 17, 299, 0, 42, 128, 7]

    /// One super-block (256 values) of test data.
    struct Sample: Sendable {
        var name: String
        var values: [Float]
        /// Types for which requantizing the dequantized values must give the same bytes: true when
        /// each (sub-)block's extreme values land on the ends of its grid again, which needs normal
        /// (not subnormal) fp16 scales and, for K-quants, sub-blocks of comparable range.
        var idempotent: Set<GGMLType>
    }

    static let samples: [Sample] = {
        var rng = SplitMix64(seed: 2024)
        func uniform(_ lo: Float, _ hi: Float) -> [Float] { (0..<256).map { _ in lo + (hi - lo) * Float(rng.nextDouble()) } }
        let all = Set(GGMLType.supported), notK = all.subtracting([.q4_K, .q6_K])
        var outlier = uniform(-0.1, 0.1)
        outlier[37] = 5
        outlier[200] = -3
        return [
            Sample(name: "uniform ±0.02", values: uniform(-0.02, 0.02), idempotent: all),
            Sample(name: "uniform ±0.1", values: uniform(-0.1, 0.1), idempotent: all),
            Sample(name: "uniform ±1", values: uniform(-1, 1), idempotent: all),
            Sample(name: "uniform ±7", values: uniform(-7, 7), idempotent: all),
            Sample(name: "positive 0.5...1.5", values: uniform(0.5, 1.5), idempotent: all),
            Sample(name: "mostly negative", values: uniform(-1, 0.1), idempotent: all),
            Sample(name: "outliers", values: outlier, idempotent: notK),
            Sample(name: "zeros", values: [Float](repeating: 0, count: 256), idempotent: all),
            Sample(name: "tiny ±1e-4 (subnormal fp16 scales)", values: uniform(-1e-4, 1e-4), idempotent: [.f32, .f16, .bf16]),
        ]
    }()

    // MARK: - Round trips

    @Test("dequantize(quantize(x)) is within the format's bound", arguments: GGMLType.supported)
    func roundTripWithinBound(type: GGMLType) throws {
        for sample in Self.samples {
            let bytes = try ReferenceQuantizer.quantize(sample.values, as: type)
            let layout = try #require(type.blockLayout)
            #expect(bytes.count == sample.values.count / layout.elements * layout.bytes)
            let back = try ReferenceQuantizer.dequantize(bytes, as: type, count: sample.values.count)
            let bounds = QuantizationBounds.bounds(sample.values, type)
            var worst = (index: -1, excess: -Float.infinity)
            for i in back.indices {
                let excess = abs(back[i] - sample.values[i]) - bounds[i]
                if !(excess <= worst.excess) { worst = (i, excess) }   // NaN counts as worst
            }
            let i = worst.index
            #expect(worst.excess <= 0, "\(type.name) \(sample.name)[\(i)]: \(sample.values[i]) came back as \(back[i]), bound \(bounds[i])")
        }
        // Not vacuous: the quantized types do lose information on ordinary data.
        let x = Self.samples[2].values
        let back = try ReferenceQuantizer.dequantize(try ReferenceQuantizer.quantize(x, as: type), as: type, count: x.count)
        #expect((back == x) == (type == .f32), "\(type.name)")
    }

    @Test("quantize(dequantize(quantize(x))) gives the same bytes", arguments: GGMLType.supported)
    func requantizingIsIdempotent(type: GGMLType) throws {
        for sample in Self.samples where sample.idempotent.contains(type) {
            let bytes = try ReferenceQuantizer.quantize(sample.values, as: type)
            let back = try ReferenceQuantizer.dequantize(bytes, as: type, count: 256)
            let again = try ReferenceQuantizer.quantize(back, as: type)
            #expect(again == bytes, "\(type.name) \(sample.name)")
            #expect(try ReferenceQuantizer.dequantize(again, as: type, count: 256) == back, "\(type.name) \(sample.name)")
        }
    }

    // MARK: - Tiny Llama with every type

    /// A tiny Llama whose 2-D weights are stored as `type` (norms F32, as llama.cpp keeps them)
    /// loads to exactly the dequantized weights, in Hugging Face row order, and runs like a model
    /// built from those weights directly.
    @Test("tiny Llama stored as each type loads in Hugging Face layout", arguments: GGMLType.supported)
    func tinyLlama(type: GGMLType) throws {
        let c = Self.config
        let tensors = try LoaderTests.randomTensors(c, seed: 99)
        var expected: [String: Tensor] = [:]
        for (name, t) in tensors {
            guard t.shape.count == 2 else { expected[name] = t; continue }
            // Quantized in Hugging Face row order: blocks never cross rows, so this equals
            // quantizing llama.cpp's permuted rows and putting them back.
            let bytes = try ReferenceQuantizer.quantize(t.data, as: type)
            expected[name] = try Tensor(shape: t.shape, data: ReferenceQuantizer.dequantize(bytes, as: type, count: t.count))
        }
        let dir = TinyModelFiles.temporaryDirectory("tiny-\(type.name)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tiny-\(type.name).gguf").path
        try TinyModelFiles.writeGGUF(tensors, configuration: c, weightType: type, to: path)

        let file = try GGUFFile(path: path)
        for info in file.tensors {
            #expect(info.type == (info.dimensions.count == 2 ? type : .f32), "\(info.name)")
        }
        // The file really holds llama.cpp's order: its raw Q rows are not Hugging Face's.
        let q = try #require(expected["model.layers.0.self_attn.q_proj.weight"])
        let rawQ = try file.tensor(named: "blk.0.attn_q.weight")
        #expect(rawQ.shape == q.shape)
        #expect(rawQ.data != q.data)
        #expect(rawQ.data == TinyModelFiles.permutedRows(q, heads: c.numAttentionHeads))

        let loaded = try file.loadModel()
        #expect(loaded.configuration == c)
        #expect(loaded.tensors.keys.sorted() == expected.keys.sorted())
        for (name, t) in expected.sorted(by: { $0.key < $1.key }) {
            #expect(loaded.tensors[name] == t, "\(type.name) \(name)")
        }

        let a = try LlamaModel(configuration: loaded.configuration, tensors: loaded.tensors)
        let b = try LlamaModel(configuration: c, tensors: expected)
        let la = try a.logits(Self.ids), lb = try b.logits(Self.ids)
        #expect(la.count == Self.ids.count * c.vocabSize)
        let worst = zip(la, lb).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst <= 1e-4, "\(type.name): logits differ by \(worst)")
    }

    // MARK: - Qwen2 and attention biases

    /// A tiny Qwen2: q/k/v biases, no Q/K permutation in GGUF, untied `output.weight`. The folder
    /// (config.json without `attention_bias`, as Qwen2's has none) and the GGUF load the same.
    @Test func tinyQwen2FolderAndGGUFAgree() throws {
        let c = LlamaConfiguration(modelType: "qwen2", hiddenSize: 64, intermediateSize: 96, numHiddenLayers: 2,
                                   numAttentionHeads: 4, numKeyValueHeads: 2, vocabSize: 300, rmsNormEps: 1e-6,
                                   ropeTheta: 1_000_000, maxPositionEmbeddings: 128, tieWordEmbeddings: false,
                                   attentionBias: true, bosTokenId: 1, eosTokenIds: [2])
        let tensors = try LoaderTests.randomTensors(c, seed: 11)
        let dir = TinyModelFiles.temporaryDirectory("tiny-qwen2")
        defer { try? FileManager.default.removeItem(at: dir) }
        try TinyModelFiles.writeFolder(tensors, configuration: c, to: dir)
        let ggufPath = dir.appendingPathComponent("tiny-qwen2.gguf").path
        try TinyModelFiles.writeGGUF(tensors, configuration: c, weightType: .f32, to: ggufPath)
        let file = try GGUFFile(path: ggufPath)
        #expect(file.tensors.contains { $0.name == "blk.1.attn_v.bias" })
        #expect(file.tensors.contains { $0.name == "output.weight" })

        let folder = try ModelLoader.load(path: dir.path)
        let gguf = try ModelLoader.load(path: ggufPath)
        #expect(folder.format == "safetensors" && gguf.format == "gguf")
        #expect(folder.configuration == c)
        #expect(gguf.configuration == c)
        #expect(folder.tensors == tensors)
        #expect(gguf.tensors == tensors)
        for l in 0..<c.numHiddenLayers {
            for p in ["q", "k", "v"] {
                #expect(gguf.tensors["model.layers.\(l).self_attn.\(p)_proj.bias"] != nil, "layer \(l) \(p) bias")
            }
        }
        #expect(gguf.tensors["lm_head.weight"] != nil)

        let a = try LlamaModel(configuration: folder.configuration, tensors: folder.tensors)
        let b = try LlamaModel(configuration: gguf.configuration, tensors: gguf.tensors)
        let la = try a.logits(Self.ids), lb = try b.logits(Self.ids)
        #expect(la.count == Self.ids.count * c.vocabSize)
        #expect((zip(la, lb).map { abs($0 - $1) }.max() ?? .infinity) <= 1e-5)

        // The biases and the untied head are used: zeroing either changes the logits.
        var noBias = gguf.tensors
        for (name, t) in noBias where name.hasSuffix(".bias") { noBias[name] = Tensor(zeros: t.shape) }
        let lc = try LlamaModel(configuration: c, tensors: noBias).logits(Self.ids)
        #expect((zip(la, lc).map { abs($0 - $1) }.max() ?? 0) > 1e-3)
        var tied = gguf.configuration
        tied.tieWordEmbeddings = true
        var noHead = gguf.tensors
        noHead.removeValue(forKey: "lm_head.weight")
        let ld = try LlamaModel(configuration: tied, tensors: noHead).logits(Self.ids)
        #expect((zip(la, ld).map { abs($0 - $1) }.max() ?? 0) > 1e-3)
    }

    /// llama.cpp's converter permutes q_proj/k_proj biases like their weights for `llama`
    /// (`LlamaModel.modify_tensors` matches "q_proj.weight" and "q_proj.bias"); the loader must
    /// undo both.
    @Test func llamaQKBiasesAreUnpermuted() throws {
        var c = LoaderTests.config
        c.attentionBias = true
        let tensors = try LoaderTests.randomTensors(c, seed: 5)
        let dir = TinyModelFiles.temporaryDirectory("tiny-llama-bias")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tiny.gguf").path
        try TinyModelFiles.writeGGUF(tensors, configuration: c, weightType: .f32, to: path)
        let file = try GGUFFile(path: path)
        let bias = try #require(tensors["model.layers.0.self_attn.k_proj.bias"])
        #expect(try file.tensor(named: "blk.0.attn_k.bias").data != bias.data)
        let loaded = try file.loadModel()
        #expect(loaded.configuration == c)
        for (name, t) in tensors.sorted(by: { $0.key < $1.key }) {
            #expect(loaded.tensors[name] == t, "\(name)")
        }
    }
}
