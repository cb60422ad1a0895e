import CorpusSupport
import ModelRuntime
import Foundation

/// Everything that decides what a training run computes (`corpus train`'s options). Its
/// canonical JSON is stored with the run, and a checkpoint only resumes under the same settings.
public struct TrainingSettings: Codable, Sendable, Equatable {
    public var rank = 16
    public var alpha: Float = 32
    /// lora_dropout. 0 by default: with dropout the projections that share an input cannot share
    /// one product (docs/TRAINING_MATH.md), which costs speed; small corpora may want 0.05.
    public var dropout: Float = 0
    public var useRSLoRA = false
    public var targets = LoRATarget.allCases.map(\.rawValue)
    /// Peak learning rate.
    public var learningRate = 2e-4
    /// Share of the steps spent warming up linearly from 0.
    public var warmupRatio = 0.05
    /// cosine, linear or constant after warmup.
    public var decay = "cosine"
    public var weightDecay = 0.0
    public var beta1 = 0.9
    public var beta2 = 0.999
    public var epsilon = 1e-8
    /// Global L2 norm the gradients are clipped to (0: no clipping).
    public var maxGradNorm = 1.0
    public var epochs = 3
    /// Stop after this many optimizer steps (0: run every epoch).
    public var maxSteps = 0
    /// Tokens per optimizer step: the batch is as many examples of similar length as fit.
    public var batchTokens = 4096
    /// Tokens per forward/backward pass within a step (bounds memory; gradients accumulate and
    /// are normalized by the step's assistant tokens, so the result equals one big batch).
    public var microBatchTokens = 1024
    /// Examples longer than this many tokens are truncated or dropped (`overflow`).
    public var maxLength = 1024
    public var overflow = TrainingData.Overflow.truncate.rawValue
    /// Measure the loss on the eval split every this many steps (0: only at the end).
    public var evalEvery = 50
    /// Write a checkpoint every this many steps (0: never, except on Ctrl-C).
    public var checkpointEvery = 100
    public var seed: UInt64 = 0
    /// Recompute activations in the backward pass instead of keeping them (less memory, slower).
    public var recomputeActivations = false
    /// The objective: nil for supervised fine-tuning ("sft"), "dpo" for preference pairs. Kept
    /// optional so a supervised run's settings JSON (and its checkpoints) read as before.
    public var method: String?
    /// DPO's β (TRL's default 0.1): how far the policy may move from the reference.
    public var beta: Double?
    /// SHA-256 of the adapter training starts from (`--init-adapter`), which is also DPO's
    /// frozen reference; nil: a fresh adapter, and the base model as reference.
    public var initAdapterSHA256: String?

    /// GRPO's settings (nil for other methods).
    public var grpo: GRPOSettings?

    /// The training objective.
    public enum Method: String, Sendable, CaseIterable {
        case sft, dpo, grpo
    }

    /// The objective `method` names.
    public var objective: Method { method.flatMap(Method.init(rawValue:)) ?? .sft }

    enum CodingKeys: String, CodingKey {
        case rank, alpha, dropout, useRSLoRA = "use_rslora", targets, learningRate = "learning_rate"
        case warmupRatio = "warmup_ratio", decay, weightDecay = "weight_decay", beta1, beta2, epsilon
        case maxGradNorm = "max_grad_norm", epochs, maxSteps = "max_steps", batchTokens = "batch_tokens"
        case microBatchTokens = "micro_batch_tokens", maxLength = "max_length", overflow, evalEvery = "eval_every"
        case checkpointEvery = "checkpoint_every", seed, recomputeActivations = "recompute_activations"
        case method, beta, initAdapterSHA256 = "init_adapter_sha256", grpo
    }

    public init() {}

    /// The LoRA part, checked.
    public func loraConfiguration() throws -> LoRAConfiguration {
        var parsed: [LoRATarget] = []
        for name in targets {
            guard let t = LoRATarget(name: name) else {
                throw TrainerError.unsupported("--targets: unknown projection '\(name)'; use some of q,k,v,o,gate,up,down")
            }
            if !parsed.contains(t) { parsed.append(t) }
        }
        guard !parsed.isEmpty else { throw TrainerError.unsupported("--targets: name at least one of q,k,v,o,gate,up,down") }
        return LoRAConfiguration(rank: rank, alpha: alpha, dropout: dropout, useRSLoRA: useRSLoRA, targets: parsed)
    }

