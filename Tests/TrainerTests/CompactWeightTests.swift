import Foundation
import Testing
@testable import ModelRuntime
@testable import Trainer

/// A model whose matrices stay in their stored type (bf16, Q8_0, Q4_K...) computes what the same
/// model expanded to fp32 computes: logits, batched decoding, the training loss and the LoRA
/// gradients, to 1e-4 (the products dequantize tiles exactly; only the order of sums differs).
@Suite("Compact frozen weights")
struct CompactWeightTests {
    static let config = QuantizedLoaderTests.config
    static let ids = QuantizedLoaderTests.ids

    /// A tiny random model written as a GGUF of `type` and loaded back: (compact, fp32 expansion).
    static func models(_ type: GGMLType) throws -> (compact: LlamaModel, dense: LlamaModel, loaded: LoadedModel) {
        let tensors = try LoaderTests.randomTensors(config, seed: 99)
        let dir = TinyModelFiles.temporaryDirectory("compact-\(type.name)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tiny.gguf").path
        try TinyModelFiles.writeGGUF(tensors, configuration: config, weightType: type, to: path)
        let loaded = try ModelLoader.load(path: path)
        return (try loaded.model(), try LlamaModel(configuration: loaded.configuration, tensors: loaded.tensors), loaded)
    }

    /// Largest |a − b| / max(1, |b|).
    static func worst(_ a: [Float], _ b: [Float]) -> Float {
        guard a.count == b.count else { return .infinity }
        return zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
    }

