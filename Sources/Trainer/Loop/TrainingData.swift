import ModelRuntime
/// A conversation tokenized for training: the ids with the chat template applied, and for each
/// position whether the next token is a target (an assistant token, its end-of-turn token
/// included, so the adapter learns to stop).
public struct TrainingExample: Sendable, Equatable {
    /// The record it came from.
    public var recordId: Int64
    public var ids: [Int]
    /// targetMask[t]: the loss at position t predicts ids[t + 1]. The last position is never a target.
    public var targetMask: [Bool]
    /// Number of targets.
    public var targets: Int

    public init(recordId: Int64, ids: [Int], targetMask: [Bool]) {
        self.recordId = recordId
        self.ids = ids
        self.targetMask = targetMask
        self.targets = targetMask.lazy.filter { $0 }.count
    }
}

/// Tokenized training examples and what happened to those that did not fit.
public struct PreparedData: Sendable {
    public var examples: [TrainingExample] = []
    /// Examples kept but cut to `maxLength` tokens (their answers are partly kept).
    public var truncated = 0
    /// Records left out, with the reason ("longer than --max-len", "no answer to learn").
    public var dropped: [(recordId: Int64, reason: String)] = []
    /// Assistant tokens (targets) over all examples.
    public var targetTokens: Int { examples.reduce(0) { $0 + $1.targets } }
    /// All tokens over all examples.
    public var tokens: Int { examples.reduce(0) { $0 + $1.ids.count } }

    public init() {}
}

/// Turning conversations into training examples.
public enum TrainingData {
    /// What to do with a conversation longer than `maxLength` tokens.
    public enum Overflow: String, Sendable, CaseIterable {
        /// Keep the first `maxLength` tokens (if some of an answer is among them).
        case truncate
        /// Leave the example out.
        case drop
    }

    /// Tokenizes conversations with the model's chat template. Each example keeps the targets the
    /// template's assistant mask gives; an example without any target is dropped, as is one over
    /// `maxLength` tokens with `overflow == .drop`.
    public static func prepare(_ conversations: [(id: Int64, messages: [ChatMessage])], template: ChatTemplate,
                               tokenizer: BPETokenizer, maxLength: Int, overflow: Overflow) -> PreparedData {
        var out = PreparedData()
        for c in conversations {
            var (ids, mask) = template.encode(c.messages, tokenizer: tokenizer)
            let cut = ids.count > maxLength
            if cut {
                guard overflow == .truncate else {
                    out.dropped.append((c.id, "longer than --max-len \(maxLength) tokens (\(ids.count))"))
                    continue
                }
                ids.removeLast(ids.count - maxLength)
                mask.removeLast(mask.count - maxLength)
            }
            // Position t predicts token t + 1: shift the assistant mask left by one.
            var targets = [Bool](repeating: false, count: ids.count)
            for t in 0..<max(0, ids.count - 1) { targets[t] = mask[t + 1] }
            let example = TrainingExample(recordId: c.id, ids: ids, targetMask: targets)
            guard example.targets > 0 else {
                out.dropped.append((c.id, ids.count >= maxLength ? "no answer within --max-len \(maxLength) tokens" : "no answer to learn"))
                continue
            }
            if cut { out.truncated += 1 }
            out.examples.append(example)
        }
        return out
    }
}

/// The order in which a run visits its examples: batches of similar length (so no compute goes
/// to padding, and no example is packed with another), reshuffled every epoch. Depends only on
/// the lengths, the token budget, the seed and the epoch, so a resumed run finds its place again.
public enum BatchPlan {
    /// Examples shuffled together before they are sorted by length into batches.
    static let window = 256

    /// The batches of one epoch: lists of example indices whose lengths sum to at most
    /// `batchTokens` (an example longer than that is a batch of its own).
    public static func batches(lengths: [Int], batchTokens: Int, seed: UInt64, epoch: Int) -> [[Int]] {
        var rng = SplitMix64(seed: seed ^ (0x9E37_79B9_7F4A_7C15 &* UInt64(epoch + 1)))
        var order = Array(lengths.indices)
        rng.shuffle(&order)
        var batches: [[Int]] = []
        var start = 0
        while start < order.count {
            let end = min(order.count, start + window)
            let chunk = order[start..<end].sorted { (lengths[$0], $0) < (lengths[$1], $1) }
            var current: [Int] = [], tokens = 0
            for i in chunk {
                if !current.isEmpty && tokens + lengths[i] > batchTokens {
                    batches.append(current)
                    current = []
                    tokens = 0
                }
                current.append(i)
                tokens += lengths[i]
            }
            if !current.isEmpty { batches.append(current) }
            start = end
        }
        rng.shuffle(&batches)
        return batches
    }
}
