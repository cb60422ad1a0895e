import ArgumentParser
import CorpusDB
import CorpusSupport
import Foundation
import Quality
import ModelRuntime
import Trainer

/// `corpus eval SNAPSHOT --model M [--adapter A]` and `corpus eval compare E1 E2`.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate the base model, and an adapter beside it, on a snapshot's held-out split; or compare two evaluations.",
        discussion: """
            `corpus eval SNAPSHOT --model M --adapter A` scores both models on the same items: teacher-forced loss and \
            perplexity on the answers, and a greedy answer per item scored with ROUGE-L, BLEU-4, exact match and length \
            ratio against the reference. `--reward` adds the mean of rule-based rewards over the answers; a split with \
            preference pairs adds how often each model finds the chosen answer more likely than the rejected one. The \
            evaluation and every answer are stored (`corpus evals list|show`). `--fail-under` exits 7 when a threshold is \
            missed. docs/EVAL.md explains everything.
            """,
        subcommands: [EvalRun.self, EvalCompare.self],
        defaultSubcommand: EvalRun.self)
}

extension Exit {
    /// `corpus eval --fail-under`: a metric missed its threshold (the evaluation is stored).
    static let thresholdMissed: Int32 = 7
}

/// A `--fail-under` bound: for loss and perplexity an upper bound, for the others a lower bound.
struct EvalThreshold: Equatable {
    var metric: String
    var bound: Double

    /// The metrics a bound may name; `reward` and `reward.NAME` too when there are rewards.
    static let allowed = ["loss", "perplexity", "rougeL", "bleu4", "exact_match"] + Evaluator.preferenceMetricNames

    var isUpperBound: Bool { Evaluator.lowerIsBetter.contains(metric) }

    /// Parses `rougeL=0.3,loss=2.0`; `rewardNames` are the `--reward` functions' names
    /// (`RewardSet.names`), which `reward.NAME` may name.
    static func parse(_ text: String, rewardNames: [String] = []) throws -> [EvalThreshold] {
        let names = allowed + (rewardNames.isEmpty ? [] : Evaluator.rewardMetricNames(rewardNames))
        return try text.split(separator: ",").map { part in
            let pieces = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pieces.count == 2, let bound = Double(pieces[1]), bound.isFinite else {
                throw ValidationError("--fail-under: '\(part)' is not METRIC=NUMBER (e.g. rougeL=0.3,loss=2.0)")
            }
            guard names.contains(pieces[0]) else {
                throw ValidationError("--fail-under: unknown metric '\(pieces[0])'; use \(names.joined(separator: ", "))"
                                      + (rewardNames.isEmpty && pieces[0].hasPrefix("reward") ? " (reward and reward.NAME need --reward)" : ""))
            }
            return EvalThreshold(metric: pieces[0], bound: bound)
        }
    }

    /// The message when `value` misses this bound, else nil.
    func failure(_ value: Double) -> String? {
        if isUpperBound ? value > bound : value < bound {
            return String(format: "%@ %.4f is %@ the threshold %g", metric, value, isUpperBound ? "above" : "below", bound)
        }
        return nil
    }
}

