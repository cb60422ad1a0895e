import ModelRuntime
import Foundation

/// One training example: token ids and, per position, whether the next token is a target.
public struct TrainingSequence: Sendable, Equatable {
    /// Token ids of the whole conversation.
    public var ids: [Int32]
    /// targetMask[t]: position t is trained to predict ids[t + 1] (an assistant token, EOS
    /// included). One flag per id; the last flag is ignored (there is no next token).
    public var targetMask: [Bool]
    /// weights[t]: the factor of position t's cross-entropy in the objective whose gradient is
    /// accumulated (nil: 1 everywhere). Preference objectives set them: DPO gives every answer
    /// token of a pair ±β·σ(−z)/pairs, GRPO each token its advantage and KL terms. May be
    /// negative. The reported loss sums stay unweighted cross-entropy.
    public var weights: [Float]?

    /// A sequence; `targetMask` (and `weights`, when given) must have one entry per id (checked
    /// when the batch is run).
    public init(ids: [Int32], targetMask: [Bool], weights: [Float]? = nil) {
        self.ids = ids
        self.targetMask = targetMask
        self.weights = weights
    }
}

/// How the training forward and backward trade memory for time.
public struct TrainingOptions: Sendable, Equatable {
    /// Keep only each block's input in the forward pass and recompute the block's activations
    /// just before its backward: memory O(L·T·C) instead of O(L·T·(C + QKV + FFN + …)), about
    /// one extra forward of compute. Gradients are identical (same code, same order).
    public var recomputeActivations: Bool
    /// Rows of the LM head computed together (the logits buffer is lossChunkRows × vocab).
    public var lossChunkRows: Int
    /// Factor on the logits before the softmax of the loss: 1/temperature. GRPO scores sampled
    /// answers under the temperature they were sampled with, as TRL's GRPOTrainer does.
    public var logitScale: Float = 1

    /// Defaults: saved activations (fastest) and 64 LM-head rows per chunk (12.6 MB of logits
    /// for a 49,152-token vocabulary).
    public init(recomputeActivations: Bool = false, lossChunkRows: Int = 64) {
        self.recomputeActivations = recomputeActivations
        self.lossChunkRows = lossChunkRows
    }
}

/// The loss of a batch.
public struct TrainingLoss: Sendable, Equatable {
    /// Σ over target positions of the cross-entropy −log p(next token), in nats.
    public var sum: Double
    /// Number of target positions.
    public var tokens: Int
    /// The normalizer the gradients were divided by.
    public var normalizer: Int

    /// A loss of `tokens` target positions whose gradients were divided by `normalizer`.
    public init(sum: Double, tokens: Int, normalizer: Int) {
        self.sum = sum
        self.tokens = tokens
        self.normalizer = normalizer
    }

    /// sum / normalizer: the objective whose gradient was accumulated.
    public var value: Double { sum / Double(max(normalizer, 1)) }
    /// sum / tokens: the mean cross-entropy of this batch alone.
    public var mean: Double { sum / Double(max(tokens, 1)) }
}

/// A frozen Llama-family model that computes the loss of a LoRA adapter on a batch and the
/// gradient of that loss with respect to every LoRA matrix (fp32 activations and LoRA matrices;
/// products with the frozen weights read them in their stored type, in the model's `--compute`
/// arithmetic). Explicit forward and backward functions per layer, no autograd; the
/// mathematics is written down in docs/TRAINING_MATH.md.
public final class LoRATrainingModel: @unchecked Sendable {
    // @unchecked: the model is immutable after init; the cached workspaces are taken out and put
    // back under `lock`, so concurrent calls never share one.
    /// The frozen model's configuration.
    public let configuration: LlamaConfiguration
    /// Memory and chunking choices of this trainer.
    public let options: TrainingOptions
    let engine: TrainingEngine<Float>
    private let lock = NSLock()
    /// Buffers of the last training call and of the last evaluation call, reused while they fit.
    private var workspaces: [Bool: TrainingWorkspace<Float>] = [:]

    /// Runs the engine with a cached workspace for this mode (training or evaluation).
    private func run(_ batch: [TrainingSequence], _ lora: LoRABuffers<Float>, normalizer: Int, dropoutSeed: UInt64?,
                     perSequence: ((Int, Double, Int) -> Void)? = nil, perToken: ((Int, [Double]) -> Void)? = nil) -> (sum: Double, tokens: Int) {
        lock.lock()
        var workspace = workspaces.removeValue(forKey: lora.training)
        lock.unlock()
        let result = engine.run(batch: batch, lora: lora, normalizer: normalizer, dropoutSeed: dropoutSeed, workspace: &workspace,
                                perSequence: perSequence, perToken: perToken)
        lock.lock()
        workspaces[lora.training] = workspace
        lock.unlock()
        return result
    }

    /// Wraps a loaded model; its fp32 weights are shared, not copied.
    public init(model: LlamaModel, options: TrainingOptions = TrainingOptions()) {
        configuration = model.configuration
        self.options = options
        engine = TrainingEngine(model: model, options: options)
    }

