import CorpusDB
import CorpusSupport
import Foundation

/// The `corpus runs show RUN --html FILE` page: one self-contained file (no scripts, fonts or
/// images from the network; charts as inline SVG) with a training run's facts — snapshot, base
/// model, status, adapter, settings — and its curves from the store's `run_metrics`.
///
/// The curves are `LineChart`s of named series: the built-in ones (`charts(_:)`: train and eval
/// loss, learning rate) and any `extraCharts` (the rewards, margins or KL of preference training
/// draw the same way).
struct RunCurvesPage {
    var run: TrainingRun
    var metrics: [RunMetric]
    /// Charts drawn after the built-in ones.
    var extraCharts: [LineChart] = []
    /// When the page was written.
    var generated: String

    /// Rows of the table of figures under the charts (every evaluation step is kept on top).
    static let tableRows = 60

    /// The loss chart (train loss at every step, eval loss where it was measured) and the
    /// learning-rate chart.
    static func charts(_ metrics: [RunMetric]) -> [LineChart] {
        var loss: [LineChart.Series] = [("train loss", metrics.map { ($0.step, $0.loss) })]
        let evaluated = metrics.compactMap { m in m.evalLoss.map { (step: m.step, value: $0) } }
        if !evaluated.isEmpty { loss.append(("eval loss", evaluated)) }
        return [
            LineChart(title: metrics.contains { $0.extra["rewards/margins"] != nil } ? "Loss (DPO: mean −log σ(z) over the pairs)"
                        : metrics.contains { $0.extra["reward"] != nil } ? "Loss (GRPO, TRL's dapo)" : "Loss (mean per answer token)",
                      series: loss, smoothed: ["train loss"]),
            LineChart(title: "Learning rate", series: [("learning rate", metrics.map { ($0.step, $0.learningRate) })], startsAtZero: true),
        ]
    }

    /// The objective's own figures (`RunMetric.extra`: DPO's rewards and accuracies, GRPO's
    /// rewards, KL and answer length) as charts: figures of one kind share a chart, a train
    /// figure and its `eval/` twin side by side.
    static func objectiveCharts(_ metrics: [RunMetric]) -> [LineChart] {
        // The DPO eval loss is the eval loss of the loss chart already.
        let names = Set(metrics.flatMap { $0.extra.keys }).subtracting(["eval/loss"])
        guard !names.isEmpty else { return [] }
        func group(_ name: String) -> String {
            let bare = name.hasPrefix("eval/") ? String(name.dropFirst(5)) : name
            if bare.contains("accuracies") { return "Preference accuracy (chosen above rejected)" }
            if bare.hasPrefix("rewards/chosen") || bare.hasPrefix("rewards/rejected") || bare.hasPrefix("rewards/margins") { return "DPO rewards β·(log π − log π_ref)" }
            if bare.hasPrefix("logps/") { return "Log-probabilities of the answers" }
            if bare == "reward" || (bare.hasPrefix("rewards/") && bare.hasSuffix("/mean")) { return "Rewards (mean)" }
            if bare == "reward_std" || bare.hasSuffix("/std") { return "Reward spread (std)" }
            if bare == "kl" { return "KL to the reference" }
            if bare.hasPrefix("completions/mean_length") { return "Answer length (tokens)" }
            if bare == "completions/clipped_ratio" || bare == "frac_reward_zero_std" || bare.hasPrefix("clip_ratio/") {
                return "Shares: answers cut at --max-new-tokens, groups without a reward spread, clipped tokens"
            }
            if bare == "loss" { return "Eval loss of the objective" }
            return bare
        }
        var charts: [String: [LineChart.Series]] = [:], order: [String] = []
        for name in names.sorted() {
            let title = group(name)
            if charts[title] == nil { order.append(title) }
            charts[title, default: []].append((name, metrics.compactMap { m in m.extra[name].map { (step: m.step, value: $0) } }))
        }
        return order.sorted().map { LineChart(title: $0, series: charts[$0] ?? []) }
    }

