import Foundation
import TestSupport
import Testing

/// `corpus generate` and `corpus tokenize` on the real test model (fetched by scripts/test.sh).
@Suite("corpus binary with the test model")
struct ModelCommandTests {

    @Test(.needsTestModel) func generateAnswersWithTheReferenceText() throws {
        let model = try TestInputs.model()
        let result = try TestSupport.run(["generate", "--model", model, "--json", "What is the capital of France?"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try #require(try result.json() as? [String: Any])
        #expect(json["ids"] as? [Int] == [504, 3575, 282, 4649, 314, 7042, 30, 2])
        #expect(json["text"] as? String == "The capital of France is Paris.")
        #expect((json["prompt_ids"] as? [Int])?.count == 37)
    }

    /// Several prompts are generated as one batch; each answer equals its answer alone.
    @Test(.needsTestModel) func generateSeveralPromptsAsOneBatch() throws {
        let model = try TestInputs.model()
        let result = try TestSupport.run(["generate", "--model", model, "--json", "--max-tokens", "12",
                                          "Name a primary color.", "What is the capital of France?"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try #require(try result.json() as? [[String: Any]])
        #expect(json.count == 2)
        #expect(json[1]["ids"] as? [Int] == [504, 3575, 282, 4649, 314, 7042, 30, 2])
        let alone = try #require(try TestSupport.run(["generate", "--model", model, "--json", "--max-tokens", "12", "Name a primary color."]).json() as? [String: Any])
        #expect(json[0]["ids"] as? [Int] == alone["ids"] as? [Int])
        #expect((json[0]["ids"] as? [Int])?.isEmpty == false)
    }

    /// `corpus chat` reads turns from standard input and keeps the conversation.
    @Test(.needsTestModel) func chatFromStandardInput() throws {
        let model = try TestInputs.model()
        let input = try TestSupport.temporaryDirectory().appendingPathComponent("turns.txt")
        try Data("What is the capital of France?\n/reset\n/quit\n".utf8).write(to: input)
        let output = try TestSupport.shell("'\(TestSupport.corpusBinary.path)' chat --model '\(model)' --max-tokens 16 < '\(input.path)' 2>/dev/null")
        #expect(output == "The capital of France is Paris.\n(conversation cleared)")
    }

    @Test(.needsTestModel) func tokenizeJSON() throws {
        let model = try TestInputs.model()
        let result = try TestSupport.run(["tokenize", "--model", model, "--json", "The capital of France is"])
        let json = try #require(try result.json() as? [String: Any])
        #expect(json["ids"] as? [Int] == [504, 3575, 282, 4649, 314])
        #expect(json["pieces"] as? [String] == ["The", " capital", " of", " France", " is"])
    }

    @Test func notAModel() throws {
        let dir = try TestSupport.temporaryDirectory()
        let path = try TestSupport.write("not a model", to: "x.gguf", in: dir)
        let result = try TestSupport.run(["generate", "--model", path, "hi"])
        #expect(result.status == 3)
        #expect(result.stderr.contains("not a GGUF file"))
    }
}

extension ModelCommandTests {
    /// Where the next token is among the reference's top 5, its log-probability must equal
    /// logit − logsumexp of transformers' row (../shared/reference/logits.json).
    @Test(.needsTestModel, .needsShared("reference/logits.json")) func scoreMatchesTheReference() throws {
        let model = try TestInputs.model()
        let data = try Data(contentsOf: TestInputs.shared("reference/logits.json"))
        let reference = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let entry = try #require((reference["logits"] as? [[String: Any]])?.first)
        let result = try TestSupport.run(["score", "--model", model, "--json", try #require(entry["text"] as? String)])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try #require(try result.json() as? [String: Any])
        let ids = try #require(json["ids"] as? [Int])
        #expect(ids == entry["ids"] as? [Int])
        let logprobs = try #require(json["logprobs"] as? [Any])
        #expect(logprobs.first is NSNull)
        var compared = 0
        for (t, position) in try #require(entry["positions"] as? [[String: Any]]).enumerated() where t + 1 < ids.count {
            let top = try #require(position["top5_ids"] as? [Int])
            guard let k = top.firstIndex(of: ids[t + 1]) else { continue }
            let expected = (try #require(position["top5_logits"] as? [Double]))[k] - (try #require(position["logsumexp"] as? Double))
            let ours = try #require(logprobs[t + 1] as? Double)
            #expect(abs(ours - expected) < 2e-3, "position \(t + 1)")
            compared += 1
        }
        #expect(compared == 3)
        #expect(json["mean_nll"] is Double)
    }
}
