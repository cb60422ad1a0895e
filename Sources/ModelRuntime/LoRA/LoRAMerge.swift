import CorpusSupport
import Foundation

/// What `LoRAMerge.writeMergedModel` wrote and what a user should know about it.
public struct MergeReport: Sendable, Equatable {
    /// The folder written.
    public var directory: String
    /// The element type of model.safetensors.
    public var weightType: WeightType
    /// The weights that changed (W' = W + s·B·A), Hugging Face names, sorted.
    public var mergedTensors: [String]
    /// Files copied from the base model's folder besides the weights (tokenizer, generation config).
    public var copiedFiles: [String]
    /// Plain sentences about conversions and omissions (dtype, GGUF, missing tokenizer).
    public var notes: [String]
}

/// Folding a LoRA adapter into the base weights, W' = W + s·B·A with s = alpha/r (alpha/√r with
/// rsLoRA), as PEFT's `merge_and_unload` does, and writing the result as a Hugging Face folder.
public enum LoRAMerge {
    /// Files of a Hugging Face model folder that a merged folder needs besides config.json and the
    /// weights; each is copied when the base folder has it.
    public static let companionFiles = [
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
        "chat_template.jinja", "chat_template.json", "added_tokens.json", "vocab.json", "merges.txt", "tokenizer.model",
    ]

    /// Copies of `tensors` (Hugging Face names, linear weights [out, in]) with every adapted
    /// projection replaced by W + s·B·A, computed as PEFT does: the product B·A in fp32 (one
    /// sgemm), scaled by s, then added to W.
    /// - Throws: `ModelError` when the adapter has a different number of layers than the
    ///   model, or a weight is missing or has another shape than the adapter's pair implies.
    public static func merge(_ adapter: LoRAAdapter, into tensors: [String: Tensor],
                             configuration model: LlamaConfiguration) throws -> [String: Tensor] {
        guard adapter.layers.count == model.numHiddenLayers else {
            throw ModelError.unsupported("the adapter has \(adapter.layers.count) layers but the model has \(model.numHiddenLayers); the adapter was trained for another model")
        }
        let s = adapter.configuration.scale
        let r = adapter.configuration.rank
        var out = tensors
        for (l, layer) in adapter.layers.enumerated() {
            for target in layer.keys.sorted() {
                guard let pair = layer[target] else { continue }
                let name = "model.layers.\(l).\(target.modulePath).weight"
                guard var weight = out[name] else {
                    throw ModelError.invalidFile(path: name, detail: "the base model has no such weight, so the adapter's \(target.moduleName) of layer \(l) cannot be merged")
                }
                let rows = pair.b.shape.first ?? 0, columns = pair.a.shape.last ?? 0
                guard pair.a.shape == [r, columns], pair.b.shape == [rows, r], weight.shape == [rows, columns] else {
                    throw ModelError.shapeMismatch(tensor: name, expected: [rows, columns], found: weight.shape)
                }
                var delta = [Float](repeating: 0, count: rows * columns)    // (out, in) = B (out, r) · A (r, in)
                pair.b.data.withUnsafeBufferPointer { b in
                    pair.a.data.withUnsafeBufferPointer { a in
                        delta.withUnsafeMutableBufferPointer { d in
                            guard let bp = b.baseAddress, let ap = a.baseAddress, let dp = d.baseAddress else { return }
                            BLAS.matmul(bp, lda: r, ap, ldb: columns, dp, ldc: columns, m: rows, n: columns, k: r)
                        }
                    }
                }
                for i in 0..<delta.count { weight.data[i] += delta[i] * s }
                out[name] = weight
            }
        }
        return out
    }

    /// `merge` on stored tensors: only the adapted projections are dequantized, merged and kept
    /// as fp32 (rounding them back to a compact type would lose most of a small update); every
    /// other weight stays in its stored type, shared without a copy.
    /// - Throws: as `merge(_:into:configuration:)`.
    public static func merge(_ adapter: LoRAAdapter, into tensors: [String: StoredTensor],
                             configuration model: LlamaConfiguration) throws -> [String: StoredTensor] {
        var adapted: [String: Tensor] = [:]
        for (l, layer) in adapter.layers.enumerated() {
            for target in layer.keys {
                let name = "model.layers.\(l).\(target.modulePath).weight"
                if let weight = tensors[name] { adapted[name] = weight.dequantized() }
            }
        }
        var out = tensors
        for (name, tensor) in try merge(adapter, into: adapted, configuration: model) { out[name] = StoredTensor(tensor) }
        return out
    }

