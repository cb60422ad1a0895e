import ArgumentParser
import CorpusDB
import Foundation
import ModelRuntime
import Trainer

struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Write a full Hugging Face model (model.safetensors, config.json, tokenizer files) with a LoRA adapter folded in: W' = W + s·B·A.",
        discussion: "The base model is --model, else the adapter's base_model_name_or_path. The adapter's lineage (snapshot hash, run id) is copied into the merged weights' metadata. docs/ADAPTERS.md says how transformers, vLLM and llama.cpp load the result.")

    @Option(name: .long, help: "The adapter folder (adapter_config.json + adapter_model.safetensors).") var adapter: String
    @Option(name: .long, help: "The folder to write (must not exist or be empty).") var out: String
    @Option(name: .long, help: "The base model: a .gguf file, a Hugging Face folder or a registered name (default: the adapter's base_model_name_or_path).") var model: String?
    @Option(name: .long, help: "f32, f16 or bf16 (default: the base folder's type; f32 for a GGUF base).") var dtype: String?
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption

    func validate() throws {
        if let dtype, !["f32", "f16", "bf16"].contains(dtype) { throw ValidationError("--dtype must be f32, f16 or bf16") }
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
