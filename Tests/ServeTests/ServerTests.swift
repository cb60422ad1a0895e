import Foundation
import Testing
import TestSupport

/// `corpus serve` on the tiny GGUF model (and a tiny adapter for it), driven over real HTTP on
/// loopback: the OpenAI endpoints, their errors, and greedy answers equal to `corpus generate`'s.
@Suite("corpus serve over HTTP", .serialized)
struct ServerTests {
    /// The tiny model, a LoRA adapter for it (q_proj and v_proj, rank 2), and a running server
    /// serving both (`tiny` and `tuned`), chatml template.
    struct Fixture {
        var dir: URL
        var model: String
        var adapter: String
        var server: ServerProcess
    }

    static func fixture(extra: [String] = [], environment: [String: String] = [:]) throws -> Fixture {
        let dir = try TestSupport.temporaryDirectory("serve")
        let model = try TestSupport.write(TinyModel.gguf(), to: "tiny.gguf", in: dir)
        let adapter = try TinyModel.adapter(in: dir)
        let server = try ServerProcess(["--model", model, "--template", "chatml", "--adapter", "tuned=\(adapter.path)"] + extra, environment: environment)
        return Fixture(dir: dir, model: model, adapter: adapter.path, server: server)
    }

    /// `corpus generate --json` for one prompt with the chatml template.
    static func generate(_ f: Fixture, _ prompt: String, maxTokens: Int, adapter: Bool = false) throws -> [String: Any] {
        let result = try TestSupport.run(["generate", "--model", f.model, "--template", "chatml", "--max-tokens", String(maxTokens), "--json"]
                                         + (adapter ? ["--adapter", f.adapter] : []) + [prompt])
        #expect(result.status == 0, "\(result.stderr)")
        return try #require(try result.json() as? [String: Any])
    }

    static func chat(_ model: String, _ content: String, maxTokens: Int, stream: Bool = false) -> [String: Any] {
        ["model": model, "messages": [["role": "user", "content": content]], "temperature": 0, "max_tokens": maxTokens, "stream": stream]
    }

    @Test func modelsListsTheBaseAndTheAdapterByName() async throws {
        let f = try Self.fixture()
        let reply = try await f.server.send("GET", "/v1/models")
        #expect(reply.status == 200)
        let json = try reply.json()
        #expect(json["object"] as? String == "list")
        let data = try #require(json["data"] as? [[String: Any]])
        #expect(data.map { $0["id"] as? String } == ["tiny", "tuned"])
        #expect(data.map { $0["object"] as? String } == ["model", "model"])
        #expect(data[1]["parent"] as? String == "tiny")
        let baseSHA = try TestSupport.shell("sha256sum '\(f.model)' | cut -d' ' -f1")
        let adapterSHA = try TestSupport.shell("sha256sum '\(f.adapter)/adapter_model.safetensors' | cut -d' ' -f1")
        #expect(data[0]["sha256"] as? String == baseSHA)
        #expect(data[1]["sha256"] as? String == adapterSHA)
        #expect(try await f.server.send("GET", "/health").status == 200)
        #expect(f.server.stop() == 0)
    }

