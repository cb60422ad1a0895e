import Foundation

/// What a PEFT adapter folder says about itself besides its weights.
public struct PEFTAdapterInfo: Sendable, Equatable {
    /// `base_model_name_or_path` of adapter_config.json, if any.
    public var baseModel: String?
    /// The safetensors `__metadata__` strings (ours carry the snapshot hash and run id; PEFT's
    /// own files have only `format: pt`).
    public var metadata: [String: String]
}

/// Reading an adapter saved by PEFT (`save_pretrained`), by us, or by a tool that follows PEFT
/// (LLaMA-Factory, TRL, Axolotl, unsloth), strictly: everything in the folder must be something
/// this runtime applies exactly, or the read fails with the file, the tensor and what to do.
extension LoRAAdapter {
    /// Reads `adapter_config.json` and `adapter_model.safetensors` (F32, F16 or BF16) from
    /// `directory` and checks every tensor against `model`.
    ///
    /// Accepted keys: `base_model.model.model.layers.N.<self_attn|mlp>.<x>_proj.lora_<A|B>.weight`,
    /// also without the leading `base_model.model.` and with PEFT's adapter name (`.default.`)
    /// before `weight`. Rejected: any other tensor (embeddings, `modules_to_save`, DoRA
    /// magnitudes, LoRA biases), a missing A or B, a layer or target that is absent, `bias` other
    /// than `none`, `fan_in_fan_out`, `use_dora`, rank or alpha patterns, `layers_to_transform`.
    ///
    /// - Throws: `ModelError.invalidFile` naming the file, the key and the fix, or
    ///   `ModelError.unsupported` for a valid PEFT option this runtime does not apply.
    public init(readingPEFT directory: URL, configuration model: LlamaConfiguration) throws {
        let configURL = directory.appendingPathComponent(Self.peftConfigFileName)
        let weightsURL = directory.appendingPathComponent(Self.peftWeightsFileName)
        let configuration = try Self.readPEFTConfiguration(configURL)
        guard FileManager.default.fileExists(atPath: weightsURL.path) else {
            let bin = directory.appendingPathComponent("adapter_model.bin")
            if FileManager.default.fileExists(atPath: bin.path) {
                throw ModelError.invalidFile(path: bin.path, detail: "the adapter is a pickle (adapter_model.bin), which corpus does not read; re-save it with PEFT's save_pretrained(..., safe_serialization=True) to get adapter_model.safetensors")
            }
            throw ModelError.invalidFile(path: weightsURL.path, detail: "missing; a PEFT adapter folder holds adapter_config.json and adapter_model.safetensors")
        }
        let file = try SafetensorsFile(path: weightsURL.path)
        let path = weightsURL.path
        let r = configuration.rank
        var found: [Int: [LoRATarget: (a: Tensor?, b: Tensor?)]] = [:]
        var sourceKey: [String: String] = [:]
        for key in file.entries.keys.sorted() {
            guard let parsed = Self.parsePEFTKey(key) else {
                throw ModelError.invalidFile(path: path, detail: "tensor \(key) is not a lora_A or lora_B weight of a Llama projection (q/k/v/o/gate/up/down_proj); corpus applies only those. If the adapter was trained with modules_to_save, trainable tokens, DoRA or LoRA biases, retrain without them")
            }
            guard parsed.layer < model.numHiddenLayers else {
                throw ModelError.invalidFile(path: path, detail: "tensor \(key) is for layer \(parsed.layer) but the model has \(model.numHiddenLayers) layers (0...\(model.numHiddenLayers - 1)); the adapter was trained for another model")
            }
            guard configuration.targets.contains(parsed.target) else {
                throw ModelError.invalidFile(path: path, detail: "tensor \(key) adapts \(parsed.target.moduleName), which target_modules in adapter_config.json (\(configuration.targets.map(\.moduleName))) does not list; the two files do not belong together")
            }
            let canonical = Self.peftKey(layer: parsed.layer, target: parsed.target, matrix: parsed.isA ? "A" : "B")
            if let other = sourceKey[canonical] {
                throw ModelError.invalidFile(path: path, detail: "tensors \(other) and \(key) are the same weight under two names; keep one")
            }
            sourceKey[canonical] = key
            let size = parsed.target.shape(model)
            let expected = parsed.isA ? [r, size.in] : [size.out, r]
            let shape = file.entries[key]?.shape ?? []
            guard shape == expected else {
                throw ModelError.invalidFile(path: path, detail: "tensor \(key) has shape \(shape), expected \(expected) (r = \(r) from adapter_config.json; the model's \(parsed.target.moduleName) maps \(size.in) → \(size.out)); the adapter was trained for another model or its config does not match its weights")
            }
            let tensor = try file.tensor(named: key)
            if let i = tensor.data.firstIndex(where: { !$0.isFinite }) {
                throw ModelError.invalidFile(path: path, detail: "tensor \(key): element \(i) is \(tensor.data[i]); the adapter is damaged")
            }
            var entry = found[parsed.layer, default: [:]][parsed.target] ?? (nil, nil)
            if parsed.isA { entry.a = tensor } else { entry.b = tensor }
            found[parsed.layer, default: [:]][parsed.target] = entry
        }
        var layers: [[LoRATarget: LoRAPair]] = []
        for l in 0..<model.numHiddenLayers {
            var layer: [LoRATarget: LoRAPair] = [:]
            for target in configuration.targets {
                let entry = found[l]?[target]
                guard let a = entry?.a else {
                    throw ModelError.invalidFile(path: path, detail: "tensor \(Self.peftKey(layer: l, target: target, matrix: "A")) is missing; every layer must adapt every module of target_modules (\(configuration.targets.map(\.moduleName)))")
                }
                guard let b = entry?.b else {
                    throw ModelError.invalidFile(path: path, detail: "tensor \(Self.peftKey(layer: l, target: target, matrix: "B")) is missing; every lora_A needs its lora_B")
                }
                layer[target] = LoRAPair(a: a, b: b)
            }
            layers.append(layer)
        }
        self.init(configuration: configuration, layers: layers)
    }