    /// Adds ∂(loss.sum / normalizer)/∂(A, B) of `adapter` on `batch` into `gradients`, so that
    /// micro-batches of one optimizer step with the step's total target count as `normalizer`
    /// add up to the gradient of the whole batch's mean loss. Dropout (the adapter's
    /// `configuration.dropout`) draws its masks from `dropoutSeed`, the sequence's index in
    /// `batch`, the layer and the projection.
    /// - Complexity: about 6 × (frozen parameters) FLOPs per token plus attention (T² per layer).
    /// - Throws: `TrainerError` for an id outside the vocabulary, a mask of the wrong length,
    ///   a non-positive normalizer, or an adapter (or gradient buffer) that does not fit the model.
    public func accumulateGradients(batch: [TrainingSequence], adapter: LoRAAdapter, normalizer: Int, dropoutSeed: UInt64,
                                    into gradients: inout LoRAAdapter) throws -> TrainingLoss {
        guard normalizer > 0 else {
            throw TrainerError.unsupported("normalizer \(normalizer): pass the number of target tokens of the whole step (> 0)")
        }
        try engine.validate(batch)
        let parameters = try LoRAParameters<Float>(adapter, for: configuration)
        _ = try LoRAParameters<Float>(gradients, for: configuration)
        guard gradients.configuration.targets == adapter.configuration.targets, gradients.configuration.rank == adapter.configuration.rank else {
            throw TrainerError.unsupported("the gradient buffer does not have the adapter's targets and rank; make it with LoRAAdapter(zerosLike:)")
        }
        let buffers = LoRABuffers(parameters, gradients: true)
        let (sum, tokens) = run(batch, buffers, normalizer: normalizer, dropoutSeed: dropoutSeed)
        var g = LoRAParameters(zerosLike: parameters)
        if let db = buffers.db {
            for l in g.a.indices {
                for slot in parameters.slots {
                    g.a[l][slot] = buffers.da(l, slot)?.array ?? []
                    g.b[l][slot] = db[l][slot].array
                }
            }
        }
        g.add(into: &gradients)
        return TrainingLoss(sum: sum, tokens: tokens, normalizer: normalizer)
    }

    /// Each sequence's own cross-entropy sum (−Σ log p over its targets) and target count with
    /// the dropout masks `dropoutSeed` selects, as ``accumulateGradients(batch:adapter:normalizer:dropoutSeed:into:)``
    /// draws them for the same batch: the policy log-probabilities a preference step needs
    /// before it knows its gradient weights. nil `dropoutSeed`: evaluation mode.
    /// - Throws: `TrainerError` as `accumulateGradients` does.
    public func losses(batch: [TrainingSequence], adapter: LoRAAdapter, dropoutSeed: UInt64?) throws -> [(sum: Double, tokens: Int)] {
        try engine.validate(batch)
        let parameters = try LoRAParameters<Float>(adapter, for: configuration)
        var out = [(sum: Double, tokens: Int)](repeating: (0, 0), count: batch.count)
        _ = run(batch, LoRABuffers(parameters, gradients: false), normalizer: 1, dropoutSeed: dropoutSeed) { index, sum, tokens in
            out[index] = (sum, tokens)
        }
        return out
    }

    /// The log-probability of every target token of each sequence (−cross-entropy, in order of
    /// position) with the dropout masks of `dropoutSeed` (nil: evaluation mode): GRPO's per-token
    /// policy and reference log-probabilities.
    /// - Throws: `TrainerError` as `accumulateGradients` does.
    public func tokenLogProbabilities(batch: [TrainingSequence], adapter: LoRAAdapter, dropoutSeed: UInt64?) throws -> [[Double]] {
        try engine.validate(batch)
        let parameters = try LoRAParameters<Float>(adapter, for: configuration)
        var out = [[Double]](repeating: [], count: batch.count)
        _ = run(batch, LoRABuffers(parameters, gradients: false), normalizer: 1, dropoutSeed: dropoutSeed, perToken: { index, losses in
            out[index] = losses.map { -$0 }
        })
        return out
    }

    /// The loss of `adapter` on `batch` in evaluation mode (no dropout, no gradients).
    /// - Throws: `TrainerError` as `accumulateGradients` does.
    public func loss(batch: [TrainingSequence], adapter: LoRAAdapter, normalizer: Int) throws -> TrainingLoss {
        guard normalizer > 0 else {
            throw TrainerError.unsupported("normalizer \(normalizer): pass the number of target tokens (> 0)")
        }
        try engine.validate(batch)
        let parameters = try LoRAParameters<Float>(adapter, for: configuration)
        let (sum, tokens) = run(batch, LoRABuffers(parameters, gradients: false), normalizer: normalizer, dropoutSeed: nil)
        return TrainingLoss(sum: sum, tokens: tokens, normalizer: normalizer)
    }

    /// Each sequence's own loss (Σ cross-entropy over its targets, and their count) of `adapter`
    /// in evaluation mode, in one engine call for the whole batch: the evaluation harness's loss
    /// pass. Equal to calling ``loss(batch:adapter:normalizer:)`` on each sequence alone.
    /// - Throws: `TrainerError` as `accumulateGradients` does.
    public func losses(batch: [TrainingSequence], adapter: LoRAAdapter) throws -> [(sum: Double, tokens: Int)] {
        try losses(batch: batch, adapter: adapter, dropoutSeed: nil)
    }
}
