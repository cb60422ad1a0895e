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
        if let preference = metrics["preference"] { object["preference"] = preference }
        return object
    }

    /// One model's result on one item, as `eval --json` and `evals show --json` print it.
    static func itemJSON(_ r: EvalItemResult) -> [String: Any] {
        var object: [String: Any] = ["prediction": r.prediction, "loss": r.loss, "tokens": r.tokens, "rougeL": r.scores.rougeL,
                                     "bleu4": r.scores.bleu4, "exact_match": r.scores.exactMatch, "length_ratio": r.scores.lengthRatio]
        addExtras(&object, reward: r.reward, rewards: r.rewards, logps: r.preference.map { ($0.chosen, $0.rejected) })
        return object
    }

    static func itemJSON(_ i: StoredEvalItem) -> [String: Any] {
        var object: [String: Any] = ["prediction": i.prediction, "loss": i.loss, "tokens": i.tokens, "rougeL": i.rougeL, "bleu4": i.bleu4,
                                     "exact_match": i.exactMatch, "length_ratio": i.lengthRatio]
        let logps = i.logpChosen.flatMap { c in i.logpRejected.map { (c, $0) } }
        addExtras(&object, reward: i.reward, rewards: i.rewards ?? [:], logps: logps)
        return object
    }

    /// An item's reward scores (`rewards`, `reward`) and, for a compared pair, `logp_chosen` and
    /// `logp_rejected`, where there are some.
    private static func addExtras(_ object: inout [String: Any], reward: Double?, rewards: [String: Double], logps: (Double, Double)?) {
        if let reward {
            object["reward"] = reward
            object["rewards"] = rewards
        }
        if let logps {
            object["logp_chosen"] = logps.0
            object["logp_rejected"] = logps.1
        }
    }

    /// The `--reward` functions of a stored evaluation, from its settings: name, spec, weight.
    static func rewards(_ e: StoredEval) -> [(name: String, spec: String, weight: Double)] {
        let list = (Output.jsonValue(e.config) as? [String: Any])?["rewards"] as? [[String: Any]] ?? []
        return list.compactMap { r in
            guard let name = r["name"] as? String, let spec = r["spec"] as? String else { return nil }
            return (name, spec, (r["weight"] as? Double) ?? 1)
        }
    }

    /// The metric names of a stored evaluation in report order: the text metrics and loss, then
    /// `reward.NAME`… and `reward` when it scored rewards, then the preference metrics when it
    /// compared pairs.
    static func metricNames(_ e: StoredEval) -> [String] {
        let rewardNames = rewards(e).map(\.name)
        var names = Evaluator.metricNames + (rewardNames.isEmpty ? [] : Evaluator.rewardMetricNames(rewardNames))
        if metric(e, "base", "preference_accuracy") != nil { names += Evaluator.preferenceMetricNames }
        return names
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
        Output.printTable(header: header, rows: metricNames(e).map { name in
            var row = [name, format(metric(e, "base", name))]
            if hasAdapter {
                let d = deltas[name] as? [String: Any]
                let ci = d?["ci95"] as? [Double] ?? []
                row += [format(metric(e, "adapter", name)), (d?["delta"] as? Double).map(signed) ?? "",
                        ci.count == 2 ? "[\(signed(ci[0])), \(signed(ci[1]))]" : ""]
            }
            return row
        })
        let rewards = rewards(e)
        if !rewards.isEmpty {
            print("rewards (mean per answer; reward = Σ weight · score): " + rewards.map { "\($0.name) = \($0.spec) ×\(format(weight: $0.weight))" }.joined(separator: ", "))
        }
        if let p = (Output.jsonValue(e.metrics) as? [String: Any])?["preference"] as? [String: Any] {
            let leftOut = (p["left_out"] as? [Any])?.count ?? 0
            print("preference pairs: \(p["pairs"] as? Int ?? 0) compared (preference_accuracy: share where log p(chosen) > log p(rejected); preference_margin: mean difference, nats)"
                  + (leftOut > 0 ? ", \(leftOut) left out (a side longer than --max-len)" : ""))
        }
        print("lower is better for loss and perplexity; `corpus evals show \(e.id)` lists every answer")
    }

    /// A weight without needless decimals: 1, 0.5, 2.125.
    static func format(weight: Double) -> String {
        weight == weight.rounded() && abs(weight) < 1e15 ? String(Int64(weight)) : "\(weight)"
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
            let hasReward = items.contains { $0.reward != nil }
            let columns = ["loss", "rougeL"] + (hasReward ? ["reward"] : []) + ["answer"]
            Output.printTable(header: ["record"] + models.flatMap { m in columns.map { "\(m) \($0)" } }, rows: positions.compactMap { p in
                guard let entry = byPosition[p] else { return nil }
                return ["\(entry.recordId)"] + models.flatMap { m -> [String] in
                    guard let i = entry.models[m] else { return columns.map { _ in "" } }
                    return [EvalsCommand.format(i.loss), EvalsCommand.format(i.rougeL)] + (hasReward ? [EvalsCommand.format(i.reward)] : [])
                        + [Output.excerpt(i.prediction, 30)]
                }
            })
        }
    }
}
