import Foundation
import Testing
import TestSupport

/// `corpus serve` on the real test model (SmolLM2-135M-Instruct Q4_1): the reference answer,
/// non-streamed and streamed, and a batch of requests each equal to its answer alone.
@Suite("corpus serve with the test model", .serialized)
struct ServerModelTests {
    static let question = "What is the capital of France?"

    static func chat(_ content: String, maxTokens: Int = 32, stream: Bool = false) -> [String: Any] {
        ["model": "smol", "messages": [["role": "user", "content": content]], "temperature": 0, "max_tokens": maxTokens, "stream": stream]
    }

    @Test(.needsTestModel) func theReferenceAnswerWithItsStopAndUsage() async throws {
        let server = try ServerProcess(["--model", try TestInputs.model(), "--name", "smol"])
        let reply = try await server.send("POST", "/v1/chat/completions", json: Self.chat(Self.question))
        #expect(reply.status == 200, "\(reply.text)")
        let json = try reply.json()
        let choice = try #require((json["choices"] as? [[String: Any]])?.first)
        #expect((choice["message"] as? [String: Any])?["content"] as? String == "The capital of France is Paris.")
        #expect(choice["finish_reason"] as? String == "stop")
        let usage = try #require(json["usage"] as? [String: Any])
        // `corpus generate`'s ids for this question: [504, 3575, 282, 4649, 314, 7042, 30, 2] after 37 prompt tokens.
        #expect(usage["prompt_tokens"] as? Int == 37)
        #expect(usage["completion_tokens"] as? Int == 8)

        let streamed = try await server.send("POST", "/v1/chat/completions", json: Self.chat(Self.question, stream: true))
        #expect(streamed.events.last == "[DONE]")
        let choices = streamed.events.dropLast().compactMap { event -> [String: Any]? in
            ((try? JSONSerialization.jsonObject(with: Data(event.utf8)) as? [String: Any])?["choices"] as? [[String: Any]])?.first
        }
        #expect(choices.compactMap { ($0["delta"] as? [String: Any])?["content"] as? String }.joined() == "The capital of France is Paris.")
        #expect(choices.last?["finish_reason"] as? String == "stop")

        // A stop string ends the answer before it.
        var stopped = Self.chat(Self.question)
        stopped["stop"] = [" Paris"]
        let cut = try await server.send("POST", "/v1/chat/completions", json: stopped)
        let cutChoice = try #require((try cut.json()["choices"] as? [[String: Any]])?.first)
        #expect((cutChoice["message"] as? [String: Any])?["content"] as? String == "The capital of France is")
        #expect(cutChoice["finish_reason"] as? String == "stop")
        #expect(server.stop() == 0)
    }

    /// A LoRA adapter for SmolLM2 written by the test: q_proj and v_proj of every layer, rank 4,
    /// small deterministic values (enough to change answers, not to wreck them).
    static func adapter(in dir: URL) throws -> String {
        let folder = dir.appendingPathComponent("adapter")
        try TestSupport.write(#"{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"], "bias": "none"}"#,
                              to: "adapter_config.json", in: folder)
        var tensors: [(name: String, shape: [Int])] = []
        for l in 0..<30 {
            let p = "base_model.model.model.layers.\(l).self_attn."
            tensors += [(p + "q_proj.lora_A.weight", [4, 576]), (p + "q_proj.lora_B.weight", [576, 4]),
                        (p + "v_proj.lora_A.weight", [4, 576]), (p + "v_proj.lora_B.weight", [192, 4])]
        }
        try TestSupport.write(TinyModel.safetensors(tensors, scale: 0.01), to: "adapter_model.safetensors", in: folder)
        return folder.path
    }

