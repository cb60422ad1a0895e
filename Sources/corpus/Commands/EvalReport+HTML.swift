import CorpusDB
import CorpusSupport
import Foundation
import ModelRuntime
import Trainer

/// The `corpus eval --html` page: one self-contained file (no scripts, fonts or images from the
/// network) for a reader who is not a programmer: what was compared, the figures with their
/// differences, and side by side the answers where the adapter helped most and least.
struct EvalReportPage {
    var eval: StoredEval
    var items: [EvalItem]
    var models: [ModelResult]
    var deltas: [String: EvalDelta]
    var thresholds: [EvalThreshold]
    var failures: [String]
    /// The rejected answer of each compared preference pair, by record id.
    var rejected: [Int64: String] = [:]

    /// Items shown in each of the best and worst lists.
    static let shown = 5

    /// What each metric means, in words.
    static let meanings: [String: (title: String, meaning: String)] = [
        "loss": ("Loss", "How surprised the model is by the reference answer, word piece by word piece (lower is better)."),
        "perplexity": ("Perplexity", "The loss as the number of equally likely choices the model hesitates between at each step (lower is better)."),
        "rougeL": ("ROUGE-L", "Share of the reference answer found in the model's answer in the same order, in characters for Chinese and words otherwise (0 to 1, higher is better)."),
        "bleu4": ("BLEU-4", "Overlap of short phrases of up to four characters or words with the reference, penalizing answers that are too short (0 to 1, higher is better)."),
        "exact_match": ("Exact match", "Share of answers identical to the reference after ignoring case, spacing and final punctuation."),
        "length_ratio": ("Length ratio", "Length of the model's answers relative to the reference answers (1 means the same length)."),
    ]

