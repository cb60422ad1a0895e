import CorpusDB
import Foundation
import TestSupport
import Testing

/// `corpus eval` end to end with the real SmolLM2 on the bundled examples: base against a 2-step
/// adapter, the losses cross-checked with what `corpus train` measured on the same split, the
/// stored rows, evals list/show, compare, --fail-under, the HTML page and lineage.
@Suite("corpus eval, evals, eval compare", .serialized)
struct EvalTests {
    static let metricKeys: Set<String> = ["loss", "perplexity", "rougeL", "bleu4", "exact_match", "length_ratio"]

    @Test(.needsTestModel) func evalBaseAgainstAdapter() throws {
        let model = try TestInputs.model()
        let (db, dir) = try TrainTests.snapshotStore()   // demo@1: 20 train, 4 eval
        let adapter = dir.appendingPathComponent("adapter").path
        let trained = try TestSupport.run(["train", "demo", "--model", model, "--db", db, "--max-steps", "2", "--batch-tokens", "256",
                                           "--max-len", "128", "--eval-every", "0", "--seed", "1", "--out", adapter, "--json"])
        #expect(trained.status == 0, "\(trained.stderr)")
        let run = try #require(trained.json() as? [String: Any])
        let trainedEvalLoss = try #require(run["final_eval_loss"] as? Double)
        // "eval loss before training: X": the base model's loss on the eval split (B = 0).
        let line = try #require(trained.stderr.split(separator: "\n").first { $0.hasPrefix("eval loss before training: ") })
        let baseEvalLoss = try #require(Double(line.dropFirst("eval loss before training: ".count)))

        // 1. The whole eval split (4 items), base and adapter, with the same --max-len as train.
        let common = ["--model", model, "--db", db, "--max-new-tokens", "8", "--max-len", "128"]
        let full = try TestSupport.run(["eval", "demo", "--adapter", adapter, "--json"] + common)
        #expect(full.status == 0, "\(full.stderr)")
        let e1 = try #require(full.json() as? [String: Any])
        #expect(e1["id"] as? Int == 1)
        #expect(e1["items"] as? Int == 4)
        #expect(e1["snapshot"] as? String == "demo@1")
        #expect(e1["split"] as? String == "eval")
        let adapterInfo = try #require(e1["adapter"] as? [String: Any])
        #expect(adapterInfo["path"] as? String == adapter)
        #expect(adapterInfo["sha256"] as? String == run["adapter_sha256"] as? String)
        #expect(adapterInfo["run_id"] as? Int == 1)
        let models = try #require(e1["models"] as? [String: Any])
        #expect(Set(models.keys) == ["base", "adapter"])
        let base = try #require((models["base"] as? [String: Any])?["metrics"] as? [String: Double])
        let tuned = try #require((models["adapter"] as? [String: Any])?["metrics"] as? [String: Double])
        #expect(Set(base.keys) == Self.metricKeys)
        #expect(Set(tuned.keys) == Self.metricKeys)
        #expect((models["base"] as? [String: Any])?["items"] as? Int == 4)
        // The losses are those `corpus train` measured on the same split: before training (the
        // base model, printed to 4 decimals) and after its last step (the adapter).
        let baseLoss = try #require(base["loss"]), adapterLoss = try #require(tuned["loss"])
        #expect(abs(baseLoss - baseEvalLoss) <= 0.00005 + 1e-9)
        #expect(abs(adapterLoss - trainedEvalLoss) < 1e-4)
        #expect(abs((base["perplexity"] ?? 0) - exp(baseLoss)) < 1e-9)
        #expect(baseLoss != adapterLoss)
        for m in [base, tuned] {
            for key in ["rougeL", "bleu4", "exact_match"] { #expect((0...1).contains(m[key] ?? -1)) }
        }
        let deltas = try #require(e1["deltas"] as? [String: Any])
        #expect(Set(deltas.keys) == Self.metricKeys)
        let lossDelta = try #require(deltas["loss"] as? [String: Any])
        #expect(abs((lossDelta["delta"] as? Double ?? 0) - (adapterLoss - baseLoss)) < 1e-12)
        #expect((lossDelta["ci95"] as? [Double])?.count == 2)
        let results = try #require(e1["results"] as? [[String: Any]])
        #expect(results.count == 4)
        #expect(results.allSatisfy { $0["base"] is [String: Any] && $0["adapter"] is [String: Any] && $0["reference"] is String })

        // 2. The first 3 items, a gate the adapter cannot pass (ROUGE-L ≥ 2): stored and printed,
        // then exit 7; the HTML page is written and self-contained.
        let page = dir.appendingPathComponent("eval.html").path
        let gated = try TestSupport.run(["eval", "demo", "--adapter", adapter, "--limit", "3", "--html", page, "--fail-under", "rougeL=2,loss=100", "--json"] + common)
        #expect(gated.status == 7, "\(gated.stderr)")
        #expect(gated.stderr.contains("rougeL"))
        let e2 = try #require(gated.json() as? [String: Any])
        #expect(e2["id"] as? Int == 2)
        #expect(e2["items"] as? Int == 3)
        let gate = try #require(e2["thresholds"] as? [String: Any])
        #expect(gate["passed"] as? Bool == false)
        #expect(gate["model"] as? String == "adapter")
        #expect((gate["failures"] as? [String])?.count == 1)
        let html = try String(contentsOfFile: page, encoding: .utf8)
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"))
        #expect(html.contains("Reference answer") && html.contains("Where the adapter helped most"))
        #expect(html.contains("Quality gate FAILED"))

        // 3. The base model alone, a gate it passes: exit 0.
        let passed = try TestSupport.run(["eval", "demo", "--limit", "3", "--fail-under", "rougeL=0,loss=100,exact_match=0", "--json"] + common)
        #expect(passed.status == 0, "\(passed.stderr)")
        let e3 = try #require(passed.json() as? [String: Any])
        #expect(e3["id"] as? Int == 3)
        #expect(e3["adapter"] is NSNull)
        #expect(Set((e3["models"] as? [String: Any])?.keys ?? [:].keys) == ["base"])
        #expect(e3["deltas"] == nil)
        #expect((e3["thresholds"] as? [String: Any])?["passed"] as? Bool == true)
        // The same items give the same base answers and losses as in evaluation 2.
        let r2 = try #require(e2["results"] as? [[String: Any]]), r3 = try #require(e3["results"] as? [[String: Any]])
        #expect(r2.map { ($0["base"] as? [String: Any])?["prediction"] as? String } == r3.map { ($0["base"] as? [String: Any])?["prediction"] as? String })

        // Bad thresholds are usage errors.
        #expect(try TestSupport.run(["eval", "demo", "--fail-under", "accuracy=1"] + common).status == 64)

        // The store: one row per evaluation, one item row per (item, model).
        let store = try CorpusStore(path: db)
        #expect(try store.evals().map(\.id) == [1, 2, 3])
        #expect(try store.evalItems(evalId: 1).count == 8)
        #expect(try store.evalItems(evalId: 2).count == 6)
        #expect(try store.evalItems(evalId: 3).map(\.model) == ["base", "base", "base"])
        #expect(try store.eval(id: 3)?.adapterSHA256 == nil)
        #expect(try store.eval(id: 1)?.runId == 1)
        let firstThree = try store.evalItems(evalId: 1).filter { $0.model == "adapter" }.prefix(3).map(\.recordId)
        #expect(try store.evalItems(evalId: 2).filter { $0.model == "adapter" }.map(\.recordId) == Array(firstThree))

        // evals list / show.
        let listed = try #require(try TestSupport.run(["evals", "list", "--db", db, "--json"]).json() as? [[String: Any]])
        #expect(listed.map { $0["id"] as? Int } == [1, 2, 3])
        #expect(listed.map { $0["items"] as? Int } == [4, 3, 3])
        let shown = try #require(try TestSupport.run(["evals", "show", "2", "--db", db, "--json"]).json() as? [String: Any])
        #expect((shown["results"] as? [[String: Any]])?.count == 3)
        #expect(((shown["models"] as? [String: Any])?["adapter"] as? [String: Any])?["metrics"] as? [String: Double] == e2Metrics(e2))
        let text = try TestSupport.run(["evals", "show", "1", "--db", db])
        #expect(text.status == 0)
        #expect(text.stdout.contains("perplexity") && text.stdout.contains("95% interval"))
        #expect(try TestSupport.run(["evals", "show", "9", "--db", db]).status == 5)

        // compare: the adapter of evaluation 2 against the base model of evaluation 1, on the 3
        // items both have, with an interval; a missing id exits 5.
        let compared = try TestSupport.run(["eval", "compare", "1:base", "2", "--db", db, "--json"])
        #expect(compared.status == 0, "\(compared.stderr)")
        let c = try #require(compared.json() as? [String: Any])
        #expect(c["shared_items"] as? Int == 3)
        #expect((c["baseline"] as? [String: Any])?["model"] as? String == "base")
        #expect((c["candidate"] as? [String: Any])?["model"] as? String == "adapter")
        let metrics = try #require(c["metrics"] as? [String: [String: Any]])
        #expect(Set(metrics.keys) == Self.metricKeys)
        for (_, m) in metrics {
            let ci = try #require(m["ci95"] as? [Double])
            let delta = try #require(m["delta"] as? Double)
            #expect(ci.count == 2 && ci[0] <= delta + 1e-12 && delta <= ci[1] + 1e-12)
        }
        let compareText = try TestSupport.run(["eval", "compare", "1", "2", "--db", db])
        #expect(compareText.status == 0)
        #expect(compareText.stdout.contains("3 shared item(s)") && compareText.stdout.contains("95% interval"))
        #expect(try TestSupport.run(["eval", "compare", "1", "7", "--db", db]).status == 5)
        #expect(try TestSupport.run(["eval", "compare", "3:adapter", "1", "--db", db]).status == 3)

        // The auditor sees the adapter's evaluations.
        let lineage = try #require(try TestSupport.run(["lineage", "adapter", adapter, "--db", db, "--json"]).json() as? [String: Any])
        #expect((lineage["evals"] as? [[String: Any]])?.map { $0["id"] as? Int } == [1, 2])
        let lineageText = try TestSupport.run(["lineage", "adapter", adapter, "--db", db])
        #expect(lineageText.stdout.contains("evaluated 2 time(s)"))
    }

    private func e2Metrics(_ e2: [String: Any]) -> [String: Double]? {
        ((e2["models"] as? [String: Any])?["adapter"] as? [String: Any])?["metrics"] as? [String: Double]
    }
}
