import CorpusDB
import Foundation
import TestSupport
import Testing

/// `corpus eval --reward` and the preference comparison of pairs, end to end with the real
/// SmolLM2 (short answers: --max-new-tokens 2-4).
@Suite("corpus eval: rewards and preference accuracy", .serialized)
struct EvalRewardTests {
    /// Usage errors are refused before anything is loaded (exit 64).
    @Test func rewardOptionsAreChecked() throws {
        let (db, _) = try TrainTests.snapshotStore()
        let common = ["eval", "demo", "--model", "/nonexistent/model.gguf", "--db", db]
        for (extra, message) in [
            (["--reward", "bogus:x"], "unknown kind 'bogus'"),
            (["--reward", "length:5"], "write length:MIN-MAX"),
            (["--reward", "regex:("], "does not compile"),
            (["--reward", "regex:.", "--reward-weights", "1,2"], "--reward-weights has 2 numbers for 1 rewards"),
            (["--reward", "regex:.", "--reward-weights", "x"], "'x' is not a number"),
            (["--reward-weights", "1"], "--reward-weights needs --reward"),
            (["--reward", "regex:.", "--reward-timeout", "0"], "--reward-timeout must be a positive number"),
            (["--reward", "regex:.", "--fail-under", "reward.length=1"], "unknown metric 'reward.length'"),
            (["--fail-under", "reward=1"], "reward and reward.NAME need --reward"),
        ] {
            let r = try TestSupport.run(common + extra)
            #expect(r.status == 64, "\(extra): \(r.stderr)")
            #expect(r.stderr.contains(message), "\(extra): \(r.stderr)")
        }
    }

