import Foundation
import TestSupport
@testable import ModelRuntime
@testable import Trainer

/// Writes tiny random models to disk the way Hugging Face and llama.cpp's converter
/// (`convert_hf_to_gguf.py`) store them, so the loaders can be tested without a real model.
enum TinyModelFiles {
    /// llama.cpp's name for a Hugging Face tensor name.
    static func ggufName(_ name: String) -> String {
        switch name {
        case "model.embed_tokens.weight": return "token_embd.weight"
        case "model.norm.weight": return "output_norm.weight"
        case "lm_head.weight": return "output.weight"
        default: break
        }
        let parts = name.split(separator: ".")   // model.layers.N.module.sub.(weight|bias)
        guard parts.count >= 5, parts[0] == "model", parts[1] == "layers" else { return name }
        let module = parts[3...].dropLast().joined(separator: ".")
        return "blk.\(parts[2]).\(LoaderTests.ggufNames[module] ?? module).\(parts[parts.count - 1])"
    }

    /// The rows of `tensor` (1-D: one value per row) in llama.cpp's RoPE order for `heads` heads.
    static func permutedRows(_ tensor: Tensor, heads: Int) -> [Float] {
        let rows = tensor.shape[0], cols = tensor.count / max(rows, 1)
        let split = (0..<rows).map { Array(tensor.data[($0 * cols)..<(($0 + 1) * cols)]) }
        return GGUFModelTests.permute(split, heads: heads).flatMap { $0 }
    }

    /// Writes `tensors` (Hugging Face names and layout) as a GGUF file as llama.cpp's converter
    /// would: `{arch}.*` metadata from `c`, one token per vocabulary entry, Q/K weights and biases
    /// row-permuted for `llama` (not for `qwen2`), 2-D tensors as `weightType` and 1-D ones
    /// (norms, biases) as F32.
    static func writeGGUF(_ tensors: [String: Tensor], configuration c: LlamaConfiguration, weightType: GGMLType, to path: String) throws {
        let arch = c.modelType
        var writer = GGUFWriter()
        writer.add(string: "general.architecture", arch)
        writer.add(uint32: "\(arch).embedding_length", UInt32(c.hiddenSize))
        writer.add(uint32: "\(arch).feed_forward_length", UInt32(c.intermediateSize))
        writer.add(uint32: "\(arch).block_count", UInt32(c.numHiddenLayers))
        writer.add(uint32: "\(arch).attention.head_count", UInt32(c.numAttentionHeads))
        writer.add(uint32: "\(arch).attention.head_count_kv", UInt32(c.numKeyValueHeads))
        if c.headDim != c.hiddenSize / c.numAttentionHeads { writer.add(uint32: "\(arch).attention.key_length", UInt32(c.headDim)) }
        writer.add(uint32: "\(arch).context_length", UInt32(c.maxPositionEmbeddings))
        writer.add(float32: "\(arch).attention.layer_norm_rms_epsilon", c.rmsNormEps)
        writer.add(float32: "\(arch).rope.freq_base", c.ropeTheta)
        writer.add(strings: "tokenizer.ggml.tokens", (0..<c.vocabSize).map { "t\($0)" })
        if let bos = c.bosTokenId { writer.add(uint32: "tokenizer.ggml.bos_token_id", UInt32(bos)) }
        if let eos = c.eosTokenIds.first { writer.add(uint32: "tokenizer.ggml.eos_token_id", UInt32(eos)) }
        for (name, tensor) in tensors.sorted(by: { $0.key < $1.key }) {
            var data = tensor.data
            if arch == "llama" {
                if name.contains("self_attn.q_proj.") { data = permutedRows(tensor, heads: c.numAttentionHeads) }
                if name.contains("self_attn.k_proj.") { data = permutedRows(tensor, heads: c.numKeyValueHeads) }
            }
            let type: GGMLType = tensor.shape.count == 2 ? weightType : .f32
            writer.tensors.append((ggufName(name), tensor.shape.reversed(), type, try ReferenceQuantizer.quantize(data, as: type)))
        }
        try Data(writer.bytes()).write(to: URL(fileURLWithPath: path))
    }

    /// Writes `tensors` as a Hugging Face folder: `model.safetensors` and a `config.json` made
    /// from `c` (Qwen2's has no `attention_bias` key: the bias is implied by `model_type`).
    static func writeFolder(_ tensors: [String: Tensor], configuration c: LlamaConfiguration, to dir: URL) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try SafetensorsFile.write(tensors, metadata: ["format": "pt"], to: dir.appendingPathComponent("model.safetensors").path)
        var json: [String: Any] = [
            "model_type": c.modelType, "hidden_size": c.hiddenSize, "intermediate_size": c.intermediateSize,
            "num_hidden_layers": c.numHiddenLayers, "num_attention_heads": c.numAttentionHeads,
            "num_key_value_heads": c.numKeyValueHeads, "vocab_size": c.vocabSize, "rms_norm_eps": Double(c.rmsNormEps),
            "rope_theta": Double(c.ropeTheta), "max_position_embeddings": c.maxPositionEmbeddings,
            "tie_word_embeddings": c.tieWordEmbeddings,
        ]
        if c.modelType != "qwen2" { json["attention_bias"] = c.attentionBias }
        if c.headDim != c.hiddenSize / c.numAttentionHeads { json["head_dim"] = c.headDim }
        if let bos = c.bosTokenId { json["bos_token_id"] = bos }
        if c.eosTokenIds.count == 1 { json["eos_token_id"] = c.eosTokenIds[0] } else if !c.eosTokenIds.isEmpty { json["eos_token_id"] = c.eosTokenIds }
        try JSONSerialization.data(withJSONObject: json, options: .sortedKeys).write(to: dir.appendingPathComponent("config.json"))
    }

    /// A fresh temporary folder for one test (not created), removed when the test process exits.
    static func temporaryDirectory(_ prefix: String) -> URL {
        TestSupport.runDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    }
}