    @Test("each stored type gives the fp32 expansion's logits", arguments: [GGMLType.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q4_K, .q6_K])
    func logits(_ type: GGMLType) throws {
        let (compact, dense, _) = try Self.models(type)
        #expect(compact.layers[0].qkv.type == type)
        #expect(compact.layers[1].down.type == type)
        #expect(compact.embedding.type == type)
        if type != .f32 { #expect(compact.weightBytes < dense.weightBytes * 51 / 100) }
        let worst = Self.worst(try compact.logits(Self.ids), try dense.logits(Self.ids))
        #expect(worst <= 1e-4, "\(type.name): logits differ by \(worst)")
    }

    /// Three sequences decoded together (the small-batch path of the products), step by step.
    @Test("batched decoding on compact weights", arguments: [GGMLType.bf16, .q8_0, .q4_K])
    func batchedDecoding(_ type: GGMLType) throws {
        let (compact, dense, _) = try Self.models(type)
        let prompts = [[5, 17, 299], [0, 42], [128, 7, 9, 11]]
        func run(_ model: LlamaModel) throws -> [[Float]] {
            let caches = prompts.map { _ in KVCache(configuration: model.configuration, capacity: 16) }
            var out = try model.forward(batch: zip(prompts, caches).map { ($0, $1) }, allLogits: false)
            for step in 0..<3 {
                out += try model.forward(batch: caches.enumerated().map { ([($0.offset * 31 + step * 7) % 300], $0.element) }, allLogits: false)
            }
            return out
        }
        let a = try run(compact), b = try run(dense)
        #expect(a.count == b.count)
        for (x, y) in zip(a, b) { #expect(Self.worst(x, y) <= 1e-4, "\(type.name)") }
    }

    /// The training engine reads the same compact tensors: loss and every LoRA gradient equal the
    /// fp32 model's.
    @Test("training loss and LoRA gradients on compact weights", arguments: [GGMLType.bf16, .q8_0, .q4_1])
    func training(_ type: GGMLType) throws {
        let (compact, dense, _) = try Self.models(type)
        let adapter = try LoRAAdapter(initializing: LoRAConfiguration(rank: 4, alpha: 8), for: Self.config, seed: 3)
        var nonZero = adapter
        var rng = SplitMix64(seed: 5)
        for l in nonZero.layers.indices {
            for target in nonZero.configuration.targets {
                let n = nonZero.layers[l][target]?.b.count ?? 0
                nonZero.layers[l][target]?.b.data = (0..<n).map { _ in Float(rng.nextDouble() - 0.5) * 0.1 }
            }
        }
        let batch = [TrainingSequence(ids: Self.ids.map(Int32.init), targetMask: Self.ids.map { _ in true }),
                     TrainingSequence(ids: [3, 1, 4, 1, 5], targetMask: [false, true, true, true, true])]
        func run(_ model: LlamaModel) throws -> (Double, LoRAAdapter) {
            let engine = LoRATrainingModel(model: model)
            var gradients = LoRAAdapter(zerosLike: nonZero)
            let loss = try engine.accumulateGradients(batch: batch, adapter: nonZero, normalizer: 10, dropoutSeed: 0, into: &gradients)
            return (loss.sum, gradients)
        }
        let (la, ga) = try run(compact), (lb, gb) = try run(dense)
        #expect(abs(la - lb) <= 1e-4 * abs(lb), "\(type.name): loss \(la) vs \(lb)")
        for l in ga.layers.indices {
            for target in ga.configuration.targets {
                let a = try #require(ga.layers[l][target]), b = try #require(gb.layers[l][target])
                let scale = max(b.a.data.map(abs).max() ?? 0, b.b.data.map(abs).max() ?? 0, 1e-6)
                let worstA = zip(a.a.data, b.a.data).map { abs($0 - $1) }.max() ?? 0
                let worstB = zip(a.b.data, b.b.data).map { abs($0 - $1) }.max() ?? 0
                #expect(max(worstA, worstB) <= 1e-4 * scale, "\(type.name) layer \(l) \(target.moduleName)")
            }
        }
    }

    /// `--base-type`: an fp32 model converted at load computes what the fp32 expansion of the
    /// converted tensors computes, in a fraction of the memory.
    @Test("converting at load (--base-type)", arguments: [GGMLType.bf16, .f16, .q8_0, .q4_0])
    func conversion(_ type: GGMLType) throws {
        let (_, dense, loaded) = try Self.models(.f32)
        let converted = try loaded.model(baseType: type)
        #expect(converted.layers[0].gateUp.type == type)
        #expect(converted.weightBytes < dense.weightBytes * 51 / 100)
        let expected = try LlamaModel(configuration: loaded.configuration,
                                      tensors: try loaded.weights(baseType: type, precision: .f32).mapValues { $0.dequantized() })
        let worst = Self.worst(try converted.logits(Self.ids), try expected.logits(Self.ids))
        #expect(worst <= 1e-4, "\(type.name): logits differ by \(worst)")
        // The conversion really rounds: bf16 changes fp32 values, the block formats more so.
        #expect(try converted.logits(Self.ids) != (try dense.logits(Self.ids)))
    }

    /// `--compute bf16`: activations rounded to bf16 in the products with bf16 weights, as
    /// PyTorch's autocast does. Not exact: on this tiny random model (whose loss is ~8.7 per token)
    /// the logits moved by 0.033 (relative to max(1, |logit|)) and the loss by 1.2e-3 relative
    /// when this was written; the bounds are 5e-2 and 3e-3. And the result really differs from
    /// fp32 arithmetic (the path is taken).
    @Test func bf16Arithmetic() throws {
        let (_, _, loaded) = try Self.models(.bf16)
        let exact = try loaded.model(precision: .f32), rounded = try loaded.model(precision: .bf16)
        #expect(rounded.layers[0].qkv.type == .bf16)
        let a = try rounded.logits(Self.ids), b = try exact.logits(Self.ids)
        let worst = Self.worst(a, b)
        #expect(worst > 0 && worst < 5e-2, "bf16 arithmetic moved the logits by \(worst)")
        let adapter = try LoRAAdapter(initializing: LoRAConfiguration(rank: 4, alpha: 8), for: Self.config, seed: 3)
        let batch = [TrainingSequence(ids: Self.ids.map(Int32.init), targetMask: Self.ids.map { _ in true })]
        let la = try LoRATrainingModel(model: rounded).loss(batch: batch, adapter: adapter, normalizer: 6).sum
        let lb = try LoRATrainingModel(model: exact).loss(batch: batch, adapter: adapter, normalizer: 6).sum
        #expect(abs(la - lb) < 3e-3 * abs(lb), "loss \(la) against \(lb)")
        // fp32 weights with bf16 arithmetic are kept as bf16 (the kernels read bf16).
        let (_, _, fp32) = try Self.models(.f32)
        #expect(try fp32.model(precision: .bf16).layers[0].gateUp.type == .bf16)
        #expect(try fp32.model(baseType: .q8_0, precision: .bf16).layers[0].gateUp.type == .q8_0)
    }

    /// Converting while loading (each tensor as it is read, its file pages released) gives the
    /// tensors that converting after loading gives, from a GGUF and from a safetensors folder.
    @Test func convertingWhileLoading() throws {
        let tensors = try LoaderTests.randomTensors(Self.config, seed: 99)
        let dir = TinyModelFiles.temporaryDirectory("convert-on-load")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let gguf = dir.appendingPathComponent("tiny.gguf").path
        try TinyModelFiles.writeGGUF(tensors, configuration: Self.config, weightType: .f32, to: gguf)
        let folder = dir.appendingPathComponent("folder")
        try TinyModelFiles.writeFolder(tensors, configuration: Self.config, to: folder)
        for path in [gguf, folder.path] {
            let plain = try ModelLoader.load(path: path)
            for (type, precision) in [(GGMLType.q8_0, ComputePrecision.f32), (.q4_0, .bf16)] {
                let onLoad = try ModelLoader.load(path: path, baseType: type, precision: precision)
                #expect(onLoad.weights == (try plain.weights(baseType: type, precision: precision)), "\(path) \(type.name)")
                #expect(onLoad.weights["model.layers.0.mlp.down_proj.weight"]?.type == type)
                #expect(onLoad.weights["model.norm.weight"]?.type == .f32)
            }
            let bf16 = try ModelLoader.load(path: path, precision: .bf16)
            #expect(bf16.weights["model.layers.1.self_attn.q_proj.weight"]?.type == .bf16)
        }
    }

    /// Q, K and V in different types (as some GGUF mixes store them) are fused as fp32.
    @Test func mixedTypesInOneFusedProductBecomeFP32() throws {
        let (_, _, loaded) = try Self.models(.q8_0)
        var weights = loaded.weights
        let name = "model.layers.0.self_attn.v_proj.weight"
        weights[name] = try #require(weights[name]).converted(to: .bf16, name: name)
        let model = try LlamaModel(configuration: loaded.configuration, weights: weights)
        #expect(model.layers[0].qkv.type == .f32)
        #expect(model.layers[1].qkv.type == .q8_0)
        let expected = try LlamaModel(configuration: loaded.configuration, tensors: weights.mapValues { $0.dequantized() })
        #expect(Self.worst(try model.logits(Self.ids), try expected.logits(Self.ids)) <= 1e-4)
    }

    @Test func conversionThatDoesNotFitBlocksIsNamed() throws {
        let tensor = StoredTensor(try Tensor(shape: [2, 40], data: [Float](repeating: 0.5, count: 80)))
        #expect(throws: ModelError.unsupported("w has rows of 40 values, which do not fill whole Q8_0 blocks of 32; keep it in F32")) {
            try tensor.converted(to: .q8_0, name: "w")
        }
        #expect(throws: ModelError.self) { try tensor.converted(to: .q4_K, name: "w") }
        #expect(throws: ModelError.self) {
            try StoredTensor(shape: [2, 40], type: .q8_0, bytes: [UInt8](repeating: 0, count: 68), name: "w")
        }
    }
}