struct EvalRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Evaluate the base model (and with --adapter, the adapter beside it) on a snapshot split (the default subcommand of `eval`).")

    @Argument(help: "The snapshot: NAME, NAME@VERSION or id.") var snapshot: String
    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .long, help: "A LoRA adapter (PEFT folder, or an adapter id or SHA-256 from `corpus runs list`) evaluated beside the base model.")
    var adapter: String?
    @Option(name: .long, help: "The split to evaluate: eval or train.") var split = "eval"
    @Option(name: .long, help: "Evaluate only the first N items of the split.") var limit: Int?
    @Option(name: .long, help: "Tokens generated at most per answer (greedy).") var maxNewTokens = 64
    @Option(name: .long, help: "Prompts generated together as one batch.") var batch = 8
    @Option(name: .customLong("max-len"), help: "Conversations longer than this many tokens are truncated for the loss, as `corpus train` does.") var maxLength = 1024
    @Option(name: .long, help: "Chat template: chatml, llama3, mistral or alpaca (default: recognized from the model).") var template: String?
    @Option(name: .long, help: "Write a self-contained HTML report to this file.") var html: String?
    @Option(name: .long, help: "Exit 7 when the adapter's (else the base model's) metric misses a bound, e.g. rougeL=0.3,loss=2.0 (loss and perplexity: at most; the others, reward, reward.NAME and preference_accuracy included: at least).")
    var failUnder: String?
    @Option(name: .long, parsing: .singleValue, help: "Score every answer with a rule-based reward (repeatable): regex:PATTERN, extract:PATTERN, length:MIN-MAX or cmd:PROGRAM (docs/EVAL.md).")
    var reward: [String] = []
    @Option(name: .long, help: "One weight per --reward, comma-separated (default 1 each); the total reward is the weighted sum.")
    var rewardWeights: String?
    @Option(name: .long, help: "Seconds a cmd: reward program may take for one batch of --batch answers.")
    var rewardTimeout: Double = 60
    @OptionGroup var output: JSONOption

    func validate() throws {
        if !["eval", "train"].contains(split) { throw ValidationError("--split must be eval or train") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if maxNewTokens < 1 { throw ValidationError("--max-new-tokens must be at least 1") }
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
        if maxLength < 2 { throw ValidationError("--max-len must be at least 2") }
        if let template, !ChatTemplate.names.contains(template) {
            throw ValidationError("--template must be one of \(ChatTemplate.names.joined(separator: ", "))")
        }
        if !(rewardTimeout > 0 && rewardTimeout.isFinite) { throw ValidationError("--reward-timeout must be a positive number of seconds") }
        let rewards = try rewardSet()
        if let failUnder { _ = try EvalThreshold.parse(failUnder, rewardNames: rewards?.names ?? []) }
    }

    func run() throws {
        try Exit.reporting {
            try Exit.reportingModel {
                try evaluate()
            }
        }
    }

    /// The adapter folder, its weights' SHA-256 and the run that wrote it (when on record).
    private func resolveAdapter(_ reference: String, store: CorpusStore) throws -> (path: String, sha256: String, runId: Int64?) {
        var isDirectory: ObjCBool = false
        var folder = URL(fileURLWithPath: reference).standardizedFileURL.path
        if !(FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) && isDirectory.boolValue) {
            guard let known = try store.run(adapter: reference)?.adapter else {
                throw CorpusDBError(.notFound, "\(reference): neither an adapter folder nor an adapter on record in \(store.path); `corpus runs list` shows them")
            }
            folder = known.path
        }
        let weights = URL(fileURLWithPath: folder).appendingPathComponent("adapter_model.safetensors").path
        guard FileManager.default.fileExists(atPath: weights) else {
            throw CorpusDBError(.invalid, "\(folder): no adapter_model.safetensors; give a PEFT adapter folder (as `corpus train` writes)")
        }
        let sha = try ContentHash.sha256Hex(fileAt: weights)
        let run = try store.run(adapter: sha) ?? store.run(adapter: folder)
        return (folder, sha, run?.id)
    }

    /// The base model, and the adapter when one is given, loaded for evaluation.
    private struct Models {
        var loaded: ModelOptions.Loaded
        var template: ChatTemplate
        var lora: LoRAAdapter?
        var configuration: LlamaConfiguration { loaded.model.configuration }
    }

    /// The split's items to evaluate, and what was left out of them.
    private struct Items {
        var items: [EvalItem]
        var leftOut: [(recordId: Int64, reason: String)]
        var withdrawn: Int
    }

    private func evaluate() throws {
        let started = Date()
        let rewards = try rewardSet()
        let thresholds = try failUnder.map { try EvalThreshold.parse($0, rewardNames: rewards?.names ?? []) } ?? []
        let store = try modelOptions.database.open()
        let snap = try store.snapshot(snapshot)
        guard let snapshotId = snap.id else { throw CorpusDBError(.invalid, "snapshot \(snap.label) has no id") }
        let adapterInfo = try adapter.map { try resolveAdapter($0, store: store) }
        let modelPath = try modelOptions.resolvedModelPath()
        let fingerprint = try ModelIdentity.fingerprint(of: modelPath, reference: modelOptions.model, store: store)
        let models = try loadModels(path: modelPath, adapterPath: adapterInfo?.path)
        let split = try items(store: store, snapshot: snap, models: models)
        // Everything that can be refused is refused before any answer is generated.
        if let rewards { try checkReferences(rewards, items: split.items) }
        let pairs = try preferencePairs(store: store, snapshot: snap, items: split.items, template: models.template, tokenizer: models.loaded.tokenizer)
        if pairs.examples.isEmpty, let t = thresholds.first(where: { Evaluator.preferenceMetricNames.contains($0.metric) }) {
            throw CorpusDBError(.invalid, "--fail-under \(t.metric): the \(split) split's items have no preference pair to compare"
                                + (pairs.leftOut.isEmpty ? "" : " (\(pairs.leftOut.count) left out: \(pairs.leftOut[0].reason); raise --max-len)"))
        }

        Interrupt.install()
        let results = try scoreModels(models, items: split.items, rewards: rewards, pairs: pairs)
        let deltas = results.count == 2 ? try EvalDeltas.compute(candidate: results[1], baseline: results[0]) : [:]

        // Stored before anything is printed or checked, so a failed gate still leaves the record.
        let id = try record(results, deltas: deltas, items: split.items, template: models.template, rewards: rewards, pairs: pairs, store: store,
                            snapshotId: snapshotId, fingerprint: fingerprint, adapter: adapterInfo, started: started)
        let primary = results[results.count - 1]
        let failures = thresholds.compactMap { t in primary.values[t.metric].flatMap(t.failure) }
        guard let stored = try store.eval(id: id) else { throw CorpusDBError(.notFound, "eval \(id) vanished from \(store.path)") }

        if let html {
            try writeHTML(EvalReportPage(eval: stored, items: split.items, models: results, deltas: deltas, thresholds: thresholds, failures: failures,
                                         rejected: pairs.rejected), to: html)
        }
        if output.json {
            printJSON(stored, split: split, results: results, thresholds: thresholds, failures: failures)
        } else {
            EvalsCommand.printSummary(stored)
        }
        if !failures.isEmpty {
            for f in failures { Output.error("error: eval \(id): \(primary.name) \(f)") }
            throw ExitCode(Exit.thresholdMissed)
        }
    }

    /// Loads the base model, its chat template and the adapter (PEFT folder) when given.
    private func loadModels(path modelPath: String, adapterPath: String?) throws -> Models {
        Output.error("loading \(modelPath)")
        let files = try ModelFiles(path: modelPath)
        let tokenizer = try files.tokenizer()
        let weights = try files.weights(baseType: try modelOptions.baseGGMLType(), precision: try modelOptions.precision())
        let base = try LlamaModel(configuration: weights.configuration, weights: weights.weights, precision: try modelOptions.precision())
        let loaded = ModelOptions.Loaded(files: files, model: base, tokenizer: tokenizer)
        let chatTemplate = try loaded.template(template)
        let lora = try adapterPath.map { try LoRAAdapter(readingPEFT: URL(fileURLWithPath: $0), configuration: weights.configuration) }
        return Models(loaded: loaded, template: chatTemplate, lora: lora)
    }

    /// The items: the split's records (withdrawn ones left out), PII-redacted where the
    /// snapshot's checks found PII, as `corpus train` sees them; at most `--limit`.
    /// - Throws: `CorpusDBError.invalid` when no item is left to evaluate.
    private func items(store: CorpusStore, snapshot snap: Snapshot, models: Models) throws -> Items {
        let (conversations, withdrawn, _) = try SnapshotSplit.conversations(store: store, snapshot: snap, split: split)
        var (items, leftOut) = EvalItem.make(conversations, template: models.template, tokenizer: models.loaded.tokenizer, maxLength: maxLength)
        if let limit, items.count > limit { items = Array(items.prefix(limit)) }
        guard !items.isEmpty else {
            throw CorpusDBError(.invalid, "snapshot \(snap.label): no item to evaluate in its \(split) split (\(conversations.count) records, \(withdrawn) withdrawn, \(leftOut.count) left out\(leftOut.first.map { ", e.g. record \($0.recordId): \($0.reason)" } ?? ""))")
        }
        Output.error("snapshot \(snap.label) \(split) split: \(items.count) items (\(models.template.name) template)"
                     + (withdrawn + leftOut.count > 0 ? ", \(withdrawn) withdrawn, \(leftOut.count) left out" : ""))
        return Items(items: items, leftOut: leftOut, withdrawn: withdrawn)
    }

    /// A progress callback for `total` items that prints `label done/total` and stops on Ctrl-C
    /// (exit 130, nothing stored).
    private static func progress(_ label: String, _ total: Int, interactive: Bool) -> (Int) throws -> Void {
        { done in
            if interactive || done == total { Output.progress((interactive ? "\r" : "") + "\(label) \(done)/\(total)" + (done == total ? "\n" : "")) }
            if Interrupt.requested {
                if interactive { Output.progress("\n") }
                Output.error("interrupted; nothing was stored")
                throw ExitCode(Exit.interrupted)
            }
        }
    }

    /// Loss and greedy answers of the base model, and of the adapter (run unmerged beside the base
    /// weights, as `corpus generate --adapter` runs it) when there is one, scored against the references.
    private func scoreModels(_ models: Models, items: [EvalItem], rewards: RewardSet?, pairs: PreferencePairs) throws -> [ModelResult] {
        let interactive = isatty(2) == 1
        let configuration = models.configuration
        let tokenizer = models.loaded.tokenizer
        let prompts = items.map {
            Evaluator.promptIDs($0, template: models.template, tokenizer: tokenizer, window: configuration.maxPositionEmbeddings, maxNewTokens: maxNewTokens)
        }
        // What a cmd: reward reads as the prompt: the text the model was given, template applied.
        let renderedPrompts = rewards == nil ? [] : items.map { models.template.render($0.prompt, generationPrompt: true) }
        let extraNames = (rewards.map { Evaluator.rewardMetricNames($0.names) } ?? [])
            + (pairs.examples.isEmpty ? [] : Evaluator.preferenceMetricNames)
        var settings = EvalSettings()
        settings.maxNewTokens = maxNewTokens
        settings.batch = batch
        let trainingModel = LoRATrainingModel(model: models.loaded.model)
        let stop = models.loaded.stopTokenIDs

        func evaluateModel(_ name: String, adapter: LoRAAdapter, inference: LoRAInference?) throws -> ModelResult {
            var clock = Date()
            let losses = try Evaluator.losses(model: trainingModel, adapter: adapter, items: items, batch: batch,
                                              progress: Self.progress("\(name): loss", items.count, interactive: interactive))
            let lossSeconds = Date().timeIntervalSince(clock)
            clock = Date()
            let answers = try Evaluator.answers(model: models.loaded.model, adapter: inference, tokenizer: tokenizer, prompts: prompts, stopTokenIDs: stop, settings: settings,
                                                progress: Self.progress("\(name): answers", items.count, interactive: interactive))
            let generateSeconds = Date().timeIntervalSince(clock)
            let scored = try Evaluator.score(items: items, predictions: answers, losses: losses)
            var results = scored.results
            var result = ModelResult(name: name, results: results, aggregate: scored.aggregate, lossSeconds: lossSeconds, generateSeconds: generateSeconds)
            if let rewards {
                clock = Date()
                let inputs = items.indices.map { RewardInput(prompt: renderedPrompts[$0], answer: answers[$0], reference: items[$0].reference) }
                let rewarded = try Evaluator.rewards(rewards, inputs: inputs, chunk: batch,
                                                     progress: Self.progress("\(name): rewards", items.count, interactive: interactive))
                for k in results.indices {
                    results[k].rewards = rewarded[k].rewards
                    results[k].reward = rewarded[k].total
                }
                result.seconds["rewards"] = Date().timeIntervalSince(clock)
            }
            if !pairs.examples.isEmpty {
                clock = Date()
                let logps = try Evaluator.preferenceLogps(model: trainingModel, adapter: adapter, pairs: pairs.examples, batch: batch,
                                                          progress: Self.progress("\(name): preference pairs", pairs.examples.count, interactive: interactive))
                for (j, p) in logps.enumerated() { results[pairs.positions[j]].preference = p }
                result.seconds["preference"] = Date().timeIntervalSince(clock)
            }
            result.results = results
            result.extraNames = extraNames
            return result
        }

        var results = [try evaluateModel("base", adapter: try Evaluator.baseAdapter(for: configuration), inference: nil)]
        if let lora = models.lora {
            results.append(try evaluateModel("adapter", adapter: lora, inference: try LoRAInference(lora, configuration: configuration)))
        }
        return results
    }

    /// Stores the evaluation (configuration, metrics, seconds since `started`) and every answer;
    /// returns its id.
    private func record(_ results: [ModelResult], deltas: [String: EvalDelta], items: [EvalItem], template: ChatTemplate, rewards: RewardSet?,
                        pairs: PreferencePairs, store: CorpusStore, snapshotId: Int64, fingerprint: String,
                        adapter: (path: String, sha256: String, runId: Int64?)?, started: Date) throws -> Int64 {
        var config: [String: Any] = ["split": split, "limit": limit ?? NSNull(), "max_new_tokens": maxNewTokens, "batch": batch,
                                     "max_len": maxLength, "template": template.name, "decoding": "greedy"]
        if let rewards {
            config["rewards"] = Self.rewardsConfig(rewards)
            config["reward_timeout"] = rewardTimeout
        }
        var metrics: [String: Any] = ["models": Dictionary(uniqueKeysWithValues: results.map { ($0.name, $0.json) })]
        if !deltas.isEmpty { metrics["deltas"] = deltas.mapValues { $0.json } }
        if !pairs.examples.isEmpty || !pairs.leftOut.isEmpty { metrics["preference"] = pairs.json }
        var stored: [StoredEvalItem] = []
        for m in results {
            for (position, r) in m.results.enumerated() {
                stored.append(StoredEvalItem(model: m.name, position: position, recordId: r.recordId, prediction: r.prediction, loss: r.loss,
                                             tokens: r.tokens, rougeL: r.scores.rougeL, bleu4: r.scores.bleu4, exactMatch: r.scores.exactMatch,
                                             lengthRatio: r.scores.lengthRatio, reward: r.reward, rewards: r.reward == nil ? nil : r.rewards,
                                             logpChosen: r.preference?.chosen, logpRejected: r.preference?.rejected))
            }
        }
        let seconds = Date().timeIntervalSince(started)
        return try store.recordEval(NewEval(snapshotId: snapshotId, split: split, modelRef: modelOptions.model, modelSHA256: fingerprint,
                                            adapter: adapter.map { ($0.path, $0.sha256) }, runId: adapter?.runId,
                                            config: JSONText.compact(config), metrics: JSONText.compact(metrics),
                                            items: items.count, seconds: seconds),
                                    items: stored, arguments: CommandLine.arguments)
    }

    /// Writes the `--html` page through `AtomicFile` (a reader never sees half a page).
    private func writeHTML(_ page: EvalReportPage, to path: String) throws {
        do {
            try AtomicFile.write(Data(page.html().utf8), to: URL(fileURLWithPath: path))
        } catch let error as FileWriteError {
            throw CorpusDBError(.invalid, "\(path): cannot write the report: \(error.message)")
        }
        Output.error("wrote \(path)")
    }

    /// `--json`: the stored evaluation with what was left out, every item's answers and the
    /// thresholds' verdict.
    private func printJSON(_ record: StoredEval, split: Items, results: [ModelResult], thresholds: [EvalThreshold], failures: [String]) {
        let items = split.items
        var object = EvalsCommand.json(record)
        object["left_out"] = split.leftOut.map { ["record_id": $0.recordId, "reason": $0.reason] }
        object["withdrawn"] = split.withdrawn
        object["results"] = items.indices.map { k -> [String: Any] in
            var row: [String: Any] = ["record_id": items[k].recordId, "prompt": items[k].prompt.last?.content ?? "",
                                      "reference": items[k].reference]
            for m in results { row[m.name] = EvalsCommand.itemJSON(m.results[k]) }
            return row
        }
        if !thresholds.isEmpty {
            object["thresholds"] = ["model": results[results.count - 1].name, "passed": failures.isEmpty, "failures": failures,
                                    "limits": Dictionary(uniqueKeysWithValues: thresholds.map { ($0.metric, $0.bound) })] as [String: Any]
        }
        Output.printJSON(object)
    }
}

