import ModelRuntime

/// A preference pair tokenized for DPO: the prompt followed by the chosen answer, and the same
/// prompt followed by the rejected answer. Only the final answer's tokens are targets (its
/// end-of-turn token included, as in supervised training); earlier assistant turns of a
/// multi-turn prompt are context, as TRL's DPOTrainer treats the prompt.
public struct PreferenceExample: Sendable, Equatable {
    public var recordId: Int64
    public var chosen: TrainingExample
    public var rejected: TrainingExample

    public init(recordId: Int64, chosen: TrainingExample, rejected: TrainingExample) {
        self.recordId = recordId
        self.chosen = chosen
        self.rejected = rejected
    }

    /// Tokens of both sequences.
    public var tokens: Int { chosen.ids.count + rejected.ids.count }
}

/// Tokenized pairs and what happened to those that did not fit.
public struct PreparedPairs: Sendable {
    public var examples: [PreferenceExample] = []
    /// Pairs kept with an answer cut to `maxLength` tokens.
    public var truncated = 0
    public var dropped: [(recordId: Int64, reason: String)] = []
    public var tokens: Int { examples.reduce(0) { $0 + $1.tokens } }
}

extension TrainingData {
    /// One preference pair: the prompt turns (ending with the user's question) and two answers.
    public struct Pair: Sendable {
        public var id: Int64
        public var prompt: [ChatMessage]
        public var chosen: String
        public var rejected: String

        public init(id: Int64, prompt: [ChatMessage], chosen: String, rejected: String) {
            self.id = id
            self.prompt = prompt
            self.chosen = chosen
            self.rejected = rejected
        }
    }

    /// Tokenizes pairs with the model's chat template. Each side keeps only its final answer's
    /// targets; a pair is dropped when either side has no target left (or is over `maxLength`
    /// with `overflow == .drop`), and counted truncated when either side was cut.
    public static func preparePairs(_ pairs: [Pair], template: ChatTemplate, tokenizer: BPETokenizer, maxLength: Int,
                                    overflow: Overflow) -> PreparedPairs {
        var out = PreparedPairs()
        for pair in pairs {
            var sides: [TrainingExample] = []
            var cut = false
            for answer in [pair.chosen, pair.rejected] {
                let prepared = prepare([(pair.id, pair.prompt + [ChatMessage(role: "assistant", content: answer)])], template: template,
                                       tokenizer: tokenizer, maxLength: maxLength, overflow: overflow)
                guard var example = prepared.examples.first else { break }
                cut = cut || prepared.truncated > 0
                example = TrainingExample(recordId: pair.id, ids: example.ids, targetMask: finalRun(example.targetMask))
                sides.append(example)
            }
            guard sides.count == 2, sides.allSatisfy({ $0.targets > 0 }) else {
                out.dropped.append((pair.id, overflow == .drop ? "a side is longer than --max-len \(maxLength) tokens" : "an answer has no token within --max-len \(maxLength)"))
                continue
            }
            if cut { out.truncated += 1 }
            out.examples.append(PreferenceExample(recordId: pair.id, chosen: sides[0], rejected: sides[1]))
        }
        return out
    }

    /// The last run of true flags of `mask` (the final answer), the rest false.
    static func finalRun(_ mask: [Bool]) -> [Bool] {
        guard let end = mask.lastIndex(of: true) else { return mask }
        var start = end
        while start > 0 && mask[start - 1] { start -= 1 }
        var out = [Bool](repeating: false, count: mask.count)
        for t in start...end { out[t] = true }
        return out
    }
}
