import ModelRuntime
import Foundation

/// One item of an evaluation: a conversation whose last assistant turn is the reference answer.
public struct EvalItem: Sendable {
    /// The record it came from.
    public var recordId: Int64
    /// The conversation up to (not including) its last assistant turn: what the model answers.
    public var prompt: [ChatMessage]
    /// The last assistant turn.
    public var reference: String
    /// The whole conversation tokenized with its assistant mask (TrainingData.prepare): the
    /// teacher-forced loss is over its targets.
    public var example: TrainingExample

    public init(recordId: Int64, prompt: [ChatMessage], reference: String, example: TrainingExample) {
        self.recordId = recordId
        self.prompt = prompt
        self.reference = reference
        self.example = example
    }

    /// Items from conversations: each needs an assistant turn (the last one is the reference) and
    /// a prepared example with at least one target within `maxLength` tokens (longer
    /// conversations are truncated, as `corpus train` does). The others are returned as left out,
    /// with the reason.
    public static func make(_ conversations: [(id: Int64, messages: [ChatMessage])], template: ChatTemplate, tokenizer: BPETokenizer,
                            maxLength: Int) -> (items: [EvalItem], leftOut: [(recordId: Int64, reason: String)]) {
        var items: [EvalItem] = []
        var leftOut: [(recordId: Int64, reason: String)] = []
        for c in conversations {
            guard let last = c.messages.lastIndex(where: { $0.role == "assistant" }) else {
                leftOut.append((c.id, "no assistant turn to use as the reference"))
                continue
            }
            let prepared = TrainingData.prepare([c], template: template, tokenizer: tokenizer, maxLength: maxLength, overflow: .truncate)
            guard let example = prepared.examples.first else {
                leftOut.append((c.id, prepared.dropped.first?.reason ?? "no answer to score"))
                continue
            }
            items.append(EvalItem(recordId: c.id, prompt: Array(c.messages[..<last]), reference: c.messages[last].content, example: example))
        }
        return (items, leftOut)
    }
}

/// One model's result on one item.
public struct EvalItemResult: Sendable, Equatable {
    public var recordId: Int64
    /// The greedy answer, special tokens left out.
    public var prediction: String
    /// Σ −log p over the assistant tokens (nats) and their number.
    public var lossSum: Double
    public var tokens: Int
    public var scores: MetricScores
    /// Each `--reward` function's score of the answer, by its name (`RewardSet.names`), and their
    /// weighted sum; empty and nil when no reward was asked for.
    public var rewards: [String: Double]
    public var reward: Double?
    /// For a preference pair: Σ log p of the chosen and of the rejected answer's tokens (nil for a
    /// plain conversation, or a pair left out of the comparison).
    public var preference: ReferenceLogps?

    /// Mean negative log-likelihood per assistant token.
    public var loss: Double { lossSum / Double(max(tokens, 1)) }

    public init(recordId: Int64, prediction: String, lossSum: Double, tokens: Int, scores: MetricScores,
                rewards: [String: Double] = [:], reward: Double? = nil, preference: ReferenceLogps? = nil) {
        self.recordId = recordId
        self.prediction = prediction
        self.lossSum = lossSum
        self.tokens = tokens
        self.scores = scores
        self.rewards = rewards
        self.reward = reward
        self.preference = preference
    }
}

/// A model's metrics over all items.
public struct EvalAggregate: Sendable, Equatable {
    public var items: Int
    /// Assistant tokens the loss is over.
    public var tokens: Int
    /// Token-weighted mean loss: Σ loss sums / Σ assistant tokens.
    public var loss: Double
    /// exp(loss).
    public var perplexity: Double { exp(loss) }
    /// Mean ROUGE-L F1, corpus BLEU-4, share of exact matches, total length ratio.
    public var text: CorpusMetricScores

    public init(items: Int, tokens: Int, loss: Double, text: CorpusMetricScores) {
        self.items = items
        self.tokens = tokens
        self.loss = loss
        self.text = text
    }

    /// The figures by their names in JSON and in `--fail-under` (see ``Evaluator/metricNames``).
    public var values: [String: Double] {
        ["loss": loss, "perplexity": perplexity, "rougeL": text.rougeL, "bleu4": text.bleu4, "exact_match": text.exactMatch,
         "length_ratio": text.lengthRatio]
    }
}

/// Settings of an evaluation run.
public struct EvalSettings: Sendable, Equatable {
    /// Tokens generated at most per answer.
    public var maxNewTokens = 64
    /// Prompts generated together.
    public var batch = 8
    public init() {}
}

/// The evaluation harness's model work: teacher-forced losses and batched greedy answers of one
/// model on a list of items, and the metrics of the answers (docs/EVAL.md).
public enum Evaluator {
    /// The metric names, in the order reports list them.
    public static let metricNames = ["loss", "perplexity", "rougeL", "bleu4", "exact_match", "length_ratio"]
    /// Metrics where lower is better.
    public static let lowerIsBetter: Set<String> = ["loss", "perplexity"]

