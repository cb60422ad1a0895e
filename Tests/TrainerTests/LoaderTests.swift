import Foundation
import TestSupport
import Testing
@testable import ModelRuntime
@testable import Trainer

/// A tiny random Llama written as a Hugging Face folder and as an F32 GGUF (Q/K rows permuted the
/// way llama.cpp's converter does): both must load to the same weights and the same logits.
@Suite("Model loaders on a tiny random model")
struct LoaderTests {
    static let config = LlamaConfiguration(modelType: "llama", hiddenSize: 64, intermediateSize: 96, numHiddenLayers: 2,
                                           numAttentionHeads: 4, numKeyValueHeads: 2, vocabSize: 300, rmsNormEps: 1e-5,
                                           ropeTheta: 10_000, maxPositionEmbeddings: 128, tieWordEmbeddings: true)

    /// Random weights for `c` in Hugging Face names and layout: q/k/v biases when
    /// `c.attentionBias`, `lm_head.weight` when the embeddings are not tied.
    static func randomTensors(_ c: LlamaConfiguration = config, seed: UInt64 = 7) throws -> [String: Tensor] {
        var rng = SplitMix64(seed: seed)
        func t(_ shape: [Int], _ scale: Float = 0.1) throws -> Tensor {
            try Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in Float(rng.nextDouble() * 2 - 1) * scale })
        }
        var out = ["model.embed_tokens.weight": try t([c.vocabSize, c.hiddenSize], 0.5), "model.norm.weight": try t([c.hiddenSize], 1)]
        for l in 0..<c.numHiddenLayers {
            let p = "model.layers.\(l)."
            out[p + "self_attn.q_proj.weight"] = try t([c.numAttentionHeads * c.headDim, c.hiddenSize])
            out[p + "self_attn.k_proj.weight"] = try t([c.numKeyValueHeads * c.headDim, c.hiddenSize])
            out[p + "self_attn.v_proj.weight"] = try t([c.numKeyValueHeads * c.headDim, c.hiddenSize])
            out[p + "self_attn.o_proj.weight"] = try t([c.hiddenSize, c.numAttentionHeads * c.headDim])
            out[p + "mlp.gate_proj.weight"] = try t([c.intermediateSize, c.hiddenSize])
            out[p + "mlp.up_proj.weight"] = try t([c.intermediateSize, c.hiddenSize])
            out[p + "mlp.down_proj.weight"] = try t([c.hiddenSize, c.intermediateSize])
            out[p + "input_layernorm.weight"] = try t([c.hiddenSize], 1)
            out[p + "post_attention_layernorm.weight"] = try t([c.hiddenSize], 1)
            if c.attentionBias {
                out[p + "self_attn.q_proj.bias"] = try t([c.numAttentionHeads * c.headDim], 0.5)
                out[p + "self_attn.k_proj.bias"] = try t([c.numKeyValueHeads * c.headDim], 0.5)
                out[p + "self_attn.v_proj.bias"] = try t([c.numKeyValueHeads * c.headDim], 0.5)
            }
        }
        if !c.tieWordEmbeddings { out["lm_head.weight"] = try t([c.vocabSize, c.hiddenSize], 0.5) }
        return out
    }

    static let ggufNames: [String: String] = [
        "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
        "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
        "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    ]

    @Test func safetensorsFolderAndGGUFAgree() throws {
        let c = Self.config
        let tensors = try Self.randomTensors()
        let dir = TestSupport.runDirectory.appendingPathComponent("tiny-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try SafetensorsFile.write(tensors, metadata: ["format": "pt"], to: dir.appendingPathComponent("model.safetensors").path)
        let configJSON: [String: Any] = ["model_type": "llama", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
                                         "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300, "rms_norm_eps": 1e-5,
                                         "rope_theta": 10000.0, "max_position_embeddings": 128, "tie_word_embeddings": true, "eos_token_id": [2, 3]]
        try JSONSerialization.data(withJSONObject: configJSON).write(to: dir.appendingPathComponent("config.json"))
        let folder = try ModelLoader.load(path: dir.path)
        #expect(folder.configuration.eosTokenIds == [2, 3])
        #expect(folder.tensors == tensors)

        let ggufPath = dir.appendingPathComponent("tiny.gguf").path
        try TinyModelFiles.writeGGUF(tensors, configuration: c, weightType: .f32, to: ggufPath)
        let gguf = try ModelLoader.load(path: ggufPath)
        #expect(gguf.tensors == tensors)

        let a = try LlamaModel(configuration: folder.configuration, tensors: folder.tensors)
        let b = try LlamaModel(configuration: gguf.configuration, tensors: gguf.tensors)
        let ids = [5, 17, 299, 0, 42]
        #expect(try a.logits(ids) == b.logits(ids))
    }

    @Test func strictLoading() throws {
        var tensors = try Self.randomTensors()
        tensors["model.layers.0.mlp.up_proj.weight"] = try Tensor(shape: [95, 64], data: [Float](repeating: 0, count: 95 * 64))
        do {
            _ = try LlamaModel(configuration: Self.config, tensors: tensors)
            Issue.record("a mis-shaped tensor was accepted")
        } catch let error as ModelError {
            #expect(error == .shapeMismatch(tensor: "model.layers.0.mlp.up_proj.weight", expected: [96, 64], found: [95, 64]))
        }
        tensors = try Self.randomTensors()
        tensors["model.layers.0.extra.weight"] = Tensor(zeros: [1])
        #expect(throws: ModelError.self) { try LlamaModel(configuration: Self.config, tensors: tensors) }
        tensors = try Self.randomTensors()
        tensors.removeValue(forKey: "model.norm.weight")
        #expect(throws: ModelError.self) { try LlamaModel(configuration: Self.config, tensors: tensors) }
    }
}
