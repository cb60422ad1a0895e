import Foundation

/// Group Relative Policy Optimization as TRL 1.16's GRPOTrainer computes it with its defaults
/// (loss_type "dapo", scale_rewards "group", num_iterations 1, use_bias_correction_kl), the
/// mathematics of one generation batch:
///
///     G answers per prompt, rewards r (weighted sum of the reward functions)
///     A_i = (r_i − mean_group) / (std_group + 1e-4)          std unbiased (divides by G − 1)
///     logp_t   policy log-probability of answer token t (logits / temperature)
///     ref_t    the same under the reference (the base model, or --init-adapter frozen)
///     ratio_t  = exp(logp_t − logp_t.detached) = 1 in value (one optimization pass per batch)
///     kl_t     = exp(ref_t − logp_t) − (ref_t − logp_t) − 1
///     loss_t   = −min(ratio·A, clip(ratio, 1 − ε, 1 + ε)·A) + β·kl_t·ratio
///     loss     = Σ_t loss_t / N,  N = answer tokens of the whole batch ("dapo")
///
/// The gradient with respect to logp_t (ratio's derivative is 1, the clip inactive at ratio 1):
///     ∂loss/∂logp_t = (−A + β·(kl_t + 1 − exp(ref_t − logp_t))) / N
/// The first term is the policy gradient, the second the KL's own derivative plus the KL
/// carried by the ratio (TRL's use_bias_correction_kl). Since logp = −cross-entropy, each answer
/// token gets the weight w_t = −∂loss/∂logp_t on its cross-entropy (`TrainingSequence.weights`).
public enum GRPO {
    /// TRL's epsilon in the advantage's denominator.
    public static let advantageEpsilon = 1e-4

    /// Group-normalized advantages of rewards laid out group after group (`groupSize` each).
    public static func advantages(_ rewards: [Double], groupSize G: Int) -> [Double] {
        guard G > 0 else { return rewards.map { _ in 0 } }
        var out = [Double](repeating: 0, count: rewards.count)
        for start in stride(from: 0, to: rewards.count, by: G) {
            let group = Array(rewards[start..<min(start + G, rewards.count)])
            let mean = group.reduce(0, +) / Double(group.count)
            let std = group.count > 1 ? (group.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(group.count - 1)).squareRoot() : 0
            for (k, r) in group.enumerated() { out[start + k] = (r - mean) / (std + advantageEpsilon) }
        }
        return out
    }

    /// One answer's per-token loss terms and cross-entropy weights, for `normalizer` answer
    /// tokens in the batch. `reference` nil (β = 0): no KL term.
    public static func tokenTerms(advantage a: Double, policy: [Double], reference: [Double]?, beta: Double, normalizer: Int)
        -> (losses: [Double], weights: [Float], kl: [Double])
    {
        let n = Double(max(normalizer, 1))
        var losses: [Double] = [], weights: [Float] = [], kls: [Double] = []
        for (t, logp) in policy.enumerated() {
            var loss = -a, gradient = -a
            var kl = 0.0
            if let reference, beta != 0 {
                let delta = reference[t] - logp
                kl = exp(delta) - delta - 1
                loss += beta * kl
                gradient += beta * (kl + 1 - exp(delta))
            }
            losses.append(loss / n)
            weights.append(Float(-gradient / n))
            kls.append(kl)
        }
        return (losses, weights, kls)
    }

    /// Standard deviation as TRL logs it (unbiased).
    static func std(_ values: [Double]) -> Double {
        guard values.count > 1 else { return 0 }
        let mean = values.reduce(0, +) / Double(values.count)
        return (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count - 1)).squareRoot()
    }

    static func mean(_ values: [Double]) -> Double { values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count) }
}
