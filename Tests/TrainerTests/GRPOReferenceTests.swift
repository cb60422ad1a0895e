import Foundation
import Testing
@testable import ModelRuntime
@testable import Trainer

/// GRPO against TRL 1.16's GRPOTrainer (loss_type "dapo", scale_rewards "group", β 0.04, ε 0.2,
/// one optimization pass, reference = the base with the PEFT adapter disabled) on fixed answers
/// and rewards: Fixtures/grpo-smollm.safetensors, made by scripts/make-preference-fixtures.py.
@Suite("GRPO against TRL")
struct GRPOReferenceTests {
    @Test(arguments: [0.04, 0.0]) func lossAndGradientsMatchTRL(beta: Double) throws {
        let path = TrainerFixtures.directory.appendingPathComponent("grpo-smollm.safetensors").path
        let file = try SafetensorsFile(path: path)
        let (model, adapter, gradientsExpected) = try DPOReferenceTests.modelAndAdapter(file, path: path, gradientPrefix: beta == 0 ? "beta0.grad." : "grad.")
        let meta = file.metadata
        #expect(meta["loss_type"] == "dapo" && meta["scale_rewards"] == "group" && meta["beta"] == "0.04" && meta["temperature"] == "1.0")
        func values(_ name: String) throws -> [Double] { try file.tensor(named: name).data.map(Double.init) }

        // The batch: 2 prompts × 4 answers, laid out group after group as TRL does.
        var batch: [TrainingSequence] = [], policyExpected: [[Double]] = [], referenceExpected: [[Double]] = []
        var p = 0
        while file.entries["grpo.prompt.\(p)"] != nil {
            let prompt = try values("grpo.prompt.\(p)").map { Int($0) }
            var k = 0
            while file.entries["grpo.completion.\(p).\(k)"] != nil {
                batch.append(LoRATrainer.answerSequence(prompt: prompt, answer: try values("grpo.completion.\(p).\(k)").map { Int($0) }))
                policyExpected.append(try values("grpo.policy_logps.\(p).\(k)"))
                referenceExpected.append(try values("grpo.reference_logps.\(p).\(k)"))
                k += 1
            }
            p += 1
        }
        #expect(batch.count == 8)
        let normalizer = policyExpected.reduce(0) { $0 + $1.count }
        #expect(String(normalizer) == meta["num_items_in_batch"])

        // Advantages from the rewards, as TRL normalizes them (a group of equal rewards gives 0).
        let advantages = GRPO.advantages(try values("grpo.rewards"), groupSize: 4)
        for (ours, theirs) in zip(advantages, try values("grpo.advantages")) { #expect(abs(ours - theirs) < 1e-5, "\(ours) vs TRL \(theirs)") }
        #expect(advantages[4...].allSatisfy { $0 == 0 })

        let trainer = LoRATrainingModel(model: model, options: TrainingOptions(lossChunkRows: 3))
        let reference = try trainer.tokenLogProbabilities(batch: batch, adapter: try DPOReferenceTests.switchedOff(adapter), dropoutSeed: nil)
        let policy = try trainer.tokenLogProbabilities(batch: batch, adapter: adapter, dropoutSeed: nil)
        for i in batch.indices {
            #expect(reference[i].count == referenceExpected[i].count && policy[i].count == policyExpected[i].count)
            for (ours, theirs) in Array(zip(reference[i], referenceExpected[i])) + Array(zip(policy[i], policyExpected[i])) {
                #expect(abs(ours - theirs) < 1e-5, "answer \(i): \(ours) vs TRL \(theirs)")
            }
        }

        var gradients = LoRAAdapter(zerosLike: adapter)
        let result = try trainer.accumulateGRPOGradients(batch: batch, advantages: advantages, reference: beta == 0 ? nil : reference, adapter: adapter,
                                                         beta: beta, normalizer: normalizer, dropoutSeed: 0, into: &gradients)
        let expectedLoss = try #require(Double(meta[beta == 0 ? "loss_beta0" : "loss"] ?? ""))
        #expect(abs(result.loss - expectedLoss) < 1e-5 * abs(expectedLoss), "loss \(result.loss), TRL \(expectedLoss)")
        if beta != 0 {
            let kl = try #require(Double(meta["kl"] ?? ""))
            #expect(abs(GRPO.mean(result.kl) - kl) < 1e-5, "kl \(GRPO.mean(result.kl)), TRL \(kl)")
        }
        let worst = try DPOReferenceTests.worstGradientError(gradients, gradientsExpected, tolerance: 1e-4)
        print("GRPO vs TRL (beta \(beta)): loss \(result.loss) vs \(expectedLoss), worst gradient error \(worst)")
    }

    /// Rewards: each built-in kind on known answers, weights, and a reward program's failures.
    @Test func rewardFunctions() throws {
        let inputs = [RewardInput(prompt: "p", answer: "推理……答案：42", reference: "答案：42"),
                      RewardInput(prompt: "p", answer: "答案： 41", reference: "答案：42"),
                      RewardInput(prompt: "p", answer: "no idea", reference: "答案：42")]
        #expect(try RewardFunction(spec: "regex:答案[:：]").scores(inputs) == [1, 1, 0])
        #expect(try RewardFunction(spec: #"extract:答案[:：]\s*(\d+)"#).scores(inputs) == [1, 0, 0])
        #expect(try RewardFunction(spec: "length:5-8").scores(inputs) == [0, 1, 1])   // 9, 6 and 7 characters
        #expect(try RewardFunction(spec: "length:8-100").scores(inputs) == [1, 0, 0])
        let set = try RewardSet(functions: [RewardFunction(spec: #"extract:答案[:：]\s*(\d+)"#), RewardFunction(spec: "regex:答案")], weights: [1, 0.5])
        #expect(set.names == ["extract", "regex"])
        #expect(try set.score(inputs).total == [1.5, 0.5, 0])
        #expect(try RewardFunction(spec: #"extract:(\d+)"#).firstUncheckableReference(["7", "none", "8"]) == 1)
        #expect(try RewardFunction(spec: "cmd:awk '{print 0.25}'").scores(inputs) == [0.25, 0.25, 0.25])

        #expect(throws: TrainerError.self) { try RewardFunction(spec: "regex:(unclosed") }
        #expect(throws: TrainerError.self) { try RewardFunction(spec: "length:9-3") }
        #expect(throws: TrainerError.self) { try RewardFunction(spec: "nope:x") }
        #expect(throws: TrainerError.self) { try RewardSet(functions: [RewardFunction(spec: "regex:a")], weights: [1, 2]) }
        func failure(_ spec: String, timeout: Double = 60) -> String {
            do {
                var f = try RewardFunction(spec: spec)
                f.timeout = timeout
                _ = try f.scores(inputs)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        #expect(failure("cmd:echo abc; echo 1; echo 2").contains("line 1 of its output is 'abc', not a number"))
        #expect(failure("cmd:echo 1").contains("printed 1 lines for 3 answers"))
        #expect(failure("cmd:echo oops >&2; exit 3").contains("exited with status 3; its standard error ends: oops"))
        #expect(failure("cmd:sleep 5", timeout: 0.5).contains("did not finish within 0 s"))
        #expect(failure("cmd:exit 0").contains("printed 0 lines for 3 answers"))
    }
}
