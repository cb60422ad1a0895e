import ArgumentParser
import CorpusDB
import CorpusSupport
import Foundation
import ModelRuntime
import Trainer

struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Write a full model with a LoRA adapter folded in (W' = W + s·B·A): a Hugging Face folder (model.safetensors, config.json, tokenizer files), or with --format gguf one GGUF file for llama.cpp and Ollama.",
        discussion: "The base model is --model, else the adapter's base_model_name_or_path. The adapter's lineage (snapshot hash, run id, its SHA-256) is copied into the merged weights' metadata. --format gguf takes a GGUF base (its metadata is copied) or a Hugging Face folder (the metadata is built from config.json, tokenizer.json and the chat template); --type picks the matrices' type (f16 by default). docs/ADAPTERS.md says how transformers, vLLM, llama.cpp and Ollama load the result.")

    @Option(name: .long, help: "The adapter folder (adapter_config.json + adapter_model.safetensors).") var adapter: String
    @Option(name: .long, help: "The folder to write (must not exist or be empty); with --format gguf, the file (replaced atomically).") var out: String
    @Option(name: .long, help: "hf (a Hugging Face folder) or gguf (one GGUF file, from a GGUF base).") var format = "hf"
    @Option(name: .long, help: "With --format gguf: the matrices' type, f32, f16, bf16, q8_0, q4_0 or q4_k (norms stay f32).") var type = "f16"
    @Option(name: .long, help: "The base model: a .gguf file, a Hugging Face folder or a registered name (default: the adapter's base_model_name_or_path).") var model: String?
    @Option(name: .long, help: "f32, f16 or bf16 (default: the base folder's type; f32 for a GGUF base).") var dtype: String?
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption

    func validate() throws {
        if let dtype, !["f32", "f16", "bf16"].contains(dtype) { throw ValidationError("--dtype must be f32, f16 or bf16") }
        guard ["hf", "gguf"].contains(format) else { throw ValidationError("--format must be hf or gguf") }
        if format == "gguf" {
            guard Self.ggufType(type) != nil else { throw ValidationError("--type must be f32, f16, bf16, q8_0, q4_0 or q4_k") }
            if dtype != nil { throw ValidationError("--dtype is for --format hf; give --type with --format gguf") }
        }
    }

    static func ggufType(_ name: String) -> GGMLType? {
        ["f32": .f32, "f16": .f16, "bf16": .bf16, "q8_0": .q8_0, "q4_0": .q4_0, "q4_k": .q4_K][name]
    }

    func run() throws {
        try Exit.reporting {
            try Exit.reportingModel {
                let adapterURL = URL(fileURLWithPath: adapter)
                let info = try LoRAAdapter.readPEFTInfo(directory: adapterURL)
                guard let reference = model ?? info.baseModel else {
                    throw ModelError.invalidFile(path: adapter, detail: "adapter_config.json names no base_model_name_or_path; pass --model")
                }
                let path = try ModelOptions.resolve(reference, database: database)
                let configuration = try ModelInspector.inspect(path: path).configuration   // headers only; the merge loads the weights
                let lora = try LoRAAdapter(readingPEFT: adapterURL, configuration: configuration)
                let type: WeightType? = dtype.map { ["f16": .float16, "bf16": .bfloat16][$0] ?? .float32 }
                var metadata = info.metadata.filter { $0.key.hasPrefix("corpus.") }
                metadata["corpus.merged_adapter"] = adapterURL.standardizedFileURL.path
                // The adapter by its hash: its file names no run (training writes only content-derived facts).
                let weights = adapterURL.appendingPathComponent(LoRAAdapter.peftWeightsFileName).path
                if let sha = try? ContentHash.sha256Hex(fileAt: weights) { metadata["corpus.adapter.sha256"] = sha }
                if format == "gguf" {
                    let ggufType = Self.ggufType(self.type) ?? .f16
                    let keys = metadata.keys.sorted().map { ($0, GGUFValue.string(metadata[$0] ?? "")) }
                    var isDirectory: ObjCBool = false
                    let fromFolder = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
                    let report = fromFolder
                        ? try LoRAMerge.writeMergedGGUF(adapter: lora, folder: path, type: ggufType, to: URL(fileURLWithPath: out), metadata: keys)
                        : try LoRAMerge.writeMergedGGUF(adapter: lora, base: path, type: ggufType, to: URL(fileURLWithPath: out), metadata: keys)
                    if output.json {
                        Output.printJSON(["file": report.file, "type": report.type.name, "tensors": report.tensors,
                                          "merged_tensors": report.mergedTensors.count, "bytes": report.bytes,
                                          "other_type": report.otherType.mapValues(\.name)])
                        return
                    }
                    print("wrote \(report.file): \(report.tensors) tensors, \(report.mergedTensors.count) merged, matrices \(report.type.name), \(report.bytes) bytes")
                    for (t, names) in Dictionary(grouping: report.otherType.keys.sorted(), by: { report.otherType[$0] ?? .f16 }).sorted(by: { $0.key.name < $1.key.name }) {
                        print("  note: \(names.count) matri\(names.count == 1 ? "x" : "ces") written as \(t.name) because \(report.type.name) blocks do not divide their rows (\(names.prefix(3).joined(separator: ", "))\(names.count > 3 ? ", …" : "")); `--json` lists them")
                    }
                    return
                }
                let report = try LoRAMerge.writeMergedModel(adapter: lora, model: path, to: URL(fileURLWithPath: out),
                                                            metadata: metadata, weightType: type)
                if output.json {
                    Output.printJSON(["directory": report.directory, "dtype": report.weightType.rawValue,
                                      "merged_tensors": report.mergedTensors.count, "copied_files": report.copiedFiles, "notes": report.notes])
                    return
                }
                print("wrote \(report.directory): \(report.mergedTensors.count) weights merged (\(report.weightType.rawValue))")
                if !report.copiedFiles.isEmpty { print("  copied \(report.copiedFiles.joined(separator: ", "))") }
                for note in report.notes { print("  note: \(note)") }
            }
        }
    }
}
