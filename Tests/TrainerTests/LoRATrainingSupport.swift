import Foundation
import Testing
@testable import ModelRuntime
@testable import Trainer

/// Tiny random models, adapters and batches for the LoRA training tests.
enum LoRATrainingSupport {
    /// 2 layers, hidden 16, 4 heads, 2 key/value heads (head_dim 4), FFN 32, vocabulary 50.
    static func configuration(bias: Bool = false, tied: Bool = false) -> LlamaConfiguration {
        LlamaConfiguration(modelType: bias ? "qwen2" : "llama", hiddenSize: 16, intermediateSize: 32, numHiddenLayers: 2,
                           numAttentionHeads: 4, numKeyValueHeads: 2, vocabSize: 50, rmsNormEps: 1e-5, ropeTheta: 10000,
                           maxPositionEmbeddings: 64, tieWordEmbeddings: tied, attentionBias: bias)
    }

    static func random(_ count: Int, _ stream: inout SeedStream, scale: Float, offset: Float = 0) -> [Float] {
        (0..<count).map { _ in offset + scale * (2 * stream.nextUnitFloat() - 1) }
    }

    /// A random model with weights large enough that every layer matters.
    static func model(_ c: LlamaConfiguration, seed: UInt64) throws -> LlamaModel {
        var s = SeedStream.derive(seed, 1)
        var t: [String: Tensor] = [:]
        func add(_ name: String, _ shape: [Int], scale: Float = 0.5, offset: Float = 0) throws {
            t[name] = try Tensor(shape: shape, data: random(shape.reduce(1, *), &s, scale: scale, offset: offset))
        }
        let C = c.hiddenSize, HD = c.headDim, NH = c.numAttentionHeads, NKV = c.numKeyValueHeads, FFN = c.intermediateSize
        try add("model.embed_tokens.weight", [c.vocabSize, C], scale: 1)
        for l in 0..<c.numHiddenLayers {
            let p = "model.layers.\(l)."
            try add(p + "input_layernorm.weight", [C], scale: 0.3, offset: 1)
            try add(p + "post_attention_layernorm.weight", [C], scale: 0.3, offset: 1)
            try add(p + "self_attn.q_proj.weight", [NH * HD, C])
            try add(p + "self_attn.k_proj.weight", [NKV * HD, C])
            try add(p + "self_attn.v_proj.weight", [NKV * HD, C])
            try add(p + "self_attn.o_proj.weight", [C, NH * HD])
            try add(p + "mlp.gate_proj.weight", [FFN, C])
            try add(p + "mlp.up_proj.weight", [FFN, C])
            try add(p + "mlp.down_proj.weight", [C, FFN])
            if c.attentionBias {
                try add(p + "self_attn.q_proj.bias", [NH * HD])
                try add(p + "self_attn.k_proj.bias", [NKV * HD])
                try add(p + "self_attn.v_proj.bias", [NKV * HD])
            }
        }
        try add("model.norm.weight", [C], scale: 0.3, offset: 1)
        if !c.tieWordEmbeddings { try add("lm_head.weight", [c.vocabSize, C]) }
        return try LlamaModel(configuration: c, tensors: t)
    }

    /// A PEFT-initialized adapter whose B matrices are then made non-zero (so A gets gradients).
    static func adapter(_ lora: LoRAConfiguration, _ c: LlamaConfiguration, seed: UInt64) throws -> LoRAAdapter {
        var adapter = try LoRAAdapter(initializing: lora, for: c, seed: seed)
        var s = SeedStream.derive(seed, 99)
        for l in adapter.layers.indices {
            for target in lora.targets {
                let count = adapter.layers[l][target]?.b.count ?? 0
                adapter.layers[l][target]?.b.data = random(count, &s, scale: 0.3)
            }
        }
        return adapter
    }

    /// Sequences of the given lengths with random ids and a random-ish contiguous target span.
    static func batch(lengths: [Int], vocabulary: Int, seed: UInt64) -> [TrainingSequence] {
        lengths.enumerated().map { i, n in
            var s = SeedStream.derive(seed, UInt64(i))
            let ids = (0..<n).map { _ in Int32(s.next() % UInt64(vocabulary)) }
            let mask = (0..<n).map { t in t >= n / 3 && t < n - 1 }
            return TrainingSequence(ids: ids, targetMask: mask)
        }
    }

    static func targetCount(_ batch: [TrainingSequence]) -> Int {
        batch.map { s in (0..<max(s.ids.count - 1, 0)).filter { s.targetMask[$0] }.count }.reduce(0, +)
    }

    /// max |a − b| / max |b| (b the reference), 0 when both are zero.
    static func relativeError<S: BinaryFloatingPoint>(_ a: [S], _ b: [S]) -> Double {
        let scale = b.map { abs(Double($0)) }.max() ?? 0
        let diff = zip(a, b).map { abs(Double($0) - Double($1)) }.max() ?? 0
        return scale == 0 ? diff : diff / scale
    }
}