    /// Refuses settings no run can use, naming the option.
    public func validate() throws {
        _ = try loraConfiguration()
        guard rank >= 1 else { throw TrainerError.unsupported("--rank must be at least 1") }
        guard alpha > 0 else { throw TrainerError.unsupported("--alpha must be positive") }
        guard dropout >= 0, dropout < 1 else { throw TrainerError.unsupported("--dropout must be in [0, 1)") }
        guard learningRate > 0, learningRate.isFinite else { throw TrainerError.unsupported("--lr must be positive") }
        guard warmupRatio >= 0, warmupRatio < 1 else { throw TrainerError.unsupported("warmup_ratio must be in [0, 1)") }
        guard LearningRateSchedule.Decay(rawValue: decay) != nil else { throw TrainerError.unsupported("--decay must be cosine, linear or constant") }
        guard epochs >= 1 || maxSteps >= 1 else { throw TrainerError.unsupported("--epochs must be at least 1 (or give --max-steps)") }
        guard maxSteps >= 0 else { throw TrainerError.unsupported("--max-steps must be 0 or more") }
        guard batchTokens >= 16 else { throw TrainerError.unsupported("--batch-tokens must be at least 16") }
        guard microBatchTokens >= 16 else { throw TrainerError.unsupported("--micro-batch-tokens must be at least 16") }
        guard maxLength >= 8 else { throw TrainerError.unsupported("--max-len must be at least 8") }
        guard TrainingData.Overflow(rawValue: overflow) != nil else { throw TrainerError.unsupported("--overflow must be truncate or drop") }
        guard evalEvery >= 0, checkpointEvery >= 0 else { throw TrainerError.unsupported("--eval-every and --checkpoint-every must be 0 or more") }
        guard maxGradNorm >= 0 else { throw TrainerError.unsupported("--max-grad-norm must be 0 or more") }
        if let method, Method(rawValue: method) == nil {
            throw TrainerError.unsupported("--method \(method): use sft, dpo or grpo")
        }
        if let beta { guard beta >= 0, beta.isFinite, objective == .grpo || beta > 0 else { throw TrainerError.unsupported("--beta must be positive (0 is allowed for grpo: no KL term)") } }
        if objective == .grpo {
            guard let grpo else { throw TrainerError.unsupported("--method grpo needs its settings (--num-generations, --reward ...)") }
            try grpo.validate()
        }
    }

    /// Canonical JSON: sorted keys, no whitespace.
    public func canonicalJSON() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

/// One optimizer step, as reported to the caller.
public struct StepReport: Sendable {
    /// 1-based number of the step just taken.
    public var step: Int
    public var totalSteps: Int
    public var epoch: Int
    /// Mean loss per assistant token of this step's batch.
    public var loss: Double
    /// Mean loss per assistant token of the eval split, on evaluation steps.
    public var evalLoss: Double?
    public var learningRate: Double
    /// Gradient norm before clipping.
    public var gradientNorm: Float
    /// Assistant tokens trained on in this step, and all tokens processed.
    public var targetTokens: Int
    public var tokens: Int
    /// Seconds in training steps since the run started (continuing across a resume; evaluation
    /// excluded).
    public var seconds: Double
    /// Tokens (all, processed) per second over the steps of this process, evaluation excluded.
    public var tokensPerSecond: Double
    /// The objective's own figures of this step, under TRL's names (DPO: rewards/chosen,
    /// rewards/rejected, rewards/accuracies, rewards/margins, logps/chosen, logps/rejected; on
    /// evaluation steps the same for the eval split prefixed "eval/"). Empty for supervised runs.
    public var metrics: [String: Double] = [:]
}

/// What a checkpoint holds besides the adapter and the optimizer (which carries the step).
public struct CheckpointState: Codable, Sendable, Equatable {
    public var step: Int
    public var seconds: Double
    public var tokens: Int
    public var settings: String
    public var lastLoss: Double?
    public var lastEvalLoss: Double?

