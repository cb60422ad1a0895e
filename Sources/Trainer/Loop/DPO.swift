import Foundation

/// Direct Preference Optimization with the sigmoid loss (Rafailov et al. 2023; TRL's
/// `DPOTrainer` with `loss_type="sigmoid"`, no label smoothing), the mathematics of one pair:
///
///     π_c, π_r   policy log-probabilities of the chosen and rejected answers (sums over their tokens)
///     ρ_c, ρ_r   the same under the reference model (the adapter switched off, or `--init-adapter` frozen)
///     z = β·((π_c − ρ_c) − (π_r − ρ_r))
///     loss = −log σ(z) = softplus(−z)
///     ∂loss/∂π_c = −β·σ(−z),  ∂loss/∂π_r = +β·σ(−z)
///
/// A step's loss is the mean over its pairs. Since π = −(cross-entropy sum), the gradient is the
/// supervised one with weight +β·σ(−z)/P on every chosen answer token and −β·σ(−z)/P on every
/// rejected one (`TrainingSequence.weights`). With a fresh adapter (B = 0) the policy equals the
/// reference, z = 0 and the loss is ln 2 exactly.
public enum DPO {
    /// One pair's loss and rewards.
    public struct PairResult: Sendable, Equatable {
        /// softplus(−z).
        public var loss: Double
        /// β·(π_c − ρ_c), TRL's `rewards/chosen` for this pair.
        public var chosenReward: Double
        /// β·(π_r − ρ_r).
        public var rejectedReward: Double
        /// β·σ(−z): the weight of the chosen tokens' cross-entropy (the rejected get its negative).
        public var weight: Double

        public var margin: Double { chosenReward - rejectedReward }
    }

    /// The loss of one pair from its four log-probability sums.
    public static func pair(policyChosen: Double, policyRejected: Double, referenceChosen: Double, referenceRejected: Double,
                            beta: Double) -> PairResult {
        let chosen = beta * (policyChosen - referenceChosen), rejected = beta * (policyRejected - referenceRejected)
        let z = chosen - rejected
        return PairResult(loss: softplus(-z), chosenReward: chosen, rejectedReward: rejected, weight: beta * sigmoid(-z))
    }

    /// The loss of one pair from the policy's and the reference's log-probability sums.
    public static func pair(policy: ReferenceLogps, reference: ReferenceLogps, beta: Double) -> PairResult {
        pair(policyChosen: policy.chosen, policyRejected: policy.rejected, referenceChosen: reference.chosen,
             referenceRejected: reference.rejected, beta: beta)
    }

    /// log(1 + eˣ) without overflow.
    static func softplus(_ x: Double) -> Double { max(x, 0) + log1p(exp(-abs(x))) }

    /// 1 / (1 + e⁻ˣ) without overflow.
    static func sigmoid(_ x: Double) -> Double {
        x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x))
    }

    /// TRL's logged metrics over some pairs: loss, rewards/chosen, rewards/rejected,
    /// rewards/accuracies (share with chosen reward strictly above rejected), rewards/margins,
    /// logps/chosen and logps/rejected (policy sums), all means over the pairs.
    public static func metrics(_ results: [PairResult], policyChosen: [Double], policyRejected: [Double], prefix: String = "")
        -> [String: Double]
    {
        // A running mean: equal values give exactly that value (a step of fresh pairs reports ln 2).
        func mean(_ values: [Double]) -> Double {
            var m = 0.0
            for (k, x) in values.enumerated() { m += (x - m) / Double(k + 1) }
            return m
        }
        return [
            prefix + "loss": mean(results.map(\.loss)),
            prefix + "rewards/chosen": mean(results.map(\.chosenReward)),
            prefix + "rewards/rejected": mean(results.map(\.rejectedReward)),
            prefix + "rewards/accuracies": mean(results.map { $0.chosenReward > $0.rejectedReward ? 1 : 0 }),
            prefix + "rewards/margins": mean(results.map(\.margin)),
            prefix + "logps/chosen": mean(policyChosen),
            prefix + "logps/rejected": mean(policyRejected),
        ]
    }
}
