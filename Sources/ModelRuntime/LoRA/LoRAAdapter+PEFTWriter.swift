import CorpusSupport
import Foundation

/// Writing an adapter in PEFT's on-disk format (`save_pretrained` of a `PeftModel` with a
/// `LoraConfig`): `adapter_config.json` and `adapter_model.safetensors`. The same folder loads
/// in PEFT (`PeftModel.from_pretrained`), vLLM (`LoRARequest`) and llama.cpp's
/// `convert_lora_to_gguf.py`; docs/ADAPTERS.md lists what each one reads.
extension LoRAAdapter {
    /// The adapter's configuration file in a PEFT folder.
    public static let peftConfigFileName = "adapter_config.json"
    /// The adapter's weights in a PEFT folder.
    public static let peftWeightsFileName = "adapter_model.safetensors"

    /// Writes `adapter_config.json` and `adapter_model.safetensors` (fp32, only the `lora_A` and
    /// `lora_B` weights, keys such as `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`)
    /// into `directory`, creating it if needed. Both files appear together or not at all; files
    /// of an earlier adapter in the folder are replaced, other files are left alone.
    ///
    /// - Parameters:
    ///   - baseModel: `base_model_name_or_path`: a hub id or the base model's folder.
    ///   - metadata: strings for the safetensors `__metadata__` (lineage: snapshot hash, run id);
    ///     `format` is reserved and always `pt`, as PEFT writes it.
    /// - Throws: `ModelError` when the adapter is inconsistent (a layer without a configured
    ///   target, a shape that disagrees with the rank, a non-finite value) or a file cannot be written.
    public func write(to directory: URL, baseModel: String, metadata: [String: String] = [:]) throws {
        if let format = metadata["format"], format != "pt" {
            throw ModelError.unsupported("adapter metadata key `format` is reserved for safetensors (\"pt\"); store \(format.debugDescription) under another key")
        }
        let tensors = try peftTensors()
        let config = try peftConfigJSON(baseModel: baseModel)
        var fileMetadata = metadata
        fileMetadata["format"] = "pt"
        try AtomicWrites.folder([
            AtomicFolder.File(name: Self.peftWeightsFileName) { url in
                try SafetensorsFile.write(tensors, metadata: fileMetadata, to: url.path)
            },
            AtomicFolder.File(name: Self.peftConfigFileName) { url in
                try AtomicWrites.data(config, to: url)
            },
        ], into: directory, requireEmpty: false)
    }

    /// The adapter's tensors under PEFT's names, after checking that every layer has exactly the
    /// configured targets, A is [r, in] and B is [out, r] with the same in/out in every layer,
    /// and every value is finite.
    /// - Throws: `ModelError.unsupported` naming the layer, target and what is wrong.
    public func peftTensors() throws -> [String: Tensor] {
        let r = configuration.rank
        guard r > 0 else { throw ModelError.unsupported("LoRA rank \(r) must be positive") }
        guard !layers.isEmpty else { throw ModelError.unsupported("the adapter has no layers") }
        guard !configuration.targets.isEmpty else { throw ModelError.unsupported("the adapter's configuration has no targets") }
        var sizes: [LoRATarget: (out: Int, in: Int)] = [:]
        var out: [String: Tensor] = [:]
        for (l, layer) in layers.enumerated() {
            let found = Set(layer.keys), wanted = Set(configuration.targets)
            guard found == wanted else {
                let missing = wanted.subtracting(found).sorted().map(\.moduleName)
                let extra = found.subtracting(wanted).sorted().map(\.moduleName)
                throw ModelError.unsupported("adapter layer \(l): targets \(found.sorted().map(\.moduleName)) differ from the configuration's \(configuration.targets.map(\.moduleName)) (missing \(missing), extra \(extra))")
            }
            for target in configuration.targets {
                guard let pair = layer[target] else { continue }
                let aKey = Self.peftKey(layer: l, target: target, matrix: "A")
                let bKey = Self.peftKey(layer: l, target: target, matrix: "B")
                guard pair.a.shape.count == 2, pair.a.shape[0] == r, pair.b.shape.count == 2, pair.b.shape[1] == r else {
                    throw ModelError.unsupported("adapter layer \(l) \(target.moduleName): lora_A is \(pair.a.shape) and lora_B is \(pair.b.shape); with r = \(r) they must be [\(r), in] and [out, \(r)]")
                }
                let size = (out: pair.b.shape[0], in: pair.a.shape[1])
                if let first = sizes[target], first != size {
                    throw ModelError.unsupported("adapter layer \(l) \(target.moduleName): adapts a \(size.in) → \(size.out) projection but layer 0 adapts \(first.in) → \(first.out)")
                }
                sizes[target] = size
                for (key, tensor) in [(aKey, pair.a), (bKey, pair.b)] {
                    if let i = tensor.data.firstIndex(where: { !$0.isFinite }) {
                        throw ModelError.unsupported("adapter tensor \(key): element \(i) is \(tensor.data[i]); training diverged, so this adapter is not written (lower the learning rate or resume from an earlier checkpoint)")
                    }
                    out[key] = tensor
                }
            }
        }
        return out
    }

    /// `adapter_config.json` as PEFT's `LoraConfig.save_pretrained` writes it (Python's
    /// `json.dumps(indent=2, sort_keys=True)`), with PEFT's defaults for the options this adapter does not use.
    /// Only keys that PEFT has known since 0.10 are written: PEFT before 0.14 rejects a config
    /// with a key it does not know, and every later PEFT fills absent keys with their defaults
    /// (PEFT 0.21 writes about twenty more, all at defaults; docs/ADAPTERS.md).
    /// - Throws: `ModelError` when the JSON cannot be encoded (a non-finite alpha or dropout).
    public func peftConfigJSON(baseModel: String) throws -> Data {
        let c = configuration
        guard c.alpha.isFinite, c.dropout.isFinite else {
            throw ModelError.unsupported("lora_alpha \(c.alpha) and lora_dropout \(c.dropout) must be finite numbers")
        }
        let json: [String: Any] = [
            "alpha_pattern": [String: Any](),
            "auto_mapping": NSNull(),
            "base_model_name_or_path": baseModel,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "layer_replication": NSNull(),
            "layers_pattern": NSNull(),
            "layers_to_transform": NSNull(),
            "loftq_config": [String: Any](),
            "lora_alpha": Self.jsonNumber(c.alpha),
            "lora_dropout": Double("\(c.dropout)") ?? Double(c.dropout),
            "megatron_config": NSNull(),
            "megatron_core": "megatron.core",
            "modules_to_save": NSNull(),
            "peft_type": "LORA",
            "r": c.rank,
            "rank_pattern": [String: Any](),
            "revision": NSNull(),
            "target_modules": c.targets.map(\.moduleName).sorted(),
            "task_type": "CAUSAL_LM",
            "use_dora": false,
            "use_rslora": c.useRSLoRA,
        ]
        return try PythonJSON.encode(json, newline: false)
    }

    /// An integral value as a JSON integer (PEFT writes `"lora_alpha": 16`), any other as the
    /// shortest decimal that reads back as the same Float (0.05, not 0.05000000074505806).
    static func jsonNumber(_ x: Float) -> Any {
        if x == x.rounded(), abs(x) < 1e9 { return Int(x) }
        return Double("\(x)") ?? Double(x)
    }
}