    /// The loss of `adapter` (applied unmerged, in evaluation mode) on each item's assistant
    /// tokens, `batch` items per engine call (one workspace, reused). An adapter of zeros
    /// (``baseAdapter(for:)``) gives the base model's loss. `progress(done)` is called after each
    /// batch; what it throws stops the work.
    /// - Throws: `TrainerError` for an adapter that does not fit the model.
    public static func losses(model: LoRATrainingModel, adapter: LoRAAdapter, items: [EvalItem], batch: Int = 8,
                              progress: (Int) throws -> Void = { _ in }) throws -> [(sum: Double, tokens: Int)] {
        var out: [(sum: Double, tokens: Int)] = []
        out.reserveCapacity(items.count)
        var start = 0
        while start < items.count {
            let part = items[start..<min(start + max(batch, 1), items.count)]
            let sequences = part.map { TrainingSequence(ids: $0.example.ids.map { Int32(truncatingIfNeeded: $0) }, targetMask: $0.example.targetMask) }
            out += try model.losses(batch: sequences, adapter: adapter)
            start += part.count
            try progress(start)
        }
        return out
    }

    /// An adapter equal to the base model (rank 1 on q_proj, A and B zero): the base model's loss
    /// through the same code path as an adapter's.
    public static func baseAdapter(for configuration: LlamaConfiguration) throws -> LoRAAdapter {
        LoRAAdapter(zerosLike: try LoRAAdapter(initializing: LoRAConfiguration(rank: 1, targets: [.q]), for: configuration, seed: 0))
    }

    /// The prompt ids of an item: its messages with the template's generation prompt, cut from
    /// the left when prompt + `maxNewTokens` would pass the model's context window.
    public static func promptIDs(_ item: EvalItem, template: ChatTemplate, tokenizer: BPETokenizer, window: Int, maxNewTokens: Int) -> [Int] {
        let ids = tokenizer.encode(template.render(item.prompt, generationPrompt: true))
        let room = max(1, window - maxNewTokens)
        return ids.count > room ? Array(ids.suffix(room)) : ids
    }

    /// Greedy answers to `prompts`, `settings.batch` prompts at a time (prompts of similar length
    /// together; the answers come back in the order of `prompts`). Incomplete characters at the
    /// end of an answer cut by `maxNewTokens` are dropped. `progress(done)` is called after each
    /// batch; what it throws stops the work.
    /// - Throws: `TrainerError` for an id outside the vocabulary.
    public static func answers(model: LlamaModel, adapter: LoRAInference? = nil, tokenizer: BPETokenizer, prompts: [[Int]], stopTokenIDs: Set<Int>,
                               settings: EvalSettings, progress: (Int) throws -> Void = { _ in }) throws -> [String] {
        var parameters = GenerationParameters()
        parameters.maxTokens = settings.maxNewTokens
        parameters.temperature = 0
        parameters.stopTokenIDs = stopTokenIDs
        var out = [String](repeating: "", count: prompts.count)
        let order = prompts.indices.sorted { (prompts[$0].count, $0) < (prompts[$1].count, $1) }
        var done = 0
        var start = 0
        while start < order.count {
            let chunk = Array(order[start..<min(order.count, start + max(1, settings.batch))])
            let generated = try Generator.generate(model: model, adapter: adapter, prompts: chunk.map { prompts[$0] }, parameters: parameters)
            for (i, ids) in zip(chunk, generated) {
                var text = tokenizer.decode(ids, skipSpecial: true)
                while ids.count >= settings.maxNewTokens, text.hasSuffix("\u{FFFD}") { text.removeLast() }
                out[i] = text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            done += chunk.count
            start += chunk.count
            try progress(done)
        }
        return out
    }

    /// Scores answers against the items' references and aggregates them with the losses.
    /// - Throws: `TrainerError.unsupported` when the arrays do not have one entry per item.
    public static func score(items: [EvalItem], predictions: [String], losses: [(sum: Double, tokens: Int)]) throws
        -> (results: [EvalItemResult], aggregate: EvalAggregate)
    {
        guard predictions.count == items.count, losses.count == items.count else {
            throw TrainerError.unsupported("score: \(items.count) items, \(predictions.count) answers and \(losses.count) losses; pass one of each per item")
        }
        var results: [EvalItemResult] = []
        var lossSum = 0.0, tokens = 0
        for (k, item) in items.enumerated() {
            results.append(EvalItemResult(recordId: item.recordId, prediction: predictions[k], lossSum: losses[k].sum, tokens: losses[k].tokens,
                                          scores: TextMetrics.scores(prediction: predictions[k], reference: item.reference)))
            lossSum += losses[k].sum
            tokens += losses[k].tokens
        }
        let text = try TextMetrics.corpusScores(predictions: predictions, references: items.map(\.reference))
        return (results, EvalAggregate(items: items.count, tokens: tokens, loss: tokens > 0 ? lossSum / Double(tokens) : 0, text: text))
    }

    /// The per-item value of a metric, as the paired bootstrap compares them (BLEU-4: sentence
    /// BLEU; perplexity: exp of the item's loss).
    public static func itemValue(_ metric: String, loss: Double, scores: MetricScores) -> Double? {
        switch metric {
        case "loss": return loss
        case "perplexity": return exp(loss)
        case "rougeL": return scores.rougeL
        case "bleu4": return scores.bleu4
        case "exact_match": return scores.exactMatch
        case "length_ratio": return scores.lengthRatio
        default: return nil
        }
    }
}
