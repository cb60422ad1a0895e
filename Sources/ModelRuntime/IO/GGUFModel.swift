import Foundation

/// A model's configuration and weights with Hugging Face names and PyTorch shapes, each in the
/// type it was stored in (bf16 stays bf16, Q4_1 stays Q4_1).
public struct LoadedModel: Sendable {
    public var configuration: LlamaConfiguration
    /// `model.embed_tokens.weight`, `model.layers.N.self_attn.q_proj.weight`, ... as in a Hugging
    /// Face checkpoint: linear weights `[out, in]`, Q and K rows in Hugging Face order.
    public var weights: [String: StoredTensor]
    /// "gguf" or "safetensors".
    public var format: String
    /// The files the weights came from (for the model fingerprint).
    public var weightFiles: [String]

    public init(configuration: LlamaConfiguration, weights: [String: StoredTensor], format: String, weightFiles: [String]) {
        self.configuration = configuration
        self.weights = weights
        self.format = format
        self.weightFiles = weightFiles
    }

    /// Every weight dequantized to fp32 (merging, tests; a whole fp32 copy, so not for serving).
    public var tensors: [String: Tensor] { weights.mapValues { $0.dequantized() } }

    /// The weights as `--base-type` and `--compute` want them: converted to `baseType` when one
    /// is given; else, for bf16 arithmetic, fp32 and fp16 matrices rounded to bf16 (the bf16
    /// kernels read bf16 weights; block formats stay as they are); else as stored.
    public func weights(baseType: GGMLType?, precision: ComputePrecision) throws -> [String: StoredTensor] {
        try weights.mapValuesThrowing { name, tensor in try Self.inMemory(tensor, name: name, baseType: baseType, precision: precision) }
    }

    /// One tensor as `weights(baseType:precision:)` keeps it (vectors are never converted).
    static func inMemory(_ tensor: StoredTensor, name: String, baseType: GGMLType?, precision: ComputePrecision) throws -> StoredTensor {
        guard tensor.shape.count == 2 else { return tensor }
        if let baseType { return try tensor.converted(to: baseType, name: name) }
        if precision == .bf16 && (tensor.type == .f32 || tensor.type == .f16) { return try tensor.converted(to: .bf16, name: name) }
        return tensor
    }

    /// The model, with its matrices kept in their stored types or converted to `baseType`.
    /// - Throws: `ModelError` as `LlamaModel.init(configuration:weights:baseType:)` does.
    public func model(baseType: GGMLType? = nil, precision: ComputePrecision = .f32) throws -> LlamaModel {
        try LlamaModel(configuration: configuration, weights: try weights(baseType: baseType, precision: precision), precision: precision)
    }
}

extension Dictionary {
    /// `mapValues` with the key and a throwing transform.
    func mapValuesThrowing<T>(_ transform: (Key, Value) throws -> T) rethrows -> [Key: T] {
        var out: [Key: T] = [:]
        out.reserveCapacity(count)
        for (key, value) in self { out[key] = try transform(key, value) }
        return out
    }
}

extension GGUFFile {
    /// The Hugging Face name of a GGUF tensor (llama.cpp's naming), or nil for tensors we do not use.
    static func huggingFaceName(_ name: String) -> String? {
        switch name {
        case "token_embd.weight": return "model.embed_tokens.weight"
        case "output_norm.weight": return "model.norm.weight"
        case "output.weight": return "lm_head.weight"
        default: break
        }
        let parts = name.split(separator: ".")
        guard parts.count == 4, parts[0] == "blk", let layer = Int(parts[1]) else { return nil }
        let module: String
        switch parts[2] {
        case "attn_q": module = "self_attn.q_proj"
        case "attn_k": module = "self_attn.k_proj"
        case "attn_v": module = "self_attn.v_proj"
        case "attn_output": module = "self_attn.o_proj"
        case "attn_norm": module = "input_layernorm"
        case "ffn_norm": module = "post_attention_layernorm"
        case "ffn_gate": module = "mlp.gate_proj"
        case "ffn_up": module = "mlp.up_proj"
        case "ffn_down": module = "mlp.down_proj"
        default: return nil
        }
        return "model.layers.\(layer).\(module).\(parts[3])"
    }