/// One model's results in an evaluation run.
struct ModelResult {
    var name: String
    var results: [EvalItemResult]
    var aggregate: EvalAggregate
    /// Seconds per phase: `loss`, `generate`, and `rewards` and `preference` when computed.
    var seconds: [String: Double]
    /// The metrics beyond `Evaluator.metricNames`, in report order: `reward.NAME`…, `reward`,
    /// `preference_accuracy`, `preference_margin` (those computed).
    var extraNames: [String] = []

    init(name: String, results: [EvalItemResult], aggregate: EvalAggregate, lossSeconds: Double, generateSeconds: Double) {
        self.name = name
        self.results = results
        self.aggregate = aggregate
        self.seconds = ["loss": lossSeconds, "generate": generateSeconds]
    }

    /// Every metric's aggregate: the text metrics and loss, then the means of the extra metrics.
    var values: [String: Double] {
        aggregate.values.merging(Evaluator.means(extraNames, of: results)) { first, _ in first }
    }

    /// The metric names in report order.
    var metricNames: [String] { Evaluator.metricNames + extraNames }

    /// What the store's metrics JSON keeps per model.
    var json: [String: Any] {
        ["items": aggregate.items, "tokens": aggregate.tokens, "metrics": values, "seconds": seconds]
    }
}

