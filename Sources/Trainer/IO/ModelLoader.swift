import Foundation

/// Loads a model from a GGUF file or a Hugging Face folder (config.json + model.safetensors, or
/// shards listed in model.safetensors.index.json).
public enum ModelLoader {
    /// - Throws: `TrainerError` naming the file, tensor or key that is wrong.
    public static func load(path: String) throws -> LoadedModel {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw TrainerError.invalidFile(path: path, detail: "no such file or folder")
        }
        if !isDirectory.boolValue { return try GGUFFile(path: path).loadModel() }
        let folder = URL(fileURLWithPath: path)
        let configuration = try LlamaConfiguration(configJSON: folder.appendingPathComponent("config.json").path)
        var files: [String] = []
        let index = folder.appendingPathComponent("model.safetensors.index.json").path
        if let data = FileManager.default.contents(atPath: index) {
            guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let map = json["weight_map"] as? [String: String] else {
                throw TrainerError.invalidFile(path: index, detail: "no weight_map object")
            }
            files = Set(map.values).sorted().map { folder.appendingPathComponent($0).path }
        } else {
            files = [folder.appendingPathComponent("model.safetensors").path]
        }
        var tensors: [String: Tensor] = [:]
        for file in files {
            let st = try SafetensorsFile(path: file)
            for name in st.entries.keys.sorted() {
                // Rotary inverse-frequency buffers some checkpoints carry are recomputed, not loaded.
                if name.hasSuffix("rotary_emb.inv_freq") { continue }
                guard tensors[name] == nil else {
                    throw TrainerError.invalidFile(path: file, detail: "tensor \(name) appears in two shards")
                }
                tensors[name] = try st.tensor(named: name)
            }
        }
        return LoadedModel(configuration: configuration, tensors: tensors, format: "safetensors", weightFiles: files)
    }
}
