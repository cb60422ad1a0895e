import ArgumentParser
import CorpusDB
import CorpusSupport
import Foundation
import ModelRuntime

/// `corpus adapters`: adapters as files for other tools (docs/ADAPTERS.md).
struct AdaptersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adapters",
        abstract: "Adapters on record and for other tools: list, show, import one trained elsewhere, export one as a GGUF LoRA.",
        subcommands: [AdaptersListCommand.self, AdaptersShowCommand.self, AdaptersImportCommand.self, AdaptersExportCommand.self])
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
    @Flag(name: .long, help: "Also write an Ollama Modelfile beside the file (NAME.Modelfile: FROM the base, ADAPTER the file, the chat template, stop strings).") var modelfile = false
    @Option(name: .long, help: "With --modelfile: chat template chatml, llama3, mistral or alpaca (default: recognized from the model).") var template: String?
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption

    func validate() throws {
        if let template, !ChatTemplate.names.contains(template) {
            throw ValidationError("--template must be one of \(ChatTemplate.names.joined(separator: ", "))")
        }
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
                let sha = try ModelOptions.adapterSHA256(url)
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
                let outURL = URL(fileURLWithPath: out).standardizedFileURL
                try writer.write(to: outURL)
                let size = (try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0
                var modelfileURL: URL?
                if modelfile {
                    let files = try ModelFiles(path: path)
                    let tokenizer = try files.tokenizer()
                    let chat = try template.map { try ChatTemplate.named($0, tokenizer: tokenizer) }
                        ?? ChatTemplate.recognize(files.chatTemplate, tokenizer: tokenizer)
                    let name = outURL.lastPathComponent.hasSuffix(".gguf") ? String(outURL.lastPathComponent.dropLast(5)) : outURL.lastPathComponent
                    let url = outURL.deletingLastPathComponent().appendingPathComponent(name + ".Modelfile")
                    let text = OllamaModelfile.text(base: URL(fileURLWithPath: path).standardizedFileURL.path, adapter: outURL.path, template: chat,
                                                    header: "written by corpus adapters export: adapter sha256 \(sha); ollama create NAME -f \(url.lastPathComponent)")
                    try AtomicFile.write(Data(text.utf8), to: url)
                    modelfileURL = url
                }
                if output.json {
                    var object: [String: Any] = ["file": outURL.path, "architecture": LoRAAdapter.ggufArchitecture(configuration), "type": ggmlType.name,
                                                 "tensors": writer.tensors.count, "bytes": size, "adapter_sha256": sha,
                                                 "alpha": lora.configuration.alpha, "rank": lora.configuration.rank]
                    if let modelfileURL { object["modelfile"] = modelfileURL.path }
                    Output.printJSON(object)
                    return
                }
                print("wrote \(outURL.path): \(writer.tensors.count) tensors (\(ggmlType.name), rank \(lora.configuration.rank)), \(size) bytes, for a \(LoRAAdapter.ggufArchitecture(configuration)) base")
                print("  llama.cpp: llama-cli -m \(path) --lora \(outURL.path)")
                if let modelfileURL { print("wrote \(modelfileURL.path) (Ollama: ollama create NAME -f \(modelfileURL.path))") }
            }
        }
    }
}

struct AdaptersListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "Every adapter on record: trained by corpus or imported, with its run, snapshot and SHA-256.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption

    func run() throws {
        try Exit.reporting {
            let store = try database.open()
            let runs = try store.runs().filter { $0.adapter != nil }
            if output.json {
                Output.printJSON(runs.map { r -> [String: Any] in
                    ["id": r.adapter?.id ?? 0, "path": r.adapter?.path ?? "", "sha256": r.adapter?.sha256 ?? "", "run": r.id,
                     "status": r.status, "snapshot": r.snapshot, "model": r.modelRef, "trained_by": r.status == "imported" ? "outside corpus" : "corpus"]
                })
                return
            }
            guard !runs.isEmpty else { print("no adapters yet (`corpus train` writes one; `corpus adapters import` registers one trained elsewhere)"); return }
            Output.printTable(header: ["adapter", "run", "status", "snapshot", "sha256", "path"], rows: runs.map { r in
                ["\(r.adapter?.id ?? 0)", "\(r.id)", r.status, r.snapshot, String((r.adapter?.sha256 ?? "").prefix(12)), r.adapter?.path ?? ""]
            })
        }
    }
}