    enum CodingKeys: String, CodingKey {
        case step, seconds, tokens, settings, lastLoss = "last_loss", lastEvalLoss = "last_eval_loss"
    }
}

/// The training loop: AdamW over a LoRA adapter on a frozen model, batches planned by length,
/// gradient accumulation over micro-batches normalized by the step's assistant tokens,
/// clipping, warmup then decay, evaluation and checkpoints. Deterministic: the data order
/// comes from `BatchPlan` (seed, epoch), the dropout masks from (seed, step, micro-batch), so
/// the same inputs, seed and thread count give a bit-identical adapter, and a run resumed from
/// a checkpoint ends where the uninterrupted run ends.
public final class LoRATrainer {
    public let settings: TrainingSettings
    public let model: LoRATrainingModel
    public let train: [TrainingExample]
    public let eval: [TrainingExample]
    /// DPO's pairs (empty for supervised runs) with their reference log-probability sums.
    public let pairs: [PreferenceExample]
    public let evalPairs: [PreferenceExample]
    let reference: [ReferenceLogps]
    let evalReference: [ReferenceLogps]
    /// The adapter training started from (a fresh one has B = 0): the reference model of DPO and GRPO.
    let referenceAdapter: LoRAAdapter
    /// GRPO's prompts, rewards and decoding (nil for other methods).
    let grpoData: GRPOData?
    /// The batches of every epoch, in order (each a list of indices into `train`).
    public let plan: [[Int]]
    public let schedule: LearningRateSchedule
    /// The frozen model (GRPO samples from it with the adapter).
    let base: LlamaModel

    public private(set) var adapter: LoRAAdapter
    public private(set) var optimizer: AdamW
    /// Optimizer steps taken.
    public private(set) var step = 0
    var seconds = 0.0
    var tokens = 0
    /// Seconds spent in training steps (forward, backward, optimizer; evaluation excluded), over
    /// every session of the run.
    public var secondsSpent: Double { seconds }
    /// Seconds spent evaluating during steps, in this process.
    public private(set) var evaluationSeconds = 0.0
    /// Tokens processed, over every session of the run.
    public var tokensSeen: Int { tokens }
    public private(set) var lastLoss: Double?
    public private(set) var lastEvalLoss: Double?
    /// The newest value of every metric the objective reported (`StepReport.metrics`) in this process.
    public private(set) var lastMetrics: [String: Double] = [:]
    /// The epoch of each step of `plan`.
    let epochOfStep: [Int]

    public convenience init(model: LlamaModel, settings: TrainingSettings, train: [TrainingExample], eval: [TrainingExample],
                            initAdapter: LoRAAdapter? = nil) throws {
        guard settings.objective == .sft else {
            throw TrainerError.unsupported("--method \(settings.objective.rawValue) trains on preference pairs; give them as pairs")
        }
        try self.init(model: model, settings: settings, train: train, eval: eval, pairs: [], evalPairs: [], initAdapter: initAdapter)
    }

    /// A DPO run on preference pairs. The reference log-probabilities of every pair are computed
    /// here, once (the reference never changes: the base model, or `initAdapter` frozen).
    public convenience init(model: LlamaModel, settings: TrainingSettings, pairs: [PreferenceExample], evalPairs: [PreferenceExample],
                            initAdapter: LoRAAdapter? = nil) throws {
        guard settings.objective == .dpo else {
            throw TrainerError.unsupported("preference pairs train with --method dpo")
        }
        try self.init(model: model, settings: settings, train: [], eval: [], pairs: pairs, evalPairs: evalPairs, initAdapter: initAdapter)
    }

    /// A GRPO run: answers sampled from the adapter being trained, scored by `data.rewards`.
    public convenience init(model: LlamaModel, settings: TrainingSettings, grpo data: GRPOData, initAdapter: LoRAAdapter? = nil) throws {
        guard settings.objective == .grpo else { throw TrainerError.unsupported("GRPO prompts train with --method grpo") }
        try self.init(model: model, settings: settings, train: [], eval: [], pairs: [], evalPairs: [], initAdapter: initAdapter, grpo: data)
    }