/// A metric's difference between two systems on the same items.
struct EvalDelta {
    /// Aggregate of the candidate − aggregate of the baseline.
    var delta: Double
    /// Mean over the items of candidate − baseline, and its paired-bootstrap 95% interval.
    var itemMeanDelta: Double
    var low: Double
    var high: Double

    var json: [String: Any] { ["delta": delta, "item_mean_delta": itemMeanDelta, "ci95": [low, high]] }
}

enum EvalDeltas {
    /// Resamples of the paired bootstrap (seed 0, so intervals are reproducible).
    static let resamples = 1000

    /// Per metric: the difference of the two models' aggregate figures, and the paired bootstrap
    /// of their per-item values (both evaluated on the same items in the same order).
    static func compute(candidate: ModelResult, baseline: ModelResult) throws -> [String: EvalDelta] {
        var out: [String: EvalDelta] = [:]
        let (candidateValues, baselineValues) = (candidate.values, baseline.values)
        for metric in candidate.metricNames {
            let a = candidate.results.compactMap { Evaluator.itemValue(metric, of: $0) }
            let b = baseline.results.compactMap { Evaluator.itemValue(metric, of: $0) }
            guard !a.isEmpty, a.count == b.count, let ca = candidateValues[metric], let ba = baselineValues[metric] else { continue }
            let (mean, low, high) = try TextMetrics.pairedBootstrap(a: a, b: b, resamples: resamples, seed: 0)
            out[metric] = EvalDelta(delta: ca - ba, itemMeanDelta: mean, low: low, high: high)
        }
        return out
    }
}

