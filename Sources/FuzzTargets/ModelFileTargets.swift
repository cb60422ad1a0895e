import Foundation
import ModelRuntime

/// Model and adapter files: GGUF, safetensors and PEFT's adapter_config.json.
enum ModelFileTargets {
    /// At most this many tensors of one input are read (dequantized) per run.
    static let tensorsRead = 16

    static let gguf = FuzzTarget(name: "gguf", summary: "GGUFFile (header, metadata values and arrays, tensor table, alignment), tensor reads and dequantization, the loader and model built from it, the tokenizer from GGUF metadata") { bytes in
        guard let file = try? GGUFFile(data: Data(bytes), path: "fuzz.gguf") else { return }
        FuzzCheck.require(file.dataOffset >= 0, "negative data offset")
        for info in file.tensors.prefix(tensorsRead) {
            if let stored = try? file.storedTensor(info) {
                FuzzCheck.require(stored.shape == info.shape, "tensor \(info.name): stored shape \(stored.shape), table \(info.shape)")
            }
            if let tensor = try? file.tensorData(info) {
                FuzzCheck.require(tensor.count == info.elementCount, "tensor \(info.name): \(tensor.count) values for \(info.elementCount) elements")
            }
        }
        _ = try? file.llamaConfiguration()
        // The whole loader (names, Q/K row order, configuration checks) and the model built from
        // it; both are bounded by the input's size.
        if let loaded = try? file.loadModel() { _ = try? loaded.model() }
        if let tokenizer = try? BPETokenizer.fromGGUF(file.metadata) {
            _ = tokenizer.decode(tokenizer.encode("fuzz <|im_end|> 测试 123"))
        }
    }

    static let safetensors = FuzzTarget(name: "safetensors", summary: "SafetensorsFile: the 8-byte length, the JSON header (dtype, shape, data_offsets, __metadata__) and tensor reads") { bytes in
        guard let file = try? SafetensorsFile(data: Data(bytes), path: "fuzz.safetensors") else { return }
        for name in file.entries.keys.sorted().prefix(tensorsRead) {
            _ = try? file.storedTensor(named: name)
            if let tensor = try? file.tensor(named: name), let entry = file.entries[name] {
                FuzzCheck.require(tensor.shape == entry.shape, "tensor \(name): shape \(tensor.shape), header \(entry.shape)")
            }
        }
    }

    static let peftConfig = FuzzTarget(name: "peft-config", summary: "LoRAAdapter.readPEFTConfiguration: PEFT's adapter_config.json (rank, alpha, targets, refused options)") { bytes in
        guard let config = try? LoRAAdapter.readPEFTConfiguration(data: Data(bytes), path: "adapter_config.json") else { return }
        FuzzCheck.require(config.rank > 0 && !config.targets.isEmpty, "accepted rank \(config.rank) with \(config.targets.count) targets")
        FuzzCheck.require(config.alpha.isFinite && config.dropout.isFinite, "accepted alpha \(config.alpha), dropout \(config.dropout)")
    }
}