    init(model: LlamaModel, settings: TrainingSettings, train: [TrainingExample], eval: [TrainingExample], pairs: [PreferenceExample],
         evalPairs: [PreferenceExample], initAdapter: LoRAAdapter?, grpo: GRPOData? = nil) throws {
        try settings.validate()
        guard !train.isEmpty || !pairs.isEmpty || !(grpo?.prompts.isEmpty ?? true) else {
            throw TrainerError.unsupported("the train split has no usable example")
        }
        self.settings = settings
        var options = TrainingOptions(recomputeActivations: settings.recomputeActivations)
        if let g = settings.grpo, g.temperature > 0 { options.logitScale = Float(1 / g.temperature) }
        self.model = LoRATrainingModel(model: model, options: options)
        self.train = train
        self.eval = eval
        self.pairs = pairs
        self.evalPairs = evalPairs
        grpoData = grpo
        base = model
        // GRPO: a step is `prompts_per_step` prompts (each "1 token" in the plan's budget).
        let lengths = grpo.map { $0.prompts.map { _ in 1 } } ?? (pairs.isEmpty ? train.map { $0.ids.count } : pairs.map(\.tokens))
        let budget = settings.grpo?.promptsPerStep ?? settings.batchTokens
        var plan: [[Int]] = [], epochs: [Int] = []
        var epoch = 0
        while epoch < max(1, settings.epochs) || (settings.maxSteps > 0 && plan.count < settings.maxSteps) {
            let batches = BatchPlan.batches(lengths: lengths, batchTokens: budget, seed: settings.seed, epoch: epoch)
            plan += batches
            epochs += Array(repeating: epoch, count: batches.count)
            epoch += 1
            if settings.maxSteps > 0 && plan.count >= settings.maxSteps { break }
        }
        if settings.maxSteps > 0 {
            plan = Array(plan.prefix(settings.maxSteps))
            epochs = Array(epochs.prefix(settings.maxSteps))
        }
        self.plan = plan
        epochOfStep = epochs
        let total = plan.count
        schedule = LearningRateSchedule(peak: settings.learningRate, warmupSteps: Int((settings.warmupRatio * Double(total)).rounded()),
                                        totalSteps: total, decay: LearningRateSchedule.Decay(rawValue: settings.decay) ?? .cosine)
        if let initAdapter {
            let mine = try settings.loraConfiguration()
            let given = initAdapter.configuration
            guard given.rank == mine.rank, Set(given.targets) == Set(mine.targets), given.alpha == mine.alpha, given.useRSLoRA == mine.useRSLoRA else {
                throw TrainerError.unsupported("--init-adapter has rank \(given.rank), alpha \(given.alpha)\(given.useRSLoRA ? " (rsLoRA)" : "") and targets \(given.targets.map(\.rawValue).joined(separator: ",")); train with the same --rank, --alpha, --rslora and --targets, or its scale would change")
            }
            adapter = initAdapter
            adapter.configuration = mine
        } else {
            adapter = try LoRAAdapter(initializing: try settings.loraConfiguration(), for: model.configuration, seed: settings.seed)
        }
        optimizer = AdamW(AdamW.Hyperparameters(beta1: settings.beta1, beta2: settings.beta2, epsilon: settings.epsilon,
                                                weightDecay: settings.weightDecay), for: adapter)
        referenceAdapter = adapter
        // The reference: the starting adapter itself when given, else the base (a fresh adapter
        // has B = 0, so it adds exactly nothing).
        let trainingModel = self.model, start = adapter, limit = settings.microBatchTokens
        func referenceLogps(_ list: [PreferenceExample]) throws -> [ReferenceLogps] {
            var out: [ReferenceLogps] = []
            for mb in Self.microBatches(list, limit: limit) {
                let sums = try trainingModel.losses(batch: Self.sequences(mb), adapter: start, dropoutSeed: nil)
                for i in mb.indices { out.append(ReferenceLogps(chosen: -sums[2 * i].sum, rejected: -sums[2 * i + 1].sum)) }
            }
            return out
        }
        reference = try referenceLogps(pairs)
        evalReference = try referenceLogps(evalPairs)
    }

    public var totalSteps: Int { plan.count }
    public var finished: Bool { step >= plan.count }

