import CorpusDB
import Foundation
import Testing
import TestSupport

/// `corpus serve` against the store: an adapter named by its training run, `--log-requests`
/// (redacted rows in `served_requests`), and `corpus lineage adapter` counting them.
@Suite("corpus serve and the store", .serialized)
struct ServeLogTests {
    @Test(.needsTestModel) func anAdapterByRunIdLogsRedactedRequestsThatLineageCounts() async throws {
        let model = try TestInputs.model()
        let (db, dir) = try TrainTests.snapshotStore()
        let out = dir.appendingPathComponent("adapter").path
        let trained = try TestSupport.run(["train", "demo", "--model", model, "--db", db, "--max-steps", "1", "--batch-tokens", "256",
                                           "--max-len", "128", "--eval-every", "0", "--out", out])
        #expect(trained.status == 0, "\(trained.stderr)")
        let sha = try TestSupport.shell("sha256sum '\(out)/adapter_model.safetensors' | cut -d' ' -f1")

        // Without --log-requests nothing is kept.
        let quiet = try ServerProcess(["--model", model, "--name", "smol", "--adapter", "med=1", "--db", db])
        #expect(try await quiet.send("POST", "/v1/chat/completions", json: Self.chat("med", "Hi")).status == 200)
        #expect(quiet.stop() == 0)
        #expect(try CorpusStore(path: db).servedRequests().isEmpty)

        let server = try ServerProcess(["--model", model, "--name", "smol", "--adapter", "med=1", "--db", db, "--log-requests"])
        let models = try await server.send("GET", "/v1/models").json()["data"] as? [[String: Any]]
        #expect(models?.last?["sha256"] as? String == sha)
        #expect(models?.last?["run_id"] as? String == "1")
        let question = "My phone is 13812345678 and my mail is li.lei@example.com; what should I do about a cough?"
        let reply = try await server.send("POST", "/v1/chat/completions", json: Self.chat("med", question))
        #expect(reply.status == 200, "\(reply.text)")
        #expect(reply.header("x-corpus-adapter-sha256") == sha)
        #expect(reply.header("x-corpus-adapter-run-id") == "1")
        #expect(try await server.send("POST", "/v1/chat/completions", json: Self.chat("smol", "Hello")).status == 200)
        #expect(try await server.send("POST", "/v1/chat/completions", json: Self.chat("nope", "Hello")).status == 404)
        #expect(server.stop() == 0)

        let rows = try CorpusStore(path: db).servedRequests()
        #expect(rows.count == 2, "one row per request that reached the decoder")
        let logged = try #require(rows.first)
        #expect(logged.modelName == "med")
        #expect(logged.adapterSHA256 == sha)
        #expect(logged.adapterRun == "1")
        #expect(logged.modelSHA256 == (try TestSupport.shell("sha256sum '\(model)' | cut -d' ' -f1")))
        #expect(logged.prompt.contains("My phone is [手机号] and my mail is [邮箱]; what should I do about a cough?"))
        #expect(!logged.prompt.contains("13812345678") && !logged.prompt.contains("li.lei@example.com"))
        #expect(logged.redactions >= 2)
        #expect(logged.endpoint == "chat" && logged.outcome == "length" && !logged.stream)
        #expect(logged.completionTokens == 8)
        #expect(logged.promptTokens > 20)
        #expect(rows[1].adapterSHA256 == nil && rows[1].modelName == "smol")

        let lineage = try TestSupport.run(["lineage", "adapter", sha, "--db", db, "--json"])
        #expect(lineage.status == 0, "\(lineage.stderr)")
        #expect((try lineage.json() as? [String: Any])?["served_requests"] as? Int == 1)
        let text = try TestSupport.run(["lineage", "adapter", "1", "--db", db])
        #expect(text.stdout.contains("answered 1 request(s) logged by `corpus serve --log-requests`"), "\(text.stdout)")

        // LLaMA-Factory's YAML with this run's settings (the run's base is a GGUF file, so the
        // model is left for the user to fill in with a Hugging Face folder).
        let exported = try TestSupport.run(["snapshot", "export", "demo", "--format", "sharegpt", "--out", dir.appendingPathComponent("lf").path,
                                            "--llamafactory", "--like-run", "1", "--db", db, "--json"])
        #expect(exported.status == 0, "\(exported.stderr)")
        let yamlPath = try #require((try exported.json() as? [String: Any])?["llamafactory_yaml"] as? String)
        let yaml = try String(contentsOfFile: yamlPath, encoding: .utf8)
        for line in ["max_steps: 1", "cutoff_len: 128", "gradient_accumulation_steps: 2", "lora_rank: 16", "lora_alpha: 32",
                     "dataset: demo_1_train", "eval_dataset: demo_1_eval", "template: smollm2", "do_eval: true", "model_name_or_path: REPLACE_WITH_A_HUGGING_FACE_FOLDER"] {
            #expect(yaml.contains("\n" + line), "\(line) in \(yaml)")
        }

        // A run that does not exist is refused before serving, naming it.
        let missing = try TestSupport.run(["serve", "--model", model, "--adapter", "x=9", "--db", db, "--port", "0"])
        #expect(missing.status == 3)
        #expect(missing.stderr.contains("9: neither an adapter folder nor a training run or adapter in"), "\(missing.stderr)")
    }

    static func chat(_ model: String, _ content: String) -> [String: Any] {
        ["model": model, "messages": [["role": "user", "content": content]], "temperature": 0, "max_tokens": 8]
    }
}
