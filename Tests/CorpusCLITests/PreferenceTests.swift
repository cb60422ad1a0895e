import CorpusDB
import Foundation
import TestSupport
import Testing

/// Preference pairs end to end: ingest (with its rejects), snapshot, ranking exports for
/// LLaMA-Factory, `corpus train --method dpo` on the real SmolLM2, its metrics and lineage.
@Suite("preference pairs and DPO", .serialized)
struct PreferenceTests {
    /// Ten usable pairs (Chinese and English, one multi-turn) and two rows that are rejects.
    static let pairsJSONL = [
        #"{"conversations":[{"from":"human","value":"高血压患者能吃党参吗？"}],"chosen":{"from":"gpt","value":"可以少量食用，但应先咨询医生。"},"rejected":{"from":"gpt","value":"随便吃。"}}"#,
        #"{"conversations":[{"from":"human","value":"布洛芬成人一次吃多少？"}],"chosen":{"from":"gpt","value":"一般一次200到400毫克，按说明书服用。"},"rejected":{"from":"gpt","value":"越多越好。"}}"#,
        #"{"conversations":[{"from":"human","value":"感冒需要吃抗生素吗？"}],"chosen":{"from":"gpt","value":"普通感冒多由病毒引起，一般不需要抗生素。"},"rejected":{"from":"gpt","value":"需要，每次感冒都吃。"}}"#,
        #"{"conversations":[{"from":"human","value":"What is the normal resting heart rate for adults?"}],"chosen":{"from":"gpt","value":"Usually 60 to 100 beats per minute."},"rejected":{"from":"gpt","value":"Around 20 beats per minute."}}"#,
        #"{"conversations":[{"from":"human","value":"Can I drink alcohol with metronidazole?"}],"chosen":{"from":"gpt","value":"No. Avoid alcohol during treatment and for 48 hours after."},"rejected":{"from":"gpt","value":"Yes, it is fine."}}"#,
        #"{"conversations":[{"from":"human","value":"劳动合同试用期最长多久？"}],"chosen":{"from":"gpt","value":"最长不得超过六个月。"},"rejected":{"from":"gpt","value":"两年。"}}"#,
        #"{"conversations":[{"from":"human","value":"借条没有写利息，可以要利息吗？"}],"chosen":{"from":"gpt","value":"借贷双方没有约定利息的，视为没有利息。"},"rejected":{"from":"gpt","value":"可以按年利率百分之三十主张。"}}"#,
        #"{"conversations":[{"from":"human","value":"How long should I wash my hands?"}],"chosen":{"from":"gpt","value":"At least 20 seconds with soap and water."},"rejected":{"from":"gpt","value":"Two seconds is enough."}}"#,
        #"{"conversations":[{"from":"human","value":"什么是高血压？"},{"from":"gpt","value":"血压持续高于正常。"},{"from":"human","value":"诊断标准是多少？"}],"chosen":{"from":"gpt","value":"收缩压≥140或舒张压≥90毫米汞柱。"},"rejected":{"from":"gpt","value":"高于100就是。"}}"#,
        #"{"system":"你是法律助手","conversations":[{"from":"human","value":"交通事故责任认定书不服怎么办？"}],"chosen":{"from":"gpt","value":"可在收到后三日内向上一级公安机关交通管理部门申请复核。"},"rejected":{"from":"gpt","value":"只能接受。"}}"#,
        #"{"conversations":[{"from":"human","value":"缺少拒绝答案"}],"chosen":{"from":"gpt","value":"有选择答案"}}"#,
        #"{"conversations":[{"from":"human","value":"相同答案"}],"chosen":{"from":"gpt","value":"一样"},"rejected":{"from":"gpt","value":"一样"}}"#,
    ].joined(separator: "\n") + "\n"