    func html() -> String {
        let facts = RunsCommand.json(run)
        var h = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Training run \(run.id): \(esc(run.snapshot))</title>
            <style>
            body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC","Noto Sans",sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
            main{max-width:1100px;margin:0 auto;padding:24px 28px 60px}
            h1{font-size:26px;margin:8px 0 4px}h2{font-size:20px;margin:34px 0 10px;border-bottom:2px solid #dde2ea;padding-bottom:6px}
            .sub{color:#5b6476;font-size:14px}.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
            .cards{display:flex;flex-wrap:wrap;gap:12px;margin:18px 0}
            .card{background:#fff;border:1px solid #dde2ea;border-radius:10px;padding:12px 16px;min-width:130px;flex:1}
            .card b{display:block;font-size:24px;font-variant-numeric:tabular-nums}.card span{color:#5b6476;font-size:13px}
            table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde2ea;font-size:14px}
            th,td{text-align:left;padding:7px 10px;border-bottom:1px solid #eef0f4;vertical-align:top}th{background:#f0f2f6;font-weight:600}
            td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}th.n{text-align:right}.scroll{overflow-x:auto}
            .settings{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:3px 18px;font-size:13px}.settings span{min-width:0;overflow-wrap:anywhere}
            .settings b{font-family:ui-monospace,Menlo,Consolas,monospace;font-weight:normal;font-size:12px;color:#5b6476;margin-right:4px}
            .status{font-weight:600;border-radius:10px;padding:1px 8px;font-size:13px;background:#eef0f4}
            .finished{color:#1e7d34}.running{color:#2a5bd7}.interrupted{color:#b26a00}.failed{color:#c62828}
            details{margin-top:10px}summary{cursor:pointer;color:#2a5bd7;font-size:14px}
            \(LineChart.css)
            </style></head><body><main>
            <h1>Training run \(run.id): \(esc(run.snapshot))</h1>
            <div class="sub"><span class="status \(esc(run.status))">\(esc(run.status))</span> · started \(esc(run.startedAt))\(run.finishedAt.map { " · ended " + esc($0) } ?? "") · corpus \(esc(run.toolVersion)) · page written \(esc(generated))</div>
            <div class="cards">
            \(card(facts["steps"] as? Int ?? metrics.last?.step, "steps"))
            \(card(facts["final_loss"] as? Double ?? metrics.last?.loss, "final training loss"))
            \(card(facts["final_eval_loss"] as? Double ?? metrics.last { $0.evalLoss != nil }?.evalLoss, "final eval loss"))
            \(card((facts["tokens_per_second"] as? Double).map { String(format: "%.1f", $0) }, "tokens per second"))
            \(card((facts["seconds"] as? Double ?? metrics.last?.seconds).map(Self.duration), "training time"))
            </div>
            """
        h += "\n<h2>Curves</h2>\n"
        if metrics.isEmpty {
            h += "<p class=\"sub\">No steps are recorded for this run\(run.status == "imported" ? " (it was trained elsewhere and imported)" : "").</p>\n"
        } else {
            h += "<p class=\"sub\">The training loss is measured on each step's batch, the eval loss on the held-out split every few steps (its dots). Hover over a dot for its value.</p>\n"
            h += LineChart.html(Self.charts(metrics) + Self.objectiveCharts(metrics) + extraCharts)
            h += figures()
        }

        h += "<h2>The run</h2>\n<table>\n"
        h += "<tr><th>Snapshot</th><td>\(esc(run.snapshot))<div class=\"mono\">hash \(esc(run.snapshotHash))</div></td></tr>\n"
        h += "<tr><th>Base model</th><td>\(esc(run.modelRef))<div class=\"mono\">weights sha256 \(esc(run.modelSHA256))</div></td></tr>\n"
        if let adapter = run.adapter {
            h += "<tr><th>Adapter</th><td>\(esc(adapter.path))<div class=\"mono\">adapter_model.safetensors sha256 \(esc(adapter.sha256))</div></td></tr>\n"
        } else {
            h += "<tr><th>Adapter</th><td class=\"sub\">none yet (the run is \(esc(run.status)))</td></tr>\n"
        }
        h += "<tr><th>Seed</th><td>\(run.seed)</td></tr>\n"
        h += "<tr><th>Settings</th><td>\(settings())</td></tr>\n</table>\n"
        h += "<p class=\"sub\" style=\"margin-top:30px\"><code>corpus runs show \(run.id) --json</code> prints every step. How a run trains: docs/TRAINING.md.</p>\n"
        h += "</main></body></html>\n"
        return h
    }

    /// The settings (the run's canonical JSON configuration) as a grid of `name value` pairs.
    private func settings() -> String {
        guard let object = Output.jsonValue(run.config) as? [String: Any], !object.isEmpty else {
            return "<div class=\"mono\">\(esc(run.config))</div>"
        }
        var h = "<div class=\"settings\">"
        for key in object.keys.sorted() {
            let value = object[key].map { $0 as? String ?? JSONText.compact($0) } ?? ""
            h += "<span><b>\(esc(key))</b> \(esc(value))</span>"
        }
        return h + "</div>"
    }

    /// The figures behind the charts, thinned to about `tableRows` rows with every evaluation kept.
    private func figures() -> String {
        let every = max(1, metrics.count / Self.tableRows)
        let rows = metrics.enumerated().filter { $0.offset % every == 0 || $0.offset == metrics.count - 1 || $0.element.evalLoss != nil }.map(\.element)
        var h = "<details><summary>The figures (\(rows.count == metrics.count ? "every step" : "\(rows.count) of \(metrics.count) steps, every evaluation"))</summary>\n"
        h += "<div class=\"scroll\"><table><tr><th class=\"n\">Step</th><th class=\"n\">Loss</th><th class=\"n\">Eval loss</th><th class=\"n\">Learning rate</th><th class=\"n\">Answer tokens</th><th class=\"n\">Seconds</th></tr>\n"
        for m in rows {
            h += "<tr><td class=\"n\">\(m.step)</td><td class=\"n\">\(String(format: "%.4f", m.loss))</td><td class=\"n\">\(m.evalLoss.map { String(format: "%.4f", $0) } ?? "")</td>"
            h += "<td class=\"n\">\(String(format: "%.3e", m.learningRate))</td><td class=\"n\">\(m.tokens)</td><td class=\"n\">\(String(format: "%.1f", m.seconds))</td></tr>\n"
        }
        return h + "</table></div></details>\n"
    }

    private func card(_ value: Int?, _ label: String) -> String {
        card(value.map(String.init), label)
    }

    private func card(_ value: Double?, _ label: String) -> String {
        card(value.map { String(format: "%.4f", $0) }, label)
    }

    private func card(_ value: String?, _ label: String) -> String {
        "<div class=\"card\"><b>\(esc(value ?? "–"))</b><span>\(esc(label))</span></div>"
    }

    /// `95.2 s`, `12 min 5 s`, `3 h 4 min`.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "–" }
        if seconds < 60 { return String(format: "%.1f s", seconds) }
        let whole = Int(seconds.rounded())
        if whole < 3600 { return "\(whole / 60) min \(whole % 60) s" }
        return "\(whole / 3600) h \(whole % 3600 / 60) min"
    }

    private func esc(_ text: String) -> String { HTML.escape(text) }
}