    @Test(.needsTestModel) func rewardsScoreEveryAnswer() throws {
        let model = try TestInputs.model()
        let (db, dir) = try TrainTests.snapshotStore()   // demo@1: 4 eval items, no pairs
        let constant = try TestSupport.write("while IFS= read -r line; do echo 0.25; done\n", to: "constant.sh", in: dir)
        let letters = try TestSupport.write("while IFS= read -r line; do echo abc; done\n", to: "letters.sh", in: dir)
        let sleeper = try TestSupport.write("sleep 5\n", to: "sleeper.sh", in: dir)
        let common = ["eval", "demo", "--model", model, "--db", db, "--max-new-tokens", "4", "--max-len", "128", "--limit", "3"]
        let page = dir.appendingPathComponent("rewards.html").path

        // Three rewards with weights 2, 1 and 0.5, and a gate the constant program misses:
        // stored and printed, then exit 7.
        let scored = try TestSupport.run(common + ["--reward", "length:0-100000", "--reward", "regex:.", "--reward", "cmd:sh \(constant)",
                                                   "--reward-weights", "2,1,0.5", "--fail-under", "reward.length=1,reward.cmd=0.3",
                                                   "--html", page, "--json"])
        #expect(scored.status == 7, "\(scored.stderr)")
        #expect(scored.stderr.contains("reward.cmd 0.2500 is below the threshold 0.3"), "\(scored.stderr)")
        let e = try #require(scored.json() as? [String: Any])
        let metrics = try #require(((e["models"] as? [String: Any])?["base"] as? [String: Any])?["metrics"] as? [String: Double])
        let results = try #require(e["results"] as? [[String: Any]])
        #expect(results.count == 3)
        let predictions = results.map { ($0["base"] as? [String: Any])?["prediction"] as? String ?? "" }
        let nonEmpty = Double(predictions.filter { !$0.isEmpty }.count) / 3
        #expect(metrics["reward.length"] == 1.0)
        #expect(metrics["reward.regex"] == nonEmpty)
        #expect(metrics["reward.cmd"] == 0.25)
        #expect(abs((metrics["reward"] ?? 0) - (2 + nonEmpty + 0.125)) < 1e-12)
        #expect(metrics["preference_accuracy"] == nil)
        #expect(e["preference"] == nil)
        for (r, prediction) in zip(results, predictions) {
            let base = try #require(r["base"] as? [String: Any])
            let rewards = try #require(base["rewards"] as? [String: Double])
            #expect(rewards == ["length": 1, "regex": prediction.isEmpty ? 0 : 1, "cmd": 0.25])
            #expect(base["reward"] as? Double == 2 + (prediction.isEmpty ? 0 : 1) + 0.125)
            #expect(base["logp_chosen"] == nil)
        }
        let config = try #require(e["config"] as? [String: Any])
        #expect((config["rewards"] as? [[String: Any]])?.map { $0["name"] as? String } == ["length", "regex", "cmd"])
        #expect((config["rewards"] as? [[String: Any]])?.map { $0["spec"] as? String } == ["length:0-100000", "regex:.", "cmd:sh \(constant)"])
        #expect(config["reward_timeout"] as? Double == 60)
        #expect((e["thresholds"] as? [String: Any])?["failures"] as? [String] == ["reward.cmd 0.2500 is below the threshold 0.3"])
        let html = try String(contentsOfFile: page, encoding: .utf8)
        #expect(html.contains("Reward cmd") && html.contains("Total reward") && html.contains("2 × length + 1 × regex + 0.5 × cmd"))
        #expect(!html.contains("<script"))

        // The store keeps each answer's rewards; evals show prints them.
        let id = try #require(e["id"] as? Int)
        let store = try CorpusStore(path: db)
        let items = try store.evalItems(evalId: Int64(id))
        #expect(items.map { $0.rewards?["cmd"] } == [0.25, 0.25, 0.25])
        #expect(items.map(\.reward) == results.map { ($0["base"] as? [String: Any])?["reward"] as? Double })
        let shown = try TestSupport.run(["evals", "show", "\(id)", "--db", db])
        #expect(shown.stdout.contains("reward.cmd") && shown.stdout.contains("base reward"), "\(shown.stdout)")
        #expect(shown.stdout.contains("rewards (mean per answer; reward = Σ weight · score): length = length:0-100000 ×2, regex = regex:. ×1, cmd = cmd:sh \(constant) ×0.5"))
        let shownJSON = try #require(try TestSupport.run(["evals", "show", "\(id)", "--db", db, "--json"]).json() as? [String: Any])
        let shownItems = try #require(shownJSON["results"] as? [[String: Any]])
        #expect(shownItems.map { (($0["base"] as? [String: Any])?["rewards"] as? [String: Double])?["cmd"] } == [0.25, 0.25, 0.25])

        // Refused before any answer is generated, nothing stored: an extract: pattern that no
        // reference matches names the first record; a preference gate on a split without pairs.
        let firstRecord = try #require(results.first?["record_id"] as? Int)
        let extract = try TestSupport.run(common + ["--reward", #"extract:答案[:：]\s*(\d+)"#])
        #expect(extract.status == 3)
        #expect(extract.stderr.contains("the reference answer of record \(firstRecord) has no match of the pattern"), "\(extract.stderr)")
        #expect(!extract.stderr.contains("base: loss"))
        let noPairs = try TestSupport.run(common + ["--fail-under", "preference_accuracy=0.5"])
        #expect(noPairs.status == 3)
        #expect(noPairs.stderr.contains("no preference pair to compare"), "\(noPairs.stderr)")

        // A program that prints something else than numbers, and one that outlives
        // --reward-timeout: exit 3 naming the program, nothing stored.
        let bad = try TestSupport.run(common + ["--reward", "cmd:sh \(letters)"])
        #expect(bad.status == 3)
        #expect(bad.stderr.contains("reward program 'sh \(letters)': line 1 of its output is 'abc', not a number"), "\(bad.stderr)")
        let slow = try TestSupport.run(common + ["--reward", "cmd:sh \(sleeper)", "--reward-timeout", "1"])
        #expect(slow.status == 3)
        #expect(slow.stderr.contains("reward program 'sh \(sleeper)': did not finish within 1 s"), "\(slow.stderr)")
        #expect(try store.evals().map(\.id) == [Int64(id)])
    }

    /// The pairs of `PreferenceTests` and one whose rejected answer is longer than 128 tokens.
    static let longRejectedQuestion = "How many steps does the procedure have?"
    static var pairsWithLongRejected: String {
        let long = (1...150).map { "step\($0)" }.joined(separator: " ")
        return PreferenceTests.pairsJSONL
            + #"{"conversations":[{"from":"human","value":"\#(longRejectedQuestion)"}],"chosen":{"from":"gpt","value":"Three steps."},"rejected":{"from":"gpt","value":"\#(long)"}}"#
            + "\n"
    }

    /// A copy of a PEFT adapter folder with every lora_B tensor set to zero: the base model.
    static func zeroingB(_ adapter: String, into folder: URL) throws -> String {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: adapter + "/adapter_config.json", toPath: folder.appendingPathComponent("adapter_config.json").path)
        var data = try Data(contentsOf: URL(fileURLWithPath: adapter + "/adapter_model.safetensors"))
        let n = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        let header = try #require(try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any])
        var zeroed = 0
        for (name, value) in header where name.contains("lora_B") {
            let offsets = try #require((value as? [String: Any])?["data_offsets"] as? [Int])
            data.replaceSubrange((8 + n + offsets[0])..<(8 + n + offsets[1]), with: Data(count: offsets[1] - offsets[0]))
            zeroed += 1
        }
        #expect(zeroed > 0)
        try data.write(to: folder.appendingPathComponent("adapter_model.safetensors"))
        return folder.path
    }

    @Test(.needsTestModel) func preferenceAccuracyOnPairs() throws {
        let model = try TestInputs.model()
        let dir = try TestSupport.temporaryDirectory("corpus-eval-pairs")
        let db = dir.appendingPathComponent("corpus.db").path
        let file = try TestSupport.write(Self.pairsWithLongRejected, to: "pairs.jsonl", in: dir)
        #expect(try TestSupport.run(["init", "--db", db]).status == 0)
        let ingest = try TestSupport.run(["ingest", file, "--db", db])
        #expect(ingest.stdout.contains("13 rows → 11 records, 2 rejects"), "\(ingest.stdout)")
        #expect(try TestSupport.run(["check", "--db", db]).status == 0)
        // Every record in the train split: DPO trains on it and eval --split train compares all 11.
        let snapshot = try TestSupport.run(["snapshot", "create", "all", "--eval-ratio", "0", "--db", db, "--json"])
        #expect(snapshot.status == 0, "\(snapshot.stderr)")
        let dpo = dir.appendingPathComponent("dpo").path
        let train = try TestSupport.run(["train", "all", "--model", model, "--db", db, "--method", "dpo", "--max-steps", "1", "--batch-tokens", "512",
                                         "--max-len", "128", "--rank", "4", "--alpha", "8", "--lr", "1e-3", "--out", dpo])
        #expect(train.status == 0, "\(train.stderr)")
        let zero = try Self.zeroingB(dpo, into: dir.appendingPathComponent("zero"))
        let common = ["eval", "all", "--split", "train", "--model", model, "--db", db, "--max-new-tokens", "2", "--max-len", "128"]

        // The adapter with B = 0 is the base model: the same log-probabilities, so the same accuracy.
        let same = try TestSupport.run(common + ["--adapter", zero, "--json", "--html", dir.appendingPathComponent("pairs.html").path])
        #expect(same.status == 0, "\(same.stderr)")
        let e = try #require(same.json() as? [String: Any])
        #expect(e["items"] as? Int == 11)
        let results = try #require(e["results"] as? [[String: Any]])
        // A pair's item: its prompt, the chosen answer as the reference.
        let rows = try Self.pairsWithLongRejected.split(separator: "\n").map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        var chosenByQuestion: [String: String] = [:]
        for row in rows {
            guard let turns = row["conversations"] as? [[String: String]], let question = turns.last?["value"],
                  let chosen = (row["chosen"] as? [String: String])?["value"], row["rejected"] != nil else { continue }
            chosenByQuestion[question] = chosen
        }
        for r in results {
            #expect(chosenByQuestion[r["prompt"] as? String ?? ""] == r["reference"] as? String, "\(r)")
        }
        let long = try #require(results.first { $0["prompt"] as? String == Self.longRejectedQuestion })
        let longId = try #require(long["record_id"] as? Int)
        #expect((long["base"] as? [String: Any])?["logp_chosen"] == nil)

        // 10 pairs compared; the one whose rejected answer passes --max-len is left out, named.
        let preference = try #require(e["preference"] as? [String: Any])
        #expect(preference["pairs"] as? Int == 10)
        let leftOut = try #require(preference["left_out"] as? [[String: Any]])
        #expect(leftOut.count == 1 && leftOut.first?["record_id"] as? Int == longId)
        #expect((leftOut.first?["reason"] as? String)?.contains("--max-len 128") == true)
        let models = try #require(e["models"] as? [String: Any])
        let base = try #require((models["base"] as? [String: Any])?["metrics"] as? [String: Double])
        let adapter = try #require((models["adapter"] as? [String: Any])?["metrics"] as? [String: Double])
        let accuracy = try #require(base["preference_accuracy"])
        // A share of 10 pairs, and exactly the share of the listed log-probabilities.
        #expect(abs(accuracy * 10 - (accuracy * 10).rounded()) < 1e-12 && (0...1).contains(accuracy))
        let logps = results.compactMap { r -> (Double, Double)? in
            guard let b = r["base"] as? [String: Any], let c = b["logp_chosen"] as? Double, let j = b["logp_rejected"] as? Double else { return nil }
            return (c, j)
        }
        #expect(logps.count == 10)
        #expect(accuracy == Double(logps.filter { $0.0 > $0.1 }.count) / 10)
        #expect(abs((base["preference_margin"] ?? 0) - logps.map { $0.0 - $0.1 }.reduce(0, +) / 10) < 1e-9)
        #expect(logps.allSatisfy { $0.0 < 0 && $0.1 < 0 })
        #expect(adapter["preference_accuracy"] == accuracy)
        #expect(abs((adapter["preference_margin"] ?? 0) - (base["preference_margin"] ?? 0)) < 1e-9)
        for r in results {
            let b = r["base"] as? [String: Any], a = r["adapter"] as? [String: Any]
            #expect(abs((b?["logp_chosen"] as? Double ?? 0) - (a?["logp_chosen"] as? Double ?? 0)) < 1e-9)
            #expect(b?["prediction"] as? String == a?["prediction"] as? String)
        }
        #expect(((e["deltas"] as? [String: Any])?["preference_accuracy"] as? [String: Any])?["delta"] as? Double == 0)
        let html = try String(contentsOfFile: dir.appendingPathComponent("pairs.html").path, encoding: .utf8)
        #expect(html.contains("Preference accuracy") && html.contains("On 10 preference pairs"))
        #expect(html.contains("Rejected answer") && html.contains("answer more likely"))

        // Stored: both sides' log-probabilities of every compared pair, and the counts.
        let id = try #require(e["id"] as? Int)
        let store = try CorpusStore(path: db)
        let items = try store.evalItems(evalId: Int64(id))
        #expect(items.filter { $0.logpChosen != nil && $0.logpRejected != nil }.count == 20)
        #expect(items.filter { $0.recordId == Int64(longId) }.allSatisfy { $0.logpChosen == nil })
        let shown = try #require(try TestSupport.run(["evals", "show", "\(id)", "--db", db, "--json"]).json() as? [String: Any])
        #expect((shown["preference"] as? [String: Any])?["pairs"] as? Int == 10)
        let text = try TestSupport.run(["evals", "show", "\(id)", "--db", db])
        #expect(text.stdout.contains("preference_accuracy") && text.stdout.contains("preference pairs: 10 compared"), "\(text.stdout)")
        #expect(text.stdout.contains("1 left out"))

        // The trained DPO adapter on the first 3 items, with a preference gate no model can pass.
        let trained = try TestSupport.run(common + ["--adapter", dpo, "--limit", "3", "--fail-under", "preference_accuracy=1.01", "--json"])
        #expect(trained.status == 7, "\(trained.stderr)")
        #expect(trained.stderr.contains("preference_accuracy"))
        let t = try #require(trained.json() as? [String: Any])
        let pairs = try #require((t["preference"] as? [String: Any])?["pairs"] as? Int)
        #expect(pairs + ((t["preference"] as? [String: Any])?["left_out"] as? [Any] ?? []).count == 3)
        let tuned = try #require(((t["models"] as? [String: Any])?["adapter"] as? [String: Any])?["metrics"] as? [String: Double])
        let share = try #require(tuned["preference_accuracy"]) * Double(pairs)
        #expect(abs(share - share.rounded()) < 1e-12)
        #expect(tuned["preference_margin"] != (((t["models"] as? [String: Any])?["base"] as? [String: Any])?["metrics"] as? [String: Double])?["preference_margin"])
    }
}
