import ArgumentParser
import CorpusDB
import CorpusSupport
import Foundation
import ModelRuntime
import Trainer

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a LoRA adapter on a snapshot's train split (PEFT's file format), measuring the loss on its eval split.",
        discussion: """
            The run is recorded in the store (settings, seed, code version, model fingerprint, snapshot hash, \
            loss curve, adapter SHA-256): `corpus runs show`, `corpus lineage adapter`. Ctrl-C writes a \
            checkpoint and exits 130; `--resume DIR/checkpoint` continues exactly where it stopped. \
            docs/TRAINING.md explains every option.
            """)

    @Argument(help: "The snapshot: NAME, NAME@VERSION or id.") var snapshot: String
    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .long, help: "sft (supervised: learn the answers), dpo (preference pairs: prefer the chosen answer over the rejected one) or grpo (sample answers, reward them with --reward, prefer the better ones).") var method = "sft"
    @Option(name: .long, help: "DPO's beta (default 0.1) or GRPO's KL weight (default 0.04; 0: no KL): how far the adapter may move from the reference model.") var beta: Double?
    @Option(name: .long, help: "GRPO: a reward, KIND:ARGUMENT with KIND regex, extract, length or cmd (repeat for several; docs/TRAINING.md, \"Rewards\").") var reward: [String] = []
    @Option(name: .long, help: "GRPO: one weight per --reward, comma-separated (default: all 1).") var rewardWeights: String?
    @Option(name: .long, help: "GRPO: seconds a cmd: reward program may take per batch.") var rewardTimeout = 60.0
    @Option(name: .long, help: "GRPO: answers sampled per prompt.") var numGenerations = 4
    @Option(name: .long, help: "GRPO: prompts per optimizer step (each with --num-generations answers).") var promptsPerStep = 4
    @Option(name: .long, help: "GRPO: tokens sampled per answer at most.") var maxNewTokens = 128
    @Option(name: .long, help: "GRPO: sampling temperature (the log-probabilities are taken under it too, as TRL does).") var temperature = 1.0
    @Option(name: .long, help: "Start from this adapter (folder, run id, adapter id or SHA-256) instead of a fresh one; for DPO it is also the frozen reference.") var initAdapter: String?
    @OptionGroup var output: JSONOption
    @Option(name: .long, help: "LoRA rank r.") var rank = 16
    @Option(name: .long, help: "LoRA alpha (the update is scaled by alpha/r).") var alpha: Float = 32
    @Option(name: .long, help: "LoRA dropout on the adapter's input.") var dropout: Float = 0
    @Flag(name: .long, help: "rsLoRA: scale by alpha/√r.") var rslora = false
    @Option(name: .long, help: "Projections to adapt, comma-separated.") var targets = "q,k,v,o,gate,up,down"
    @Option(name: .long, help: "Peak learning rate.") var lr = 2e-4
    @Option(name: .long, help: "Decay after warmup: cosine, linear or constant.") var decay = "cosine"
    @Option(name: .long, help: "Share of the steps spent warming up.") var warmupRatio = 0.05
    @Option(name: .long, help: "AdamW weight decay.") var weightDecay = 0.0
    @Option(name: .long, help: "Clip the gradients' global norm to this (0: no clipping).") var maxGradNorm = 1.0
    @Option(name: .long, help: "Passes over the train split.") var epochs = 3
    @Option(name: .long, help: "Stop after this many optimizer steps instead (0: all epochs).") var maxSteps = 0
    @Option(name: .long, help: "Tokens per optimizer step (examples of similar length batched together).") var batchTokens = 4096
    @Option(name: .long, help: "Tokens per forward/backward pass within a step (memory bound; the result does not change).") var microBatchTokens = 1024
    @Option(name: .customLong("max-len"), help: "Examples longer than this many tokens are truncated (or dropped with --overflow drop).") var maxLength = 1024
    @Option(name: .long, help: "truncate or drop examples over --max-len.") var overflow = "truncate"
    @Option(name: .long, help: "Measure the eval loss every N steps (0: only at the end).") var evalEvery = 50
    @Option(name: .long, help: "Write a checkpoint every N steps (0: only on Ctrl-C or --stop-after).") var checkpointEvery = 100
    @Option(name: .long, help: "Seed of the initialization, the data order and dropout.") var seed: UInt64 = 0
    @Flag(name: .long, help: "Recompute activations in the backward pass (less memory, slower).") var recompute = false
    @Option(name: .long, help: "Chat template: chatml, llama3, mistral or alpaca (default: recognized from the model).") var template: String?
    @Option(name: .long, help: "Folder for the adapter (default: adapters/NAME-VERSION-run-ID).") var out: String?
    @Option(name: .long, help: "Continue an interrupted run from its checkpoint folder (OUT/checkpoint), with the same options.") var resume: String?
    @Option(name: .long, help: "Stop after this many steps in this session, writing a checkpoint to resume from later.") var stopAfter: Int?
    @Option(name: .long, help: "Folder for the TensorBoard event files (default: OUT/tensorboard, beside the adapter).") var logdir: String?

    func settings() -> TrainingSettings {
        var s = TrainingSettings()
        s.rank = rank
        s.alpha = alpha
        s.dropout = dropout
        s.useRSLoRA = rslora
        s.targets = targets.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        s.learningRate = lr
        s.decay = decay
        s.warmupRatio = warmupRatio
        s.weightDecay = weightDecay
        s.maxGradNorm = maxGradNorm
        s.epochs = epochs
        s.maxSteps = maxSteps
        s.batchTokens = batchTokens
        s.microBatchTokens = microBatchTokens
        s.maxLength = maxLength
        s.overflow = overflow
        s.evalEvery = evalEvery
        s.checkpointEvery = checkpointEvery
        s.seed = seed
        s.recomputeActivations = recompute
        if method != TrainingSettings.Method.sft.rawValue { s.method = method }
        if method == TrainingSettings.Method.dpo.rawValue { s.beta = beta ?? 0.1 }
        if method == TrainingSettings.Method.grpo.rawValue {
            s.beta = beta ?? 0.04
            var g = GRPOSettings()
            g.numGenerations = numGenerations
            g.promptsPerStep = promptsPerStep
            g.maxNewTokens = maxNewTokens
            g.temperature = temperature
            g.rewards = reward
            g.rewardWeights = rewardWeights.map { $0.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) ?? .nan } }
            g.rewardTimeout = rewardTimeout
            s.grpo = g
        }
        return s
    }

    func validate() throws {
        do {
            try settings().validate()
        } catch let error as TrainerError {
            throw ValidationError(error.description)
        }
        if let stopAfter, stopAfter < 1 { throw ValidationError("--stop-after must be at least 1") }
        if beta != nil && method != TrainingSettings.Method.dpo.rawValue && method != TrainingSettings.Method.grpo.rawValue {
            throw ValidationError("--beta belongs to --method dpo or grpo; drop it or choose one of them")
        }
        if method != TrainingSettings.Method.grpo.rawValue && (!reward.isEmpty || rewardWeights != nil) {
            throw ValidationError("--reward and --reward-weights belong to --method grpo")
        }
        if let template, !ChatTemplate.names.contains(template) {
            throw ValidationError("--template must be one of \(ChatTemplate.names.joined(separator: ", "))")
        }
    }

    func run() throws {
        try Exit.reporting {
            try Exit.reportingModel {
                try train()
            }
        }
    }

    /// The snapshot's train and eval splits, tokenized with the model's chat template.
    private struct Splits {
        var train: PreparedData
        var eval: PreparedData
        /// DPO's pairs (nil for supervised runs).
        var trainPairs: PreparedPairs?
        var evalPairs: PreparedPairs?
        /// GRPO's prompts and rewards (nil for other methods), and prompts left out as too long.
        var grpo: GRPOData?
        var grpoDropped = 0

        /// Examples (or pairs) trained on, truncated and dropped, for the summary.
        var examples: Int { grpo?.prompts.count ?? trainPairs?.examples.count ?? train.examples.count }
        var truncated: Int { trainPairs?.truncated ?? train.truncated }
        var dropped: Int { grpo != nil ? grpoDropped : trainPairs?.dropped.count ?? train.dropped.count }
        var evalExamples: Int { grpo?.evalPrompts.count ?? evalPairs?.examples.count ?? eval.examples.count }
    }

    /// The run on record that this session trains: its id and the adapter folder.
    private struct RunTarget {
        var id: Int64
        var outDir: URL
        var checkpointDir: URL { outDir.appendingPathComponent("checkpoint") }
    }

    private func train() throws {
        let store = try modelOptions.database.open()
        let snap = try store.snapshot(snapshot)
        var settings = settings()
        let modelPath = try modelOptions.resolvedModelPath()
        let fingerprint = try ModelIdentity.fingerprint(of: modelPath, reference: modelOptions.model, store: store)
        Output.error("loading \(modelPath)")
        let loaded = try modelOptions.load()
        let template = try loaded.template(self.template)
        var initAdapter: LoRAAdapter?
        if let given = self.initAdapter {
            let folder = URL(fileURLWithPath: try ModelOptions.adapterFolder(given, database: modelOptions.database).path).standardizedFileURL
            initAdapter = try LoRAAdapter(readingPEFT: folder, configuration: loaded.model.configuration)
            settings.initAdapterSHA256 = try ModelOptions.adapterSHA256(folder)
            Output.error("starting from adapter \(folder.path)\(settings.objective == .dpo ? " (also the frozen reference)" : "")")
        }
        let splits = try prepareSplits(store: store, snapshot: snap, settings: settings, loaded: loaded, template: template)

        if settings.objective == .dpo { Output.error("computing the reference model's log-probabilities of every pair") }
        let trainer: LoRATrainer
        if let grpo = splits.grpo {
            trainer = try LoRATrainer(model: loaded.model, settings: settings, grpo: grpo, initAdapter: initAdapter)
        } else if let pairs = splits.trainPairs {
            trainer = try LoRATrainer(model: loaded.model, settings: settings, pairs: pairs.examples, evalPairs: splits.evalPairs?.examples ?? [],
                                      initAdapter: initAdapter)
        } else {
            trainer = try LoRATrainer(model: loaded.model, settings: settings, train: splits.train.examples, eval: splits.eval.examples,
                                      initAdapter: initAdapter)
        }
        // From here on Ctrl-C is heard (before the run is on record, so it never stays "running").
        Interrupt.install()
        let run = try startOrResume(trainer: trainer, store: store, snapshot: snap, settings: settings, fingerprint: fingerprint)
        // Only facts derived from content go into the adapter file, so that training again from the same
        // snapshot, model, options and seed gives the same bytes (docs/RELIABILITY.md): the run id stays
        // in the store (and in checkpoints, which `--resume` reads), the snapshot by its hash, not its name.
        let metadata = ["corpus.snapshot_hash": snap.hash, "corpus.model_sha256": fingerprint,
                        "corpus.training_sha256": ContentHash.sha256Hex(Data(try settings.canonicalJSON().utf8)),
                        "corpus.version": CorpusVersion.string]
        guard let finished = try trainToTheEnd(trainer: trainer, store: store, run: run, splits: splits, settings: settings, metadata: metadata) else {
            return
        }
        // Renamed aside first: a kill while deleting leaves no partial checkpoint at OUT/checkpoint.
        AtomicFolder.remove(run.checkpointDir)
        try report(trainer: trainer, store: store, run: run, snapshot: snap, splits: splits, sha: finished.sha, firstEval: finished.firstEval)
    }

    /// Reads and tokenizes both splits, says on stderr what was truncated, left out or withdrawn.
    /// - Throws: `CorpusDBError.invalid` when no train example fits.
    private func prepareSplits(store: CorpusStore, snapshot snap: Snapshot, settings: TrainingSettings,
                               loaded: ModelOptions.Loaded, template: ChatTemplate) throws -> Splits {
        let overflowMode = TrainingData.Overflow(rawValue: settings.overflow) ?? .truncate
        if settings.objective == .dpo {
            return try preparePairs(store: store, snapshot: snap, settings: settings, loaded: loaded, template: template)
        }
        if settings.objective == .grpo {
            return try prepareGRPO(store: store, snapshot: snap, settings: settings, loaded: loaded, template: template)
        }
        let (trainItems, trainWithdrawn, pairs) = try SnapshotSplit.conversations(store: store, snapshot: snap, split: "train")
        let (evalItems, evalWithdrawn, _) = try SnapshotSplit.conversations(store: store, snapshot: snap, split: "eval")
        let trainData = TrainingData.prepare(trainItems, template: template, tokenizer: loaded.tokenizer, maxLength: settings.maxLength, overflow: overflowMode)
        let evalData = TrainingData.prepare(evalItems, template: template, tokenizer: loaded.tokenizer, maxLength: settings.maxLength, overflow: overflowMode)
        Output.error("snapshot \(snap.label) (\(template.name) template): train \(trainData.examples.count) examples, \(trainData.tokens) tokens (\(trainData.targetTokens) in answers); eval \(evalData.examples.count) examples")
        for (name, data, withdrawn) in [("train", trainData, trainWithdrawn), ("eval", evalData, evalWithdrawn)] {
            if data.truncated > 0 || !data.dropped.isEmpty || withdrawn > 0 {
                Output.error("  \(name): \(data.truncated) truncated to --max-len \(settings.maxLength), \(data.dropped.count) left out, \(withdrawn) withdrawn"
                             + (data.dropped.first.map { " (e.g. record \($0.recordId): \($0.reason))" } ?? ""))
            }
        }
        guard !trainData.examples.isEmpty else {
            throw CorpusDBError(.invalid, "snapshot \(snap.label): no train example fits (\(trainItems.count) records, \(trainData.dropped.count) left out); raise --max-len or check the snapshot")
        }
        if pairs > 0 {
            Output.error("  \(pairs) of the train records are preference pairs: supervised training learns their chosen answers and ignores the rejected ones (train them with --method dpo)")
        }
        return Splits(train: trainData, eval: evalData)
    }

    /// GRPO's prompts of both splits: every record's turns before its last answer, with the
    /// template's generation prompt, and that answer as the reference the rewards compare with.
    /// Prompts longer than --max-len minus --max-new-tokens are left out (counted).
    /// - Throws: `CorpusDBError.invalid` when no prompt fits or an `extract:` pattern finds nothing
    ///   in a reference answer (naming the record).
    private func prepareGRPO(store: CorpusStore, snapshot snap: Snapshot, settings: TrainingSettings, loaded: ModelOptions.Loaded,
                             template: ChatTemplate) throws -> Splits {
        guard let g = settings.grpo else { throw CorpusDBError(.invalid, "--method grpo without its settings") }
        let rewards = try g.rewardSet()
        let room = settings.maxLength - g.maxNewTokens
        var dropped = 0
        func prompts(_ split: String) throws -> [GRPOPrompt] {
            let (items, withdrawn, _) = try SnapshotSplit.conversations(store: store, snapshot: snap, split: split)
            var out: [GRPOPrompt] = []
            for item in items {
                guard let last = item.messages.lastIndex(where: { $0.role == "assistant" }) else { continue }
                let text = template.render(Array(item.messages[..<last]), generationPrompt: true)
                let ids = loaded.tokenizer.encode(text)
                guard ids.count <= room else { if split == "train" { dropped += 1 }; continue }
                out.append(GRPOPrompt(recordId: item.id, ids: ids, text: text, reference: item.messages[last].content))
            }
            if withdrawn > 0 { Output.error("  \(split): \(withdrawn) withdrawn records left out") }
            return out
        }
        let train = try prompts("train"), eval = try prompts("eval")
        guard !train.isEmpty else {
            throw CorpusDBError(.invalid, "snapshot \(snap.label): no train prompt fits --max-len \(settings.maxLength) with --max-new-tokens \(g.maxNewTokens) (\(dropped) too long); raise --max-len")
        }
        let all = train + eval
        for f in rewards.functions {
            if let i = f.firstUncheckableReference(all.map(\.reference)) {
                let count = all.filter { f.firstUncheckableReference([$0.reference]) != nil }.count
                throw CorpusDBError(.invalid, "--reward \(f.spec): the pattern finds nothing in the reference answer of record \(all[i].recordId) (and \(count - 1) other records), so their answers cannot be checked; fix the pattern, or select records with checkable answers into the snapshot")
            }
        }
        Output.error("snapshot \(snap.label) (\(template.name) template): \(train.count) train prompts, \(eval.count) eval prompts; \(g.numGenerations) answers per prompt, \(g.promptsPerStep) prompts per step; rewards \(zip(rewards.weights, g.rewards).map { "\($0)×\($1)" }.joined(separator: ", "))"
                     + (dropped > 0 ? "; \(dropped) train prompts longer than --max-len − --max-new-tokens left out" : ""))
        let tokenizer = loaded.tokenizer
        let data = GRPOData(prompts: train, evalPrompts: eval, rewards: rewards, stopTokens: loaded.stopTokenIDs,
                            decode: { tokenizer.decode($0, skipSpecial: true) })
        return Splits(train: PreparedData(), eval: PreparedData(), grpo: data, grpoDropped: dropped)
    }

    /// DPO's pairs of both splits, tokenized; says on stderr what was left out.
    /// - Throws: `CorpusDBError.invalid` when the train split has no pair that fits.
    private func preparePairs(store: CorpusStore, snapshot snap: Snapshot, settings: TrainingSettings, loaded: ModelOptions.Loaded,
                              template: ChatTemplate) throws -> Splits {
        let overflowMode = TrainingData.Overflow(rawValue: settings.overflow) ?? .truncate
        let train = try SnapshotSplit.pairs(store: store, snapshot: snap, split: "train")
        let eval = try SnapshotSplit.pairs(store: store, snapshot: snap, split: "eval")
        guard !train.pairs.isEmpty else {
            throw CorpusDBError(.invalid, "snapshot \(snap.label) has no preference pairs in its train split (\(train.conversations) plain conversations); --method dpo needs records with chosen and rejected answers: ingest a preference file (docs/INGEST_MAPPING.md, \"Preference pairs\") and snapshot it, or train with --method sft")
        }
        let trainPairs = TrainingData.preparePairs(train.pairs, template: template, tokenizer: loaded.tokenizer, maxLength: settings.maxLength, overflow: overflowMode)
        let evalPairs = TrainingData.preparePairs(eval.pairs, template: template, tokenizer: loaded.tokenizer, maxLength: settings.maxLength, overflow: overflowMode)
        Output.error("snapshot \(snap.label) (\(template.name) template): train \(trainPairs.examples.count) pairs, \(trainPairs.tokens) tokens; eval \(evalPairs.examples.count) pairs")
        for (name, data, other, withdrawn) in [("train", trainPairs, train.conversations, train.withdrawn), ("eval", evalPairs, eval.conversations, eval.withdrawn)] {
            if data.truncated > 0 || !data.dropped.isEmpty || withdrawn > 0 || other > 0 {
                Output.error("  \(name): \(data.truncated) truncated to --max-len \(settings.maxLength), \(data.dropped.count) left out, \(withdrawn) withdrawn, \(other) plain conversations not used by DPO"
                             + (data.dropped.first.map { " (e.g. record \($0.recordId): \($0.reason))" } ?? ""))
            }
        }
        guard !trainPairs.examples.isEmpty else {
            throw CorpusDBError(.invalid, "snapshot \(snap.label): no train pair fits (\(train.pairs.count) pairs, \(trainPairs.dropped.count) left out); raise --max-len")
        }
        return Splits(train: PreparedData(), eval: PreparedData(), trainPairs: trainPairs, evalPairs: evalPairs)
    }

    /// With `--resume`: checks that the checkpoint belongs to a run of this snapshot and model and
    /// loads it; otherwise records a new run.
    private func startOrResume(trainer: LoRATrainer, store: CorpusStore, snapshot snap: Snapshot, settings: TrainingSettings,
                               fingerprint: String) throws -> RunTarget {
        guard let resume else {
            let runId = try store.startRun(snapshot: snap, modelRef: modelOptions.model, modelSHA256: fingerprint, config: try settings.canonicalJSON(),
                                           seed: Int64(bitPattern: settings.seed), arguments: CommandLine.arguments)
            return RunTarget(id: runId, outDir: URL(fileURLWithPath: out ?? "adapters/\(snap.name)-\(snap.version)-run-\(runId)").standardizedFileURL)
        }
        let checkpoint = URL(fileURLWithPath: resume).standardizedFileURL
        let info = try LoRAAdapter.readPEFTInfo(directory: checkpoint)
        guard let text = info.metadata["corpus.run_id"], let id = Int64(text), let run = try store.run(id: id) else {
            throw CorpusDBError(.invalid, "\(checkpoint.path): not a checkpoint of a run in \(store.path) (no corpus.run_id in its metadata)")
        }
        guard run.snapshotHash == snap.hash else {
            throw CorpusDBError(.invalid, "\(checkpoint.path): run \(id) trained on \(run.snapshot), not \(snap.label); resume it with that snapshot")
        }
        guard run.modelSHA256 == fingerprint else {
            throw CorpusDBError(.invalid, "\(checkpoint.path): run \(id) trained model \(run.modelSHA256.prefix(12)), not this model (\(fingerprint.prefix(12)))")
        }
        try trainer.resume(from: checkpoint)
        try store.resumeRun(id: id, arguments: CommandLine.arguments)
        Output.error("resuming run \(id) at step \(trainer.step) of \(trainer.totalSteps)")
        return RunTarget(id: id, outDir: checkpoint.deletingLastPathComponent())
    }

    /// Trains until the last step, writes the adapter and marks the run finished; returns the
    /// adapter weights' SHA-256 and the eval loss before training (when measured now). Returns nil
    /// when stopped early (`--stop-after`): a checkpoint is written and the run marked interrupted;
    /// on Ctrl-C the same, then exit 130. Any other failure marks the run failed.
    private func trainToTheEnd(trainer: LoRATrainer, store: CorpusStore, run: RunTarget, splits: Splits, settings: TrainingSettings,
                               metadata: [String: String]) throws -> (sha: String, firstEval: Double?)? {
        var pending: [RunMetric] = []
        let checkpointMetadata = metadata.merging(["corpus.run_id": String(run.id)]) { _, new in new }
        let log = TrainingLog(directory: logdir.map { URL(fileURLWithPath: $0).standardizedFileURL } ?? run.outDir.appendingPathComponent("tensorboard"))
        defer { log.close() }
        // Whatever fails from here (a full disk, a bad tensor) leaves the run marked failed, not running.
        do {
            var firstEval: Double?
            if !trainer.finished, trainer.step == 0, let e = try trainer.evaluate() {
                firstEval = e
                Output.error(String(format: "eval loss before training: %.4f", e))
                log.record(step: 0, ["eval/loss": e])
            }
            if !trainer.finished, trainer.step == 0, let rewards = try trainer.evaluateRewards(), let r = rewards["eval/reward"] {
                firstEval = r
                Output.error(String(format: "eval reward before training: %.4f", r))
                log.record(step: 0, rewards)
            }
            try takeSteps(trainer: trainer, store: store, run: run, settings: settings, metadata: checkpointMetadata, pending: &pending, log: log)
            try Self.retryingWhileBusy { try store.recordMetrics(runId: run.id, pending) }
            pending = []

            guard trainer.finished else {
                // Interrupted or stopped on purpose: a checkpoint at the last whole step.
                try trainer.writeCheckpoint(to: run.checkpointDir, baseModel: modelOptions.model, metadata: checkpointMetadata)
                try Self.retryingWhileBusy {
                    try store.finishRun(id: run.id, status: "interrupted", summary: Self.summary("interrupted", trainer: trainer, splits: splits),
                                        adapter: nil, arguments: CommandLine.arguments)
                }
                Output.error("stopped after step \(trainer.step) of \(trainer.totalSteps); checkpoint in \(run.checkpointDir.path)")
                Output.error("continue with: corpus train \(snapshot) --model \(modelOptions.model) [the same options] --resume \(run.checkpointDir.path)")
                if Interrupt.requested { throw ExitCode(Exit.interrupted) }
                return nil
            }
            try trainer.adapter.write(to: run.outDir, baseModel: modelOptions.model, metadata: metadata)
            let sha = try ContentHash.sha256Hex(fileAt: run.outDir.appendingPathComponent("adapter_model.safetensors").path)
            try Self.retryingWhileBusy {
                try store.finishRun(id: run.id, status: "finished", summary: Self.summary("finished", trainer: trainer, splits: splits),
                                    adapter: (run.outDir.path, sha), arguments: CommandLine.arguments)
            }
            return (sha, firstEval)
        } catch let exit as ExitCode {
            throw exit
        } catch {
            try? store.recordMetrics(runId: run.id, pending)
            try? store.finishRun(id: run.id, status: "failed", summary: Self.summary("failed", trainer: trainer, splits: splits),
                                 adapter: nil, arguments: CommandLine.arguments)
            throw error
        }
    }

    /// Optimizer steps until the trainer is finished, `--stop-after` is reached or Ctrl-C is
    /// heard: a progress line per step, metrics stored every 10 steps (kept in `pending` until
    /// then), a checkpoint every `--checkpoint-every` steps.
    private func takeSteps(trainer: LoRATrainer, store: CorpusStore, run: RunTarget, settings: TrainingSettings,
                           metadata: [String: String], pending: inout [RunMetric], log: TrainingLog) throws {
        let interactive = isatty(2) == 1
        var stepsThisSession = 0
        while !trainer.finished {
            guard let report = try trainer.takeStep(evaluate: false, interrupted: { Interrupt.requested }) else { break }
            stepsThisSession += 1
            pending.append(RunMetric(step: report.step, loss: report.loss, evalLoss: report.evalLoss, learningRate: report.learningRate,
                                     tokens: report.targetTokens, seconds: report.seconds, extra: report.metrics))
            log.record(report)
            let line = Self.progressLine(report, lastEvalLoss: trainer.lastEvalLoss)
            Output.progress(interactive && report.evalLoss == nil ? "\r" + line + "   " : (interactive ? "\r" : "") + line + "\n")
            if pending.count >= 10 || report.evalLoss != nil {
                try Self.storeMetrics(&pending, store: store, runId: run.id)
            }
            if settings.checkpointEvery > 0, report.step % settings.checkpointEvery == 0, !trainer.finished {
                try trainer.writeCheckpoint(to: run.checkpointDir, baseModel: modelOptions.model, metadata: metadata)
            }
            if let stopAfter, stepsThisSession >= stopAfter, !trainer.finished { break }
            if Interrupt.requested { break }
        }
        if interactive { Output.progress("\n") }
    }

    /// Stores the steps kept in `pending` and empties it. When another command holds the store's
    /// write lock for longer than the wait (a long ingest), the steps stay pending for the next
    /// try instead of failing the run (docs/RELIABILITY.md, "Concurrency").
    private static func storeMetrics(_ pending: inout [RunMetric], store: CorpusStore, runId: Int64) throws {
        do {
            try store.recordMetrics(runId: runId, pending)
            pending = []
        } catch where CorpusDBError.explaining(error)?.code == .busy {
            Output.error("note: the store is busy (another command is writing to it); \(pending.count) steps of the loss curve are kept and stored later")
        }
    }

    /// Runs a store write, trying again (each try waits `CorpusStore.busyTimeout`) while another
    /// command holds the write lock, up to `attempts` tries: the outcome of a finished run must not
    /// be lost to a concurrent ingest.
    private static func retryingWhileBusy<T>(attempts: Int = 4, _ body: () throws -> T) throws -> T {
        var attempt = 1
        while true {
            do {
                return try body()
            } catch where attempt < attempts && CorpusDBError.explaining(error)?.code == .busy {
                Output.error("note: the store is busy (another command is writing to it); waiting to record the run's outcome")
                attempt += 1
            }
        }
    }

    /// `step 12/40  epoch 1  loss 2.3456  eval 2.4000  lr 2.00e-04  310 tok/s  ETA 1m30s`.
    private static func progressLine(_ report: StepReport, lastEvalLoss: Double?) -> String {
        let remaining = Double(report.totalSteps - report.step) * (report.seconds / Double(max(1, report.step)))
        let preference = report.metrics["rewards/accuracies"].map { accuracy in
            String(format: "  acc %.2f  margin %.3f", accuracy, report.metrics["rewards/margins"] ?? 0)
        } ?? report.metrics["reward"].map { reward in
            String(format: "  reward %.3f  kl %.4f  len %.0f", reward, report.metrics["kl"] ?? 0, report.metrics["completions/mean_length"] ?? 0)
                + (report.metrics["eval/reward"].map { String(format: "  eval reward %.3f", $0) } ?? "")
        } ?? ""
        return String(format: "step %d/%d  epoch %d  loss %.4f%@  eval %@  lr %.2e  %.0f tok/s  ETA %@",
                      report.step, report.totalSteps, report.epoch + 1, report.loss, preference,
                      (report.evalLoss ?? lastEvalLoss).map { String(format: "%.4f", $0) } ?? "-",
                      report.learningRate, report.tokensPerSecond, duration(remaining))
    }

    /// The run's summary JSON as the store keeps it (`corpus runs show`).
    private static func summary(_ status: String, trainer: LoRATrainer, splits: Splits) -> String {
        var s: [String: Any] = ["steps": trainer.step, "planned_steps": trainer.totalSteps, "tokens": trainer.tokensSeen,
                                "seconds": trainer.secondsSpent, "examples": splits.examples,
                                "truncated": splits.truncated, "dropped": splits.dropped,
                                "eval_examples": splits.evalExamples, "status": status, "method": trainer.settings.objective.rawValue,
                                "evaluation_seconds": trainer.evaluationSeconds,
                                "tokens_per_second": trainer.secondsSpent > 0 ? Double(trainer.tokensSeen) / trainer.secondsSpent : 0]
        if let l = trainer.lastLoss { s["final_loss"] = l }
        if let r = trainer.lastMetrics["eval/reward"] { s["final_eval_reward"] = r }
        if let e = trainer.lastEvalLoss { s["final_eval_loss"] = e }
        return JSONText.compact(s)
    }

    /// The finished run on stdout: text, or `corpus runs show --json`'s object with `--json`.
    private func report(trainer: LoRATrainer, store: CorpusStore, run: RunTarget, snapshot snap: Snapshot, splits: Splits,
                        sha: String, firstEval: Double?) throws {
        if output.json {
            if let record = try store.run(id: run.id) { Output.printJSON(RunsCommand.json(record)) }
            return
        }
        let unit = trainer.settings.objective == .dpo ? "preference pairs (DPO)" : trainer.settings.objective == .grpo ? "prompts (GRPO)" : "examples"
        print("run \(run.id): \(trainer.step) steps on \(snap.label), \(splits.examples) \(unit)")
        if trainer.settings.objective == .grpo, let last = trainer.lastMetrics["eval/reward"] {
            print(String(format: "eval reward %@ → %.4f (mean of the weighted rewards of greedy answers to the eval prompts)",
                         firstEval.map { String(format: "%.4f", $0) } ?? "-", last))
        } else if let firstEval, let last = trainer.lastEvalLoss {
            print(String(format: "eval loss %.4f → %.4f", firstEval, last))
        } else if let last = trainer.lastEvalLoss {
            print(String(format: "eval loss %.4f", last))
        }
        print("adapter \(run.outDir.path)")
        print("  adapter_model.safetensors sha256 \(sha)")
        print("see `corpus runs show \(run.id)`, `corpus lineage adapter \(run.outDir.path)`")
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "-" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
    }
}
