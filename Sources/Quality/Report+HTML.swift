import CorpusSupport
import Foundation

extension Report {
    /// What each check means, in words for a reader who is not a programmer.
    public static let plainNames: [String: (title: String, meaning: String)] = [
        "exact_duplicate": ("Exact duplicates", "The same question and answer appear more than once (after ignoring spacing and full-width forms). The first copy is kept."),
        "near_duplicate": ("Near duplicates", "Almost the same question and answer, with small edits. The first copy is kept."),
        "conflicting_answer": ("Conflicting answers", "The same question has different answers in different places. Reported for review; nothing is left out."),
        "prompt_length": ("Question too short or too long", "The question has fewer or more characters than the configured limits."),
        "answer_length": ("Answer empty, too short or too long", "The answer has fewer or more characters than the configured limits."),
        "prompt_tokens": ("Question too long for the model", "The question needs more tokens than the configured limit."),
        "answer_tokens": ("Answer too long for the model", "The answer needs more tokens than the configured limit."),
        "char_repetition": ("One character repeated", "A single character makes up most of the text, e.g. 啊啊啊啊."),
        "ngram_repetition": ("Repeated phrases", "The same phrase repeats over and over, e.g. a looping answer."),
        "special_characters": ("Symbols and unusual characters", "Much of the text is symbols or unusual characters rather than words."),
        "mojibake": ("Garbled text", "The text went through a wrong character encoding somewhere, e.g. 锟斤拷 or Ã©."),
        "filler_opening": ("Filler openings", "The answer starts with hesitation such as 嗯… or 我觉得可能是."),
        "boilerplate": ("Mostly boilerplate", "Most of the answer is sentences that recur across many answers."),
        "answer_echoes_prompt": ("Answer repeats the question", "The answer adds almost nothing to the question's own words."),
        "language_mismatch": ("Language mismatch", "The question and the answer are in different languages."),
        "pii": ("Personal information", "ID numbers, phone numbers, e-mail addresses or bank cards. Reported; exports and training use redacted text."),
    ]

