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

    /// Four requests at once are decoded in one batch; each answer equals `corpus generate`'s
    /// for that question alone.
    @Test(.needsTestModel) func aBatchOfRequestsEqualsTheirAnswersAlone() async throws {
        let model = try TestInputs.model()
        let questions = [Self.question, "Name a primary color.", "What is 2 + 2?", "Say hello."]
        var expected: [String: String] = [:]
        for q in questions {
            let result = try TestSupport.run(["generate", "--model", model, "--max-tokens", "24", "--json", q])
            expected[q] = (try result.json() as? [String: Any])?["text"] as? String
        }
        let server = try ServerProcess(["--model", model, "--name", "smol"])
        let answers = try await withThrowingTaskGroup(of: (String, String?).self) { group in
            for q in questions {
                group.addTask {
                    let reply = try await server.send("POST", "/v1/chat/completions", json: Self.chat(q, maxTokens: 24))
                    let choice = (try reply.json()["choices"] as? [[String: Any]])?.first
                    return (q, (choice?["message"] as? [String: Any])?["content"] as? String)
                }
            }
            var all: [String: String?] = [:]
            for try await (q, text) in group { all[q] = text }
            return all
        }
        for q in questions { #expect(answers[q] == expected[q], "\(q)") }
        #expect(server.stop() == 0)
    }
}
