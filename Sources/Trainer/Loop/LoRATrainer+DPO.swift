import ModelRuntime

/// Log-probability sums of one pair's answers (the chosen and the rejected).
public struct ReferenceLogps: Sendable, Equatable {
    public var chosen: Double
    public var rejected: Double

    public init(chosen: Double, rejected: Double) {
        self.chosen = chosen
        self.rejected = rejected
    }
}

extension TrainingExample {
    /// The example as the engine runs it.
    var sequence: TrainingSequence {
        TrainingSequence(ids: ids.map { Int32(truncatingIfNeeded: $0) }, targetMask: targetMask)
    }
}

extension LoRATrainingModel {
    /// Adds the gradient of a DPO step's loss (mean over `pairsInStep` pairs) contributed by
    /// these pairs into `gradients` (`DPO` has the equations): a forward pass for the policy's
    /// log-probability sums with the dropout masks of `dropoutSeed`, then the forward and
    /// backward pass with weights ±β·σ(−z)/pairsInStep on the answer tokens, under the same
    /// masks (they depend on the seed and the sequence's place in the batch only).
    /// Returns each pair's loss and rewards, and the policy sums.
    /// - Throws: `TrainerError` as `accumulateGradients` does.
    public func accumulateDPOGradients(pairs: [(chosen: TrainingSequence, rejected: TrainingSequence)], reference: [ReferenceLogps],
                                       adapter: LoRAAdapter, beta: Double, pairsInStep: Int, dropoutSeed: UInt64,
                                       into gradients: inout LoRAAdapter) throws -> (results: [DPO.PairResult], policy: [ReferenceLogps]) {
        guard reference.count == pairs.count, pairsInStep > 0 else {
            throw TrainerError.unsupported("DPO: \(pairs.count) pairs but \(reference.count) reference sums, \(pairsInStep) pairs in the step")
        }
        var batch = pairs.flatMap { [$0.chosen, $0.rejected] }
        let sums = try losses(batch: batch, adapter: adapter, dropoutSeed: dropoutSeed)
        var results: [DPO.PairResult] = [], policy: [ReferenceLogps] = []
        for i in pairs.indices {
            let p = ReferenceLogps(chosen: -sums[2 * i].sum, rejected: -sums[2 * i + 1].sum)
            let r = DPO.pair(policy: p, reference: reference[i], beta: beta)
            results.append(r)
            policy.append(p)
            let w = Float(r.weight / Double(pairsInStep))
            batch[2 * i].weights = [Float](repeating: w, count: batch[2 * i].ids.count)
            batch[2 * i + 1].weights = [Float](repeating: -w, count: batch[2 * i + 1].ids.count)
        }
        _ = try accumulateGradients(batch: batch, adapter: adapter, normalizer: 1, dropoutSeed: dropoutSeed, into: &gradients)
        return (results, policy)
    }
}

extension LoRATrainer {
    var beta: Double { settings.beta ?? 0.1 }

    /// One DPO step's gradient (`DPO` has the equations). Per micro-batch of pairs: a forward
    /// pass gives the policy's log-probabilities with the step's dropout masks, the pair's
    /// weight β·σ(−z)/P follows, then the forward and backward pass with those weights on the
    /// answer tokens (the same masks: they depend on the seed and the sequence's place in the
    /// micro-batch only). The extra forward costs about a third of a supervised step.
    /// Returns the step's mean loss and TRL's metrics; nil when interrupted.
    func preferenceGradients(into gradients: inout LoRAAdapter, interrupted: () -> Bool) throws -> (Double, [String: Double])? {
        let indices = plan[step]
        var results: [DPO.PairResult] = [], policyChosen: [Double] = [], policyRejected: [Double] = []
        let groups = Self.microBatches(indices.map { ($0, pairs[$0]) }, limit: settings.microBatchTokens, tokens: { $0.1.tokens })
        for (k, group) in groups.enumerated() {
            if interrupted() { return nil }
            let step = try model.accumulateDPOGradients(pairs: group.map { ($0.1.chosen.sequence, $0.1.rejected.sequence) },
                                                        reference: group.map { reference[$0.0] }, adapter: adapter, beta: beta,
                                                        pairsInStep: indices.count, dropoutSeed: dropoutSeed(microBatch: k), into: &gradients)
            results += step.results
            policyChosen += step.policy.map(\.chosen)
            policyRejected += step.policy.map(\.rejected)
        }
        let metrics = DPO.metrics(results, policyChosen: policyChosen, policyRejected: policyRejected)
        return (metrics["loss"] ?? 0, metrics.filter { $0.key != "loss" })
    }

    /// DPO's figures on the eval pairs in evaluation mode (no dropout), prefixed "eval/"; nil
    /// when there are none. `eval/rewards/accuracies` is how often the model prefers the chosen
    /// answer more than the reference does.
    func evaluatePairs() throws -> [String: Double]? {
        guard !evalPairs.isEmpty else { return nil }
        var results: [DPO.PairResult] = [], policyChosen: [Double] = [], policyRejected: [Double] = []
        var offset = 0
        for mb in Self.microBatches(evalPairs, limit: settings.microBatchTokens) {
            let policy = try model.losses(batch: Self.sequences(mb), adapter: adapter, dropoutSeed: nil)
            for i in mb.indices {
                let p = ReferenceLogps(chosen: -policy[2 * i].sum, rejected: -policy[2 * i + 1].sum)
                results.append(DPO.pair(policy: p, reference: evalReference[offset + i], beta: beta))
                policyChosen.append(p.chosen)
                policyRejected.append(p.rejected)
            }
            offset += mb.count
        }
        return DPO.metrics(results, policyChosen: policyChosen, policyRejected: policyRejected, prefix: "eval/")
    }
}
