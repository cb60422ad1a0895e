import ArgumentParser
import CorpusDB
import CorpusSupport
import Foundation
import ModelRuntime

/// `corpus adapters`: adapters as files for other tools (docs/ADAPTERS.md).
struct AdaptersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adapters",
        abstract: "Adapters for other tools: export one as a GGUF LoRA for llama.cpp and Ollama.",
        subcommands: [AdaptersExportCommand.self])
}

struct AdaptersExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write an adapter as a GGUF LoRA file (llama.cpp --lora, llama-cpp-python lora_path, Ollama ADAPTER).",
        discussion: """
            ADAPTER is an adapter folder (adapter_config.json + adapter_model.safetensors), or a \
            training run's id (or an adapter's id or SHA-256) in the store. The base model (--model, \
            else the adapter's base_model_name_or_path) gives the architecture and the shapes; for \
            Llama-architecture bases the Q and K updates are put in llama.cpp's row order. The \
            adapter's SHA-256 and run go into corpus.* metadata keys. See docs/ADAPTERS.md.
            """)

    @Argument(help: "The adapter: a folder, or a run id, adapter id or SHA-256 in the store.") var adapter: String
    @Option(name: .long, help: "The format to write (gguf).") var format = "gguf"
    @Option(name: .long, help: "The file to write, e.g. med.lora.gguf (replaced atomically if it exists).") var out: String
    @Option(name: .long, help: "The base model: a .gguf file, a Hugging Face folder or a registered name (default: the adapter's base_model_name_or_path).") var model: String?
    @Option(name: .long, help: "Element type of the LoRA matrices: f32 (exact), f16 or bf16.") var type = "f32"
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption

    func validate() throws {
        guard format == "gguf" else { throw ValidationError("--format must be gguf (merged models: corpus merge)") }
        guard ["f32", "f16", "bf16"].contains(type) else { throw ValidationError("--type must be f32, f16 or bf16") }
    }

    func run() throws {
        try Exit.reporting {
            try Exit.reportingModel {
                let (folder, storedRun) = try ModelOptions.adapterFolder(adapter, database: database)
                let url = URL(fileURLWithPath: folder)
                let info = try LoRAAdapter.readPEFTInfo(directory: url)
                guard let reference = model ?? info.baseModel else {
                    throw ModelError.invalidFile(path: folder, detail: "adapter_config.json names no base_model_name_or_path; pass --model")
                }
                let path = try ModelOptions.resolve(reference, database: database)
                let configuration = try ModelInspector.inspect(path: path).configuration
                let lora = try LoRAAdapter(readingPEFT: url, configuration: configuration)
                let weights = url.appendingPathComponent(LoRAAdapter.peftWeightsFileName).path
                let sha: String
                do {
                    sha = try ContentHash.sha256Hex(fileAt: weights)
                } catch {
                    throw ModelError.invalidFile(path: weights, detail: "cannot read the file to hash it (\(error))")
                }
                var metadata: [(key: String, value: GGUFValue)] = [
                    ("general.name", .string(url.standardizedFileURL.lastPathComponent)),
                    ("corpus.adapter.sha256", .string(sha)),
                ]
                if let run = storedRun ?? info.metadata["corpus.run_id"] { metadata.append(("corpus.run_id", .string(run))) }
                for (key, value) in info.metadata.sorted(by: { $0.key < $1.key })
                where key.hasPrefix("corpus.") && key != "corpus.run_id" && !metadata.contains(where: { $0.key == key }) {
                    metadata.append((key, .string(value)))
                }
                let ggmlType: GGMLType = ["f16": .f16, "bf16": .bf16][type] ?? .f32
                let writer = try lora.gguf(for: configuration, type: ggmlType, metadata: metadata)
                let outURL = URL(fileURLWithPath: out)
                try writer.write(to: outURL)
                let size = (try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0
                if output.json {
                    Output.printJSON(["file": outURL.path, "architecture": LoRAAdapter.ggufArchitecture(configuration), "type": ggmlType.name,
                                      "tensors": writer.tensors.count, "bytes": size, "adapter_sha256": sha,
                                      "alpha": lora.configuration.alpha, "rank": lora.configuration.rank])
                    return
                }
                print("wrote \(outURL.path): \(writer.tensors.count) tensors (\(ggmlType.name), rank \(lora.configuration.rank)), \(size) bytes, for a \(LoRAAdapter.ggufArchitecture(configuration)) base")
                print("  llama.cpp: llama-cli -m \(path) --lora \(outURL.path)")
            }
        }
    }
}
