import ArgumentParser
import CorpusDB
import Foundation
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
        return s
    }

    func validate() throws {
        do {
            try settings().validate()
        } catch let error as TrainerError {
            throw ValidationError(error.description)
        }
        if let stopAfter, stopAfter < 1 { throw ValidationError("--stop-after must be at least 1") }
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

    private func train() throws {
        let store = try modelOptions.database.open()
        let snap = try store.snapshot(snapshot)
        let settings = settings()
        let modelPath = try modelOptions.resolvedModelPath()
        let fingerprint = try ModelIdentity.fingerprint(of: modelPath, reference: modelOptions.model, store: store)
        Output.error("loading \(modelPath)")
        let loaded = try modelOptions.load()
        let template = try loaded.template(self.template)

        let overflowMode = TrainingData.Overflow(rawValue: settings.overflow) ?? .truncate
        let (trainItems, trainWithdrawn) = try SnapshotSplit.conversations(store: store, snapshot: snap, split: "train")
        let (evalItems, evalWithdrawn) = try SnapshotSplit.conversations(store: store, snapshot: snap, split: "eval")
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

        let trainer = try LoRATrainer(model: loaded.model, settings: settings, train: trainData.examples, eval: evalData.examples)
        // From here on Ctrl-C is heard (before the run is on record, so it never stays "running").
        Interrupt.install()
        let settingsJSON = try settings.canonicalJSON()
        var runId: Int64
        var outDir: URL
        if let resume {
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
            runId = id
            outDir = checkpoint.deletingLastPathComponent()
            try store.resumeRun(id: id, arguments: CommandLine.arguments)
            Output.error("resuming run \(id) at step \(trainer.step) of \(trainer.totalSteps)")
        } else {
            runId = try store.startRun(snapshot: snap, modelRef: modelOptions.model, modelSHA256: fingerprint, config: settingsJSON,
                                       seed: Int64(bitPattern: settings.seed), arguments: CommandLine.arguments)
            outDir = URL(fileURLWithPath: out ?? "adapters/\(snap.name)-\(snap.version)-run-\(runId)").standardizedFileURL
        }
        let checkpointDir = outDir.appendingPathComponent("checkpoint")
        let metadata = ["corpus.run_id": String(runId), "corpus.snapshot": snap.label, "corpus.snapshot_hash": snap.hash,
                        "corpus.model_sha256": fingerprint, "corpus.version": CorpusVersion.string]
        func summary(_ status: String) -> String {
            var s: [String: Any] = ["steps": trainer.step, "planned_steps": trainer.totalSteps, "tokens": trainer.tokensSeen,
                                    "seconds": trainer.secondsSpent, "examples": trainData.examples.count,
                                    "truncated": trainData.truncated, "dropped": trainData.dropped.count,
                                    "eval_examples": evalData.examples.count, "status": status,
                                    "tokens_per_second": trainer.secondsSpent > 0 ? Double(trainer.tokensSeen) / trainer.secondsSpent : 0]
            if let l = trainer.lastLoss { s["final_loss"] = l }
            if let e = trainer.lastEvalLoss { s["final_eval_loss"] = e }
            return JSONText.compact(s)
        }

        let interactive = isatty(2) == 1
        var pending: [RunMetric] = []
        var stepsThisSession = 0
        var firstEval: Double?
        // Whatever fails from here (a full disk, a bad tensor) leaves the run marked failed, not running.
        func failed(_ error: any Error) -> any Error {
            try? store.recordMetrics(runId: runId, pending)
            try? store.finishRun(id: runId, status: "failed", summary: summary("failed"), adapter: nil, arguments: CommandLine.arguments)
            return error
        }
        let sha: String
        do {
            if !trainer.finished, trainer.step == 0, let e = try trainer.evaluate() {
                firstEval = e
                Output.error(String(format: "eval loss before training: %.4f", e))
            }
            while !trainer.finished {
                guard let report = try trainer.takeStep(evaluate: false, interrupted: { Interrupt.requested }) else { break }
                stepsThisSession += 1
                pending.append(RunMetric(step: report.step, loss: report.loss, evalLoss: report.evalLoss, learningRate: report.learningRate,
                                         tokens: report.targetTokens, seconds: report.seconds))
                let remaining = Double(report.totalSteps - report.step) * (report.seconds / Double(max(1, report.step)))
                let line = String(format: "step %d/%d  epoch %d  loss %.4f  eval %@  lr %.2e  %.0f tok/s  ETA %@",
                                  report.step, report.totalSteps, report.epoch + 1, report.loss,
                                  (report.evalLoss ?? trainer.lastEvalLoss).map { String(format: "%.4f", $0) } ?? "-",
                                  report.learningRate, report.tokensPerSecond, Self.duration(remaining))
                Output.progress(interactive && report.evalLoss == nil ? "\r" + line + "   " : (interactive ? "\r" : "") + line + "\n")
                if pending.count >= 10 || report.evalLoss != nil {
                    try store.recordMetrics(runId: runId, pending)
                    pending = []
                }
                if settings.checkpointEvery > 0, report.step % settings.checkpointEvery == 0, !trainer.finished {
                    try trainer.writeCheckpoint(to: checkpointDir, baseModel: modelOptions.model, metadata: metadata)
                }
                if let stopAfter, stepsThisSession >= stopAfter, !trainer.finished { break }
                if Interrupt.requested { break }
            }
            if interactive { Output.progress("\n") }
            try store.recordMetrics(runId: runId, pending)

            guard trainer.finished else {
                // Interrupted or stopped on purpose: a checkpoint at the last whole step.
                try trainer.writeCheckpoint(to: checkpointDir, baseModel: modelOptions.model, metadata: metadata)
                try store.finishRun(id: runId, status: "interrupted", summary: summary("interrupted"), adapter: nil, arguments: CommandLine.arguments)
                Output.error("stopped after step \(trainer.step) of \(trainer.totalSteps); checkpoint in \(checkpointDir.path)")
                Output.error("continue with: corpus train \(snapshot) --model \(modelOptions.model) [the same options] --resume \(checkpointDir.path)")
                if Interrupt.requested { throw ExitCode(Exit.interrupted) }
                return
            }
            try trainer.adapter.write(to: outDir, baseModel: modelOptions.model, metadata: metadata)
            let weights = outDir.appendingPathComponent("adapter_model.safetensors").path
            sha = try ContentHash.sha256Hex(fileAt: weights)
            try store.finishRun(id: runId, status: "finished", summary: summary("finished"), adapter: (outDir.path, sha), arguments: CommandLine.arguments)
        } catch let exit as ExitCode {
            throw exit
        } catch {
            throw failed(error)
        }
        try? FileManager.default.removeItem(at: checkpointDir)
        if output.json {
            if let run = try store.run(id: runId) { Output.printJSON(RunsCommand.json(run)) }
            return
        }
        print("run \(runId): \(trainer.step) steps on \(snap.label), \(trainData.examples.count) examples")
        if let firstEval, let last = trainer.lastEvalLoss {
            print(String(format: "eval loss %.4f → %.4f", firstEval, last))
        } else if let last = trainer.lastEvalLoss {
            print(String(format: "eval loss %.4f", last))
        }
        print("adapter \(outDir.path)")
        print("  adapter_model.safetensors sha256 \(sha)")
        print("see `corpus runs show \(runId)`, `corpus lineage adapter \(outDir.path)`")
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "-" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
    }
}
