import ArgumentParser
import CorpusDB
import Foundation
import ModelRuntime
import Trainer

/// `corpus evals list|show`: the stored evaluations.
struct EvalsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evals",
        abstract: "Stored evaluations: which model and adapter on which snapshot split, their metrics and every answer.",
        subcommands: [EvalsList.self, EvalsShow.self],
        defaultSubcommand: EvalsList.self)

    /// The fields `evals list|show --json` and `eval --json` print for an evaluation:
    /// `models.base.metrics` (and `models.adapter.metrics` with an adapter) and `deltas`
    /// (adapter − base) come from the stored metrics (docs/EVAL.md).
    static func json(_ e: StoredEval) -> [String: Any] {
        var object: [String: Any] = [
            "id": e.id, "snapshot": e.snapshot, "snapshot_hash": e.snapshotHash, "split": e.split, "items": e.items,
            "model": e.modelRef, "model_sha256": e.modelSHA256, "created_at": e.createdAt, "tool_version": e.toolVersion,
            "seconds": e.seconds, "config": Output.jsonValue(e.config),
            "adapter": e.adapterPath.map { path -> Any in
                ["path": path, "sha256": e.adapterSHA256 ?? "", "run_id": e.runId.map { $0 as Any } ?? NSNull()]
            } ?? NSNull(),
        ]
        let metrics = Output.jsonValue(e.metrics) as? [String: Any] ?? [:]
        object["models"] = metrics["models"] ?? [:]
        if let deltas = metrics["deltas"] { object["deltas"] = deltas }
        return object
    }

    /// One model's result on one item, as `eval --json` and `evals show --json` print it.
    static func itemJSON(_ r: EvalItemResult) -> [String: Any] {
        ["prediction": r.prediction, "loss": r.loss, "tokens": r.tokens, "rougeL": r.scores.rougeL, "bleu4": r.scores.bleu4,
         "exact_match": r.scores.exactMatch, "length_ratio": r.scores.lengthRatio]
    }

    static func itemJSON(_ i: StoredEvalItem) -> [String: Any] {
        ["prediction": i.prediction, "loss": i.loss, "tokens": i.tokens, "rougeL": i.rougeL, "bleu4": i.bleu4,
         "exact_match": i.exactMatch, "length_ratio": i.lengthRatio]
    }

    /// A metric's figure of one model in a stored evaluation.
    static func metric(_ e: StoredEval, _ model: String, _ name: String) -> Double? {
        let models = (Output.jsonValue(e.metrics) as? [String: Any])?["models"] as? [String: Any]
        return ((models?[model] as? [String: Any])?["metrics"] as? [String: Any])?[name] as? Double
    }

    static func format(_ value: Double?) -> String {
        guard let value else { return "" }
        return value.isFinite ? String(format: "%.4f", value) : "\(value)"
    }

    static func signed(_ value: Double) -> String { String(format: "%+.4f", value) }

    /// The text summary: header and the table metric × (base, adapter, delta, interval).
    static func printSummary(_ e: StoredEval) {
        print("eval \(e.id): \(e.snapshot) \(e.split) split, \(e.items) items, \(String(format: "%.1f", e.seconds)) s")
        print("  model \(e.modelRef)  sha256 \(e.modelSHA256)")
        if let path = e.adapterPath {
            print("  adapter \(path)  sha256 \(e.adapterSHA256 ?? "")\(e.runId.map { "  (run \($0))" } ?? "")")
        }
        let deltas = (Output.jsonValue(e.metrics) as? [String: Any])?["deltas"] as? [String: Any] ?? [:]
        let hasAdapter = e.adapterPath != nil
        let header = hasAdapter ? ["metric", "base", "adapter", "delta", "95% interval (per item)"] : ["metric", "base"]
        Output.printTable(header: header, rows: Evaluator.metricNames.map { name in
            var row = [name, format(metric(e, "base", name))]
            if hasAdapter {
                let d = deltas[name] as? [String: Any]
                let ci = d?["ci95"] as? [Double] ?? []
                row += [format(metric(e, "adapter", name)), (d?["delta"] as? Double).map(signed) ?? "",
                        ci.count == 2 ? "[\(signed(ci[0])), \(signed(ci[1]))]" : ""]
            }
            return row
        })
        print("lower is better for loss and perplexity; `corpus evals show \(e.id)` lists every answer")
    }
}

struct EvalsList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List stored evaluations.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption

    func run() throws {
        try Exit.reporting {
            let evals = try database.open().evals()
            if output.json {
                Output.printJSON(evals.map(EvalsCommand.json))
                return
            }
            guard !evals.isEmpty else {
                print("no evaluations yet; `corpus eval SNAPSHOT --model M [--adapter A]` runs one")
                return
            }
            Output.printTable(header: ["id", "snapshot", "split", "items", "model", "adapter", "loss base", "loss adapter",
                                       "rougeL base", "rougeL adapter", "created"], rows: evals.map { e in
                ["\(e.id)", e.snapshot, e.split, "\(e.items)", e.modelRef, e.adapterPath ?? "-",
                 EvalsCommand.format(EvalsCommand.metric(e, "base", "loss")), EvalsCommand.format(EvalsCommand.metric(e, "adapter", "loss")),
                 EvalsCommand.format(EvalsCommand.metric(e, "base", "rougeL")), EvalsCommand.format(EvalsCommand.metric(e, "adapter", "rougeL")),
                 e.createdAt]
            })
        }
    }
}

struct EvalsShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "One evaluation: settings, metrics, and every item's answers and scores.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption
    @Argument(help: "The evaluation id.") var id: Int64

    func run() throws {
        try Exit.reporting {
            let store = try database.open()
            guard let e = try store.eval(id: id) else {
                throw CorpusDBError(.notFound, "\(store.path): no evaluation \(id); `corpus evals list` shows them")
            }
            let items = try store.evalItems(evalId: id)
            var byPosition: [Int: (recordId: Int64, models: [String: StoredEvalItem])] = [:]
            for i in items { byPosition[i.position, default: (i.recordId, [:])].models[i.model] = i }
            let positions = byPosition.keys.sorted()
            if output.json {
                var object = EvalsCommand.json(e)
                object["results"] = positions.compactMap { p -> [String: Any]? in
                    guard let entry = byPosition[p] else { return nil }
                    var row: [String: Any] = ["record_id": entry.recordId]
                    for (model, item) in entry.models { row[model] = EvalsCommand.itemJSON(item) }
                    return row
                }
                Output.printJSON(object)
                return
            }
            EvalsCommand.printSummary(e)
            print("")
            let models = e.adapterPath == nil ? ["base"] : ["base", "adapter"]
            Output.printTable(header: ["record"] + models.flatMap { ["\($0) loss", "\($0) rougeL", "\($0) answer"] }, rows: positions.compactMap { p in
                guard let entry = byPosition[p] else { return nil }
                return ["\(entry.recordId)"] + models.flatMap { m -> [String] in
                    guard let i = entry.models[m] else { return ["", "", ""] }
                    return [EvalsCommand.format(i.loss), EvalsCommand.format(i.rougeL), Output.excerpt(i.prediction, 30)]
                }
            })
        }
    }
}
