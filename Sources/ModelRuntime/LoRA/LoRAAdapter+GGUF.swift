import Foundation

/// A LoRA adapter as a GGUF LoRA file, the format llama.cpp loads with `--lora FILE` (and
/// llama-cpp-python with `lora_path`, Ollama with `ADAPTER`): what llama.cpp's
/// `convert_lora_to_gguf.py` writes.
///
/// - Metadata: `general.architecture` (the base's: `llama` or `qwen2`), `general.type = adapter`,
///   `adapter.type = lora`, `adapter.lora.alpha` (llama.cpp scales by alpha / r, so an rsLoRA
///   adapter, scaled by alpha / √r, is written with alpha·√r), then the caller's keys (lineage
///   under `corpus.*`).
/// - Tensors: for every adapted projection `blk.N.<name>.weight.lora_a` with GGUF dimensions
///   [in, r] (PyTorch's A, (r, in)) and `….lora_b` with [r, out] (B, (out, r)), where <name> is
///   llama.cpp's (`attn_q`, `attn_k`, `attn_v`, `attn_output`, `ffn_gate`, `ffn_up`, `ffn_down`).
/// - For the `llama` architecture llama.cpp's converter interleaves the two RoPE halves of every
///   head in the Q and K weights (`permute`); B of q_proj and k_proj gets the same row order so
///   that B·A is the update of the permuted weight. Qwen2 is not permuted.
extension LoRAAdapter {
    /// llama.cpp's name of a projection inside block N.
    static func ggufModuleName(_ target: LoRATarget) -> String {
        switch target {
        case .q: return "attn_q"
        case .k: return "attn_k"
        case .v: return "attn_v"
        case .o: return "attn_output"
        case .gate: return "ffn_gate"
        case .up: return "ffn_up"
        case .down: return "ffn_down"
        }
    }

    /// The GGUF architecture llama.cpp gives a model of this configuration (Mistral and SmolLM are
    /// `llama` to it).
    public static func ggufArchitecture(_ c: LlamaConfiguration) -> String {
        c.modelType == "qwen2" ? "qwen2" : "llama"
    }

    /// The adapter as a GGUF LoRA file for a base of configuration `c`.
    /// - Parameters:
    ///   - type: the element type of the matrices: f32 (exact), f16 or bf16.
    ///   - metadata: more keys, written after the adapter's own (e.g. `general.name`, `corpus.*`).
    /// - Throws: `ModelError` for another type, or an adapter that does not fit the configuration.
    public func gguf(for c: LlamaConfiguration, type: GGMLType = .f32, metadata: [(key: String, value: GGUFValue)] = []) throws -> GGUFWriter {
        guard [.f32, .f16, .bf16].contains(type) else {
            throw ModelError.unsupported("a GGUF LoRA is written as F32, F16 or BF16, not \(type.name)")
        }
        _ = try LoRAInference(self, configuration: c)     // checks the layers and every shape
        let arch = Self.ggufArchitecture(c)
        let r = configuration.rank
        let alpha = configuration.useRSLoRA ? Double(configuration.alpha) * Double(r).squareRoot() : Double(configuration.alpha)
        var writer = GGUFWriter()
        writer.metadata = [
            ("general.architecture", .string(arch)),
            ("general.type", .string("adapter")),
            ("adapter.type", .string("lora")),
            ("adapter.lora.alpha", .float32(Float(alpha))),
        ] + metadata
        for (l, layer) in layers.enumerated() {
            for target in layer.keys.sorted() {
                guard let pair = layer[target] else { continue }
                let out = pair.b.shape[0]
                var b = pair.b.data
                if arch == "llama" && (target == .q || target == .k) {
                    b = try Self.permuteRows(b, rows: out, columns: r,
                                             heads: target == .q ? c.numAttentionHeads : c.numKeyValueHeads,
                                             name: Self.peftKey(layer: l, target: target, matrix: "B"))
                }
                let base = "blk.\(l).\(Self.ggufModuleName(target)).weight"
                var aBytes: [UInt8] = [], bBytes: [UInt8] = []
                GGMLQuantize.append(pair.a.data, as: type, to: &aBytes)
                GGMLQuantize.append(b, as: type, to: &bBytes)
                writer.tensors.append(.init(name: base + ".lora_a", dimensions: [pair.a.shape[1], r], type: type, bytes: aBytes))
                writer.tensors.append(.init(name: base + ".lora_b", dimensions: [r, out], type: type, bytes: bBytes))
            }
        }
        return writer
    }

    /// llama.cpp's `permute(w, n_head)` on the rows of a (rows, columns) matrix: GGUF row
    /// h·HD + 2i + t is Hugging Face row h·HD + t·HD/2 + i (the inverse of
    /// `GGUFFile.unpermuteRows`).
    static func permuteRows(_ values: [Float], rows: Int, columns: Int, heads: Int, name: String) throws -> [Float] {
        guard heads > 0, rows % (2 * heads) == 0 else {
            throw ModelError.shapeMismatch(tensor: name, expected: [heads * 2, columns], found: [rows, columns])
        }
        let headDim = rows / heads, half = headDim / 2
        var out = [Float](repeating: 0, count: values.count)
        for h in 0..<heads {
            for i in 0..<half {
                for t in 0..<2 {
                    let to = h * headDim + 2 * i + t, from = h * headDim + t * half + i
                    for j in 0..<columns { out[to * columns + j] = values[from * columns + j] }
                }
            }
        }
        return out
    }
}
