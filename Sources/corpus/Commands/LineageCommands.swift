import ArgumentParser
import CorpusDB
import Foundation

struct LineageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lineage",
        abstract: "Trace a snapshot, record or source: where it came from and what used it.",
        subcommands: [LineageSnapshot.self, LineageRecord.self, LineageSource.self, LineageAdapter.self])
}

struct LineageSnapshot: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "snapshot", abstract: "The sources (with SHA-256) and checks behind a snapshot, and what was trained on it.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption
    @Argument(help: "NAME, NAME@VERSION or id.") var snapshot: String

    func run() throws {
        try Exit.reporting {
            let store = try database.open()
            let s = try store.snapshot(snapshot)
            let shares = try store.sourceShares(of: s)
            let adapters = try store.adapterUses(snapshotIds: [s.id ?? 0])
            if output.json {
                Output.printJSON(["snapshot": SnapshotCommand.json(s),
                                  "sources": shares.map { ["id": $0.source.id ?? 0, "path": $0.source.path, "sha256": $0.source.sha256,
                                                            "records": $0.records, "train": $0.train, "eval": $0.eval] },
                                  "adapters": adapters.map { ["id": $0.adapterId, "run": $0.runId, "path": $0.path, "sha256": $0.sha256] }])
                return
            }
            print("snapshot \(s.label)  hash \(s.hash)")
            print("  \(s.records) records (\(s.train) train, \(s.eval) eval), checks: \(s.checks ?? "none"), selection \(s.spec)")
            print("  from \(shares.count) source(s):")
            Output.printTable(header: ["source", "records", "train", "eval", "sha256", "path"], rows: shares.map {
                ["\($0.source.id ?? 0)", "\($0.records)", "\($0.train)", "\($0.eval)", $0.source.sha256, $0.source.path]
            })
            print(adapters.isEmpty ? "  no adapters trained on it yet" : "  adapters: " + adapters.map { "\($0.adapterId) (\($0.path))" }.joined(separator: ", "))
        }
    }
}

struct LineageRecord: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "record", abstract: "Where a record came from, and every snapshot and adapter that used it.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption
    @Argument(help: "The record id.") var id: Int64

    func run() throws {
        try Exit.reporting {
            let store = try database.open()
            guard let record = try store.record(id: id) else {
                throw CorpusDBError(.notFound, "\(store.path): no record \(id); `corpus records` lists them")
            }
            let source = try store.source(id: record.sourceId)
            let uses = try store.snapshotUses(recordIds: [id])
            let adapters = try store.adapterUses(snapshotIds: uses.compactMap(\.snapshot.id))
            let withdrawal = try store.withdrawal(recordId: id)
            if output.json {
                Output.printJSON(["record": id, "content_hash": record.contentHash, "source": record.sourceId,
                                  "source_sha256": source?.sha256 ?? "", "source_path": source?.path ?? "", "locator": record.locator,
                                  "line": record.line, "byte_offset": record.byteOffset,
                                  "withdrawn": withdrawal.map { ["reason": $0.reason, "at": $0.requestedAt, "erased": $0.erased] as Any } ?? NSNull(),
                                  "snapshots": uses.map { ["snapshot": $0.snapshot.label, "hash": $0.snapshot.hash, "split": $0.split ?? ""] },
                                  "adapters": adapters.map { ["id": $0.adapterId, "path": $0.path, "sha256": $0.sha256, "snapshot": $0.snapshot] }])
                return
            }
            print("record \(id)  content hash \(record.contentHash)")
            print("  from source \(record.sourceId) \(source?.path ?? "?") (sha256 \(source?.sha256 ?? "?")), \(record.locator), line \(record.line), byte offset \(record.byteOffset)")
            if let withdrawal { print("  WITHDRAWN \(withdrawal.requestedAt): \(withdrawal.reason)\(withdrawal.erased ? " (text erased)" : "")") }
            print(uses.isEmpty ? "  in no snapshot" : "  in snapshots: " + uses.map { "\($0.snapshot.label) (\($0.split ?? ""))" }.joined(separator: ", "))
            if !adapters.isEmpty { print("  adapters trained on it: " + adapters.map { "\($0.adapterId) \($0.path)" }.joined(separator: ", ")) }
        }
    }
}

