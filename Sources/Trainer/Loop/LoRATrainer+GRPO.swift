import Foundation
import ModelRuntime

/// GRPO's options (`corpus train --method grpo`), stored with the run's settings.
public struct GRPOSettings: Codable, Sendable, Equatable {
    /// Answers sampled per prompt (G, TRL's num_generations).
    public var numGenerations = 4
    /// Prompts per optimizer step (each with G answers).
    public var promptsPerStep = 4
    /// Tokens sampled per answer at most.
    public var maxNewTokens = 128
    /// Sampling temperature; the log-probabilities are taken under it too (TRL does the same).
    public var temperature = 1.0
    /// The clip range ε of the ratio (inactive with one optimization pass per batch, kept for the record).
    public var epsilon = 0.2
    /// Reward specifications (`RewardFunction`), in order.
    public var rewards: [String] = []
    /// One weight per reward (nil: all 1).
    public var rewardWeights: [Double]?
    /// Seconds a `cmd:` reward program may take per batch.
    public var rewardTimeout = 60.0

    enum CodingKeys: String, CodingKey {
        case numGenerations = "num_generations", promptsPerStep = "prompts_per_step", maxNewTokens = "max_new_tokens", temperature, epsilon
        case rewards, rewardWeights = "reward_weights", rewardTimeout = "reward_timeout"
    }

    public init() {}

    /// The rewards, parsed and weighted.
    /// - Throws: `TrainerError.unsupported` for a spec that does not parse or compile.
    public func rewardSet() throws -> RewardSet {
        var functions = try rewards.map { try RewardFunction(spec: $0) }
        for i in functions.indices { functions[i].timeout = rewardTimeout }
        return try RewardSet(functions: functions, weights: rewardWeights)
    }

    func validate() throws {
        guard numGenerations >= 2 else { throw TrainerError.unsupported("--num-generations must be at least 2 (advantages compare answers to the same prompt)") }
        guard promptsPerStep >= 1 else { throw TrainerError.unsupported("--prompts-per-step must be at least 1") }
        guard maxNewTokens >= 1 else { throw TrainerError.unsupported("--max-new-tokens must be at least 1") }
        guard temperature > 0, temperature.isFinite else { throw TrainerError.unsupported("--temperature must be positive for GRPO (answers must differ)") }
        guard epsilon > 0, epsilon < 1 else { throw TrainerError.unsupported("epsilon must be in (0, 1)") }
        guard rewardTimeout > 0 else { throw TrainerError.unsupported("--reward-timeout must be positive") }
        _ = try rewardSet()
    }
}

/// One GRPO prompt: its tokens (the chat template with the generation prompt), its text as the
/// model reads it, and the record's reference answer.
public struct GRPOPrompt: Sendable, Equatable {
    public var recordId: Int64
    public var ids: [Int]
    public var text: String
    public var reference: String

    public init(recordId: Int64, ids: [Int], text: String, reference: String) {
        self.recordId = recordId
        self.ids = ids
        self.text = text
        self.reference = reference
    }
}

/// What a GRPO run needs besides the model: prompts of both splits, the rewards, and how to turn
/// sampled tokens into text.
public struct GRPOData: Sendable {
    public var prompts: [GRPOPrompt]
    public var evalPrompts: [GRPOPrompt]
    public var rewards: RewardSet
    /// Tokens that end an answer (EOS, end of turn); included in the answer's tokens.
    public var stopTokens: Set<Int>
    /// Token ids → text (special tokens left out), what the rewards read.
    public var decode: @Sendable ([Int]) -> String

    public init(prompts: [GRPOPrompt], evalPrompts: [GRPOPrompt], rewards: RewardSet, stopTokens: Set<Int>,
                decode: @escaping @Sendable ([Int]) -> String) {
        self.prompts = prompts
        self.evalPrompts = evalPrompts
        self.rewards = rewards
        self.stopTokens = stopTokens
        self.decode = decode
    }

