import ArgumentParser
import CorpusDB
import Foundation
import ModelRuntime
import Trainer

/// `corpus models add|list|show`: the registry of base models, each with the fingerprint that
/// training runs and adapters will record.
struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "Register base models (fingerprint, architecture, parameter count) and list them.",
        subcommands: [Add.self, List.self, Show.self, Export.self])
}

extension ModelsCommand {
    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Register a model: a .gguf file or a Hugging Face folder (config.json + safetensors).",
            discussion: """
                Reads the configuration and tensor table (no weights are loaded), hashes the weight \
                files and records fingerprint, architecture and parameter count. Adding a name again \
                with the same weights reports that it is already registered; with other weights it is \
                an error (exit 3). The fingerprint is defined in docs/STORE.md.
                """)

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: JSONOption

        @Argument(help: "A .gguf file, or a folder with config.json and model.safetensors (or its shards).")
        var path: String

        @Option(name: .long, help: "The name to register it under (default: the file name without .gguf, or the folder name).")
        var name: String?

        func validate() throws {
            if let name, let problem = RegisteredModel.problem(withName: name) {
                throw ValidationError("--name \(name): \(problem)")
            }
        }

        func run() throws {
            try Exit.reporting {
                try Exit.reportingModel {
                    let store = try database.open() // before hashing: a missing store fails at once
                    let summary = try ModelInspector.inspect(path: path)
                    let name = self.name ?? Self.defaultName(summary.path)
                    if let problem = RegisteredModel.problem(withName: name) {
                        throw ValidationError("\(summary.path): the default name \"\(name)\" cannot be used (\(problem)); pass --name NAME")
                    }
                    let hashes = try ModelIdentity.weightHashes(summary)
                    let model = RegisteredModel(
                        name: name, path: summary.path, format: summary.format,
                        fingerprint: ModelFingerprint.combine(hashes), architecture: summary.architecture,
                        parameters: Int64(summary.parameters), config: Self.configJSON(summary, hashes: hashes),
                        addedAt: Timestamp.now(), toolVersion: CorpusVersion.string)
                    let registration = try store.register(model)
                    let row = registration.model, added = registration.added
                    try store.logAudit(command: "models add", arguments: CommandLine.arguments, toolVersion: CorpusVersion.string,
                                       outcome: ["model": row.id ?? 0, "name": row.name, "fingerprint": row.fingerprint, "added": added])
                    let twins = try store.models(fingerprint: row.fingerprint).filter { $0.id != row.id }
                    if added, !twins.isEmpty {
                        Output.error("note: the same weights are also registered as " + twins.map { "model \($0.id ?? 0) \"\($0.name)\"" }.joined(separator: ", "))
                    }
                    if output.json {
                        var json = Show.json(row)
                        json["already_registered"] = !added
                        Output.printJSON(json)
                    } else if added {
                        print("registered model \(row.id ?? 0) \"\(row.name)\": \(row.architecture), \(Show.parameterText(row.parameters)) parameters, \(row.format)")
                        print("  path        \(row.path)")
                        print("  fingerprint \(row.fingerprint)")
                    } else {
                        print("\(summary.path): already registered as model \(row.id ?? 0) \"\(row.name)\" (same fingerprint \(row.fingerprint.prefix(12))…); nothing changed")
                    }
                }
            }
        }

        /// The file name without `.gguf`, or the folder name.
        static func defaultName(_ path: String) -> String {
            let last = URL(fileURLWithPath: path).lastPathComponent
            return last.lowercased().hasSuffix(".gguf") ? String(last.dropLast(5)) : last
        }

        /// The `config` column: sizes with config.json's names, tensor counts per type and the
        /// weight files with their SHA-256 (docs/STORE.md).
        static func configJSON(_ s: ModelSummary, hashes: [(name: String, sha256: String)]) -> String {
            let c = s.configuration
            let object: [String: Any] = [
                "model_type": c.modelType, "hidden_size": c.hiddenSize, "intermediate_size": c.intermediateSize,
                "num_hidden_layers": c.numHiddenLayers, "num_attention_heads": c.numAttentionHeads,
                "num_key_value_heads": c.numKeyValueHeads, "head_dim": c.headDim, "vocab_size": c.vocabSize,
                "max_position_embeddings": c.maxPositionEmbeddings, "tie_word_embeddings": c.tieWordEmbeddings,
                "rope_theta": Double(c.ropeTheta), "tensor_count": s.tensorCount, "tensor_types": s.tensorTypes,
                "weight_files": hashes.map { ["name": $0.name, "sha256": $0.sha256] },
            ]
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
            return String(decoding: data, as: UTF8.self)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "List registered models with their architecture, size and fingerprint.")

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: JSONOption

        func run() throws {
            try Exit.reporting {
                let models = try database.open().allModels()
                if output.json {
                    Output.printJSON(models.map(Show.json))
                } else if models.isEmpty {
                    print("no models yet; register one with `corpus models add PATH`")
                } else {
                    Output.printTable(
                        header: ["id", "name", "architecture", "parameters", "format", "fingerprint", "path"],
                        rows: models.map { m in
                            ["\(m.id ?? 0)", m.name, m.architecture, Show.parameterText(m.parameters), m.format,
                             String(m.fingerprint.prefix(12)), m.path]
                        })
                }
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show", abstract: "Show one registered model: path, fingerprint, configuration, tensor types.")

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: JSONOption

        @Argument(help: "The model's name or id (see `corpus models list`).")
        var model: String

        func run() throws {
            try Exit.reporting {
                let store = try database.open()
                guard let m = try store.model(reference: model) else {
                    throw CorpusDBError(.notFound, "no model \"\(model)\" is registered in \(store.path); see `corpus models list`")
                }
                if output.json {
                    Output.printJSON(Self.json(m))
                    return
                }
                print("model \(m.id ?? 0) \"\(m.name)\"")
                print("path         \(m.path)")
                print("format       \(m.format)")
                print("fingerprint  \(m.fingerprint)")
                print("architecture \(m.architecture)")
                print("parameters   \(m.parameters) (\(Self.parameterText(m.parameters)))")
                print("added        \(m.addedAt) by corpus \(m.toolVersion)")
                guard let config = Output.jsonValue(m.config) as? [String: Any] else { return }
                for key in config.keys.sorted() where key != "tensor_types" && key != "weight_files" {
                    print("  \(key) = \(JSONText.compact(config[key] ?? NSNull()))")
                }
                if let types = config["tensor_types"] as? [String: Int] {
                    print("  tensor_types = " + types.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
                }
                for file in config["weight_files"] as? [[String: String]] ?? [] {
                    print("  weight file \(file["name"] ?? "?")  sha256 \(file["sha256"] ?? "?")")
                }
            }
        }

        static func json(_ m: RegisteredModel) -> [String: Any] {
            ["id": m.id ?? 0, "name": m.name, "path": m.path, "format": m.format, "fingerprint": m.fingerprint,
             "architecture": m.architecture, "parameters": m.parameters, "config": Output.jsonValue(m.config),
             "added_at": m.addedAt, "tool_version": m.toolVersion]
        }

        /// 134515008 → "134.5M".
        static func parameterText(_ n: Int64) -> String {
            let v = Double(n)
            if v >= 1e9 { return String(format: "%.1fB", v / 1e9) }
            if v >= 1e6 { return String(format: "%.1fM", v / 1e6) }
            if v >= 1e3 { return String(format: "%.1fK", v / 1e3) }
            return "\(n)"
        }
    }

    /// `corpus models export M --format hf --out DIR`: the base model alone as a complete Hugging
    /// Face folder (from a GGUF file: weights dequantized to fp32 or --dtype, config.json and the
    /// tokenizer files written from its metadata), for trainers that start from a folder.
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export",
            abstract: "Write a base model as a complete Hugging Face folder (config.json, model.safetensors, tokenizer.json, tokenizer_config.json with the chat template, generation_config.json), e.g. a GGUF file for LLaMA-Factory or transformers.")
        @Argument(help: "The model: a .gguf file, a Hugging Face folder or a registered name.") var model: String
        @Option(name: .long, help: "The format to write (hf).") var format = "hf"
        @Option(name: .long, help: "The folder to write (must not exist or be empty).") var out: String
        @Option(name: .long, help: "f32, f16 or bf16 (default: the base folder's type; f32 for a GGUF file).") var dtype: String?
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: JSONOption

        func validate() throws {
            guard format == "hf" else { throw ValidationError("--format must be hf (GGUF: corpus merge --format gguf, or the GGUF file itself)") }
            if let dtype, !["f32", "f16", "bf16"].contains(dtype) { throw ValidationError("--dtype must be f32, f16 or bf16") }
        }

        func run() throws {
            try Exit.reporting {
                try Exit.reportingModel {
                    let path = try ModelOptions.resolve(model, database: database)
                    let configuration = try ModelInspector.inspect(path: path).configuration
                    // No adapter: an empty one leaves every weight as it is.
                    let none = LoRAAdapter(configuration: LoRAConfiguration(rank: 1, alpha: 1, targets: []),
                                           layers: Array(repeating: [:], count: configuration.numHiddenLayers))
                    let type: WeightType? = dtype.map { ["f16": .float16, "bf16": .bfloat16][$0] ?? .float32 }
                    let report = try LoRAMerge.writeMergedModel(adapter: none, model: path, to: URL(fileURLWithPath: out),
                                                                metadata: ["corpus.exported_from": URL(fileURLWithPath: path).lastPathComponent],
                                                                weightType: type)
                    let files = ((try? FileManager.default.contentsOfDirectory(atPath: report.directory)) ?? []).sorted()
                    if output.json {
                        Output.printJSON(["directory": report.directory, "dtype": report.weightType.rawValue, "files": files, "notes": report.notes])
                        return
                    }
                    print("wrote \(report.directory) (\(report.weightType.rawValue)): \(files.joined(separator: ", "))")
                    for note in report.notes { print("  note: \(note)") }
                }
            }
        }
    }
}