    /// Merges `adapter` into the model at `model` (a Hugging Face folder or a GGUF file) and writes
    /// a Hugging Face folder that transformers, vLLM and llama.cpp's `convert_hf_to_gguf.py` load:
    /// model.safetensors, config.json and, from a folder, its tokenizer and generation files.
    ///
    /// - Parameters:
    ///   - weightType: the element type of model.safetensors; nil keeps the base folder's (F32 for a
    ///     GGUF file, whose quantized weights are dequantized). Rounding to F16/BF16 loses the part of
    ///     a small LoRA update below half a unit in the last place; the report counts such weights.
    ///   - metadata: strings for the safetensors `__metadata__` (lineage); `format` is always `pt`.
    /// - Throws: `ModelError` for an unreadable model, an adapter that does not fit it, or a
    ///   folder that exists and is not empty.
    @discardableResult
    public static func writeMergedModel(adapter: LoRAAdapter, model path: String, to directory: URL,
                                        metadata: [String: String] = [:], weightType: WeightType? = nil) throws -> MergeReport {
        let loaded = try ModelLoader.load(path: path)
        var isDirectory: ObjCBool = false
        let isFolder = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
        var notes: [String] = []
        var baseType = WeightType.float32
        var generated: [String: Data] = [:]
        if isFolder {
            baseType = try folderWeightType(path)
        } else {
            let gguf = try GGUFFile(path: path)
            do {
                generated = try TokenizerFiles.fromGGUF(gguf.metadata, contextLength: loaded.configuration.maxPositionEmbeddings)
                notes.append("the base is a GGUF file: its weights were dequantized to fp32, and config.json, tokenizer.json, tokenizer_config.json (with the chat template) and generation_config.json were written from its metadata")
            } catch let error as ModelError {
                notes.append("the base is a GGUF file: its weights were dequantized to fp32 and config.json was written from its metadata; its tokenizer could not be written as tokenizer.json (\(error.description)): copy tokenizer.json and tokenizer_config.json from the original Hugging Face model to use the folder with transformers")
            }
        }
        return try writeMergedModel(adapter: adapter, model: loaded, sourceFolder: isFolder ? URL(fileURLWithPath: path) : nil,
                                    to: directory, metadata: metadata, weightType: weightType ?? baseType, notes: notes, generated: generated)
    }

    /// Merges `adapter` into an already loaded model and writes the folder; `sourceFolder`, when
    /// given, supplies config.json and the tokenizer files, else config.json is written from the
    /// model's configuration.
    /// - Throws: as `writeMergedModel(adapter:model:to:metadata:weightType:)`.
    @discardableResult
    public static func writeMergedModel(adapter: LoRAAdapter, model: LoadedModel, sourceFolder: URL?, to directory: URL,
                                        metadata: [String: String] = [:], weightType: WeightType = .float32) throws -> MergeReport {
        try writeMergedModel(adapter: adapter, model: model, sourceFolder: sourceFolder, to: directory,
                             metadata: metadata, weightType: weightType, notes: [])
    }

    static func writeMergedModel(adapter: LoRAAdapter, model: LoadedModel, sourceFolder: URL?, to directory: URL,
                                 metadata: [String: String], weightType: WeightType, notes given: [String],
                                 generated: [String: Data] = [:]) throws -> MergeReport {
        if let format = metadata["format"], format != "pt" {
            throw ModelError.unsupported("metadata key `format` is reserved for safetensors (\"pt\"); store \(format.debugDescription) under another key")
        }
        var notes = given
        var tensors = model.tensors
        if tensors.removeValue(forKey: LlamaModel.ropeFactorsName) != nil {
            notes.append("\(LlamaModel.ropeFactorsName) (llama.cpp's RoPE factors) was left out: transformers computes them from rope_scaling in config.json")
        }
        let merged = try merge(adapter, into: tensors, configuration: model.configuration)
        let changed = merged.keys.filter { merged[$0] != tensors[$0] }.sorted()
        if weightType != .float32 {
            var lost = 0, total = 0
            for name in changed {
                guard let before = tensors[name]?.data, let after = merged[name]?.data else { continue }
                for i in before.indices where after[i] != before[i] {
                    total += 1
                    if weightType.rounded(after[i]) == weightType.rounded(before[i]) { lost += 1 }
                }
            }
            notes.append("weights written as \(weightType.rawValue): \(lost) of \(total) changed values round back to the base's \(weightType.rawValue) value, so that part of the adapter is lost; write F32 to keep it")
        }
        var fileMetadata = metadata
        fileMetadata["format"] = "pt"
        let config = try configJSON(model.configuration, source: sourceFolder, weightType: weightType)
        var files = [
            AtomicFolder.File(name: "model.safetensors") { url in
                try SafetensorsStreamWriter.write(merged, type: weightType, metadata: fileMetadata, to: url)
            },
            AtomicFolder.File(name: "config.json") { url in try AtomicWrites.data(config, to: url) },
        ]
        var copied: [String] = []
        for (name, data) in generated.sorted(by: { $0.key < $1.key }) {
            files.append(AtomicFolder.File(name: name) { url in try AtomicWrites.data(data, to: url) })
        }
        if let sourceFolder {
            for name in companionFiles {
                let source = sourceFolder.appendingPathComponent(name)
                guard FileManager.default.fileExists(atPath: source.path) else { continue }
                copied.append(name)
                files.append(AtomicFolder.File(name: name) { url in
                    do {
                        try FileManager.default.copyItem(at: source, to: url)
                    } catch {
                        throw ModelError.invalidFile(path: source.path, detail: "cannot copy into the merged folder (\(error.localizedDescription))")
                    }
                })
            }
            if !copied.contains("tokenizer.json") && !copied.contains("tokenizer.model") && !copied.contains("vocab.json") {
                notes.append("the base folder has no tokenizer files; copy them into the merged folder before using it")
            }
        }
        try AtomicWrites.folder(files, into: directory, requireEmpty: true)
        return MergeReport(directory: directory.path, weightType: weightType, mergedTensors: changed, copiedFiles: copied, notes: notes)
    }