    /// A greedy chat answer is `corpus generate`'s, token for token, for the base and for the
    /// adapter; the response names the model, its hashes and the finish reason.
    @Test func greedyChatEqualsGenerate() async throws {
        let f = try Self.fixture()
        let baseSHA = try TestSupport.shell("sha256sum '\(f.model)' | cut -d' ' -f1")
        let adapterSHA = try TestSupport.shell("sha256sum '\(f.adapter)/adapter_model.safetensors' | cut -d' ' -f1")
        for (name, adapter) in [("tiny", false), ("tuned", true)] {
            let expected = try Self.generate(f, "abc", maxTokens: 6, adapter: adapter)
            let reply = try await f.server.send("POST", "/v1/chat/completions", json: Self.chat(name, "abc", maxTokens: 6))
            #expect(reply.status == 200, "\(reply.text)")
            let json = try reply.json()
            #expect(json["object"] as? String == "chat.completion")
            #expect(json["model"] as? String == name)
            let choice = try #require((json["choices"] as? [[String: Any]])?.first)
            let message = try #require(choice["message"] as? [String: Any])
            #expect(message["role"] as? String == "assistant")
            #expect(message["content"] as? String == expected["text"] as? String)
            #expect(choice["finish_reason"] as? String == "length")
            let usage = try #require(json["usage"] as? [String: Any])
            #expect(usage["prompt_tokens"] as? Int == (expected["prompt_ids"] as? [Int])?.count)
            #expect(usage["completion_tokens"] as? Int == 6)
            #expect(usage["total_tokens"] as? Int == (usage["prompt_tokens"] as? Int ?? 0) + 6)
            #expect(reply.header("x-corpus-base-sha256") == baseSHA)
            #expect(reply.header("x-corpus-adapter-sha256") == (adapter ? adapterSHA : nil))
            let fingerprint = "corpus-" + String(baseSHA.prefix(16)) + (adapter ? "-" + String(adapterSHA.prefix(16)) : "")
            #expect(json["system_fingerprint"] as? String == fingerprint)
        }
        // The adapter changes the answer (so the test above really tells them apart).
        #expect(try Self.generate(f, "abc", maxTokens: 6)["ids"] as? [Int] != Self.generate(f, "abc", maxTokens: 6, adapter: true)["ids"] as? [Int])
        #expect(f.server.stop() == 0)
    }