    /// Continues from a checkpoint written by `writeCheckpoint`.
    /// - Throws: `TrainerError.invalidFile` when it was written under other settings or is damaged.
    public func resume(from directory: URL) throws {
        let stateURL = directory.appendingPathComponent("trainer_state.json")
        guard let data = FileManager.default.contents(atPath: stateURL.path),
              let state = try? JSONDecoder().decode(CheckpointState.self, from: data) else {
            throw TrainerError.invalidFile(path: stateURL.path, detail: "not a corpus training checkpoint (trainer_state.json missing or unreadable)")
        }
        let mine = try settings.canonicalJSON()
        guard state.settings == mine else {
            throw TrainerError.invalidFile(path: stateURL.path, detail: "written under other training settings (\(state.settings)); resume with the same options as the interrupted run (\(mine))")
        }
        let loaded = try LoRAAdapter(readingPEFT: directory, configuration: model.configuration)
        guard loaded.configuration.rank == adapter.configuration.rank, loaded.configuration.targets == adapter.configuration.targets else {
            throw TrainerError.invalidFile(path: directory.path, detail: "the checkpoint's adapter has another rank or targets than the settings")
        }
        let (optimizer, _) = try AdamW.load(from: directory.appendingPathComponent("optimizer.safetensors"), for: loaded)
        guard optimizer.step == state.step, state.step <= plan.count else {
            throw TrainerError.invalidFile(path: directory.path, detail: "optimizer step \(optimizer.step) and trainer step \(state.step) disagree, or pass the planned \(plan.count) steps")
        }
        adapter = loaded
        // The adapter was read back from fp32 safetensors exactly; keep its configuration object
        // identical to the settings' (dropout is not stored in the PEFT tensors).
        adapter.configuration = try settings.loraConfiguration()
        self.optimizer = optimizer
        step = state.step
        seconds = state.seconds
        tokens = state.tokens
        lastLoss = state.lastLoss
        lastEvalLoss = state.lastEvalLoss
    }

    /// Writes adapter, optimizer state and trainer state as the folder `directory`, replacing an
    /// older checkpoint there as a whole (`AtomicFolder.replaceWhole`): a crash at any moment leaves
    /// either the older checkpoint or the new one, never the adapter of one step with the optimizer
    /// state of another (which would resume into a different run without saying so).
    public func writeCheckpoint(to directory: URL, baseModel: String, metadata: [String: String]) throws {
        let state = CheckpointState(step: step, seconds: seconds, tokens: tokens, settings: try settings.canonicalJSON(),
                                    lastLoss: lastLoss, lastEvalLoss: lastEvalLoss)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let stateData = try encoder.encode(state)
        do {
            try AtomicFolder.replaceWhole(directory) { staging in
                try adapter.write(to: staging, baseModel: baseModel, metadata: metadata)
                try optimizer.save(to: staging.appendingPathComponent("optimizer.safetensors"), metadata: metadata)
                try AtomicFolder.writeData(stateData, to: staging.appendingPathComponent("trainer_state.json"))
            }
        } catch let error as FileWriteError {
            throw TrainerError.invalidFile(path: error.path, detail: "cannot write the checkpoint (\(error.message))")
        }
    }

    static func sequences(_ examples: [TrainingExample]) -> [TrainingSequence] {
        examples.map { TrainingSequence(ids: $0.ids.map { Int32(truncatingIfNeeded: $0) }, targetMask: $0.targetMask) }
    }

    /// Pairs as sequences: chosen then rejected for each pair, in order.
    static func sequences(_ pairs: [PreferenceExample]) -> [TrainingSequence] {
        sequences(pairs.flatMap { [$0.chosen, $0.rejected] })
    }

    /// Splits examples into consecutive groups of at most `limit` tokens (at least one each).
    static func microBatches(_ examples: [TrainingExample], limit: Int) -> [[TrainingExample]] {
        microBatches(examples, limit: limit, tokens: { $0.ids.count })
    }

    static func microBatches(_ pairs: [PreferenceExample], limit: Int) -> [[PreferenceExample]] {
        microBatches(pairs, limit: limit, tokens: \.tokens)
    }