    /// One self-contained HTML page (no scripts, fonts or images from the network): summary,
    /// findings with examples, charts as inline SVG, coverage of the taxonomy.
    public func html(title: String, generated: String) -> String {
        var h = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(esc(title))</title>
            <style>
            body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC","Noto Sans",sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
            main{max-width:1060px;margin:0 auto;padding:24px 28px 60px}
            h1{font-size:26px;margin:8px 0 4px}h2{font-size:20px;margin:34px 0 10px;border-bottom:2px solid #dde2ea;padding-bottom:6px}
            .sub{color:#5b6476;font-size:14px}
            .cards{display:flex;flex-wrap:wrap;gap:12px;margin:18px 0}
            .card{background:#fff;border:1px solid #dde2ea;border-radius:10px;padding:14px 18px;min-width:150px;flex:1}
            .card b{display:block;font-size:28px}.card span{color:#5b6476;font-size:13px}
            table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde2ea;border-radius:8px;font-size:14px}
            th,td{text-align:left;padding:7px 10px;border-bottom:1px solid #eef0f4;vertical-align:top}th{background:#f0f2f6;font-weight:600}
            td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
            .bar{background:#e6e9ef;border-radius:4px;height:12px;min-width:120px}.bar i{display:block;height:12px;border-radius:4px;background:#d9534f}
            .ok{color:#1e7d34;font-weight:600}.thin{color:#b26a00;font-weight:600}.missing{color:#c62828;font-weight:600}
            .adv{font-size:12px;color:#5b6476;border:1px solid #cfd5df;border-radius:10px;padding:1px 7px;margin-left:6px}
            details{margin:4px 0 0}summary{cursor:pointer;color:#2a5bd7;font-size:13px}
            .ex{font-size:13px;background:#fafbfc;border-left:3px solid #cfd5df;padding:6px 10px;margin:6px 0;white-space:pre-wrap}
            .charts{display:flex;flex-wrap:wrap;gap:16px}.chart{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:10px 12px;flex:1;min-width:300px}
            .chart h3{font-size:15px;margin:2px 0 6px}
            svg text{font-size:11px;fill:#454d5c}
            </style></head><body><main>
            <h1>\(esc(title))</h1>
            <div class="sub">Generated \(esc(generated))\(configHash.map { " · check configuration " + esc(String($0.prefix(12))) } ?? " · no checks have run yet (run <code>corpus check</code>)")</div>
            <div class="cards">
            \(card(records, "records"))
            \(card(kept, "pass every check (a snapshot would take them)"))
            \(card(exactDuplicates, "exact duplicates (\(percent(exactDuplicates, records)))"))
            \(card(nearDuplicates, "near duplicates (\(percent(nearDuplicates, records)))"))
            \(card(conflictingAnswers, "records with conflicting answers"))
            </div>

            """
        if let taxonomy, !taxonomy.isEmpty {
            h += "<h2>Coverage of what you need</h2>\n<p class=\"sub\">Each expected tag value with its minimum number of records, before and after the checks.</p>\n"
            h += "<table><tr><th>Tag</th><th>Value</th><th class=\"n\">Needed</th><th class=\"n\">Before checks</th><th class=\"n\">After checks</th><th>Status</th></tr>\n"
            for c in taxonomy {
                let cls = c.status == "covered" ? "ok" : c.status
                h += "<tr><td>\(esc(c.key))</td><td>\(esc(c.value))</td><td class=\"n\">\(c.minimum)</td><td class=\"n\">\(c.before)</td><td class=\"n\">\(c.after)</td><td class=\"\(cls)\">\(c.status)</td></tr>\n"
            }
            h += "</table>\n"
        }
        if !checks.isEmpty {
            h += "<h2>What the checks found</h2>\n<p class=\"sub\">Nothing is deleted: records that fail a check are left out of snapshots, except for checks marked <span class=\"adv\">report only</span>.</p>\n"
            h += "<table><tr><th>Finding</th><th class=\"n\">Records</th><th class=\"n\">Share</th><th></th></tr>\n"
            let order = CheckConfiguration.checkNames + checks.keys.filter { !CheckConfiguration.checkNames.contains($0) }.sorted()
            for name in order {
                guard let c = checks[name] else { continue }
                let plain = Self.plainNames[name] ?? (name, "")
                let share = c.checked == 0 ? 0 : Double(c.failed) / Double(c.checked)
                h += "<tr><td><b>\(esc(plain.title))</b>\(c.advisory ? "<span class=\"adv\">report only</span>" : "")<br><span class=\"sub\">\(esc(plain.meaning))</span>"
                if !c.examples.isEmpty {
                    h += "<details><summary>\(c.examples.count) example\(c.examples.count == 1 ? "" : "s")</summary>"
                    for e in c.examples {
                        h += "<div class=\"ex\"><b>Record \(e.record)</b>\(e.detail.isEmpty ? "" : " — " + esc(e.detail))\nQ: \(esc(e.prompt))\nA: \(esc(e.answer))</div>"
                    }
                    h += "</details>"
                }
                h += "</td><td class=\"n\">\(c.failed)</td><td class=\"n\">\(percent(c.failed, c.checked))</td>"
                h += "<td><div class=\"bar\"><i style=\"width:\(String(format: "%.1f", min(100, share * 100)))%\"></i></div></td></tr>\n"
            }
            h += "</table>\n"
        }
        if !lengths.isEmpty {
            h += "<h2>Lengths</h2>\n<div class=\"charts\">\n"
            let titles = ["prompt_chars": "Questions (characters)", "answer_chars": "Answers (characters)",
                          "prompt_tokens": "Questions (tokens)", "answer_tokens": "Answers (tokens)"]
            for key in ["prompt_chars", "answer_chars", "prompt_tokens", "answer_tokens"] {
                guard let histogram = lengths[key] else { continue }
                func short(_ n: Int) -> String { n >= 1000 && n % 1000 == 0 ? "\(n / 1000)k" : "\(n)" }
                let labels = histogram.edges.indices.map { i in
                    i + 1 < histogram.edges.count ? "\(short(histogram.edges[i]))–\(short(histogram.edges[i + 1]))" : "\(short(histogram.edges[i]))+"
                }
                h += "<div class=\"chart\"><h3>\(titles[key] ?? key)</h3>\(barChart(labels: labels, values: histogram.counts, color: "#4a78c2"))</div>\n"
            }
            h += "</div>\n"
        }
        if !tags.isEmpty {
            h += "<h2>Records per tag</h2>\n<div class=\"charts\">\n"
            for key in tags.keys.sorted() {
                guard let values = tags[key] else { continue }
                let top = values.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(15)
                h += "<div class=\"chart\"><h3>\(esc(key))\(values.count > 15 ? " (15 most frequent of \(values.count))" : "")</h3>"
                h += barChart(labels: top.map(\.key), values: top.map(\.value), color: "#3a9d6a", horizontal: true) + "</div>\n"
            }
            h += "</div>\n"
        }
        if !pii.isEmpty {
            let names = ["resident_id": "Resident ID numbers", "mobile": "Mobile numbers", "email": "E-mail addresses", "bank_card": "Bank card numbers"]
            h += "<h2>Personal information found</h2>\n<table><tr><th>Kind</th><th class=\"n\">Found</th></tr>\n"
            for (k, n) in pii.sorted(by: { $0.key < $1.key }) { h += "<tr><td>\(esc(names[k] ?? k))</td><td class=\"n\">\(n)</td></tr>\n" }
            h += "</table>\n"
        }
        if !boilerplate.isEmpty {
            h += "<h2>Sentences that recur across answers</h2>\n<table><tr><th>Sentence</th><th class=\"n\">Answers</th></tr>\n"
            for b in boilerplate { h += "<tr><td>\(esc(b.sentence))</td><td class=\"n\">\(b.records)</td></tr>\n" }
            h += "</table>\n"
        }
        h += "<h2>Sources</h2>\n<table><tr><th>#</th><th>File</th><th class=\"n\">Records</th><th class=\"n\">Pass every check</th></tr>\n"
        for s in sources {
            h += "<tr><td>\(s.id)</td><td>\(esc(s.path))</td><td class=\"n\">\(s.records)</td><td class=\"n\">\(s.kept)</td></tr>\n"
        }
        h += "</table>\n</main></body></html>\n"
        return h
    }

    private func card(_ n: Int, _ label: String) -> String {
        "<div class=\"card\"><b>\(n)</b><span>\(esc(label))</span></div>"
    }

    private func percent(_ n: Int, _ of: Int) -> String {
        of == 0 ? "0%" : String(format: "%.1f%%", Double(n) * 100 / Double(of))
    }

    /// A bar chart as inline SVG, with each bar's count written on it.
    private func barChart(labels: [String], values: [Int], color: String, horizontal: Bool = false) -> String {
        let top = max(1, values.max() ?? 1)
        if horizontal {
            let rowH = 22, width = 460, labelW = 150, barW = width - labelW - 60
            var s = "<svg viewBox=\"0 0 \(width) \(labels.count * rowH + 4)\" width=\"100%\" role=\"img\">"
            for (i, (label, v)) in zip(labels, values).enumerated() {
                let y = i * rowH + 2, w = max(1, v * barW / top)
                // About 11 Chinese characters fit beside the bar; longer labels end in "…", with the
                // whole label as the tooltip.
                let short = label.count > 11 ? String(label.prefix(10)) + "…" : label
                s += "<text x=\"\(labelW - 6)\" y=\"\(y + 15)\" text-anchor=\"end\"><title>\(esc(label))</title>\(esc(short))</text>"
                s += "<rect x=\"\(labelW)\" y=\"\(y + 3)\" width=\"\(w)\" height=\"16\" rx=\"3\" fill=\"\(color)\"/>"
                s += "<text x=\"\(labelW + w + 5)\" y=\"\(y + 15)\">\(v)</text>"
            }
            return s + "</svg>"
        }
        let colW = 44, height = 170, plotH = 120, width = labels.count * colW + 10
        var s = "<svg viewBox=\"0 0 \(width) \(height)\" width=\"100%\" role=\"img\">"
        for (i, (label, v)) in zip(labels, values).enumerated() {
            let x = 5 + i * colW, bh = v == 0 ? 0 : max(1, v * plotH / top), y = 20 + plotH - bh
            s += "<rect x=\"\(x + 4)\" y=\"\(y)\" width=\"\(colW - 8)\" height=\"\(bh)\" rx=\"3\" fill=\"\(color)\"/>"
            s += "<text x=\"\(x + colW / 2)\" y=\"\(y - 4)\" text-anchor=\"middle\">\(v)</text>"
            s += "<text x=\"\(x + colW / 2)\" y=\"\(20 + plotH + 16)\" text-anchor=\"middle\" style=\"font-size:9.5px\">\(esc(label))</text>"
        }
        return s + "</svg>"
    }

    private func esc(_ s: String) -> String { HTML.escape(s) }
}
