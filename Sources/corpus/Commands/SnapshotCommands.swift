import ArgumentParser
import CorpusDB
import CorpusSupport
import Foundation
import ModelRuntime
import Trainer

struct SnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Freeze, list, compare, verify and export dataset versions (docs/SNAPSHOTS.md).",
        subcommands: [SnapshotCreate.self, SnapshotList.self, SnapshotShow.self, SnapshotDiffCommand.self,
                      SnapshotVerify.self, SnapshotExport.self])

    static func json(_ s: Snapshot) -> [String: Any] {
        ["id": s.id ?? 0, "name": s.name, "version": s.version, "label": s.label, "hash": s.hash,
         "records": s.records, "train": s.train, "eval": s.eval, "created_at": s.createdAt,
         "parent": s.parentId.map { $0 as Any } ?? NSNull(), "checks": s.checks.map { $0 as Any } ?? NSNull(),
         "eval_ratio": s.evalRatio, "seed": s.seed, "spec": Output.jsonValue(s.spec),
         "tag_counts": Output.jsonValue(s.tagCounts), "excluded": Output.jsonValue(s.excluded),
         "note": s.note, "tool_version": s.toolVersion]
    }
}

struct SnapshotCreate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Freeze the records that pass the checks into the next version of NAME, with a deterministic train/eval split.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption
    @Argument(help: "The snapshot name (versions are numbered: NAME@1, NAME@2, ...).") var name: String
    @Option(name: .long, help: "Which quality verdicts select records: default, none, or a check configuration hash.") var checks = "default"
    @Option(name: .long, help: "Only records with this tag (key=value); repeatable, all must match.") var tag: [String] = []
    @Option(name: .long, help: "Only records from this source id; repeatable.") var source: [Int64] = []
    @Option(name: .long, help: "Share of records put in the eval split.") var evalRatio = 0.05
    @Option(name: .long, help: "Seed of the split (the split depends only on each record's content and this seed).") var seed: Int64 = 0
    @Option(name: .long, help: "At most N records per tag set (records with identical tags), chosen by content hash.") var maxPerTag: Int?
    @Option(name: .long, help: "A note kept with the snapshot.") var note = ""

    func validate() throws {
        for t in tag where TagFilter(parsing: t) == nil { throw ValidationError("--tag \(t) must be key=value") }
    }

    func run() throws {
        try Exit.reporting {
            var spec = SnapshotSpec()
            spec.checks = checks
            spec.tags = tag.compactMap(TagFilter.init(parsing:))
            spec.sources = source
            spec.evalRatio = evalRatio
            spec.seed = seed
            spec.maxPerTag = maxPerTag
            spec.note = note
            let snapshot = try database.open().createSnapshot(name: name, spec: spec, arguments: CommandLine.arguments)
            if output.json {
                Output.printJSON(SnapshotCommand.json(snapshot))
            } else {
                print("created snapshot \(snapshot.label): \(snapshot.records) records (\(snapshot.train) train, \(snapshot.eval) eval)")
                print("hash \(snapshot.hash)")
                let excluded = Output.jsonValue(snapshot.excluded) as? [String: Int] ?? [:]
                if !excluded.isEmpty {
                    print("left out: " + excluded.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key.replacingOccurrences(of: "_", with: " "))" }.joined(separator: ", "))
                }
            }
        }
    }
}

struct SnapshotList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List snapshots.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption

    func run() throws {
        try Exit.reporting {
            let snapshots = try database.open().snapshots()
            if output.json {
                Output.printJSON(snapshots.map(SnapshotCommand.json))
            } else if snapshots.isEmpty {
                print("no snapshots yet; create one with `corpus snapshot create NAME`")
            } else {
                Output.printTable(header: ["snapshot", "records", "train", "eval", "hash", "created", "note"], rows: snapshots.map { s in
                    [s.label, "\(s.records)", "\(s.train)", "\(s.eval)", String(s.hash.prefix(12)), s.createdAt, s.note]
                })
            }
        }
    }
}

struct SnapshotShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show a snapshot: hash, counts, selection, counts per tag.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption
    @Argument(help: "NAME (latest version), NAME@VERSION or id.") var snapshot: String

    func run() throws {
        try Exit.reporting {
            let s = try database.open().snapshot(snapshot)
            if output.json { Output.printJSON(SnapshotCommand.json(s)); return }
            print("snapshot  \(s.label)\(s.parentId != nil ? " (previous version: \(s.name)@\(s.version - 1))" : "")")
            print("hash      \(s.hash)")
            print("records   \(s.records) (\(s.train) train, \(s.eval) eval; eval ratio \(s.evalRatio), seed \(s.seed))")
            print("checks    \(s.checks ?? "none")")
            print("selection \(s.spec)")
            print("left out  \(s.excluded)")
            print("created   \(s.createdAt) by corpus \(s.toolVersion)")
            if !s.note.isEmpty { print("note      \(s.note)") }
            let counts = Output.jsonValue(s.tagCounts) as? [String: [String: Int]] ?? [:]
            if !counts.isEmpty {
                print("")
                Output.printTable(header: ["tag", "train", "eval"], rows: counts.keys.sorted().map { k in
                    [k, "\(counts[k]?["train"] ?? 0)", "\(counts[k]?["eval"] ?? 0)"]
                })
            }
        }
    }
}