struct AdaptersShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "One adapter: its PEFT configuration, run, snapshot and whether its file still has the recorded SHA-256.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption
    @Argument(help: "An adapter id, its folder, or the SHA-256 of its adapter_model.safetensors.") var adapter: String

    func run() throws {
        try Exit.reporting {
            let store = try database.open()
            guard let r = try store.run(adapter: adapter), let a = r.adapter else {
                throw CorpusDBError(.notFound, "\(store.path): no adapter '\(adapter)' (give its id, folder or SHA-256); `corpus adapters list` shows them")
            }
            let url = URL(fileURLWithPath: a.path)
            let config = try? LoRAAdapter.readPEFTConfiguration(url.appendingPathComponent("adapter_config.json"))
            let current = try? ContentHash.sha256Hex(fileAt: url.appendingPathComponent(LoRAAdapter.peftWeightsFileName).path)
            let summary = r.summary.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } ?? [:]
            if output.json {
                var object: [String: Any] = ["id": a.id, "path": a.path, "sha256": a.sha256, "run": RunsCommand.json(r),
                                             "intact": current.map { $0 == a.sha256 } ?? NSNull()]
                if let config {
                    object["peft"] = ["r": config.rank, "lora_alpha": config.alpha, "use_rslora": config.useRSLoRA,
                                      "target_modules": config.targets.map(\.moduleName)] as [String: Any]
                }
                if let note = summary["note"] { object["note"] = note }
                Output.printJSON(object)
                return
            }
            print("adapter \(a.id)  \(a.path)")
            print("  sha256 \(a.sha256)" + (current == nil ? " (the file cannot be read now)" : current == a.sha256 ? " (the file is unchanged)" : " (CHANGED since it was recorded)"))
            if let config {
                print("  LoRA r=\(config.rank) alpha=\(config.alpha)\(config.useRSLoRA ? " rsLoRA" : "") on \(config.targets.map(\.moduleName).joined(separator: ", "))")
            }
            print(r.status == "imported" ? "  trained outside corpus, imported as run \(r.id)" + ((summary["note"] as? String).map { ": \($0)" } ?? "")
                                         : "  trained by run \(r.id) (\(r.status))")
            print("  on snapshot \(r.snapshot) (hash \(r.snapshotHash)), base model \(r.modelRef) (weights \(r.modelSHA256.prefix(16))…)")
            print("  `corpus lineage adapter \(a.id)` traces it to the source files")
        }
    }
}