    func html() -> String {
        let hasAdapter = models.count == 2
        var h = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Evaluation \(eval.id): \(esc(eval.snapshot))</title>
            <style>
            body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC","Noto Sans",sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
            main{max-width:1100px;margin:0 auto;padding:24px 28px 60px}
            h1{font-size:26px;margin:8px 0 4px}h2{font-size:20px;margin:34px 0 10px;border-bottom:2px solid #dde2ea;padding-bottom:6px}
            .sub{color:#5b6476;font-size:14px}.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
            table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde2ea;font-size:14px}
            th,td{text-align:left;padding:7px 10px;border-bottom:1px solid #eef0f4;vertical-align:top}th{background:#f0f2f6;font-weight:600}
            td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
            .better{color:#1e7d34;font-weight:600}.worse{color:#c62828;font-weight:600}.same{color:#5b6476}
            .verdict{background:#fff;border:1px solid #dde2ea;border-left:5px solid #2a5bd7;border-radius:8px;padding:12px 16px;margin:16px 0;font-size:15px}
            .fail{border-left-color:#c62828}.pass{border-left-color:#1e7d34}
            .item{background:#fff;border:1px solid #dde2ea;border-radius:10px;padding:12px 16px;margin:14px 0}
            .item h3{font-size:15px;margin:0 0 8px}.q{white-space:pre-wrap;background:#f0f2f6;border-radius:6px;padding:8px 10px;font-size:14px}
            .cols{display:grid;grid-template-columns:repeat(\(hasAdapter ? 3 : 2),1fr);gap:10px;margin-top:10px}
            .col{border:1px solid #eef0f4;border-radius:6px;padding:8px 10px;font-size:14px}.col b{display:block;font-size:12px;color:#5b6476;margin-bottom:4px;text-transform:uppercase;letter-spacing:.04em}
            .col p{white-space:pre-wrap;margin:0}.col .s{font-size:12px;color:#5b6476;margin-top:6px}
            .ref{background:#f7fbf7}
            </style></head><body><main>
            <h1>Evaluation \(eval.id): \(hasAdapter ? "base model against adapter" : "base model")</h1>
            <div class="sub">\(esc(eval.snapshot)) · \(esc(eval.split)) split · \(eval.items) questions · \(esc(eval.createdAt)) · corpus \(esc(eval.toolVersion))</div>
            <table style="margin-top:14px">
            <tr><th>Base model</th><td>\(esc(eval.modelRef))<div class="mono">weights sha256 \(esc(eval.modelSHA256))</div></td></tr>

            """
        if let path = eval.adapterPath {
            h += "<tr><th>Adapter</th><td>\(esc(path))\(eval.runId.map { " (training run \($0))" } ?? "")<div class=\"mono\">sha256 \(esc(eval.adapterSHA256 ?? ""))</div></td></tr>\n"
        }
        h += "<tr><th>Snapshot</th><td>\(esc(eval.snapshot))<div class=\"mono\">hash \(esc(eval.snapshotHash))</div></td></tr>\n"
        h += "<tr><th>How</th><td>Each question of the \(eval.split == "eval" ? "held-out part of the snapshot (never used for training)" : "snapshot's \(esc(eval.split)) split") was answered by \(hasAdapter ? "both models" : "the model") with the most likely words, at most \(configValue("max_new_tokens")) word pieces, and compared with the reference answer.</td></tr>\n</table>\n"
        h += verdict()

        h += "<h2>Scores</h2>\n<table><tr><th>Measure</th><th class=\"n\">Base</th>"
        if hasAdapter { h += "<th class=\"n\">Adapter</th><th class=\"n\">Change</th><th class=\"n\">95% range of the change per question</th>" }
        h += "<th>What it means</th></tr>\n"
        let values = models.map(\.values)
        for name in models[0].metricNames {
            let plain = meaning(name)
            h += "<tr><td><b>\(esc(plain.title))</b></td><td class=\"n\">\(number(values[0][name]))</td>"
            if hasAdapter {
                let d = deltas[name]
                h += "<td class=\"n\">\(number(values[1][name]))</td>"
                h += "<td class=\"n \(d.map { tone(name, $0) } ?? "same")\">\(d.map { String(format: "%+.4f", $0.delta) } ?? "")</td>"
                h += "<td class=\"n\">\(d.map { String(format: "%+.4f … %+.4f", $0.low, $0.high) } ?? "")</td>"
            }
            h += "<td class=\"sub\">\(esc(plain.meaning))</td></tr>\n"
        }
        h += "</table>\n"
        if hasAdapter {
            h += "<p class=\"sub\">The 95% range comes from resampling the questions 1,000 times (paired bootstrap on the per-question scores): when it does not include 0, the change is unlikely to be chance. It is the range of the average change per question; loss, perplexity, BLEU-4 and length ratio are overall figures that are not plain averages over the questions, so their change can fall outside it.</p>\n"
        }

        // Items ranked by how much the adapter changed ROUGE-L (or, for the base model alone, by its ROUGE-L).
        let order = items.indices.sorted { key($0) > key($1) || (key($0) == key($1) && $0 < $1) }
        // With fewer than 2 × shown items, the better half is "best" and the rest "worst".
        let best = Array(order.prefix(min(Self.shown, (order.count + 1) / 2)))
        let worst = Array(order.reversed().filter { !best.contains($0) }.prefix(Self.shown))
        h += "<h2>\(hasAdapter ? "Where the adapter helped most" : "Best answers")</h2>\n"
        h += "<p class=\"sub\">\(hasAdapter ? "Questions where the adapter's answer is closest to the reference compared with the base model's (largest gain in ROUGE-L)." : "Questions where the answer is closest to the reference (highest ROUGE-L).")</p>\n"
        for k in best { h += itemCard(k) }
        h += "<h2>\(hasAdapter ? "Where the adapter helped least" : "Worst answers")</h2>\n"
        h += "<p class=\"sub\">\(hasAdapter ? "Questions where the adapter gained least or lost against the base model." : "Questions where the answer is furthest from the reference.")</p>\n"
        for k in worst { h += itemCard(k) }
        h += "<p class=\"sub\" style=\"margin-top:30px\">Every answer is stored: <code>corpus evals show \(eval.id)</code>. Definitions of the measures: docs/EVAL_METRICS.md.</p>\n"
        h += "</main></body></html>\n"
        return h
    }

    /// The title and meaning of a metric, those of the rewards and pairs included.
    private func meaning(_ name: String) -> (title: String, meaning: String) {
        if let known = Self.meanings[name] { return known }
        let rewards = EvalsCommand.rewards(eval)
        switch name {
        case "reward":
            let weights = rewards.map { "\(EvalsCommand.format(weight: $0.weight)) × \($0.name)" }.joined(separator: " + ")
            return ("Total reward", "The rewards above added up with their weights (\(weights)), averaged over the answers (higher is better).")
        case "preference_accuracy":
            return ("Preference accuracy", "Share of the \(pairCount) preference pairs where the model finds the preferred (chosen) answer more likely than the rejected one (0 to 1, higher is better; 0.5 is a coin toss).")
        case "preference_margin":
            return ("Preference margin", "How much more likely the model finds the preferred answer than the rejected one, on average: the difference of their log-probabilities in nats (above 0 favours the preferred answer).")
        default:
            let short = String(name.dropFirst("reward.".count))
            let spec = rewards.first { $0.name == short }?.spec ?? short
            let what: String
            switch spec.split(separator: ":").first ?? "" {
            case "regex": what = "Share of answers containing a match of the pattern"
            case "extract": what = "Share of answers whose extracted value equals the reference answer's"
            case "length": what = "Share of answers whose length in characters is within the range"
            default: what = "Mean score the program gave the answers"
            }
            return ("Reward \(short)", "\(what): \(spec) (higher is better).")
        }
    }

    /// Preference pairs compared.
    private var pairCount: Int { models[0].results.filter { $0.preference != nil }.count }

    private func key(_ k: Int) -> Double {
        models.count == 2 ? models[1].results[k].scores.rougeL - models[0].results[k].scores.rougeL : models[0].results[k].scores.rougeL
    }

    private func configValue(_ name: String) -> String {
        ((Output.jsonValue(eval.config) as? [String: Any])?[name]).map { "\($0)" } ?? "?"
    }

    private func verdict() -> String {
        var lines: [String] = []
        var cls = ""
        if models.count == 2, let r = deltas["rougeL"], let l = deltas["loss"] {
            let rouge = r.low > 0 ? "closer to the reference answers" : r.high < 0 ? "further from the reference answers" : "about as close to the reference answers (the difference could be chance)"
            lines.append(String(format: "With the adapter the answers are %@ than the base model's: ROUGE-L %.3f → %.3f.", rouge,
                                models[0].aggregate.text.rougeL, models[1].aggregate.text.rougeL))
            lines.append(String(format: "The reference answers are %@ to the adapted model (loss %.3f → %.3f).",
                                l.delta < 0 ? "less surprising" : "more surprising", models[0].aggregate.loss, models[1].aggregate.loss))
        }
        if pairCount > 0 {
            let share = models.map { m in m.results.filter { ($0.preference.map { $0.chosen > $0.rejected }) == true }.count }
            if models.count == 2 {
                lines.append("On \(pairCount) preference pairs the adapted model finds the preferred answer more likely in \(share[1]) (the base model in \(share[0])).")
            } else {
                lines.append("On \(pairCount) preference pairs the model finds the preferred answer more likely in \(share[0]).")
            }
        }
        if !thresholds.isEmpty {
            let limits = thresholds.map { "\($0.metric) \($0.isUpperBound ? "≤" : "≥") \($0.bound)" }.joined(separator: ", ")
            if failures.isEmpty {
                lines.append("Quality gate passed (\(limits)).")
                cls = " pass"
            } else {
                lines.append("Quality gate FAILED (\(limits)): \(failures.joined(separator: "; ")).")
                cls = " fail"
            }
        }
        guard !lines.isEmpty else { return "" }
        return "<div class=\"verdict\(cls)\">\(lines.map(esc).joined(separator: "<br>"))</div>\n"
    }

    private func tone(_ metric: String, _ d: EvalDelta) -> String {
        guard metric != "length_ratio" else { return "same" }
        let improved = Evaluator.lowerIsBetter.contains(metric) ? d.high < 0 : d.low > 0
        let worsened = Evaluator.lowerIsBetter.contains(metric) ? d.low > 0 : d.high < 0
        return improved ? "better" : worsened ? "worse" : "same"
    }

    private func itemCard(_ k: Int) -> String {
        let item = items[k]
        // One turn: the question itself; several: each turn with who said it.
        let turns = item.prompt.filter { $0.role != "system" }
        let question = turns.count == 1 ? turns[0].content
            : turns.map { ($0.role == "assistant" ? "Answer: " : "Question: ") + $0.content }.joined(separator: "\n")
        var h = "<div class=\"item\"><h3>Record \(item.recordId)"
        if models.count == 2 { h += String(format: " · ROUGE-L %+.3f", key(k)) }
        h += "</h3><div class=\"q\">\(esc(question))</div><div class=\"cols\">"
        h += "<div class=\"col ref\"><b>\(rejected[item.recordId] == nil ? "Reference answer" : "Reference (preferred) answer")</b><p>\(esc(item.reference))</p>"
        if let other = rejected[item.recordId] { h += "<b style=\"margin-top:8px\">Rejected answer</b><p>\(esc(other))</p>" }
        h += "</div>"
        for m in models {
            let r = m.results[k]
            h += "<div class=\"col\"><b>\(m.name == "base" ? "Base model" : "Adapter")</b><p>\(esc(r.prediction.isEmpty ? "(no answer)" : r.prediction))</p>"
            var extra = r.scores.exactMatch == 1 ? " · exact match" : ""
            if let reward = r.reward { extra += String(format: " · reward %.3f", reward) }
            if let p = r.preference {
                extra += p.chosen > p.rejected ? " · finds the preferred answer more likely"
                    : p.chosen < p.rejected ? " · finds the rejected answer more likely" : " · finds both answers equally likely"
            }
            h += String(format: "<div class=\"s\">ROUGE-L %.3f · BLEU-4 %.3f · loss %.3f%@</div></div>", r.scores.rougeL, r.scores.bleu4, r.loss, extra)
        }
        return h + "</div></div>\n"
    }

    private func number(_ v: Double?) -> String {
        guard let v else { return "" }
        return String(format: "%.4f", v)
    }

    /// Text safe inside HTML elements and quoted attributes.
    private func esc(_ s: String) -> String { HTML.escape(s) }
}