struct SnapshotDiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "diff", abstract: "Records added and removed between two snapshots, and tag count changes.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption
    @Argument(help: "The older snapshot.") var a: String
    @Argument(help: "The newer snapshot.") var b: String

    func run() throws {
        try Exit.reporting {
            let store = try database.open()
            let first = try store.snapshot(a), second = try store.snapshot(b)
            let diff = try store.diff(first, second)
            func member(_ m: SnapshotMember) -> [String: Any] { ["record": m.recordId, "content_hash": m.contentHash, "split": m.split] }
            if output.json {
                Output.printJSON(["a": first.label, "b": second.label, "added": diff.added.map(member), "removed": diff.removed.map(member),
                                  "tags": diff.tagChanges.map { ["tag": $0.tag, "a": $0.before, "b": $0.after] }])
                return
            }
            print("\(first.label) → \(second.label): \(diff.added.count) added, \(diff.removed.count) removed")
            for m in diff.added { print("+ record \(m.recordId) (\(m.split)) \(m.contentHash.prefix(12))") }
            for m in diff.removed { print("- record \(m.recordId) (\(m.split)) \(m.contentHash.prefix(12))") }
            if !diff.tagChanges.isEmpty {
                Output.printTable(header: ["tag", first.label, second.label], rows: diff.tagChanges.map { [$0.tag, "\($0.before)", "\($0.after)"] })
            }
        }
    }
}

struct SnapshotVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Recompute every member's hash from the stored text and the snapshot's hash; exit 6 when anything changed.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption
    @Argument(help: "NAME, NAME@VERSION or id; all snapshots when omitted.") var snapshot: String?

    func run() throws {
        let results = try Exit.reporting { () -> [SnapshotVerification] in
            let store = try database.open()
            let targets = try snapshot.map { [try store.snapshot($0)] } ?? store.snapshots()
            return try targets.map { try store.verify($0) }
        }
        if output.json {
            Output.printJSON(results.map { r in
                ["snapshot": r.snapshot.label, "hash": r.snapshot.hash, "recomputed_hash": r.recomputedHash, "intact": r.intact,
                 "withdrawn": r.withdrawn,
                 "mismatches": r.mismatches.map { ["position": $0.position, "record": $0.recordId, "expected": $0.expected, "found": $0.found] }]
            })
        } else {
            for r in results {
                if r.intact {
                    print("\(r.snapshot.label): intact (\(r.snapshot.records) records, hash \(r.snapshot.hash))")
                } else {
                    print("\(r.snapshot.label): CHANGED")
                    if r.recomputedHash != r.snapshot.hash { print("  member list hash \(r.recomputedHash) differs from the recorded \(r.snapshot.hash)") }
                    for m in r.mismatches {
                        print("  record \(m.recordId) (position \(m.position)): its text now hashes to \(m.found), the snapshot recorded \(m.expected)")
                    }
                }
                if !r.withdrawn.isEmpty {
                    print("  \(r.withdrawn.count) member(s) withdrawn since (removal requests, not corruption): records \(r.withdrawn.map(String.init).joined(separator: ", "))")
                }
            }
        }
        if results.contains(where: { !$0.intact }) {
            Output.error("error: \(results.filter { !$0.intact }.map(\.snapshot.label).joined(separator: ", ")) changed since it was made; see above")
            throw ExitCode(Exit.verificationFailed)
        }
    }
}

