import Foundation
import Testing
@testable import Trainer

@Suite("Byte-level BPE tokenizer against Hugging Face", .serialized)
struct TokenizerTests {
    static let reference = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/reference")

    static func tokenizer() throws -> BPETokenizer? {
        guard let path = TrainerFixtures.smolLM2 else { return nil }
        return try BPETokenizer.fromGGUF(GGUFFile(path: path).metadata)
    }

    @Test func referenceStrings() throws {
        guard let tokenizer = try Self.tokenizer(),
              let data = try? Data(contentsOf: Self.reference.appendingPathComponent("tokens.json")) else { return }
        let cases = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        #expect(!cases.isEmpty)
        for entry in cases {
            let text = try #require(entry["text"] as? String)
            let expected = try #require(entry["ids"] as? [Int])
            let ids = tokenizer.encode(text)
            #expect(ids == expected, "\(text)")
            #expect(tokenizer.decode(ids) == text)
        }
    }

    @Test func generationPrompt() throws {
        guard let tokenizer = try Self.tokenizer(),
              let data = try? Data(contentsOf: Self.reference.appendingPathComponent("logits.json")) else { return }
        let reference = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let generation = try #require(reference["generation"] as? [String: Any])
        let prompt = try #require(generation["prompt"] as? String)
        #expect(tokenizer.encode(prompt) == generation["prompt_ids"] as? [Int])
        let greedy = try #require(generation["greedy_ids"] as? [Int])
        #expect(tokenizer.decode(greedy) == generation["greedy_text"] as? String)
        #expect(tokenizer.decode(greedy, skipSpecial: true) == "The capital of France is Paris.")
    }

    @Test func splittingRules() {
        #expect(PreTokenization.split("don't  stop\n\nnow 12 ab", kind: .gpt2) == ["don", "'t", " ", " stop", "\n", "\n", "now", " 12", " ab"])
        #expect(PreTokenization.split("a 12", kind: .smollm) == ["a", " ", "1", "2"])
        #expect(PreTokenization.split("x  \n", kind: .gpt2) == ["x", "  \n"])
    }
}
