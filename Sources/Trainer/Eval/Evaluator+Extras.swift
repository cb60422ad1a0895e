import ModelRuntime

/// The figures an evaluation adds to the text metrics when asked (docs/EVAL.md, "Rewards" and
/// "Preference accuracy"): the mean score of each rule-based reward over the answers, and on
/// preference pairs how often the model finds the chosen answer more likely than the rejected.
extension Evaluator {
    /// The metric names of the preference comparison.
    public static let preferenceMetricNames = ["preference_accuracy", "preference_margin"]

    /// The metric names of rewards named `names` (`RewardSet.names`): `reward.NAME` for each,
    /// then `reward`, the weighted total.
    public static func rewardMetricNames(_ names: [String]) -> [String] {
        names.map { "reward." + $0 } + ["reward"]
    }

    /// The per-item value of any metric of an item result: the text metrics and loss as
    /// ``itemValue(_:loss:scores:)`` gives them, `reward.NAME` and `reward`, and for a compared
    /// pair `preference_accuracy` (1 when the chosen answer's log-probability is strictly higher
    /// than the rejected one's, else 0) and `preference_margin` (log p chosen − log p rejected).
    /// Nil when the item has no such value.
    public static func itemValue(_ metric: String, of result: EvalItemResult) -> Double? {
        switch metric {
        case "reward": return result.reward
        case "preference_accuracy": return result.preference.map { $0.chosen > $0.rejected ? 1 : 0 }
        case "preference_margin": return result.preference.map { $0.chosen - $0.rejected }
        default:
            if metric.hasPrefix("reward.") { return result.rewards[String(metric.dropFirst("reward.".count))] }
            return itemValue(metric, loss: result.loss, scores: result.scores)
        }
    }

    /// For each metric, the mean of its per-item values over the items that have one (a reward:
    /// every item; the preference metrics: the compared pairs). A metric no item has is left out.
    public static func means(_ metrics: [String], of results: [EvalItemResult]) -> [String: Double] {
        var out: [String: Double] = [:]
        for metric in metrics {
            let values = results.compactMap { itemValue(metric, of: $0) }
            if !values.isEmpty { out[metric] = values.reduce(0, +) / Double(values.count) }
        }
        return out
    }

    /// Σ log p of each pair's chosen and rejected answer under `adapter` (applied unmerged, in
    /// evaluation mode; ``baseAdapter(for:)`` for the base model): the negated cross-entropy sums
    /// over each side's final-answer tokens, end-of-turn included, as DPO training computes its
    /// log-probabilities (`TrainingData.preparePairs`). `batch` pairs (2 × `batch` sequences) per
    /// engine call; `progress(done)` after each, what it throws stops the work.
    /// - Throws: `TrainerError` for an adapter that does not fit the model.
    public static func preferenceLogps(model: LoRATrainingModel, adapter: LoRAAdapter, pairs: [PreferenceExample], batch: Int = 8,
                                       progress: (Int) throws -> Void = { _ in }) throws -> [ReferenceLogps] {
        var out: [ReferenceLogps] = []
        out.reserveCapacity(pairs.count)
        var start = 0
        while start < pairs.count {
            let part = pairs[start..<min(start + max(batch, 1), pairs.count)]
            let sums = try model.losses(batch: part.flatMap { [$0.chosen.sequence, $0.rejected.sequence] }, adapter: adapter)
            for i in 0..<part.count {
                out.append(ReferenceLogps(chosen: -sums[2 * i].sum, rejected: -sums[2 * i + 1].sum))
            }
            start += part.count
            try progress(start)
        }
        return out
    }

    /// Each input's reward per function (by `RewardSet.names`) and the weighted total, scoring
    /// `chunk` inputs at a time: a `cmd:` program is started once per chunk and must finish each
    /// within its timeout. `progress(done)` after each chunk; what it throws stops the work.
    /// - Throws: `TrainerError.rewardProgram` when a `cmd:` program fails, hangs or prints
    ///   something else than one number per input.
    public static func rewards(_ set: RewardSet, inputs: [RewardInput], chunk: Int = 8,
                               progress: (Int) throws -> Void = { _ in }) throws -> [(rewards: [String: Double], total: Double)] {
        let names = set.names
        var out: [(rewards: [String: Double], total: Double)] = []
        out.reserveCapacity(inputs.count)
        var start = 0
        while start < inputs.count {
            let part = Array(inputs[start..<min(start + max(chunk, 1), inputs.count)])
            let (perFunction, total) = try set.score(part)
            for i in part.indices {
                out.append((Dictionary(uniqueKeysWithValues: names.indices.map { (names[$0], perFunction[$0][i]) }), total[i]))
            }
            start += part.count
            try progress(start)
        }
        return out
    }
}