struct SnapshotExport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a snapshot as JSONL for LLaMA-Factory, axolotl or unsloth, with manifest.json and dataset_info.json.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption
    @Argument(help: "NAME, NAME@VERSION or id.") var snapshot: String
    @Option(name: .long, help: "alpaca, sharegpt or messages.") var format: String
    @Option(name: .long, help: "The folder to write into (created if missing; only train.jsonl, eval.jsonl, manifest.json and dataset_info.json are written).") var out: String
    @Option(name: .long, help: "train, eval or all.") var split = "all"
    @Flag(name: .long, help: "Also write a ready LLaMA-Factory training YAML (NAME_VERSION_lora_sft.yaml) with corpus's training settings.") var llamafactory = false
    @Option(name: .long, help: "With --llamafactory: the base model as a Hugging Face folder (or a registered name of one); it gives model_name_or_path and the template.") var model: String?
    @Option(name: .long, help: "With --llamafactory: the model's chat template when it has none or to override it (chatml, llama3, mistral, alpaca).") var template: String?
    @Option(name: .long, help: "With --llamafactory: take the training settings of this corpus run (rank, alpha, targets, learning rate, epochs, max length) instead of the defaults.") var likeRun: Int64?

    func validate() throws {
        if ExportFormat(rawValue: format) == nil { throw ValidationError("--format must be alpaca, sharegpt or messages") }
        if !["train", "eval", "all"].contains(split) { throw ValidationError("--split must be train, eval or all") }
        if !llamafactory && (model != nil || likeRun != nil || template != nil) { throw ValidationError("--model, --template and --like-run go with --llamafactory") }
        if let template, !ChatTemplate.names.contains(template) { throw ValidationError("--template must be one of \(ChatTemplate.names.joined(separator: ", "))") }
        if llamafactory && split == "eval" { throw ValidationError("--llamafactory trains on the train split: export --split train or all") }
    }

    func run() throws {
        try Exit.reporting {
            let store = try database.open()
            let s = try store.snapshot(snapshot)
            // Where the snapshot's checks found PII, the export carries the redacted text.
            let redaction = try PIIRedaction(store: store, snapshot: s)
            // The YAML is written with the data files, all appearing together.
            let directory = URL(fileURLWithPath: out).standardizedFileURL
            let yaml = llamafactory ? try llamaFactoryYAML(store: store, snapshot: s, directory: directory.path) : nil
            let report = try store.export(s, format: ExportFormat(rawValue: format) ?? .messages, split: split, to: directory.path,
                                          redact: PIIRedaction.redact, redactRecordIds: redaction.recordIds,
                                          extraFiles: yaml.map { [$0] } ?? [])
            let yamlPath = yaml.map { directory.appendingPathComponent($0.name).path }
            try store.logAudit(command: "snapshot export", arguments: CommandLine.arguments, toolVersion: CorpusVersion.string,
                               outcome: ["snapshot": s.label, "directory": report.directory, "files": report.files.mapValues { $0.sha256 }])
            if output.json {
                var object: [String: Any] = ["snapshot": s.label, "hash": s.hash, "directory": report.directory, "skipped": report.skipped,
                                             "files": report.files.mapValues { ["lines": $0.lines, "sha256": $0.sha256] }]
                if let yamlPath { object["llamafactory_yaml"] = yamlPath }
                Output.printJSON(object)
            } else {
                for (name, file) in report.files.sorted(by: { $0.key < $1.key }) {
                    print("wrote \(report.directory)/\(name): \(file.lines) records, sha256 \(file.sha256)")
                }
                print("wrote manifest.json and dataset_info.json (LLaMA-Factory: dataset names \(s.name)_\(s.version)_train / _eval)")
                if let yamlPath { print("wrote \(yamlPath): llamafactory-cli train \(yamlPath)") }
                if !report.skipped.isEmpty {
                    print("left out: " + report.skipped.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key.replacingOccurrences(of: "_", with: " "))" }.joined(separator: ", "))
                }
            }
        }
    }

    /// The LLaMA-Factory YAML for the export folder `directory`: its file name and contents.
    func llamaFactoryYAML(store: CorpusStore, snapshot s: Snapshot, directory: String) throws -> (name: String, data: Data) {
        var settings = TrainingSettings()
        var source = "corpus train's defaults"
        var modelRef = model
        if let likeRun {
            guard let run = try store.run(id: likeRun) else {
                throw CorpusDBError(.notFound, "\(store.path): no run \(likeRun); `corpus runs list` shows them")
            }
            do {
                settings = try JSONDecoder().decode(TrainingSettings.self, from: Data(run.config.utf8))
            } catch {
                throw CorpusDBError(.invalid, "run \(likeRun) was not trained by corpus (\(run.status)); its settings cannot be reused: give --llamafactory without --like-run")
            }
            source = "those of corpus run \(likeRun)"
            if modelRef == nil { modelRef = run.modelRef }
        }
        var folder: String?
        // Without a model, --template's name is LLaMA-Factory's too (chatml, llama3, mistral, alpaca).
        var template = self.template
        if let modelRef {
            do {
                let path = try ModelOptions.resolve(modelRef, database: database)
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                    folder = URL(fileURLWithPath: path).standardizedFileURL.path
                } else if model != nil {
                    throw CorpusDBError(.invalid, "\(path): LLaMA-Factory trains from a Hugging Face folder, not a GGUF file: `corpus models export \(modelRef) --format hf --out DIR`, then --model DIR")
                }
                let files = try ModelFiles(path: path)
                let tokenizer = try files.tokenizer()
                let chat = try self.template.map { try ChatTemplate.named($0, tokenizer: tokenizer) }
                    ?? ChatTemplate.recognize(files.chatTemplate, tokenizer: tokenizer)
                template = LlamaFactoryConfig.template(chat, modelType: try ModelInspector.inspect(path: path).configuration.modelType)
            } catch let error as ModelError {
                throw CorpusDBError(.invalid, "--model \(modelRef): \(error.description)")
            }
        }
        let splits = split == "all" ? ["train", "eval"] : [split]
        let text = try LlamaFactoryConfig.yaml(snapshot: s, exportDirectory: directory, splits: splits, settings: settings, settingsSource: source,
                                               model: folder, template: template, modelRef: folder ?? modelRef)
        return ("\(s.name)_\(s.version)_lora_sft.yaml", Data(text.utf8))
    }
}
