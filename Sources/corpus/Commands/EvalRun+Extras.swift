import ArgumentParser
import CorpusDB
import Foundation
import ModelRuntime
import Trainer

/// `corpus eval --reward` and the preference comparison of pairs (docs/EVAL.md, "Rewards" and
/// "Preference accuracy").
extension EvalRun {
    /// The `--reward` functions with `--reward-weights` and `--reward-timeout`; nil without `--reward`.
    /// - Throws: `ValidationError` (a usage error) for a malformed spec or weights.
    func rewardSet() throws -> RewardSet? {
        guard !reward.isEmpty else {
            if rewardWeights != nil { throw ValidationError("--reward-weights needs --reward (one weight per --reward)") }
            return nil
        }
        do {
            let functions = try reward.map { spec -> RewardFunction in
                var f = try RewardFunction(spec: spec)
                f.timeout = rewardTimeout
                return f
            }
            let weights = try rewardWeights.map { text -> [Double] in
                try text.split(separator: ",", omittingEmptySubsequences: false).map { part in
                    guard let w = Double(part.trimmingCharacters(in: .whitespaces)), w.isFinite else {
                        throw ValidationError("--reward-weights: '\(part)' is not a number; give one weight per --reward, e.g. 1,0.5")
                    }
                    return w
                }
            }
            return try RewardSet(functions: functions, weights: weights)
        } catch let error as TrainerError {
            throw ValidationError(error.description)
        }
    }

    /// The pairs among the items, tokenized as DPO training tokenizes them, for the preference
    /// comparison.
    struct PreferencePairs {
        var examples: [PreferenceExample] = []
        /// The item each example belongs to.
        var positions: [Int] = []
        /// Pairs among the items that were left out (a side longer than `--max-len`), with the reason.
        var leftOut: [(recordId: Int64, reason: String)] = []
        /// The rejected answer of each compared pair, by record id (for the HTML page).
        var rejected: [Int64: String] = [:]

        /// The metrics JSON's `preference` object: pairs compared and those left out.
        var json: [String: Any] {
            ["pairs": examples.count, "left_out": leftOut.map { ["record_id": $0.recordId, "reason": $0.reason] as [String: Any] }]
        }
    }

    /// The items that are preference pairs (prompt, chosen = the item's reference, rejected),
    /// tokenized with `TrainingData.preparePairs`. A pair whose chosen or rejected side is longer
    /// than `--max-len` tokens is left out (counted): a cut answer's log-probability is not
    /// comparable with a whole one's.
    func preferencePairs(store: CorpusStore, snapshot snap: Snapshot, items: [EvalItem], template: ChatTemplate,
                         tokenizer: BPETokenizer) throws -> PreferencePairs {
        let byId = Dictionary(try SnapshotSplit.pairs(store: store, snapshot: snap, split: split).pairs.map { ($0.id, $0) },
                              uniquingKeysWith: { first, _ in first })
        var out = PreferencePairs()
        let candidates = items.enumerated().compactMap { k, item in byId[item.recordId].map { (k, $0) } }
        guard !candidates.isEmpty else { return out }
        let prepared = TrainingData.preparePairs(candidates.map(\.1), template: template, tokenizer: tokenizer, maxLength: maxLength, overflow: .drop)
        let position = Dictionary(candidates.map { ($0.1.id, $0.0) }, uniquingKeysWith: { first, _ in first })
        for example in prepared.examples {
            guard let k = position[example.recordId] else { continue }
            out.examples.append(example)
            out.positions.append(k)
            out.rejected[example.recordId] = byId[example.recordId]?.rejected
        }
        out.leftOut = prepared.dropped
        Output.error("preference pairs among the items: \(out.examples.count) compared"
                     + (out.leftOut.isEmpty ? "" : ", \(out.leftOut.count) left out (e.g. record \(out.leftOut[0].recordId): \(out.leftOut[0].reason))"))
        return out
    }

    /// Refuses, before any answer is generated, rewards that cannot score the items: an
    /// `extract:` pattern that finds nothing in some item's reference answer.
    /// - Throws: `CorpusDBError.invalid` naming the reward and the record.
    func checkReferences(_ rewards: RewardSet, items: [EvalItem]) throws {
        let references = items.map(\.reference)
        for f in rewards.functions {
            if let k = f.firstUncheckableReference(references) {
                throw CorpusDBError(.invalid, "--reward \(f.spec): the reference answer of record \(items[k].recordId) has no match of the pattern, so no answer to it can be checked (\"\(Output.excerpt(items[k].reference, 60))\"); fix the pattern, or evaluate a snapshot without that record")
            }
        }
    }

    /// The settings of the rewards as the stored configuration keeps them.
    static func rewardsConfig(_ rewards: RewardSet) -> [[String: Any]] {
        zip(rewards.names, zip(rewards.functions, rewards.weights)).map { name, fw in
            ["name": name, "spec": fw.0.spec, "weight": fw.1]
        }
    }
}