    /// The most common element type of the weights in a Hugging Face folder.
    static func folderWeightType(_ path: String) throws -> WeightType {
        var counts: [WeightType: Int] = [:]
        for file in try ModelLoader.weightFiles(folder: path) {
            let st = try SafetensorsFile(path: URL(fileURLWithPath: path).appendingPathComponent(file).path)
            for entry in st.entries.values {
                if let type = WeightType(rawValue: entry.dtype) { counts[type, default: 0] += entry.end - entry.begin }
            }
        }
        return counts.max { $0.value < $1.value || ($0.value == $1.value && $0.key.rawValue < $1.key.rawValue) }?.key ?? .float32
    }

    /// config.json for the merged folder: the source folder's with its dtype set to what was
    /// written, or one built from the configuration (architectures, sizes, RoPE, special tokens).
    static func configJSON(_ c: LlamaConfiguration, source: URL?, weightType: WeightType) throws -> Data {
        var json: [String: Any]
        if let source {
            let url = source.appendingPathComponent("config.json")
            guard let data = FileManager.default.contents(atPath: url.path),
                  let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw ModelError.invalidFile(path: url.path, detail: "not a readable JSON object")
            }
            json = object
            // transformers 4 writes torch_dtype, 5 writes dtype; set whichever the file has.
            if json["dtype"] != nil || json["torch_dtype"] == nil { json["dtype"] = weightType.torchName }
            if json["torch_dtype"] != nil { json["torch_dtype"] = weightType.torchName }
        } else {
            let architecture: String
            switch c.modelType {
            case "qwen2": architecture = "Qwen2ForCausalLM"
            case "mistral": architecture = "MistralForCausalLM"
            default: architecture = "LlamaForCausalLM"
            }
            json = [
                "architectures": [architecture], "model_type": c.modelType, "hidden_size": c.hiddenSize,
                "intermediate_size": c.intermediateSize, "num_hidden_layers": c.numHiddenLayers,
                "num_attention_heads": c.numAttentionHeads, "num_key_value_heads": c.numKeyValueHeads,
                "head_dim": c.headDim, "vocab_size": c.vocabSize, "rms_norm_eps": c.rmsNormEps,
                "rope_theta": c.ropeTheta, "max_position_embeddings": c.maxPositionEmbeddings,
                "tie_word_embeddings": c.tieWordEmbeddings, "hidden_act": "silu",
                "torch_dtype": weightType.torchName, "dtype": weightType.torchName,
            ]
            if c.modelType != "qwen2" { json["attention_bias"] = c.attentionBias }
            if let s = c.ropeScaling {
                var scaling: [String: Any] = ["rope_type": s.ropeType, "factor": s.factor]
                if let v = s.lowFreqFactor { scaling["low_freq_factor"] = v }
                if let v = s.highFreqFactor { scaling["high_freq_factor"] = v }
                if let v = s.originalMaxPositionEmbeddings { scaling["original_max_position_embeddings"] = v }
                json["rope_scaling"] = scaling
            }
            if let bos = c.bosTokenId { json["bos_token_id"] = bos }
            if c.eosTokenIds.count == 1 { json["eos_token_id"] = c.eosTokenIds[0] } else if !c.eosTokenIds.isEmpty { json["eos_token_id"] = c.eosTokenIds }
        }
        return try PythonJSON.encode(json)
    }
}