struct LineageSource: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "source", abstract: "A source file and every snapshot that uses its records.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption
    @Argument(help: "The source id.") var id: Int64

    func run() throws {
        try Exit.reporting {
            let store = try database.open()
            guard let source = try store.source(id: id) else {
                throw CorpusDBError(.notFound, "\(store.path): no source \(id); `corpus sources` lists them")
            }
            let uses = try store.snapshotUses(sourceId: id)
            if output.json {
                Output.printJSON(["source": SourcesCommand.json(source),
                                  "snapshots": uses.map { ["snapshot": $0.snapshot.label, "hash": $0.snapshot.hash, "records": $0.records] }])
                return
            }
            print("source \(id) \(source.path)")
            print("  sha256 \(source.sha256), \(source.rowsRead) rows: \(source.recordsAdded) records, \(source.rowsRejected) rejects; imported \(source.importedAt)")
            print(uses.isEmpty ? "  used by no snapshot" : "  used by: " + uses.map { "\($0.snapshot.label) (\($0.records) records)" }.joined(separator: ", "))
        }
    }
}

struct LineageAdapter: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adapter",
        abstract: "What an adapter was trained on: run, model, snapshot, and the sources of its records with their SHA-256s.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption
    @Argument(help: "An adapter id, its folder, or the SHA-256 of its adapter_model.safetensors.") var adapter: String
    @Flag(name: .long, help: "Also check that the adapter's weights file still has the recorded SHA-256.") var verify = false

    func run() throws {
        try Exit.reporting {
            let store = try database.open()
            guard let r = try store.run(adapter: adapter), let a = r.adapter else {
                throw CorpusDBError(.notFound, "\(store.path): no adapter '\(adapter)' (give its id, folder or SHA-256); `corpus runs list` shows them")
            }
            let snapshot = try store.snapshot(String(r.snapshotId))
            let shares = try store.sourceShares(of: snapshot)
            let evals = try store.evals(adapterSHA256: a.sha256)
            let served = try store.servedRequestCount(adapterSHA256: a.sha256)
            let method = try TrainingMethodLineage(run: r, store: store)
            var intact: Bool?
            if verify {
                let file = URL(fileURLWithPath: a.path).appendingPathComponent("adapter_model.safetensors").path
                guard let data = FileManager.default.contents(atPath: file) else {
                    throw CorpusDBError(.notFound, "\(file): cannot read the adapter's weights; was the folder moved?")
                }
                intact = ContentHash.sha256Hex(Array(data)) == a.sha256
            }
            if output.json {
                var object: [String: Any] = [
                    "adapter": ["id": a.id, "path": a.path, "sha256": a.sha256], "run": RunsCommand.json(r),
                    "snapshot": SnapshotCommand.json(snapshot),
                    "sources": shares.map { ["id": $0.source.id ?? 0, "path": $0.source.path, "sha256": $0.source.sha256,
                                             "records": $0.records, "train": $0.train, "eval": $0.eval] },
                ]
                object["evals"] = evals.map(EvalsCommand.json)
                object["served_requests"] = served
                object["training"] = method.json
                if let intact { object["intact"] = intact }
                Output.printJSON(object)
            } else {
                print("adapter \(a.id)  \(a.path)")
                print("  sha256 \(a.sha256)\(intact.map { $0 ? " (verified: the file is unchanged)" : " (CHANGED: the file no longer has this hash)" } ?? "")")
                print("  trained by run \(r.id) (\(r.status)) on model \(r.modelRef), weights sha256 \(r.modelSHA256)")
                print("  method \(method.line)")
                print("  snapshot \(snapshot.label)  hash \(snapshot.hash)  \(snapshot.records) records (\(snapshot.train) train, \(snapshot.eval) eval), checks \(snapshot.checks ?? "none")")
                print("  from \(shares.count) source(s):")
                Output.printTable(header: ["source", "records", "train", "eval", "sha256", "path"], rows: shares.map {
                    ["\($0.source.id ?? 0)", "\($0.records)", "\($0.train)", "\($0.eval)", $0.source.sha256, $0.source.path]
                })
                if evals.isEmpty {
                    print("  not evaluated yet (`corpus eval \(snapshot.label) --model \(r.modelRef) --adapter \(a.path)`)")
                } else {
                    print("  evaluated \(evals.count) time(s):")
                    Output.printTable(header: ["eval", "snapshot", "split", "items", "loss base", "loss adapter", "rougeL base", "rougeL adapter", "created"], rows: evals.map { e in
                        ["\(e.id)", e.snapshot, e.split, "\(e.items)", EvalsCommand.format(EvalsCommand.metric(e, "base", "loss")),
                         EvalsCommand.format(EvalsCommand.metric(e, "adapter", "loss")), EvalsCommand.format(EvalsCommand.metric(e, "base", "rougeL")),
                         EvalsCommand.format(EvalsCommand.metric(e, "adapter", "rougeL")), e.createdAt]
                    })
                }
                print(served == 0 ? "  no requests logged by `corpus serve --log-requests`"
                                  : "  answered \(served) request(s) logged by `corpus serve --log-requests`")
                print("  `corpus snapshot verify \(snapshot.label)` proves the records are unchanged; `corpus lineage snapshot \(snapshot.label)` lists them by source")
            }
            if intact == false {
                Output.error("error: \(a.path): adapter_model.safetensors no longer has the SHA-256 recorded when it was trained")
                throw ExitCode(Exit.verificationFailed)
            }
        }
    }
}

