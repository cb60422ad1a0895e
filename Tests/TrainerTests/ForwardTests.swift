import Foundation
import Testing
@testable import Trainer

/// The forward pass on the real SmolLM2 GGUF against Hugging Face transformers' logits on the same
/// file (../shared/reference/logits.json, see its README).
@Suite("Llama forward pass against the reference", .serialized)
struct ForwardTests {
    static let referenceURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/reference/logits.json")

    static func reference() throws -> [String: Any]? {
        guard let data = try? Data(contentsOf: referenceURL) else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { Issue.record("missing \(referenceURL.path)") }
            return nil
        }
        return try JSONSerialization.jsonObject(with: data) as? [String: Any]
    }

    static func model() throws -> LlamaModel? {
        guard let path = TrainerFixtures.smolLM2 else { return nil }
        let loaded = try GGUFFile(path: path).loadModel()
        return try LlamaModel(configuration: loaded.configuration, tensors: loaded.tensors)
    }

    @Test func logitsMatchTransformers() throws {
        guard let reference = try Self.reference(), let model = try Self.model() else { return }
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
        guard let reference = try Self.reference(), let model = try Self.model() else { return }
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