    /// A store with the pairs ingested, checked and frozen as `pairs@1`.
    static func pairStore() throws -> (db: String, dir: URL) {
        let dir = try TestSupport.temporaryDirectory("corpus-pairs")
        let db = dir.appendingPathComponent("corpus.db").path
        let file = try TestSupport.write(pairsJSONL, to: "pairs.jsonl", in: dir)
        #expect(try TestSupport.run(["init", "--db", db]).status == 0)
        let ingest = try TestSupport.run(["ingest", file, "--db", db])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        #expect(ingest.stdout.contains("12 rows → 10 records, 2 rejects"), "\(ingest.stdout)")
        let rejects = try TestSupport.run(["rejects", "--db", db, "--json"])
        let reasons = (try rejects.json() as? [[String: Any]] ?? []).compactMap { $0["reason"] as? String }.sorted()
        #expect(reasons == ["identical_pair", "missing_field"])
        #expect(try TestSupport.run(["check", "--db", db]).status == 0)
        let snapshot = try TestSupport.run(["snapshot", "create", "pairs", "--eval-ratio", "0.2", "--db", db, "--json"])
        #expect(snapshot.status == 0, "\(snapshot.stderr)")
        return (db, dir)
    }

    @Test func rankingExportsForLLaMAFactory() throws {
        let (db, dir) = try Self.pairStore()
        let out = dir.appendingPathComponent("sharegpt")
        let export = try TestSupport.run(["snapshot", "export", "pairs", "--format", "sharegpt", "--split", "all", "--out", out.path, "--db", db])
        #expect(export.status == 0, "\(export.stderr)")
        let lines = try String(contentsOf: out.appendingPathComponent("train.jsonl"), encoding: .utf8).split(separator: "\n")
            + String(contentsOf: out.appendingPathComponent("eval.jsonl"), encoding: .utf8).split(separator: "\n")
        let rows = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        #expect(rows.count == 10)
        for row in rows {
            let turns = try #require(row["conversations"] as? [[String: String]])
            #expect(turns.last?["from"] == "human")
            #expect((row["chosen"] as? [String: String])?["from"] == "gpt" && (row["rejected"] as? [String: String])?["from"] == "gpt")
            #expect(row["system"] is String && (row["content_hash"] as? String)?.count == 64)
        }
        let multi = try #require(rows.first { ($0["conversations"] as? [[String: String]])?.count == 3 })
        #expect((multi["chosen"] as? [String: String])?["value"] == "收缩压≥140或舒张压≥90毫米汞柱。")
        let info = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("dataset_info.json"))) as? [String: [String: Any]])
        let train = try #require(info["pairs_1_train"])
        #expect(train["ranking"] as? Bool == true && train["formatting"] as? String == "sharegpt")
        #expect(train["columns"] as? [String: String] == ["messages": "conversations", "chosen": "chosen", "rejected": "rejected", "system": "system"])

        let alpacaDir = dir.appendingPathComponent("alpaca")
        #expect(try TestSupport.run(["snapshot", "export", "pairs", "--format", "alpaca", "--split", "all", "--out", alpacaDir.path, "--db", db]).status == 0)
        let alpaca = try String(contentsOf: alpacaDir.appendingPathComponent("train.jsonl"), encoding: .utf8)
            + String(contentsOf: alpacaDir.appendingPathComponent("eval.jsonl"), encoding: .utf8)
        #expect(alpaca.contains(#""instruction":"劳动合同试用期最长多久？","input":"","chosen":"最长不得超过六个月。","rejected":"两年。","system":"","history":[]"#))
        let alpacaInfo = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: alpacaDir.appendingPathComponent("dataset_info.json"))) as? [String: [String: Any]])
        #expect(alpacaInfo["pairs_1_eval"]?["columns"] as? [String: String]
                == ["prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected", "system": "system", "history": "history"])
        let manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: alpacaDir.appendingPathComponent("manifest.json"))) as? [String: Any])
        #expect(manifest["ranking"] as? Bool == true)
    }

    @Test(.needsTestModel) func dpoTrainsFromLn2WithLineage() throws {
        let model = try TestInputs.model()
        let (db, dir) = try Self.pairStore()
        let out = dir.appendingPathComponent("dpo").path
        let train = try TestSupport.run(["train", "pairs", "--model", model, "--db", db, "--method", "dpo", "--max-steps", "2", "--batch-tokens", "512",
                                         "--max-len", "128", "--rank", "4", "--alpha", "8", "--lr", "1e-3", "--out", out, "--json"])
        #expect(train.status == 0, "\(train.stderr)")
        #expect(train.stderr.contains("eval loss before training: 0.6931"))
        let run = try #require(try train.json() as? [String: Any])
        #expect(run["status"] as? String == "finished" && run["steps"] as? Int == 2)
        let id = try #require(run["id"] as? Int)
        let shown = try #require(try TestSupport.run(["runs", "show", "\(id)", "--db", db, "--json"]).json() as? [String: Any])
        #expect((shown["config"] as? [String: Any])?["method"] as? String == "dpo")
        let curve = try #require(shown["loss_curve"] as? [[String: Any]])
        #expect(curve.count == 2)
        // Step 1: the fresh adapter is the reference, so the loss is ln 2 and no pair is preferred yet
        // (stored exactly: `corpus runs show --json` prints 0.6931471805599453; Foundation's JSON
        // reader on Linux may land one ulp away).
        #expect(abs(try #require(curve[0]["loss"] as? Double) - log(2.0)) < 1e-15)
        let metrics = try #require(curve[0]["metrics"] as? [String: Double])
        #expect(metrics["rewards/margins"] == 0 && metrics["rewards/accuracies"] == 0)
        #expect(Set(metrics.keys) == ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"])
        #expect((curve[1]["metrics"] as? [String: Double])?["eval/rewards/accuracies"] != nil)

        let lineage = try TestSupport.run(["lineage", "adapter", out, "--db", db])
        #expect(lineage.stdout.contains("method dpo (beta 0.1), reference: the base model (adapter switched off)"), "\(lineage.stdout)")
        let lineageJSON = try #require(try TestSupport.run(["lineage", "adapter", out, "--db", db, "--json"]).json() as? [String: Any])
        #expect(lineageJSON["training"] as? NSDictionary == ["method": "dpo", "beta": 0.1, "reference": "base"] as NSDictionary)

        // DPO on top of the adapter: the starting adapter is the frozen reference, again ln 2 at step 1.
        let second = try TestSupport.run(["train", "pairs", "--model", model, "--db", db, "--method", "dpo", "--max-steps", "1", "--batch-tokens", "512",
                                          "--max-len", "128", "--rank", "4", "--alpha", "8", "--init-adapter", out,
                                          "--out", dir.appendingPathComponent("dpo2").path, "--json"])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stderr.contains("eval loss before training: 0.6931"))
        let secondLineage = try TestSupport.run(["lineage", "adapter", dir.appendingPathComponent("dpo2").path, "--db", db])
        #expect(secondLineage.stdout.contains("reference: the starting adapter \(try #require(run["adapter_sha256"] as? String)) (run \(id)), frozen"))

        // A starting adapter of another scale is refused before anything is recorded.
        let misfit = try TestSupport.run(["train", "pairs", "--model", model, "--db", db, "--method", "dpo", "--max-steps", "1", "--max-len", "128",
                                          "--rank", "4", "--alpha", "16", "--init-adapter", out, "--out", dir.appendingPathComponent("dpo3").path])
        #expect(misfit.status == 3 && misfit.stderr.contains("--init-adapter has rank 4, alpha 8.0 and targets"), "\(misfit.stderr)")

        // Supervised training on pairs learns the chosen answers, and says so.
        let sft = try TestSupport.run(["train", "pairs", "--model", model, "--db", db, "--max-steps", "1", "--batch-tokens", "512", "--max-len", "128",
                                       "--rank", "4", "--out", dir.appendingPathComponent("sft").path])
        #expect(sft.status == 0, "\(sft.stderr)")
        #expect(sft.stderr.contains("8 of the train records are preference pairs: supervised training learns their chosen answers"), "\(sft.stderr)")
    }

    @Test(.needsTestModel) func dpoWithoutPairsIsRefused() throws {
        let model = try TestInputs.model()
        let (db, _) = try TestSupport.exampleStore()
        #expect(try TestSupport.run(["snapshot", "create", "demo", "--db", db]).status == 0)
        let result = try TestSupport.run(["train", "demo", "--model", model, "--db", db, "--method", "dpo", "--max-steps", "1"])
        #expect(result.status == 3)
        #expect(result.stderr.contains("has no preference pairs in its train split"), "\(result.stderr)")
        let runs = try TestSupport.run(["runs", "list", "--db", db, "--json"])
        #expect((try runs.json() as? [Any])?.isEmpty == true)
        let beta = try TestSupport.run(["train", "demo", "--model", model, "--db", db, "--beta", "0.2"])
        #expect(beta.status == 64 && beta.stderr.contains("--beta belongs to --method dpo"))
    }
}