    /// Eight requests at once, four for the base model and four for an adapter, are decoded in
    /// one batch (one forward pass per step for both); each answer equals `corpus generate`'s for
    /// that question alone, with or without the adapter.
    @Test(.needsTestModel) func aBatchOfRequestsEqualsTheirAnswersAlone() async throws {
        let model = try TestInputs.model()
        let adapter = try Self.adapter(in: try TestSupport.temporaryDirectory("serve-smol"))
        let questions = [Self.question, "Name a primary color.", "What is 2 + 2?", "Say hello."]
        var expected: [String: String] = [:]
        var requests: [(key: String, model: String, content: String, maxTokens: Int)] = []
        for q in questions {
            for (name, extra) in [("smol", [String]()), ("med", ["--adapter", adapter])] {
                let result = try TestSupport.run(["generate", "--model", model, "--max-tokens", "24", "--json"] + extra + [q])
                expected[name + " " + q] = (try result.json() as? [String: Any])?["text"] as? String
                requests.append((name + " " + q, name, q, 24))
            }
        }
        #expect(questions.contains { expected["smol " + $0] != expected["med " + $0] }, "the adapter changes some answer")
        let server = try ServerProcess(["--model", model, "--name", "smol", "--adapter", "med=\(adapter)"])
        let answers = try await server.concurrentChats(requests)
        for r in requests { #expect(answers[r.key] == expected[r.key], "\(r.key)") }
        #expect(server.stop() == 0)
    }

    /// --prefill-chunk 16: the 37-token prompt enters over three steps (16, 16, 5 tokens) while
    /// another answer streams, and the answers are still the reference ones.
    @Test(.needsTestModel) func aPromptLongerThanTheChunkIsPrefilledInPieces() async throws {
        let server = try ServerProcess(["--model", try TestInputs.model(), "--name", "smol", "--prefill-chunk", "16"])
        let stream = try RawConnection(port: server.port, "POST", "/v1/completions", json: Self.counting)
        #expect(stream.read(until: "\"text\""))
        let before = ServerProcess.metric(try await server.send("GET", "/metrics").text, "corpus_forward_passes_total") ?? 0
        let reply = try await server.send("POST", "/v1/chat/completions", json: Self.chat(Self.question))
        let after = ServerProcess.metric(try await server.send("GET", "/metrics").text, "corpus_forward_passes_total") ?? 0
        let choice = try #require((try reply.json()["choices"] as? [[String: Any]])?.first)
        #expect((choice["message"] as? [String: Any])?["content"] as? String == "The capital of France is Paris.")
        #expect(after - before >= 3 + 7, "3 prefill steps and 8 tokens, the first with the last prefill step")
        stream.readToEnd()
        #expect(stream.text.contains(#""finish_reason":"length""#))
        let alone = try TestSupport.run(["generate", "--model", try TestInputs.model(), "--raw", "--max-tokens", "120", "--json", "1, 2, 3, 4, 5, 6, 7, 8,"])
        let expected = try #require((try alone.json() as? [String: Any])?["text"] as? String)
        // Each event is one write, so HTTP chunk sizes sit between events: take what follows each "data: ".
        let streamed = stream.text.components(separatedBy: "data: ").dropFirst().compactMap { piece -> String? in
            let json = piece.components(separatedBy: "\n\n").first ?? ""
            return (((try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any])?["choices"] as? [[String: Any]])?.first?["text"] as? String
        }.joined()
        #expect(streamed == expected, "the answer streamed beside the chunked prefill is its answer alone")
        #expect(server.stop() == 0)
    }

    /// A long answer being streamed, for the tests below (completions of a count, which does not
    /// end early).
    static var counting: [String: Any] { ["model": "smol", "prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "max_tokens": 120, "temperature": 0, "stream": true] }

    /// --max-batch 1 --max-queue 0: while one answer streams, another request gets 429 with
    /// Retry-After; a client that hangs up mid-stream frees its row at once, and the next request
    /// is answered.
    @Test(.needsTestModel) func aFullServerRefusesAndAHangUpFreesTheRow() async throws {
        let server = try ServerProcess(["--model", try TestInputs.model(), "--name", "smol", "--max-batch", "1", "--max-queue", "0"])
        let first = try RawConnection(port: server.port, "POST", "/v1/completions", json: Self.counting)
        #expect(first.read(until: "\"text\""), "\(first.text)")
        let refused = try await server.send("POST", "/v1/chat/completions", json: Self.chat("Hi", maxTokens: 4))
        #expect(refused.status == 429, "\(refused.text)")
        #expect(refused.header("Retry-After") == "1")
        #expect((try refused.json()["error"] as? [String: Any])?["code"] as? String == "queue_full")
        first.close()
        var freed = false
        for _ in 0..<500 where !freed {
            let metrics = try await server.send("GET", "/metrics").text
            freed = ServerProcess.metric(metrics, "corpus_running_requests") == 0
            if !freed { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(freed, "the row of the client that hung up is still decoded")
        let metrics = try await server.send("GET", "/metrics").text
        let generated = try #require(ServerProcess.metric(metrics, #"corpus_completion_tokens_total{model="smol"}"#))
        #expect(generated < 120, "the abandoned answer ran to its end: \(generated) tokens")
        let answered = try await server.send("POST", "/v1/chat/completions", json: Self.chat("Hi", maxTokens: 4))
        #expect(answered.status == 200, "\(answered.text)")

        // A client waiting for a whole (non-streamed) answer hangs up while it is decoded: its
        // row is freed too, and /metrics counts the request as 499.
        var whole = Self.counting
        whole["stream"] = false
        let waiting = try RawConnection(port: server.port, "POST", "/v1/completions", json: whole)
        var decoding = false
        for _ in 0..<100 where !decoding {
            try await Task.sleep(for: .milliseconds(20))
            decoding = ServerProcess.metric(try await server.send("GET", "/metrics").text, "corpus_running_requests") == 1
        }
        #expect(decoding)
        try await Task.sleep(for: .milliseconds(200))
        waiting.close()
        var gone = false
        // Polled for up to 10 s: on a loaded machine the row is freed at the next decoded token,
        // which can take long; the token count below tells a freed row from a finished answer.
        for _ in 0..<500 where !gone {
            try await Task.sleep(for: .milliseconds(20))
            gone = ServerProcess.metric(try await server.send("GET", "/metrics").text, "corpus_running_requests") == 0
        }
        #expect(gone, "the row of the client that hung up before its whole answer is still decoded")
        let after = try await server.send("GET", "/metrics").text
        #expect(ServerProcess.metric(after, #"corpus_requests_total{endpoint="/v1/completions",status="499"}"#) == 1, "\(after)")
        let total = try #require(ServerProcess.metric(after, #"corpus_completion_tokens_total{model="smol"}"#))
        #expect(total - generated - 4 < 120, "the abandoned whole answer ran to its end")
        #expect(server.stop() == 0)
    }

    /// SIGTERM: new requests get 503 at once, the answer being streamed runs to its end within
    /// the grace period, and the server exits 0. With --shutdown-grace 0 the stream is ended with
    /// an error event instead.
    @Test(.needsTestModel) func shutdownFinishesRunningAnswersWithinTheGrace() async throws {
        let model = try TestInputs.model()
        let server = try ServerProcess(["--model", model, "--name", "smol"])
        let stream = try RawConnection(port: server.port, "POST", "/v1/completions", json: Self.counting)
        #expect(stream.read(until: "\"text\""), "\(stream.text)")
        server.process.terminate()
        var refused: ServerProcess.Reply?
        for _ in 0..<50 {
            try await Task.sleep(for: .milliseconds(20))
            let reply = try await server.send("POST", "/v1/chat/completions", json: Self.chat("Hi", maxTokens: 4))
            if reply.status != 200 { refused = reply; break }
        }
        #expect(refused?.status == 503, "\(refused?.text ?? "no refusal")")
        #expect((try refused?.json()["error"] as? [String: Any])?["code"] as? String == "shutting_down")
        stream.readToEnd()
        #expect(stream.text.contains(#""finish_reason":"length""#), "\(stream.text.suffix(400))")
        #expect(stream.text.contains("data: [DONE]"))
        #expect(server.stop() == 0)

        let impatient = try ServerProcess(["--model", model, "--name", "smol", "--shutdown-grace", "0"])
        let cut = try RawConnection(port: impatient.port, "POST", "/v1/completions", json: Self.counting)
        #expect(cut.read(until: "\"text\""))
        impatient.process.terminate()
        cut.readToEnd()
        #expect(cut.text.contains(#""code":"shutting_down""#), "\(cut.text.suffix(400))")
        #expect(cut.text.contains("data: [DONE]"))
        #expect(!cut.text.contains(#""finish_reason":"length""#))
        #expect(impatient.stop() == 0)
    }
}
