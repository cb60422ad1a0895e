import Foundation
import Testing
@testable import ModelRuntime
@testable import Trainer

/// The evaluation harness's aggregation, worked by hand.
@Suite("Evaluator")
struct EvaluatorTests {
    static func item(_ id: Int64, _ reference: String, targets: Int) -> EvalItem {
        // ids 0...targets, every position but the last a target.
        let ids = Array(0...targets)
        let mask = ids.indices.map { $0 < targets }
        return EvalItem(recordId: id, prompt: [ChatMessage(role: "user", content: "q\(id)")], reference: reference,
                        example: TrainingExample(recordId: id, ids: ids, targetMask: mask))
    }

    @Test func aggregatesAreTokenWeightedAndCorpusLevel() throws {
        let items = [Self.item(1, "a b c d", targets: 1), Self.item(2, "血压 高", targets: 3)]
        // Item 1: loss sum 2 over 1 token (mean 2); item 2: 3 over 3 tokens (mean 1).
        let losses: [(sum: Double, tokens: Int)] = [(2, 1), (3, 3)]
        let (results, aggregate) = try Evaluator.score(items: items, predictions: ["a b c d", "血压"], losses: losses)
        #expect(results.map(\.loss) == [2, 1])
        // Token-weighted: (2 + 3) / (1 + 3) = 1.25, not the mean of the item means (1.5).
        #expect(aggregate.loss == 1.25)
        #expect(aggregate.perplexity == exp(1.25))
        #expect(aggregate.tokens == 4)
        #expect(aggregate.items == 2)
        // Item 1 matches exactly; item 2 has 2 of the reference's 3 characters: P = 1, R = 2/3, F = 0.8.
        #expect(results[0].scores.exactMatch == 1 && results[1].scores.exactMatch == 0)
        #expect(abs(results[1].scores.rougeL - 0.8) < 1e-12)
        #expect(abs(aggregate.text.rougeL - 0.9) < 1e-12)
        #expect(aggregate.text.exactMatch == 0.5)
        // Length ratio of the totals: (4 + 2) / (4 + 3).
        #expect(abs(aggregate.text.lengthRatio - 6.0 / 7.0) < 1e-12)
        #expect(aggregate.text.bleu4 == (try TextMetrics.corpusBLEU(predictions: ["a b c d", "血压"], references: ["a b c d", "血压 高"])))
        #expect(Set(aggregate.values.keys) == Set(Evaluator.metricNames))
    }

    @Test func mismatchedInputsAreRefused() {
        #expect(throws: TrainerError.self) {
            _ = try Evaluator.score(items: [Self.item(1, "x", targets: 1)], predictions: [], losses: [])
        }
    }

    @Test func itemValues() {
        let s = MetricScores(rougeL: 0.5, bleu4: 0.25, exactMatch: 1, lengthRatio: 2)
        #expect(Evaluator.itemValue("loss", loss: 2, scores: s) == 2)
        #expect(Evaluator.itemValue("perplexity", loss: 2, scores: s) == exp(2))
        #expect(Evaluator.itemValue("bleu4", loss: 2, scores: s) == 0.25)
        #expect(Evaluator.itemValue("length_ratio", loss: 2, scores: s) == 2)
        #expect(Evaluator.itemValue("accuracy", loss: 2, scores: s) == nil)
    }
}