/// How a run trained, from its stored settings: the objective, its parameters and the
/// reference model (DPO compares with the base model, or with the adapter it started from).
struct TrainingMethodLineage {
    var method: String
    var beta: Double?
    var initAdapterSHA256: String?
    /// The run that wrote the starting adapter, when the store has it.
    var initAdapterRun: Int64?
    /// GRPO's rewards (specs) and their weights, answers per prompt, sampling temperature.
    var rewards: [String] = []
    var rewardWeights: [Double] = []
    var numGenerations: Int?
    var temperature: Double?

    init(run: TrainingRun, store: CorpusStore) throws {
        let config = (try? JSONSerialization.jsonObject(with: Data(run.config.utf8)) as? [String: Any]) ?? [:]
        method = config["method"] as? String ?? (run.status == "imported" ? "imported" : "sft")
        beta = config["beta"] as? Double
        initAdapterSHA256 = config["init_adapter_sha256"] as? String
        initAdapterRun = try initAdapterSHA256.flatMap { try store.run(adapter: $0)?.id }
        if let grpo = config["grpo"] as? [String: Any] {
            rewards = grpo["rewards"] as? [String] ?? []
            rewardWeights = grpo["reward_weights"] as? [Double] ?? rewards.map { _ in 1 }
            numGenerations = grpo["num_generations"] as? Int
            temperature = grpo["temperature"] as? Double
        }
    }

    /// Whether the objective compares with a reference model.
    var hasReference: Bool { method == "dpo" || method == "grpo" }

    /// The reference model of a preference objective, in words.
    var reference: String {
        guard let sha = initAdapterSHA256 else { return "the base model (adapter switched off)" }
        return "the starting adapter \(sha)" + (initAdapterRun.map { " (run \($0))" } ?? "") + ", frozen"
    }

    /// `dpo (beta 0.1), reference: the base model (adapter switched off)`.
    var line: String {
        var text = method
        if let beta { text += " (beta \(beta))" }
        if method == "grpo" {
            text += ", rewards " + zip(rewardWeights, rewards).map { "\($0)×\($1)" }.joined(separator: " + ")
            if let numGenerations, let temperature { text += ", \(numGenerations) answers per prompt at temperature \(temperature)" }
        }
        if hasReference { text += ", reference: " + reference }
        else if let sha = initAdapterSHA256 { text += ", started from adapter \(sha)" + (initAdapterRun.map { " (run \($0))" } ?? "") }
        return text
    }

    var json: [String: Any] {
        var object: [String: Any] = ["method": method]
        if let beta { object["beta"] = beta }
        if let initAdapterSHA256 { object["init_adapter_sha256"] = initAdapterSHA256 }
        if let initAdapterRun { object["init_adapter_run"] = initAdapterRun }
        if hasReference { object["reference"] = initAdapterSHA256 == nil ? "base" : "init_adapter" }
        if method == "grpo" {
            object["rewards"] = rewards
            object["reward_weights"] = rewardWeights
            if let numGenerations { object["num_generations"] = numGenerations }
            if let temperature { object["temperature"] = temperature }
        }
        return object
    }
}