    /// Streaming: Server-Sent Events, a first chunk with the role, text chunks that add up to the
    /// non-streamed answer, a last chunk with the finish reason, the usage chunk, `data: [DONE]`.
    @Test func streamingChatSendsChunksEndingInDone() async throws {
        let f = try Self.fixture()
        let expected = try Self.generate(f, "abc", maxTokens: 6)
        var body = Self.chat("tiny", "abc", maxTokens: 6, stream: true)
        body["stream_options"] = ["include_usage": true]
        let reply = try await f.server.send("POST", "/v1/chat/completions", json: body)
        #expect(reply.status == 200)
        #expect(reply.header("content-type") == "text/event-stream")
        let events = reply.events
        #expect(events.last == "[DONE]")
        let chunks = try events.dropLast().map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], "\($0)") }
        #expect(chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" })
        #expect(Set(chunks.compactMap { $0["id"] as? String }).count == 1)
        let choices = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first }
        #expect((choices.first?["delta"] as? [String: Any])?["role"] as? String == "assistant")
        let content = choices.compactMap { ($0["delta"] as? [String: Any])?["content"] as? String }.joined()
        #expect(content == expected["text"] as? String)
        #expect(choices.last?["finish_reason"] as? String == "length")
        #expect(choices.dropLast().allSatisfy { $0["finish_reason"] is NSNull })
        let usage = try #require(chunks.last?["usage"] as? [String: Any])
        #expect((chunks.last?["choices"] as? [Any])?.isEmpty == true)
        #expect(usage["completion_tokens"] as? Int == 6)
        #expect(f.server.stop() == 0)
    }

    /// /v1/completions: the prompt as it is (no template), as `corpus generate --raw`.
    @Test func completionsAnswerTheRawPrompt() async throws {
        let f = try Self.fixture()
        let result = try TestSupport.run(["generate", "--model", f.model, "--raw", "--max-tokens", "5", "--json", "ab c"])
        let expected = try #require(try result.json() as? [String: Any])
        let reply = try await f.server.send("POST", "/v1/completions", json: ["model": "tiny", "prompt": "ab c", "max_tokens": 5, "temperature": 0])
        #expect(reply.status == 200, "\(reply.text)")
        let json = try reply.json()
        #expect(json["object"] as? String == "text_completion")
        let choice = try #require((json["choices"] as? [[String: Any]])?.first)
        #expect(choice["text"] as? String == expected["text"] as? String)
        #expect(choice["finish_reason"] as? String == "length")
        #expect((json["usage"] as? [String: Any])?["prompt_tokens"] as? Int == (expected["prompt_ids"] as? [Int])?.count)
        // Streamed, the text pieces add up to the same.
        let streamed = try await f.server.send("POST", "/v1/completions", json: ["model": "tiny", "prompt": "ab c", "max_tokens": 5, "temperature": 0, "stream": true])
        #expect(streamed.events.last == "[DONE]")
        let text = streamed.events.dropLast().compactMap { event -> String? in
            let chunk = try? JSONSerialization.jsonObject(with: Data(event.utf8)) as? [String: Any]
            return ((chunk?["choices"] as? [[String: Any]])?.first)?["text"] as? String
        }.joined()
        #expect(text == expected["text"] as? String)
        #expect(f.server.stop() == 0)
    }

    /// Every error in OpenAI's shape with its status: unknown model 404, malformed JSON 400, a
    /// wrong field 400 naming it, a context overflow 400 with the counts, an oversized body 413,
    /// an unknown path 404.
    @Test func errorsAreOpenAIShaped() async throws {
        let f = try Self.fixture(extra: ["--max-body-bytes", "2048"])
        func error(_ reply: ServerProcess.Reply) throws -> [String: Any] {
            try #require(try reply.json()["error"] as? [String: Any], "\(reply.text)")
        }
        let unknown = try await f.server.send("POST", "/v1/chat/completions", json: Self.chat("nope", "abc", maxTokens: 2))
        #expect(unknown.status == 404)
        #expect(try error(unknown)["code"] as? String == "model_not_found")
        #expect(try error(unknown)["param"] as? String == "model")
        #expect(try error(unknown)["type"] as? String == "invalid_request_error")

        let malformed = try await f.server.send("POST", "/v1/chat/completions", body: Data("{\"model\": \"tiny\", ".utf8))
        #expect(malformed.status == 400)
        #expect(try error(malformed)["code"] as? String == "invalid_json")
        #expect(try error(malformed)["param"] is NSNull)

        let missing = try await f.server.send("POST", "/v1/chat/completions", json: ["model": "tiny"])
        #expect(missing.status == 400)
        #expect(try error(missing)["param"] as? String == "messages")

        var hot = Self.chat("tiny", "abc", maxTokens: 2)
        hot["temperature"] = 3
        let badTemperature = try await f.server.send("POST", "/v1/chat/completions", json: hot)
        #expect(badTemperature.status == 400)
        #expect(try error(badTemperature)["param"] as? String == "temperature")

        // Found by scripts/load-test-serve.py's author: a message without content, a fraction for
        // an integer and a seed beyond 64 bits are refused naming the field.
        let noContent = try await f.server.send("POST", "/v1/chat/completions", json: ["model": "tiny", "messages": [["role": "user"]]])
        #expect(noContent.status == 400)
        #expect(try error(noContent)["param"] as? String == "messages[0].content")
        #expect(try error(noContent)["code"] as? String == "missing_required_parameter")
        for (field, value) in [("max_tokens", 4.5 as Any), ("seed", UInt64.max as Any)] {
            var request = Self.chat("tiny", "abc", maxTokens: 2)
            request[field] = value
            let refused = try await f.server.send("POST", "/v1/chat/completions", json: request)
            #expect(refused.status == 400)
            #expect(try error(refused)["param"] as? String == field, "\(refused.text)")
        }

        var two = Self.chat("tiny", "abc", maxTokens: 2)
        two["n"] = 2
        #expect(try error(try await f.server.send("POST", "/v1/chat/completions", json: two))["param"] as? String == "n")

        let overflow = try await f.server.send("POST", "/v1/chat/completions", json: Self.chat("tiny", "abc", maxTokens: 60))
        #expect(overflow.status == 400)
        let prompt = try #require((try Self.generate(f, "abc", maxTokens: 1)["prompt_ids"] as? [Int])?.count)
        #expect(try error(overflow)["code"] as? String == "context_length_exceeded")
        #expect(try error(overflow)["message"] as? String == "This model's maximum context length is 64 tokens. However, you requested \(prompt + 60) tokens (\(prompt) in the messages, 60 in the completion). Please reduce the length of the messages or completion.")

        let big = try await f.server.send("POST", "/v1/chat/completions", json: Self.chat("tiny", String(repeating: "a", count: 4000), maxTokens: 2))
        #expect(big.status == 413)
        #expect(try error(big)["code"] as? String == "request_too_large")

        let nowhere = try await f.server.send("GET", "/v2/nothing")
        #expect(nowhere.status == 404)
        #expect(try error(nowhere)["code"] as? String == "unknown_url")
        #expect(f.server.stop() == 0)
    }

    /// With a key, every endpoint but /health needs `Authorization: Bearer KEY` (401 otherwise).
    @Test func anAPIKeyIsRequiredWhenSet() async throws {
        let f = try Self.fixture(environment: ["CORPUS_API_KEY": "s3cret"])
        let none = try await f.server.send("GET", "/v1/models")
        #expect(none.status == 401)
        #expect((try none.json()["error"] as? [String: Any])?["code"] as? String == "invalid_api_key")
        #expect(try await f.server.send("GET", "/v1/models", headers: ["Authorization": "Bearer s3creT"]).status == 401)
        #expect(try await f.server.send("POST", "/v1/chat/completions", json: Self.chat("tiny", "abc", maxTokens: 2)).status == 401)
        #expect(try await f.server.send("GET", "/v1/models", headers: ["Authorization": "Bearer s3cret"]).status == 200)
        #expect(try await f.server.send("GET", "/health").status == 200)
        #expect(f.server.stop() == 0)
    }

    /// Another host than loopback needs --api-key or --no-auth: refused with exit 64 before
    /// anything is loaded.
    @Test func aPublicHostNeedsAKeyOrNoAuth() throws {
        let dir = try TestSupport.temporaryDirectory("serve")
        let model = try TestSupport.write(TinyModel.gguf(), to: "tiny.gguf", in: dir)
        let result = try TestSupport.run(["serve", "--model", model, "--host", "0.0.0.0"])
        #expect(result.status == 64)
        #expect(result.stderr.contains("--host 0.0.0.0 is reachable from other machines: give --api-key KEY"))
        let both = try TestSupport.run(["serve", "--model", model, "--api-key", "k", "--no-auth"])
        #expect(both.status == 64)
    }

    /// Requests sent together, for the base model and the adapter, are decoded together (one
    /// forward pass per step, each adapter row adding its low-rank term) and each gets its
    /// answer alone, which is `corpus generate`'s.
    @Test func concurrentRequestsGetTheirOwnAnswers() async throws {
        let f = try Self.fixture()
        let prompts = ["abc", "ab", "c", "x"]
        var expected: [String: String] = [:]
        var requests: [(key: String, model: String, content: String, maxTokens: Int)] = []
        for p in prompts {
            expected["tiny " + p] = try Self.generate(f, p, maxTokens: 6)["text"] as? String
            expected["tuned " + p] = try Self.generate(f, p, maxTokens: 6, adapter: true)["text"] as? String
            requests += [("tiny " + p, "tiny", p, 6), ("tuned " + p, "tuned", p, 6)]
        }
        let answers = try await f.server.concurrentChats(requests)
        for r in requests { #expect(answers[r.key] == expected[r.key], "\(r.key)") }
        #expect(prompts.contains { expected["tiny " + $0] != expected["tuned " + $0] })
        #expect(f.server.stop() == 0)
    }

    /// GET /metrics: Prometheus text with requests by endpoint and status, tokens per model,
    /// and the latency histograms.
    @Test func metricsCountRequestsTokensAndLatency() async throws {
        let f = try Self.fixture()
        #expect(try await f.server.send("POST", "/v1/chat/completions", json: Self.chat("tiny", "abc", maxTokens: 6)).status == 200)
        #expect(try await f.server.send("POST", "/v1/chat/completions", json: Self.chat("tuned", "abc", maxTokens: 4, stream: true)).status == 200)
        #expect(try await f.server.send("POST", "/v1/chat/completions", json: Self.chat("nope", "abc", maxTokens: 6)).status == 404)
        #expect(try await f.server.send("GET", "/nowhere").status == 404)
        let reply = try await f.server.send("GET", "/metrics")
        #expect(reply.status == 200)
        #expect(reply.header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
        let text = reply.text
        let value = { (series: String) in ServerProcess.metric(text, series) }
        #expect(value(#"corpus_requests_total{endpoint="/v1/chat/completions",status="200"}"#) == 2)
        #expect(value(#"corpus_requests_total{endpoint="/v1/chat/completions",status="404"}"#) == 1)
        #expect(value(#"corpus_requests_total{endpoint="other",status="404"}"#) == 1)
        #expect(value(#"corpus_completion_tokens_total{model="tiny"}"#) == 6)
        #expect(value(#"corpus_completion_tokens_total{model="tuned"}"#) == 4)
        #expect(value("corpus_time_to_first_token_seconds_count") == 2)
        #expect(value(#"corpus_time_to_first_token_seconds_bucket{le="+Inf"}"#) == 2)
        #expect(value("corpus_time_per_output_token_seconds_count") == 8)     // 5 + 3 gaps
        #expect(value("corpus_queue_depth") == 0)
        #expect(value("corpus_running_requests") == 0)
        #expect(text.contains("# TYPE corpus_time_to_first_token_seconds histogram"))
        #expect(f.server.stop() == 0)
    }

    /// `corpus chat --url` talks to the server: the same conversation (two turns) as `corpus chat`
    /// with the model loaded, for the adapter by its served name; a wrong address or model is a
    /// message and exit 3.
    @Test func chatTalksToARunningServer() async throws {
        let f = try Self.fixture()
        let input = "abc\nab\n/quit\n"
        let local = try TestSupport.run(["chat", "--model", f.model, "--adapter", f.adapter, "--template", "chatml", "--max-tokens", "5"], input: input)
        #expect(local.status == 0, "\(local.stderr)")
        let url = "http://127.0.0.1:\(f.server.port)"
        let remote = try TestSupport.run(["chat", "--url", url, "--model", "tuned", "--max-tokens", "5"], input: input)
        #expect(remote.status == 0, "\(remote.stderr)")
        // The first turn is answered alike; the second passes the tiny model's 64-token window,
        // which both say (the server in its own words) and the conversation goes on.
        let (localLines, remoteLines) = (local.stdout.split(separator: "\n"), remote.stdout.split(separator: "\n"))
        #expect(remoteLines.count == 2 && localLines.count == 2, "\(remote.stdout)")
        #expect(remoteLines.first == localLines.first)
        #expect(remoteLines.last?.hasPrefix("(the server refused: This model's maximum context length is 64 tokens.") == true, "\(remote.stdout)")
        #expect(localLines.last?.hasPrefix("(the conversation is ") == true)
        let unknown = try TestSupport.run(["chat", "--url", url + "/v1", "--model", "nope"], input: input)
        #expect(unknown.status == 3)
        #expect(unknown.stderr.contains("HTTP 404: The model `nope` does not exist"), "\(unknown.stderr)")
        #expect(f.server.stop() == 0)
        let gone = try TestSupport.run(["chat", "--url", url, "--model", "tuned"], input: input)
        #expect(gone.status == 3)
        #expect(gone.stderr.contains("is `corpus serve` running there?"), "\(gone.stderr)")
    }
}
