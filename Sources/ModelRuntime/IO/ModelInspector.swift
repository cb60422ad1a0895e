import Foundation

/// What a model is, read from its headers alone (no weight is dequantized): what `corpus models
/// add` records.
public struct ModelSummary: Sendable, Equatable {
    /// A file holding weights: its name relative to the model folder (for a GGUF file, its file
    /// name) and its absolute path.
    public struct WeightFile: Sendable, Equatable {
        public var name: String
        public var path: String
    }

    /// Absolute path of the .gguf file or the Hugging Face folder.
    public var path: String
    /// "gguf" or "safetensors".
    public var format: String
    public var configuration: LlamaConfiguration
    /// Sum of the element counts of the weight tensors (rotary inverse-frequency buffers, which
    /// are recomputed rather than loaded, are not weights).
    public var parameters: Int
    /// Number of weight tensors.
    public var tensorCount: Int
    /// Tensors per element type: ggml names for GGUF ("Q4_1", "F32"), dtypes for safetensors ("BF16").
    public var tensorTypes: [String: Int]
    /// The files the fingerprint covers, sorted by name.
    public var weightFiles: [WeightFile]

    /// "llama", "qwen2" or "mistral".
    public var architecture: String { configuration.modelType }
}

/// Reads a model's configuration, tensor table and weight files without loading the weights.
public enum ModelInspector {
    /// Inspects a GGUF file or a Hugging Face folder (config.json with model.safetensors, or the
    /// shards model.safetensors.index.json lists), checking what `ModelLoader.load` would: the
    /// architecture is supported, every tensor is one the loader knows, of a type it reads, and
    /// its data lies inside the file.
    /// - Throws: `ModelError` naming the file, tensor or key that is wrong.
    public static func inspect(path: String) throws -> ModelSummary {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: absolute, isDirectory: &isDirectory) else {
            throw ModelError.invalidFile(path: absolute, detail: "no such file or folder")
        }
        let summary = isDirectory.boolValue ? try inspectFolder(absolute) : try inspectGGUF(absolute)
        guard summary.parameters > 0 else {
            throw ModelError.invalidFile(path: absolute, detail: "the model has no weight tensors")
        }
        return summary
    }

    static func inspectGGUF(_ path: String) throws -> ModelSummary {
        let file = try GGUFFile(path: path)
        let configuration = try file.llamaConfiguration()
        let fileSize = try fileSize(path)
        var parameters = 0
        var types: [String: Int] = [:]
        for info in file.tensors {
            guard GGUFFile.huggingFaceName(info.name) != nil else {
                throw ModelError.unsupported("\(path): tensor \(info.name) is not part of a \(configuration.modelType) model as this loader knows it")
            }
            guard let layout = info.type.blockLayout else {
                throw ModelError.unsupported("\(path): tensor \(info.name) has type \(info.type.name), which this build cannot load; supported: \(GGMLType.supported.map(\.name).joined(separator: ", "))")
            }
            guard let count = product(info.dimensions), let bytes = product([count / layout.elements, layout.bytes]),
                  let end = sum([file.dataOffset, info.offset, bytes]) else {
                throw ModelError.invalidFile(path: path, detail: "tensor \(info.name) has implausible dimensions \(info.dimensions); the file is damaged")
            }
            guard info.dimensions[0] % layout.elements == 0 else {
                throw ModelError.invalidFile(path: path, detail: "tensor \(info.name): \(count) elements do not fill whole \(info.type.name) blocks")
            }
            guard end <= fileSize else {
                throw ModelError.invalidFile(path: path, detail: "tensor \(info.name) ends at byte \(end) but the file has \(fileSize) bytes; the file is truncated")
            }
            parameters += count
            types[info.type.name, default: 0] += 1
        }
        return ModelSummary(path: path, format: "gguf", configuration: configuration, parameters: parameters,
                            tensorCount: file.tensors.count, tensorTypes: types,
                            weightFiles: [.init(name: URL(fileURLWithPath: path).lastPathComponent, path: path)])
    }

    static func inspectFolder(_ path: String) throws -> ModelSummary {
        let folder = URL(fileURLWithPath: path)
        let configPath = folder.appendingPathComponent("config.json").path
        guard FileManager.default.fileExists(atPath: configPath) else {
            throw ModelError.invalidFile(path: path, detail: "no config.json: a model folder holds config.json and model.safetensors (or the shards model.safetensors.index.json lists); for a GGUF model, pass the .gguf file itself")
        }
        let configuration = try LlamaConfiguration(configJSON: configPath)
        let names = try ModelLoader.weightFiles(folder: path)
        var files: [ModelSummary.WeightFile] = []
        var seen: Set<String> = []
        var parameters = 0
        var types: [String: Int] = [:]
        for name in names {
            let file = folder.appendingPathComponent(name).path
            guard FileManager.default.fileExists(atPath: file) else {
                throw ModelError.invalidFile(path: file, detail: names.count == 1 && name == "model.safetensors"
                    ? "missing: the folder has neither model.safetensors nor model.safetensors.index.json"
                    : "missing: model.safetensors.index.json lists it as a shard")
            }
            let st = try SafetensorsFile(path: file)
            for (tensor, entry) in st.entries.sorted(by: { $0.key < $1.key }) {
                if tensor.hasSuffix("rotary_emb.inv_freq") { continue }
                guard seen.insert(tensor).inserted else {
                    throw ModelError.invalidFile(path: file, detail: "tensor \(tensor) appears in two shards")
                }
                guard ["F32", "F16", "BF16"].contains(entry.dtype) else {
                    throw ModelError.unsupported("\(file): tensor \(tensor) has dtype \(entry.dtype); supported: F32, F16, BF16")
                }
                let width = entry.dtype == "F32" ? 4 : 2
                guard entry.shape.allSatisfy({ $0 >= 0 }), let count = product(entry.shape),
                      let bytes = product([count, width]), entry.end - entry.begin == bytes else {
                    throw ModelError.invalidFile(path: file, detail: "tensor \(tensor): \(entry.end - entry.begin) bytes do not hold shape \(entry.shape) of \(entry.dtype)")
                }
                parameters += count
                types[entry.dtype, default: 0] += 1
            }
            files.append(.init(name: name, path: file))
        }
        return ModelSummary(path: path, format: "safetensors", configuration: configuration, parameters: parameters,
                            tensorCount: seen.count, tensorTypes: types, weightFiles: files)
    }

    /// The product of `values`, or nil when it overflows: sizes come from the file and must not trap.
    static func product(_ values: [Int]) -> Int? {
        var result = 1
        for v in values {
            let (next, overflow) = result.multipliedReportingOverflow(by: v)
            if overflow { return nil }
            result = next
        }
        return result
    }

    /// The sum of `values`, or nil when it overflows.
    static func sum(_ values: [Int]) -> Int? {
        var result = 0
        for v in values {
            let (next, overflow) = result.addingReportingOverflow(v)
            if overflow { return nil }
            result = next
        }
        return result
    }

    static func fileSize(_ path: String) throws -> Int {
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            return (attributes[.size] as? NSNumber)?.intValue ?? 0
        } catch {
            throw ModelError.invalidFile(path: path, detail: "cannot read the file's size (\(error.localizedDescription))")
        }
    }
}