    /// The configuration from the GGUF metadata (`{arch}.embedding_length`, ...).
    /// - Throws: `ModelError.unsupported` for an architecture other than llama/qwen2, or when a
    ///   required key is missing.
    public func llamaConfiguration() throws -> LlamaConfiguration {
        guard let arch = metadata["general.architecture"]?.string else {
            throw ModelError.invalidFile(path: path, detail: "no general.architecture in the metadata")
        }
        guard ["llama", "qwen2", "mistral"].contains(arch) else {
            throw ModelError.unsupported("\(path): architecture \(arch) is not supported; supported: llama (Llama 2/3, SmolLM2, Mistral), qwen2")
        }
        func int(_ key: String) throws -> Int {
            guard let v = metadata["\(arch).\(key)"]?.int else {
                throw ModelError.invalidFile(path: path, detail: "metadata \(arch).\(key) is missing")
            }
            return v
        }
        let heads = try int("attention.head_count")
        let hidden = try int("embedding_length")
        let vocab = metadata["tokenizer.ggml.tokens"]?.strings?.count ?? metadata["\(arch).vocab_size"]?.int
        guard let vocab else { throw ModelError.invalidFile(path: path, detail: "no tokenizer.ggml.tokens and no \(arch).vocab_size") }
        var eos: [Int] = []
        if let id = metadata["tokenizer.ggml.eos_token_id"]?.int { eos.append(id) }
        return LlamaConfiguration(
            modelType: arch, hiddenSize: hidden, intermediateSize: try int("feed_forward_length"),
            numHiddenLayers: try int("block_count"), numAttentionHeads: heads,
            numKeyValueHeads: metadata["\(arch).attention.head_count_kv"]?.int ?? heads,
            headDim: metadata["\(arch).attention.key_length"]?.int, vocabSize: vocab,
            rmsNormEps: metadata["\(arch).attention.layer_norm_rms_epsilon"]?.float ?? 1e-5,
            ropeTheta: metadata["\(arch).rope.freq_base"]?.float ?? 10_000,
            maxPositionEmbeddings: metadata["\(arch).context_length"]?.int ?? 2048,
            tieWordEmbeddings: !tensors.contains { $0.name == "output.weight" },
            attentionBias: arch == "qwen2" || tensors.contains { $0.name == "blk.0.attn_q.bias" },
            bosTokenId: metadata["tokenizer.ggml.bos_token_id"]?.int, eosTokenIds: eos)
    }

    /// All weights with Hugging Face names, dequantized to fp32; for `llama` the Q and K rows (of
    /// the weights and, when present, the biases) are put back in Hugging Face order (llama.cpp's
    /// converter interleaves the two RoPE halves of every head, see `unpermuteRows`). Tensors we do
    /// not know are an error naming them.
    /// - Parameters:
    ///   - baseType, precision: applied to each tensor as it is read (see `ModelLoader.load`).
    public func loadModel(baseType: GGMLType? = nil, precision: ComputePrecision = .f32) throws -> LoadedModel {
        let configuration = try llamaConfiguration()
        var out: [String: StoredTensor] = [:]
        for info in tensors {
            // Llama 3.1+ RoPE scaling as divisors of the frequencies; LlamaModel applies them.
            if info.name == "rope_freqs.weight" { out[LlamaModel.ropeFactorsName] = try storedTensor(info); continue }
            guard let name = Self.huggingFaceName(info.name) else {
                throw ModelError.unsupported("\(path): tensor \(info.name) is not part of a \(configuration.modelType) model as this loader knows it")
            }
            var tensor = try storedTensor(info)
            if configuration.modelType != "qwen2" {
                // The converter permutes q/k biases (llama with attention_bias) like the weights.
                if name.contains(".self_attn.q_proj.") { tensor = try Self.unpermuteRows(tensor, heads: configuration.numAttentionHeads, name: info.name) }
                if name.contains(".self_attn.k_proj.") { tensor = try Self.unpermuteRows(tensor, heads: configuration.numKeyValueHeads, name: info.name) }
            }
            out[name] = try LoadedModel.inMemory(tensor, name: name, baseType: baseType, precision: precision)
            releasePages(info)
        }
        return LoadedModel(configuration: configuration, weights: out, format: "gguf", weightFiles: [path])
    }

    /// Undoes llama.cpp's `permute(w, n_head)`: it reshapes the rows as (heads, 2, HD/2) and swaps
    /// the last two axes, so GGUF row `h·HD + 2i + t` holds Hugging Face row `h·HD + t·HD/2 + i`.
    static func unpermuteRows(_ tensor: StoredTensor, heads: Int, name: String) throws -> StoredTensor {
        let rows = tensor.shape[0]
        let cols = tensor.count / max(rows, 1)
        // `heads` comes from the file's metadata: bounded by the rows before it is doubled.
        guard heads > 0, heads <= rows / 2 else {
            throw ModelError.unsupported("tensor \(name) has \(rows) rows, too few for \(heads) attention heads of an even number of rows each; the head count in the model's metadata does not fit its weights")
        }
        guard rows % (2 * heads) == 0 else {
            throw ModelError.shapeMismatch(tensor: name, expected: [heads * 2, cols], found: tensor.shape)
        }
        let headDim = rows / heads, half = headDim / 2
        // Result row h·HD + t·HD/2 + i is stored row h·HD + 2i + t; whole rows move, so this works
        // on the stored bytes of any type (a 1-D bias is rows of one value).
        var order = [Int](repeating: 0, count: rows)
        for h in 0..<heads {
            for i in 0..<half {
                for t in 0..<2 { order[h * headDim + t * half + i] = h * headDim + 2 * i + t }
            }
        }
        if tensor.shape.count == 1 {
            let values = tensor.dequantized().data
            return StoredTensor(Tensor(validShape: tensor.shape, data: order.map { values[$0] }))
        }
        return tensor.reorderingRows(order)
    }

}
