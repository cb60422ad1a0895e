import Foundation
import Testing
@testable import ModelRuntime
@testable import Trainer

/// The evaluation's rewards and preference comparison, worked by hand and on a tiny random model.
@Suite("Evaluator: rewards and preference pairs")
struct EvalExtrasTests {
    static func result(_ id: Int64, rewards: [String: Double] = [:], reward: Double? = nil, preference: ReferenceLogps? = nil) -> EvalItemResult {
        EvalItemResult(recordId: id, prediction: "p", lossSum: 2, tokens: 1, scores: MetricScores(rougeL: 0.5, bleu4: 0, exactMatch: 0, lengthRatio: 1),
                       rewards: rewards, reward: reward, preference: preference)
    }

    @Test func meansOverTheItemsThatHaveAValue() {
        let results = [
            Self.result(1, rewards: ["regex": 1, "cmd": 0.5], reward: 1.5, preference: ReferenceLogps(chosen: -3, rejected: -5)),
            Self.result(2, rewards: ["regex": 0, "cmd": 0.25], reward: 0.25, preference: ReferenceLogps(chosen: -6, rejected: -4)),
            // A tie does not count as preferring the chosen answer.
            Self.result(3, rewards: ["regex": 1, "cmd": 0], reward: 1, preference: ReferenceLogps(chosen: -2, rejected: -2)),
            Self.result(4, rewards: ["regex": 1, "cmd": 0.25], reward: 1.25),   // not a pair
        ]
        let names = Evaluator.rewardMetricNames(["regex", "cmd"]) + Evaluator.preferenceMetricNames
        #expect(names == ["reward.regex", "reward.cmd", "reward", "preference_accuracy", "preference_margin"])
        let means = Evaluator.means(names + ["reward.length"], of: results)
        #expect(means == ["reward.regex": 0.75, "reward.cmd": 0.25, "reward": 1.0, "preference_accuracy": 1.0 / 3, "preference_margin": 0])
        #expect(Evaluator.itemValue("preference_margin", of: results[0]) == 2)
        #expect(Evaluator.itemValue("preference_accuracy", of: results[3]) == nil)
        #expect(Evaluator.itemValue("rougeL", of: results[0]) == 0.5)
        #expect(Evaluator.itemValue("loss", of: results[0]) == 2)
    }

    @Test func rewardsAreScoredChunkByChunk() throws {
        let inputs = (0..<5).map { RewardInput(prompt: "<|im_start|>user\nq\($0)<|im_end|>\n", answer: $0 == 2 ? "" : "answer \($0)", reference: "r") }
        // awk prints each line's number within its chunk: the program is started once per chunk.
        let set = try RewardSet(functions: [try RewardFunction(spec: "regex:."), try RewardFunction(spec: "cmd:awk '{print NR}'")], weights: [2, 1])
        var done: [Int] = []
        let scored = try Evaluator.rewards(set, inputs: inputs, chunk: 2, progress: { done.append($0) })
        #expect(done == [2, 4, 5])
        #expect(scored.map { $0.rewards["cmd"] } == [1, 2, 1, 2, 1])
        #expect(scored.map { $0.rewards["regex"] } == [1, 1, 0, 1, 1])
        #expect(scored.map(\.total) == [3, 4, 1, 4, 3])
        // A reward program sees the prompt, the answer and the reference.
        let echo = try RewardSet(functions: [try RewardFunction(spec: #"cmd:grep -c '"prompt":"<|im_start|>user\\nq0<|im_end|>\\n"' || true"#)])
        #expect(try Evaluator.rewards(echo, inputs: Array(inputs.prefix(1))).map(\.total) == [1])
    }

    /// A pair of random sequences sharing a prompt: the answers are the targets.
    static func pair(_ id: Int64, prompt: Int, chosen: Int, rejected: Int, seed: UInt64) -> PreferenceExample {
        var s = SeedStream.derive(seed, UInt64(id))
        let head = (0..<prompt).map { _ in Int(s.next() % 50) }
        func side(_ n: Int) -> TrainingExample {
            let ids = head + (0..<n).map { _ in Int(s.next() % 50) }
            return TrainingExample(recordId: id, ids: ids, targetMask: ids.indices.map { $0 >= prompt - 1 && $0 < ids.count - 1 })
        }
        return PreferenceExample(recordId: id, chosen: side(chosen), rejected: side(rejected))
    }

    @Test func preferenceLogpsAreTheNegatedLossSums() throws {
        let c = LoRATrainingSupport.configuration()
        let model = LoRATrainingModel(model: try LoRATrainingSupport.model(c, seed: 3))
        let pairs = [Self.pair(1, prompt: 5, chosen: 4, rejected: 7, seed: 1), Self.pair(2, prompt: 3, chosen: 9, rejected: 2, seed: 1),
                     Self.pair(3, prompt: 6, chosen: 5, rejected: 5, seed: 1)]
        let adapter = try LoRATrainingSupport.adapter(LoRAConfiguration(rank: 2, targets: [.q, .v, .down]), c, seed: 4)
        var done: [Int] = []
        let together = try Evaluator.preferenceLogps(model: model, adapter: adapter, pairs: pairs, batch: 2, progress: { done.append($0) })
        #expect(done == [2, 3])
        for (p, logps) in zip(pairs, together) {
            let alone = try model.losses(batch: [p.chosen.sequence, p.rejected.sequence], adapter: adapter)
            #expect(logps == ReferenceLogps(chosen: -alone[0].sum, rejected: -alone[1].sum))
            #expect(alone[0].tokens == p.chosen.targets && alone[1].tokens == p.rejected.targets)
        }
        #expect(try Evaluator.preferenceLogps(model: model, adapter: adapter, pairs: pairs, batch: 1) == together)
        // An adapter whose B is zero gives the base model's figures, as the base adapter does.
        let base = try Evaluator.preferenceLogps(model: model, adapter: try Evaluator.baseAdapter(for: c), pairs: pairs)
        let zero = try Evaluator.preferenceLogps(model: model, adapter: LoRAAdapter(zerosLike: adapter), pairs: pairs)
        #expect(base.count == 3 && base != together)
        for (a, b) in zip(base, zero) {
            #expect(abs(a.chosen - b.chosen) < 1e-9 && abs(a.rejected - b.rejected) < 1e-9)
        }
    }
}