    /// What the rewards read for `answers[i]`, an answer (tokens) to `prompts[i]`: the prompt's
    /// text, the answer's text without its stop token, and the reference answer.
    func rewardInputs(prompts: [GRPOPrompt], answers: [[Int]]) -> [RewardInput] {
        zip(prompts, answers).map { prompt, answer in
            RewardInput(prompt: prompt.text, answer: decode(answer.filter { !stopTokens.contains($0) }), reference: prompt.reference)
        }
    }
}

extension LoRATrainingModel {
    /// Adds the gradient of GRPO's loss (`GRPO`) contributed by these answers into `gradients`:
    /// the policy's per-token log-probabilities with the dropout masks of `dropoutSeed`, each
    /// token's weight from its advantage and KL, then the weighted forward and backward pass
    /// under the same masks. `reference`: per-token reference log-probabilities (nil when β = 0);
    /// `normalizer`: the answer tokens of the whole generation batch. Returns this part's share
    /// of the loss and every token's KL.
    /// - Throws: `TrainerError` as `accumulateGradients` does.
    public func accumulateGRPOGradients(batch: [TrainingSequence], advantages: [Double], reference: [[Double]]?, adapter: LoRAAdapter,
                                        beta: Double, normalizer: Int, dropoutSeed: UInt64,
                                        into gradients: inout LoRAAdapter) throws -> (loss: Double, kl: [Double]) {
        guard advantages.count == batch.count, reference.map({ $0.count == batch.count }) ?? true else {
            throw TrainerError.unsupported("GRPO: \(batch.count) answers but \(advantages.count) advantages or \(reference?.count ?? 0) reference rows")
        }
        var batch = batch
        let policy = try tokenLogProbabilities(batch: batch, adapter: adapter, dropoutSeed: dropoutSeed)
        var loss = 0.0, kls: [Double] = []
        for j in batch.indices {
            if let r = reference?[j], r.count != policy[j].count {
                throw TrainerError.unsupported("GRPO answer \(j): \(policy[j].count) answer tokens but \(r.count) reference log-probabilities")
            }
            let terms = GRPO.tokenTerms(advantage: advantages[j], policy: policy[j], reference: reference?[j], beta: beta, normalizer: normalizer)
            loss += terms.losses.reduce(0, +)
            kls += terms.kl
            var weights = [Float](repeating: 0, count: batch[j].ids.count)
            var t = 0
            for position in 0..<max(batch[j].ids.count - 1, 0) where batch[j].targetMask[position] {
                weights[position] = terms.weights[t]
                t += 1
            }
            batch[j].weights = weights
        }
        _ = try accumulateGradients(batch: batch, adapter: adapter, normalizer: 1, dropoutSeed: dropoutSeed, into: &gradients)
        return (loss, kls)
    }
}

extension LoRATrainer {
    /// A prompt followed by an answer, its answer tokens as targets (position len(prompt) − 1
    /// predicts the first answer token; the stop token, when sampled, is a target too).
    static func answerSequence(prompt: [Int], answer: [Int]) -> TrainingSequence {
        let ids = (prompt + answer).map { Int32(truncatingIfNeeded: $0) }
        return TrainingSequence(ids: ids, targetMask: ids.indices.map { $0 >= prompt.count - 1 && $0 <= ids.count - 2 })
    }

