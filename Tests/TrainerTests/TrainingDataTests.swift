import Foundation
import TestSupport
import Testing
@testable import ModelRuntime
@testable import Trainer

@Suite("Training examples and the batch plan")
struct TrainingDataTests {
    static func messages(_ q: String, _ a: String) -> [ChatMessage] {
        [ChatMessage(role: "user", content: q), ChatMessage(role: "assistant", content: a)]
    }

    /// The targets are exactly the answer and its end-of-turn token, with the real SmolLM2
    /// tokenizer and its ChatML template.
    @Test(.needsTestModel) func targetsAreTheAnswerAndItsEndOfTurn() throws {
        let path = try TrainerFixtures.smolLM2
        let files = try ModelFiles(path: path)
        let tokenizer = try files.tokenizer()
        let template = try ChatTemplate.recognize(files.chatTemplate, tokenizer: tokenizer)
        let long = String(repeating: "高血压患者应当低盐饮食。", count: 40)
        let data = TrainingData.prepare([
            (1, Self.messages("What is the capital of France?", "The capital of France is Paris.")),
            (2, Self.messages("头痛怎么办？", long)),
            (3, Self.messages(String(repeating: "很长的问题。", count: 200), "好的。")),
        ], template: template, tokenizer: tokenizer, maxLength: 128, overflow: .truncate)
        #expect(data.examples.map(\.recordId) == [1, 2])
        #expect(data.truncated == 1)        // 2 is cut to 128 tokens; 3 too, but then has no answer left
        #expect(data.dropped.map(\.recordId) == [3])
        #expect(data.dropped.first?.reason == "no answer within --max-len 128 tokens")
        let first = try #require(data.examples.first)
        let targetIds = first.ids.indices.filter { first.targetMask[$0] }.map { first.ids[$0 + 1] }
        #expect(tokenizer.decode(targetIds) == "The capital of France is Paris.<|im_end|>")
        #expect(first.targetMask.last == false)
        #expect(data.examples[1].ids.count == 128)

        let dropped = TrainingData.prepare([(2, Self.messages("头痛怎么办？", long))], template: template, tokenizer: tokenizer,
                                           maxLength: 128, overflow: .drop)
        #expect(dropped.examples.isEmpty)
        #expect(dropped.dropped.first?.reason.hasPrefix("longer than --max-len 128 tokens (") == true)
    }

    @Test func everyExampleOncePerEpochInBatchesWithinTheBudget() {
        var rng = SplitMix64(seed: 3)
        let lengths = (0..<1000).map { _ in 8 + Int(rng.next() % 500) }
        let plan = BatchPlan.batches(lengths: lengths, batchTokens: 1024, seed: 7, epoch: 0)
        #expect(plan.flatMap { $0 }.sorted() == Array(0..<1000))
        for batch in plan where batch.count > 1 {
            #expect(batch.reduce(0) { $0 + lengths[$1] } <= 1024)
        }
        // Similar lengths go together: within a batch the spread is small next to the whole range.
        let spreads = plan.filter { $0.count > 1 }.map { b in (b.map { lengths[$0] }.max() ?? 0) - (b.map { lengths[$0] }.min() ?? 0) }
        #expect(Double(spreads.reduce(0, +)) / Double(max(1, spreads.count)) < 60)
        // The same inputs give the same plan; another epoch or seed another order.
        #expect(BatchPlan.batches(lengths: lengths, batchTokens: 1024, seed: 7, epoch: 0) == plan)
        #expect(BatchPlan.batches(lengths: lengths, batchTokens: 1024, seed: 7, epoch: 1) != plan)
        #expect(BatchPlan.batches(lengths: lengths, batchTokens: 1024, seed: 8, epoch: 0) != plan)
        // An example longer than the budget is a batch of its own.
        let alone = BatchPlan.batches(lengths: [10, 5000, 10], batchTokens: 100, seed: 1, epoch: 0)
        #expect(alone.contains([1]))
        #expect(alone.flatMap { $0 }.sorted() == [0, 1, 2])
    }
}
