import Foundation
import TestSupport
import Testing

/// `corpus generate` and `corpus tokenize` on the real test model (fetched by scripts/test.sh).
@Suite("corpus binary with the test model")
struct ModelCommandTests {
    var model: String? {
        let path = FileManager.default.homeDirectoryForCurrentUser
            .appendingPathComponent(".cache/corpus/models/SmolLM2-135M-Instruct.Q4_1.gguf").path
        let chosen = ProcessInfo.processInfo.environment["CORPUS_TEST_MODEL_DIR"].map { $0 + "/SmolLM2-135M-Instruct.Q4_1.gguf" } ?? path
        if FileManager.default.fileExists(atPath: chosen) { return chosen }
        if TestSupport.inCI { Issue.record("the test model is missing at \(chosen)") }
        return nil
    }

    @Test func generateAnswersWithTheReferenceText() throws {
        guard let model else { return }
        let result = try TestSupport.run(["generate", "--model", model, "--json", "What is the capital of France?"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try #require(try result.json() as? [String: Any])
        #expect(json["ids"] as? [Int] == [504, 3575, 282, 4649, 314, 7042, 30, 2])
        #expect(json["text"] as? String == "The capital of France is Paris.")
        #expect((json["prompt_ids"] as? [Int])?.count == 37)
    }

    @Test func tokenizeJSON() throws {
        guard let model else { return }
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
