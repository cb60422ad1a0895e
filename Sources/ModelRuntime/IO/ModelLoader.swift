import Foundation

/// Loads a model from a GGUF file or a Hugging Face folder (config.json + model.safetensors, or
/// shards listed in model.safetensors.index.json).
public enum ModelLoader {
    /// - Parameters:
    ///   - baseType, precision: the in-memory types `LoadedModel.weights(baseType:precision:)`
    ///     describes, applied to each tensor as it is read, so the file's own copy of the model
    ///     is never held whole beside the converted one.
    /// - Throws: `ModelError` naming the file, tensor or key that is wrong.
    public static func load(path: String, baseType: GGMLType? = nil, precision: ComputePrecision = .f32) throws -> LoadedModel {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ModelError.invalidFile(path: path, detail: "no such file or folder")
        }
        if !isDirectory.boolValue { return try GGUFFile(path: path).loadModel(baseType: baseType, precision: precision) }
        let folder = URL(fileURLWithPath: path)
        let configuration = try LlamaConfiguration(configJSON: folder.appendingPathComponent("config.json").path)
        let files = try weightFiles(folder: path).map { folder.appendingPathComponent($0).path }
        var tensors: [String: StoredTensor] = [:]
        for file in files {
            let st = try SafetensorsFile(path: file)
            for name in st.entries.keys.sorted() {
                // Rotary inverse-frequency buffers some checkpoints carry are recomputed, not loaded.
                if name.hasSuffix("rotary_emb.inv_freq") { continue }
                guard tensors[name] == nil else {
                    throw ModelError.invalidFile(path: file, detail: "tensor \(name) appears in two shards")
                }
                tensors[name] = try LoadedModel.inMemory(try st.storedTensor(named: name), name: name, baseType: baseType, precision: precision)
                st.releasePages(named: name)
            }
        }
        return LoadedModel(configuration: configuration, weights: tensors, format: "safetensors", weightFiles: files)
    }

    /// The safetensors files of a Hugging Face folder, relative to it and sorted: the shards
    /// that `model.safetensors.index.json` names, else `model.safetensors`.
    /// - Throws: `ModelError.invalidFile` when the index has no `weight_map`.
    public static func weightFiles(folder path: String) throws -> [String] {
        let index = URL(fileURLWithPath: path).appendingPathComponent("model.safetensors.index.json").path
        guard let data = FileManager.default.contents(atPath: index) else { return ["model.safetensors"] }
        guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let map = json["weight_map"] as? [String: String] else {
            throw ModelError.invalidFile(path: index, detail: "no weight_map object")
        }
        return Set(map.values).sorted()
    }
}