struct AdaptersImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Register an adapter trained outside corpus (LLaMA-Factory, PEFT, unsloth) on an exported snapshot, so lineage, eval, serve and forget treat it like one of ours.",
        discussion: """
            The adapter folder must hold PEFT's adapter_config.json and adapter_model.safetensors, and \
            fit the base model (--model): every tensor's name and shape is checked. With --export, the \
            folder `corpus snapshot export` wrote and the trainer read is checked too: its manifest must \
            name this snapshot and hash, and its files must still have the SHA-256s the manifest \
            records. Nothing is registered when a check fails. The adapter is recorded where it is \
            (its folder path); do not move it afterwards.
            """)
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption
    @Argument(help: "The adapter folder (adapter_config.json + adapter_model.safetensors).") var folder: String
    @Option(name: .long, help: "The snapshot it was trained on: NAME@VERSION (or NAME for the latest, or an id).") var snapshot: String
    @Option(name: .long, help: "The base model it was trained on: a .gguf file, a Hugging Face folder or a registered name.") var model: String
    @Option(name: .long, help: "The export folder the trainer read (checked against the snapshot; recommended).") var export: String?
    @Option(name: .long, help: "A note kept with the run, e.g. the trainer and where it ran.") var note: String?

    func run() throws {
        try Exit.reporting {
            try Exit.reportingModel {
                let store = try database.open()
                let snap = try store.snapshot(snapshot)
                let url = URL(fileURLWithPath: folder).standardizedFileURL
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue else {
                    throw ModelError.invalidFile(path: folder, detail: "not a folder; give the adapter folder (adapter_config.json + adapter_model.safetensors)")
                }
                let path = try ModelOptions.resolve(model, database: database)
                let configuration = try ModelInspector.inspect(path: path).configuration
                let lora = try LoRAAdapter(readingPEFT: url, configuration: configuration)   // names, shapes, rank, targets
                let sha = try ModelOptions.adapterSHA256(url)
                var checkedExport: [String: Any]?
                if let export { checkedExport = try Self.checkExport(export, snapshot: snap) }
                let fingerprint = try ModelIdentity.fingerprint(of: path, reference: model, store: store)
                let info = try LoRAAdapter.readPEFTInfo(directory: url)
                var config: [String: Any] = [
                    "trained_outside_corpus": true,
                    "peft": ["r": lora.configuration.rank, "lora_alpha": Double(lora.configuration.alpha), "use_rslora": lora.configuration.useRSLoRA,
                             "target_modules": lora.configuration.targets.map(\.moduleName)] as [String: Any],
                ]
                if let base = info.baseModel { config["base_model_name_or_path"] = base }
                var summary: [String: Any] = ["imported": true]
                if let note { summary["note"] = note }
                if let checkedExport { summary["export"] = checkedExport }
                let ids = try store.importAdapter(snapshot: snap, modelRef: model, modelSHA256: fingerprint,
                                                  config: try Self.json(config), summary: try Self.json(summary),
                                                  adapter: (url.path, sha), arguments: CommandLine.arguments)
                if output.json {
                    Output.printJSON(["run": ids.run, "adapter": ids.adapter, "path": url.path, "sha256": sha, "snapshot": snap.label,
                                      "export_checked": checkedExport != nil])
                    return
                }
                print("imported adapter \(ids.adapter) as run \(ids.run): \(url.path)")
                print("  sha256 \(sha); LoRA r=\(lora.configuration.rank) on \(lora.configuration.targets.map(\.moduleName).joined(separator: ", "))")
                print("  snapshot \(snap.label) (hash \(snap.hash))" + (checkedExport != nil ? "; the export folder matches it" : "; no export folder checked (--export)"))
                print("  next: corpus eval \(snap.label) --model \(model) --adapter \(url.path); corpus lineage adapter \(ids.adapter)")
            }
        }
    }

    /// Checks an export folder against the snapshot: manifest.json names it with its hash, and
    /// every file the manifest lists still has its SHA-256. Returns what was checked.
    static func checkExport(_ folder: String, snapshot: Snapshot) throws -> [String: Any] {
        let dir = URL(fileURLWithPath: folder)
        let manifestURL = dir.appendingPathComponent("manifest.json")
        guard let data = FileManager.default.contents(atPath: manifestURL.path),
              let manifest = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw CorpusDBError(.invalid, "\(manifestURL.path): no readable manifest.json; give --export the folder `corpus snapshot export` wrote")
        }
        guard manifest["hash"] as? String == snapshot.hash, manifest["snapshot"] as? String == snapshot.label else {
            throw CorpusDBError(.invalid, "\(manifestURL.path): the export is of \(manifest["snapshot"] as? String ?? "?") (hash \((manifest["hash"] as? String ?? "?").prefix(12))…), not of \(snapshot.label) (hash \(snapshot.hash.prefix(12))…); nothing was registered")
        }
        let files = manifest["files"] as? [String: [String: Any]] ?? [:]
        for (name, entry) in files.sorted(by: { $0.key < $1.key }) {
            let path = dir.appendingPathComponent(name).path
            let current = try? ContentHash.sha256Hex(fileAt: path)
            guard let expected = entry["sha256"] as? String, current == expected else {
                throw CorpusDBError(.invalid, "\(path): \(current == nil ? "missing" : "changed since the export (sha256 \(current?.prefix(12) ?? "")…, the manifest records \((entry["sha256"] as? String ?? "?").prefix(12))…)"); the adapter may not have been trained on this snapshot; nothing was registered")
            }
        }
        return ["folder": dir.standardizedFileURL.path, "files": files.mapValues { $0["sha256"] ?? "" }, "format": manifest["format"] ?? ""]
    }

    static func json(_ object: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }
}