struct EvalCompare: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Per-metric differences between two stored evaluations on the items both share, with paired-bootstrap 95% intervals.",
        discussion: """
            E2 − E1 per metric, over the records both evaluated (means of the per-item values; BLEU-4 is the mean sentence \
            BLEU). Each side is the evaluation's adapter when it has one, else its base model; write ID:base or ID:adapter \
            to choose. Exit 5 when an evaluation does not exist.
            """)
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption
    @Argument(help: "The baseline evaluation: ID, ID:base or ID:adapter.") var first: String
    @Argument(help: "The candidate evaluation: ID, ID:base or ID:adapter.") var second: String

    /// An evaluation id and which of its models.
    static func side(_ text: String, store: CorpusStore) throws -> (eval: StoredEval, model: String) {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard let first = parts.first, let id = Int64(first), parts.count == 1 || ["base", "adapter"].contains(parts[1]) else {
            throw CorpusDBError(.invalid, "'\(text)': give an evaluation id, optionally with :base or :adapter (e.g. 3:base)")
        }
        guard let e = try store.eval(id: id) else {
            throw CorpusDBError(.notFound, "\(store.path): no evaluation \(id); `corpus evals list` shows them")
        }
        let model = parts.count == 2 ? parts[1] : (e.adapterSHA256 == nil ? "base" : "adapter")
        if model == "adapter" && e.adapterSHA256 == nil {
            throw CorpusDBError(.invalid, "evaluation \(id) has no adapter (it evaluated the base model only); use \(id) or \(id):base")
        }
        return (e, model)
    }

    func run() throws {
        try Exit.reporting {
            let store = try database.open()
            let a = try Self.side(first, store: store), b = try Self.side(second, store: store)
            let itemsA = try store.evalItems(evalId: a.eval.id).filter { $0.model == a.model }
            let itemsB = Dictionary(try store.evalItems(evalId: b.eval.id).filter { $0.model == b.model }.map { ($0.recordId, $0) },
                                    uniquingKeysWith: { first, _ in first })
            let pairs = itemsA.compactMap { x in itemsB[x.recordId].map { (baseline: x, candidate: $0) } }
            guard !pairs.isEmpty else {
                throw CorpusDBError(.invalid, "evaluations \(a.eval.id) and \(b.eval.id) share no record; compare evaluations of the same snapshot split")
            }
            func values(_ metric: String, _ i: StoredEvalItem) -> Double {
                Evaluator.itemValue(metric, loss: i.loss, scores: MetricScores(rougeL: i.rougeL, bleu4: i.bleu4, exactMatch: i.exactMatch,
                                                                              lengthRatio: i.lengthRatio)) ?? 0
            }
            var rows: [(metric: String, baseline: Double, candidate: Double, delta: Double, low: Double, high: Double)] = []
            for metric in Evaluator.metricNames {
                let x = pairs.map { values(metric, $0.baseline) }, y = pairs.map { values(metric, $0.candidate) }
                let (delta, low, high) = try TextMetrics.pairedBootstrap(a: y, b: x, resamples: EvalDeltas.resamples, seed: 0)
                rows.append((metric, x.reduce(0, +) / Double(x.count), y.reduce(0, +) / Double(y.count), delta, low, high))
            }
            if output.json {
                Output.printJSON([
                    "baseline": ["id": a.eval.id, "model": a.model, "items": itemsA.count],
                    "candidate": ["id": b.eval.id, "model": b.model, "items": itemsB.count],
                    "shared_items": pairs.count, "resamples": EvalDeltas.resamples,
                    "metrics": Dictionary(uniqueKeysWithValues: rows.map {
                        ($0.metric, ["baseline": $0.baseline, "candidate": $0.candidate, "delta": $0.delta, "ci95": [$0.low, $0.high]] as [String: Any])
                    }),
                ] as [String: Any])
                return
            }
            print("eval \(b.eval.id) (\(b.model)) − eval \(a.eval.id) (\(a.model)) on \(pairs.count) shared item(s); paired bootstrap, \(EvalDeltas.resamples) resamples")
            Output.printTable(header: ["metric", "\(a.eval.id):\(a.model)", "\(b.eval.id):\(b.model)", "delta", "95% interval"], rows: rows.map {
                [$0.metric, EvalsCommand.format($0.baseline), EvalsCommand.format($0.candidate), EvalsCommand.signed($0.delta),
                 "[\(EvalsCommand.signed($0.low)), \(EvalsCommand.signed($0.high))]"]
            })
        }
    }
}
