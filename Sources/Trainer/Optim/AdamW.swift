import ModelRuntime
import Foundation

/// AdamW over a LoRA adapter's tensors, exactly as `torch.optim.AdamW` computes it on the CPU
/// (its default single-tensor path; Loshchilov & Hutter, "Decoupled Weight Decay
/// Regularization", https://arxiv.org/abs/1711.05101). For each parameter θ with gradient g at
/// step t (from 1), with lr and the bias corrections in double precision as PyTorch's Python code
/// computes them and everything else in fp32:
///
///     θ ← θ · (1 − lr·λ)                          decoupled weight decay
///     m ← m + (1 − β1)·(g − m)                    `exp_avg.lerp_(g, 1 − β1)` (one fused multiply-add)
///     v ← v·β2 + ((1 − β2)·g)·g                   `exp_avg_sq.mul_(β2).addcmul_(g, g, 1 − β2)` (fused multiply-add)
///     θ ← θ − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
///
/// ε is added after the bias-corrected square root, as PyTorch does (not inside it).
public struct AdamW: Sendable, Equatable {
    /// PyTorch's names and defaults (`betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01`).
    public struct Hyperparameters: Sendable, Equatable {
        /// β1, the decay of the first moment (`betas[0]`).
        public var beta1: Double
        /// β2, the decay of the second moment (`betas[1]`).
        public var beta2: Double
        /// ε, added to the bias-corrected √v (`eps`).
        public var epsilon: Double
        /// λ, decoupled weight decay: θ ← θ·(1 − lr·λ) (`weight_decay`).
        public var weightDecay: Double

        public init(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0.01) {
            self.beta1 = beta1
            self.beta2 = beta2
            self.epsilon = epsilon
            self.weightDecay = weightDecay
        }
    }

    /// β1, β2, ε and λ; may change between updates, as a param group's can.
    public var hyperparameters: Hyperparameters
    /// Updates taken so far (PyTorch's `state["step"]`).
    public private(set) var step: Int
    /// m, PyTorch's `exp_avg`, shaped like the adapter.
    public private(set) var firstMoment: LoRAAdapter
    /// v, PyTorch's `exp_avg_sq`, shaped like the adapter.
    public private(set) var secondMoment: LoRAAdapter

    /// A fresh optimizer (step 0, zero moments) for adapters shaped like `adapter`.
    public init(_ hyperparameters: Hyperparameters = Hyperparameters(), for adapter: LoRAAdapter) {
        self.hyperparameters = hyperparameters
        step = 0
        firstMoment = adapter.zeros()
        secondMoment = adapter.zeros()
    }

    /// Restores a state (from a checkpoint); the moments must have the same shapes.
    /// - Throws: `TrainerError.unsupported` when the shapes differ or `step` is negative.
    public init(_ hyperparameters: Hyperparameters, step: Int, firstMoment: LoRAAdapter, secondMoment: LoRAAdapter) throws {
        guard step >= 0, firstMoment.hasSameShapes(as: secondMoment) else {
            throw TrainerError.unsupported("AdamW state: step \(step) must be non-negative and both moments must have the same shapes")
        }
        self.hyperparameters = hyperparameters
        self.step = step
        self.firstMoment = firstMoment
        self.secondMoment = secondMoment
    }

    /// One update of `adapter` with `gradients` at `learningRate` (a schedule's value for this step).
    /// - Complexity: O(number of adapter parameters).
    /// - Throws: `TrainerError.unsupported` when the adapter or the gradients are not shaped like
    ///   this optimizer's moments.
    public mutating func update(_ adapter: inout LoRAAdapter, gradients: LoRAAdapter, learningRate lr: Double) throws {
        guard adapter.hasSameShapes(as: firstMoment), gradients.hasSameShapes(as: firstMoment) else {
            throw TrainerError.unsupported("AdamW: the adapter or its gradients are not shaped like the optimizer's state (layers \(adapter.layers.count)/\(gradients.layers.count), expected \(firstMoment.layers.count)); was the optimizer made for another adapter?")
        }
        step += 1
        let h = hyperparameters
        let t = Double(step)
        let stepSize = lr / (1 - pow(h.beta1, t))
        let constants = Constants(
            decay: h.weightDecay == 0 ? nil : Float(1 - lr * h.weightDecay),
            beta1Complement: Float(1 - h.beta1), beta2: Float(h.beta2), beta2Complement: Float(1 - h.beta2),
            negativeStepSize: Float(-stepSize), correction2Root: Float(pow(1 - pow(h.beta2, t), 0.5)),  // Python's `** 0.5`
            epsilon: Float(h.epsilon))
        for (l, target) in adapter.slots {
            guard let g = gradients.layers[l][target] else { continue }
            firstMoment.modifyPair(layer: l, target: target) { m in
                secondMoment.modifyPair(layer: l, target: target) { v in
                    adapter.modifyPair(layer: l, target: target) { p in
                        Self.update(&p.a.data, gradient: g.a.data, &m.a.data, &v.a.data, constants)
                        Self.update(&p.b.data, gradient: g.b.data, &m.b.data, &v.b.data, constants)
                    }
                }
            }
        }
    }

    /// The per-step scalars, rounded to fp32 where PyTorch hands a Python float to an fp32 kernel.
    struct Constants {
        var decay: Float?             // 1 − lr·λ, nil when λ = 0 (PyTorch skips the multiply)
        var beta1Complement: Float    // 1 − β1, the lerp weight
        var beta2: Float
        var beta2Complement: Float    // 1 − β2
        var negativeStepSize: Float   // −lr / (1 − β1^t)
        var correction2Root: Float    // √(1 − β2^t)
        var epsilon: Float
    }

    /// One AdamW update of one tensor, element by element in PyTorch's order of operations.
    static func update(_ p: inout [Float], gradient g: [Float], _ m: inout [Float], _ v: inout [Float], _ c: Constants) {
        p.withUnsafeMutableBufferPointer { p in
            m.withUnsafeMutableBufferPointer { m in
                v.withUnsafeMutableBufferPointer { v in
                    g.withUnsafeBufferPointer { g in
                        for i in 0..<min(p.count, g.count, m.count, v.count) {
                            if let decay = c.decay { p[i] = p[i] * decay }
                            // lerp with a weight below 0.5: m + w·(g − m) as one fused multiply-add.
                            m[i] = m[i].addingProduct(c.beta1Complement, g[i] - m[i])
                            // addcmul: v + ((1 − β2)·g)·g, the last multiply-add fused as PyTorch's CPU kernel does.
                            v[i] = v[i] * c.beta2
                            v[i] = v[i].addingProduct(c.beta2Complement * g[i], g[i])
                            let denominator = v[i].squareRoot() / c.correction2Root + c.epsilon
                            p[i] = p[i] + c.negativeStepSize * m[i] / denominator
                        }
                    }
                }
            }
        }
    }
}