    static func microBatches<E>(_ examples: [E], limit: Int, tokens size: (E) -> Int) -> [[E]] {
        var out: [[E]] = [], current: [E] = [], tokens = 0
        for e in examples {
            if !current.isEmpty && tokens + size(e) > limit {
                out.append(current)
                current = []
                tokens = 0
            }
            current.append(e)
            tokens += size(e)
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

    /// The eval split's loss (nil when it is empty): mean loss per assistant token for
    /// supervised runs, mean DPO loss over the eval pairs for DPO runs.
    public func evaluate() throws -> Double? {
        if settings.objective == .dpo { return try evaluatePairs()?["eval/loss"] }
        return try evaluateTokens()
    }

    /// Mean loss per assistant token of the adapter on the eval split (nil when it is empty).
    func evaluateTokens() throws -> Double? {
        let normalizer = eval.reduce(0) { $0 + $1.targets }
        guard normalizer > 0 else { return nil }
        var sum = 0.0
        for mb in Self.microBatches(eval, limit: settings.microBatchTokens) {
            sum += try model.loss(batch: Self.sequences(mb), adapter: adapter, normalizer: normalizer).sum
        }
        return sum / Double(normalizer)
    }

    /// Takes the next optimizer step. `interrupted` is asked between micro-batches: when it
    /// returns true the step is abandoned (nothing changes) and the call returns nil.
    public func takeStep(evaluate evaluateNow: Bool, interrupted: () -> Bool = { false }) throws -> StepReport? {
        guard step < plan.count else { return nil }
        let started = Date()
        var gradients = LoRAAdapter(zerosLike: adapter)
        let loss: Double, normalizer: Int, processed: Int
        var metrics: [String: Double] = [:]
        if settings.objective == .grpo {
            guard let result = try grpoGradients(into: &gradients, interrupted: interrupted) else { return nil }
            (loss, metrics) = (result.loss, result.metrics)
            normalizer = result.answerTokens
            processed = result.tokens
        } else if settings.objective == .dpo {
            guard let result = try preferenceGradients(into: &gradients, interrupted: interrupted) else { return nil }
            (loss, metrics) = result
            let chosen = plan[step].map { pairs[$0] }
            normalizer = chosen.reduce(0) { $0 + $1.chosen.targets + $1.rejected.targets }
            processed = chosen.reduce(0) { $0 + $1.tokens }
        } else {
            let examples = plan[step].map { train[$0] }
            normalizer = examples.reduce(0) { $0 + $1.targets }
            var lossSum = 0.0
            for (k, mb) in Self.microBatches(examples, limit: settings.microBatchTokens).enumerated() {
                if interrupted() { return nil }
                let batchLoss = try model.accumulateGradients(batch: Self.sequences(mb), adapter: adapter, normalizer: normalizer,
                                                              dropoutSeed: dropoutSeed(microBatch: k), into: &gradients)
                lossSum += batchLoss.sum
            }
            loss = lossSum / Double(max(1, normalizer))
            processed = examples.reduce(0) { $0 + $1.ids.count }
        }
        let norm = settings.maxGradNorm > 0 ? GradientClipping.clip(&gradients, maxNorm: Float(settings.maxGradNorm))
            : GradientClipping.norm(gradients)
        let lr = schedule.learningRate(at: step)
        try optimizer.update(&adapter, gradients: gradients, learningRate: lr)
        let epoch = epochOfStep[step]
        step += 1
        tokens += processed
        lastLoss = loss
        // Throughput and the ETA count the step itself: the evaluation below is timed apart.
        let elapsed = Date().timeIntervalSince(started)
        var evalLoss: Double?
        if evaluateNow || (settings.evalEvery > 0 && step % settings.evalEvery == 0) || step == plan.count {
            let evalStarted = Date()
            if settings.objective == .dpo {
                let evalMetrics = try evaluatePairs() ?? [:]
                evalLoss = evalMetrics["eval/loss"]
                metrics.merge(evalMetrics) { a, _ in a }
            } else if settings.objective == .grpo {
                metrics.merge(try evaluateRewards() ?? [:]) { a, _ in a }
            } else {
                evalLoss = try evaluateTokens()
            }
            lastEvalLoss = evalLoss ?? lastEvalLoss
            evaluationSeconds += Date().timeIntervalSince(evalStarted)
        }
        seconds += elapsed
        lastMetrics.merge(metrics) { _, new in new }
        sessionTokens += processed
        sessionSeconds += elapsed
        return StepReport(step: step, totalSteps: plan.count, epoch: epoch, loss: loss, evalLoss: evalLoss, learningRate: lr,
                          gradientNorm: norm, targetTokens: normalizer, tokens: processed, seconds: seconds,
                          tokensPerSecond: sessionSeconds > 0 ? Double(sessionTokens) / sessionSeconds : 0, metrics: metrics)
    }

    /// The dropout seed of micro-batch `k` of the current step.
    func dropoutSeed(microBatch k: Int) -> UInt64 {
        var stream = SeedStream.derive(settings.seed, 0x64726F70, UInt64(step), UInt64(k))   // "drop"
        return stream.next()
    }

    var sessionTokens = 0
    var sessionSeconds = 0.0
}