    /// `base_model_name_or_path` and the safetensors metadata of a PEFT folder.
    /// - Throws: `ModelError.invalidFile` when either file is missing or unreadable.
    public static func readPEFTInfo(directory: URL) throws -> PEFTAdapterInfo {
        let configURL = directory.appendingPathComponent(peftConfigFileName)
        let json = try readJSONObject(configURL)
        let file = try SafetensorsFile(path: directory.appendingPathComponent(peftWeightsFileName).path)
        return PEFTAdapterInfo(baseModel: json["base_model_name_or_path"] as? String, metadata: file.metadata)
    }

    /// The LoRA hyper-parameters of an adapter_config.json, after checking that every option is
    /// one this runtime applies exactly.
    /// - Throws: `ModelError` naming the key, its value and what to do.
    public static func readPEFTConfiguration(_ url: URL) throws -> LoRAConfiguration {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw missingFile(url.path) }
        return try readPEFTConfiguration(data: data, path: url.path)
    }

    /// The LoRA hyper-parameters of an adapter_config.json's bytes; `path` names it in errors.
    /// - Throws: as `readPEFTConfiguration(_:)`.
    public static func readPEFTConfiguration(data: Data, path: String) throws -> LoRAConfiguration {
        let j = try jsonObject(data, path: path)
        func fail(_ detail: String) -> ModelError { ModelError.invalidFile(path: path, detail: detail) }
        func isUnset(_ key: String) -> Bool {
            switch j[key] {
            case nil, is NSNull: return true
            case let d as [String: Any]: return d.isEmpty
            case let a as [Any]: return a.isEmpty
            default: return false
            }
        }
        if let type = j["peft_type"] {
            guard let t = type as? String, t.uppercased() == "LORA" else {
                throw fail("peft_type is \(type), not LORA; corpus reads LoRA adapters only")
            }
        }
        if !isUnset("task_type"), let task = j["task_type"] as? String, task != "CAUSAL_LM" {
            throw ModelError.unsupported("\(path): task_type is \(task); corpus applies CAUSAL_LM adapters only")
        }
        guard let rank = (j["r"] as? NSNumber).flatMap({ Int(exactly: $0.doubleValue) }), rank > 0 else {
            throw fail("r is \(j["r"].map { "\($0)" } ?? "missing"); it must be a positive integer (the LoRA rank)")
        }
        func number(_ key: String, default value: Float) throws -> Float {
            guard let raw = j[key], !(raw is NSNull) else { return value }
            // Finite as a Float too: 1e39 is a fine Double but an infinite scale.
            guard let n = raw as? NSNumber, n.doubleValue.isFinite, n.floatValue.isFinite else {
                throw fail("\(key) is \(raw); it must be a number (at most \(Float.greatestFiniteMagnitude) in size)")
            }
            return n.floatValue
        }
        func flag(_ key: String) throws -> Bool {
            guard let raw = j[key], !(raw is NSNull) else { return false }
            guard let b = raw as? Bool else { throw fail("\(key) is \(raw); it must be true or false") }
            return b
        }
        let alpha = try number("lora_alpha", default: 8)
        let dropout = try number("lora_dropout", default: 0)
        let bias = j["bias"] as? String ?? "none"
        guard bias == "none" else {
            throw ModelError.unsupported("\(path): bias is \(bias.debugDescription); corpus applies adapters with bias \"none\" only (retrain with bias=\"none\")")
        }
        if try flag("fan_in_fan_out") {
            throw ModelError.unsupported("\(path): fan_in_fan_out is true (GPT-2 style Conv1D weights); Llama models use fan_in_fan_out false")
        }
        for key in ["use_dora", "lora_bias", "use_qalora"] where try flag(key) {
            throw ModelError.unsupported("\(path): \(key) is true; corpus applies plain LoRA only (retrain with \(key)=False, or merge the adapter in PEFT)")
        }
        for key in ["rank_pattern", "alpha_pattern", "layers_to_transform", "layer_replication", "modules_to_save", "trainable_token_indices"] where !isUnset(key) {
            throw ModelError.unsupported("\(path): \(key) is set (\(j[key].map { "\($0)" } ?? "")); corpus applies one rank and alpha to every layer and no extra modules (retrain without \(key), or merge the adapter in PEFT)")
        }
        let names: [String]
        switch j["target_modules"] {
        case let list as [String]: names = list
        case let one as String:
            throw ModelError.unsupported("\(path): target_modules is the pattern \(one.debugDescription); corpus needs the list of module names (q_proj, k_proj, ...), which PEFT writes after resolving a pattern")
        default:
            throw fail("target_modules is missing or not a list of module names")
        }
        var targets: [LoRATarget] = []
        for name in names {
            guard let target = LoRATarget(name: name), target.moduleName == name else {
                throw ModelError.unsupported("\(path): target_modules lists \(name.debugDescription); corpus adapts q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj and down_proj only")
            }
            if !targets.contains(target) { targets.append(target) }
        }
        guard !targets.isEmpty else { throw fail("target_modules is empty") }
        return LoRAConfiguration(rank: rank, alpha: alpha, dropout: dropout, useRSLoRA: try flag("use_rslora"), targets: targets)
    }

    /// A PEFT tensor name split into layer, target and matrix; nil for anything that is not a
    /// LoRA A/B weight of a Llama projection.
    static func parsePEFTKey(_ key: String) -> (layer: Int, target: LoRATarget, isA: Bool)? {
        var parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        if parts.count > 2, parts[0] == "base_model", parts[1] == "model" { parts.removeFirst(2) }
        // model . layers . N . (self_attn|mlp) . x_proj . lora_(A|B) [. default] . weight
        guard parts.count == 7 || (parts.count == 8 && parts[6] == "default"),
              parts[0] == "model", parts[1] == "layers", parts.last == "weight",
              let layer = Int(parts[2]), layer >= 0, String(layer) == parts[2],
              let target = LoRATarget(name: parts[4]), target.modulePath == parts[3] + "." + parts[4],
              parts[5] == "lora_A" || parts[5] == "lora_B" else { return nil }
        return (layer, target, parts[5] == "lora_A")
    }

    static func readJSONObject(_ url: URL) throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw missingFile(url.path) }
        return try jsonObject(data, path: url.path)
    }

    static func missingFile(_ path: String) -> ModelError {
        ModelError.invalidFile(path: path, detail: "missing or unreadable; a PEFT adapter folder holds adapter_config.json and adapter_model.safetensors")
    }

    static func jsonObject(_ data: Data, path: String) throws -> [String: Any] {
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelError.invalidFile(path: path, detail: "not a JSON object")
        }
        return json
    }
}