    /// One GRPO step (`GRPO` has the equations): sample G answers per prompt with the current
    /// adapter (seeded by the run's seed, the step, the prompt and the answer, so a rerun or a
    /// resumed run draws the same), score them, group-normalize, then per micro-batch the
    /// reference's and the policy's per-token log-probabilities and the weighted forward and
    /// backward pass. Returns the loss, the answer tokens, all tokens processed and the metrics
    /// TRL logs; nil when interrupted.
    func grpoGradients(into gradients: inout LoRAAdapter, interrupted: () -> Bool)
        throws -> (loss: Double, answerTokens: Int, tokens: Int, metrics: [String: Double])?
    {
        guard let data = grpoData, let g = settings.grpo else { return nil }
        let G = g.numGenerations, beta = settings.beta ?? 0.04
        let prompts = plan[step].map { data.prompts[$0] }
        var parameters = GenerationParameters()
        parameters.maxTokens = g.maxNewTokens
        parameters.temperature = Float(g.temperature)
        parameters.stopTokenIDs = data.stopTokens
        var generationPrompts: [[Int]] = [], seeds: [UInt64] = []
        for (p, prompt) in prompts.enumerated() {
            for k in 0..<G {
                generationPrompts.append(prompt.ids)
                var stream = SeedStream.derive(settings.seed, 0x6772706F, UInt64(step), UInt64(p), UInt64(k))   // "grpo"
                seeds.append(stream.next())
            }
        }
        if interrupted() { return nil }
        let inference = try LoRAInference(adapter, configuration: base.configuration)
        let answers = try Generator.generate(model: base, adapter: inference, prompts: generationPrompts, parameters: parameters, seeds: seeds)
        if interrupted() { return nil }

        let inputs = data.rewardInputs(prompts: answers.indices.map { prompts[$0 / G] }, answers: answers)
        let (perFunction, total) = try data.rewards.score(inputs)
        let advantages = GRPO.advantages(total, groupSize: G)
        let sequences = answers.enumerated().map { Self.answerSequence(prompt: prompts[$0.offset / G].ids, answer: $0.element) }
        let normalizer = answers.reduce(0) { $0 + $1.count }

        var lossSum = 0.0, kls: [Double] = []
        let groups = Self.microBatches(Array(sequences.indices), limit: settings.microBatchTokens, tokens: { sequences[$0].ids.count })
        for (k, group) in groups.enumerated() {
            if interrupted() { return nil }
            let batch = group.map { sequences[$0] }
            let reference = beta != 0 ? try model.tokenLogProbabilities(batch: batch, adapter: referenceAdapter, dropoutSeed: nil) : nil
            let result = try model.accumulateGRPOGradients(batch: batch, advantages: group.map { advantages[$0] }, reference: reference,
                                                           adapter: adapter, beta: beta, normalizer: normalizer,
                                                           dropoutSeed: dropoutSeed(microBatch: k), into: &gradients)
            lossSum += result.loss
            kls += result.kl
        }
        var metrics: [String: Double] = [
            "reward": GRPO.mean(total), "reward_std": GRPO.std(total), "kl": GRPO.mean(kls),
            "completions/mean_length": GRPO.mean(answers.map { Double($0.count) }),
            "completions/clipped_ratio": GRPO.mean(answers.map { $0.last.map { data.stopTokens.contains($0) } == true ? 0 : 1 }),
            // One optimization pass per batch: the ratio is exactly 1, so nothing is clipped.
            "clip_ratio/region_mean": 0,
            "frac_reward_zero_std": GRPO.mean(stride(from: 0, to: total.count, by: G).map { GRPO.std(Array(total[$0..<min($0 + G, total.count)])) == 0 ? 1 : 0 }),
        ]
        for (name, scores) in zip(data.rewards.names, perFunction) {
            metrics["rewards/\(name)/mean"] = GRPO.mean(scores)
            metrics["rewards/\(name)/std"] = GRPO.std(scores)
        }
        return (lossSum, normalizer, sequences.reduce(0) { $0 + $1.ids.count }, metrics)
    }

    /// The mean rewards of greedy answers to the eval prompts (each function's and the weighted
    /// total), prefixed "eval/"; nil without eval prompts or outside GRPO.
    public func evaluateRewards() throws -> [String: Double]? {
        guard let data = grpoData, let g = settings.grpo, !data.evalPrompts.isEmpty else { return nil }
        var parameters = GenerationParameters()
        parameters.maxTokens = g.maxNewTokens
        parameters.stopTokenIDs = data.stopTokens
        let inference = try LoRAInference(adapter, configuration: base.configuration)
        let answers = try Generator.generate(model: base, adapter: inference, prompts: data.evalPrompts.map(\.ids), parameters: parameters)
        let inputs = data.rewardInputs(prompts: data.evalPrompts, answers: answers)
        let (perFunction, total) = try data.rewards.score(inputs)
        var metrics = ["eval/reward": GRPO.mean(total)]
        for (name, scores) in zip(data.rewards.names, perFunction) { metrics["eval/rewards/\(name)/mean"] = GRPO.mean(scores) }
        return metrics
    }
}
