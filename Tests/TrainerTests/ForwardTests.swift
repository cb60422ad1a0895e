import Foundation
import TestSupport
import Testing
@testable import ModelRuntime
@testable import Trainer

/// The forward pass on the real SmolLM2 GGUF against Hugging Face transformers' logits on the same
/// file (../shared/reference/logits.json, see its README).
@Suite("Llama forward pass against the reference", .serialized, .needsTestModel, .needsShared("reference/logits.json"))
struct ForwardTests {
    static func reference() throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: TrainerFixtures.sharedReference("logits.json")) as? [String: Any])
    }

    static func model() throws -> LlamaModel {
        let loaded = try GGUFFile(path: try TrainerFixtures.smolLM2).loadModel()
        return try LlamaModel(configuration: loaded.configuration, tensors: loaded.tensors)
    }

    @Test func logitsMatchTransformers() throws {
        let reference = try Self.reference(), model = try Self.model()
        let V = model.configuration.vocabSize
        var worst: Float = 0
        for case let entry as [String: Any] in try #require(reference["logits"] as? [Any]) {
            let ids = try #require(entry["ids"] as? [Int])
            let positions = try #require(entry["positions"] as? [[String: Any]])
            let logits = try model.logits(ids)
            #expect(positions.count == ids.count)
            for (t, position) in positions.enumerated() {
                let row = Array(logits[(t * V)..<((t + 1) * V)])
                let topIDs = try #require(position["top5_ids"] as? [Int])
                let topLogits = try #require(position["top5_logits"] as? [Double])
                let ours = row.indices.sorted { row[$0] > row[$1] }.prefix(5)
                #expect(Array(ours.prefix(1)) == Array(topIDs.prefix(1)), "\(entry["text"] ?? "") position \(t)")
                for (id, value) in zip(topIDs, topLogits) { worst = max(worst, abs(row[id] - Float(value))) }
                let maxLogit = row.max() ?? 0
                let lse = maxLogit + log(row.reduce(0) { $0 + exp($1 - maxLogit) })
                worst = max(worst, abs(lse - Float(try #require(position["logsumexp"] as? Double))))
            }
        }
        // The reference rounds to 4 decimals; "about 1e-3" per its README.
        #expect(worst < 2e-3, "largest logit difference \(worst)")
    }

    @Test func greedyIDsMatchTransformers() throws {
        let reference = try Self.reference(), model = try Self.model()
        let generation = try #require(reference["generation"] as? [String: Any])
        var ids = try #require(generation["prompt_ids"] as? [Int])
        let expected = try #require(generation["greedy_ids"] as? [Int])
        let V = model.configuration.vocabSize
        var generated: [Int] = []
        // Recomputes the whole sequence each step (no KV cache yet): fine for 8 tokens.
        for _ in expected.indices {
            let logits = try model.logits(ids)
            let last = logits[((ids.count - 1) * V)..<(ids.count * V)]
            let next = last.indices.max { last[$0] < last[$1] }.map { $0 - (ids.count - 1) * V } ?? 0
            generated.append(next)
            ids.append(next)
        }
        #expect(generated == expected)
    }
}

@Suite("Generation with a KV cache", .serialized, .needsTestModel, .needsShared("reference/logits.json"))
struct GenerationTests {
    @Test func cachedDecodingMatchesTheReference() throws {
        let reference = try ForwardTests.reference(), path = try TrainerFixtures.smolLM2
        let file = try GGUFFile(path: path)
        let loaded = try file.loadModel()
        let model = try LlamaModel(configuration: loaded.configuration, tensors: loaded.tensors)
        let tokenizer = try BPETokenizer.fromGGUF(file.metadata)
        let template = try ChatTemplate.recognize(file.metadata["tokenizer.chat_template"]?.string)
        let generation = try #require(reference["generation"] as? [String: Any])
        let prompt = template.render([ChatMessage(role: "user", content: "What is the capital of France?")], generationPrompt: true)
        #expect(prompt == generation["prompt"] as? String)
        var parameters = GenerationParameters()
        parameters.maxTokens = 32
        parameters.stopTokenIDs = [2]
        let ids = try Generator.generate(model: model, prompt: tokenizer.encode(prompt), parameters: parameters)
        #expect(ids == generation["greedy_ids"] as? [Int])
        #expect(tokenizer.decode(ids) == generation["greedy_text"] as? String)
        // The same prompt in a batch with another, longer one gives the same answer.
        let other = template.render([ChatMessage(role: "user", content: "Name three colors of the rainbow, please.")], generationPrompt: true)
        let batched = try Generator.generate(model: model, prompts: [tokenizer.encode(other), tokenizer.encode(prompt)], parameters: parameters)
        #expect(batched[1] == generation["greedy_ids"] as? [Int])
        #expect(batched[0] == (try Generator.generate(model: model, prompt: tokenizer.encode(other), parameters: parameters)))

        // The cache gives the same next-token logits as running the whole sequence again.
        let sequence = tokenizer.encode(prompt) + ids.prefix(3)
        let full = try model.logits(Array(sequence))
        let cache = KVCache(configuration: model.configuration, capacity: sequence.count)
        _ = try model.forward(Array(sequence.dropLast()), cache: cache, allLogits: false)
        let last = try model.forward([sequence[sequence.count - 1]], cache: cache, allLogits: false)
        let V = model.configuration.vocabSize
        let worst = zip(last, full[((sequence.count - 1) * V)...]).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst < 1e-3)
    }
}
