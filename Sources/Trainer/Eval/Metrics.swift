import ModelRuntime
import Foundation

/// Text metrics of the evaluation harness: one model answer against one reference answer, and
/// corpus-level aggregates. Definitions, tokenization and the reference implementations they are
/// tested against (rouge-score 0.1.2, sacrebleu 2.6.0) are in docs/EVAL_METRICS.md.
///
/// Every metric sees the same tokens (``tokens(_:)``): CJK text is scored on characters, other
/// text on lower-cased words, so Chinese answers need no word segmenter.
public enum TextMetrics {
    /// The largest n-gram order of BLEU-4.
    public static let maxOrder = 4

    // MARK: Tokens

    /// The tokens every metric compares.
    ///
    /// The text is NFKC-normalized. Each CJK ideograph, kana or hangul code point (a letter or
    /// number in the blocks listed in docs/EVAL_METRICS.md) is one token. A maximal run of other
    /// letters (L*), decimal digits (Nd) and marks (M*, only after a letter or digit) is one
    /// word token, lower-cased one code point at a time. Everything else (punctuation, symbols,
    /// whitespace) separates tokens and is dropped. On ASCII text this is rouge-score's own
    /// tokenizer without stemming.
    ///
    /// - Complexity: O(n) in the length of `text`.
    public static func tokens(_ text: String) -> [String] {
        var result: [String] = []
        var word = String.UnicodeScalarView()
        for scalar in nfkc(text).unicodeScalars {
            if isCJK(scalar) {
                if !word.isEmpty { result.append(String(word)); word = String.UnicodeScalarView() }
                result.append(String(scalar))
            } else if isWordScalar(scalar, continuing: !word.isEmpty) {
                word.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
            } else if !word.isEmpty {
                result.append(String(word))
                word = String.UnicodeScalarView()
            }
        }
        if !word.isEmpty { result.append(String(word)) }
        return result
    }

    /// Unicode NFKC, computed as NFKD followed by NFC (its definition). Foundation's one-step
    /// `precomposedStringWithCompatibilityMapping` on Linux (Swift 6.3) leaves marks that come
    /// out of a compatibility decomposition unordered and uncomposed: `ｶﾞ` (U+FF76 U+FF9E) gives
    /// カ U+3099 instead of ガ, and 血 U+0308 U+FF9E keeps U+0308 before U+3099. The two-step form
    /// agrees with Python's `unicodedata.normalize("NFKC", ...)` on every fixture.
    static func nfkc(_ text: String) -> String {
        text.decomposedStringWithCompatibilityMapping.precomposedStringWithCanonicalMapping
    }

    /// Blocks of scripts written without spaces; a letter or number code point in one of them
    /// is a token of its own.
    static let cjkRanges: [ClosedRange<UInt32>] = [
        0x1100...0x11FF,    // Hangul Jamo
        0x2E80...0x2FDF,    // CJK Radicals Supplement, Kangxi Radicals
        0x3005...0x3007,    // 々 〆 〇
        0x3021...0x3029,    // Hangzhou numerals
        0x3038...0x303C,    // more Hangzhou numerals, 〻 〼
        0x3040...0x30FF,    // Hiragana, Katakana
        0x3130...0x318F,    // Hangul Compatibility Jamo
        0x31F0...0x31FF,    // Katakana Phonetic Extensions
        0x3400...0x4DBF,    // CJK Unified Ideographs Extension A
        0x4E00...0x9FFF,    // CJK Unified Ideographs
        0xA960...0xA97F,    // Hangul Jamo Extended-A
        0xAC00...0xD7FF,    // Hangul Syllables, Hangul Jamo Extended-B
        0xF900...0xFAFF,    // CJK Compatibility Ideographs
        0xFF66...0xFFDC,    // halfwidth Katakana and Hangul
        0x1B000...0x1B16F,  // Kana Supplement, Kana Extended-A, Small Kana Extension
        0x20000...0x323AF,  // CJK Unified Ideographs Extensions B-H, Compatibility Supplement
    ]

    static func isCJK(_ scalar: Unicode.Scalar) -> Bool {
        guard cjkRanges.contains(where: { $0.contains(scalar.value) }) else { return false }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
             .letterNumber, .decimalNumber:
            return true
        default:
            return false
        }
    }

    static func isWordScalar(_ scalar: Unicode.Scalar, continuing: Bool) -> Bool {
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
             .decimalNumber:
            return true
        case .nonspacingMark, .spacingMark, .enclosingMark:
            return continuing
        default:
            return false
        }
    }

    /// Tokens as small integers (equal tokens, equal ids), so LCS and n-gram counting compare
    /// integers instead of strings.
    static func ids(_ prediction: [String], _ reference: [String]) -> (prediction: [Int], reference: [Int]) {
        var table: [String: Int] = [:]
        func id(_ token: String) -> Int {
            if let known = table[token] { return known }
            table[token] = table.count
            return table.count - 1
        }
        let p = prediction.map(id)
        let r = reference.map(id)
        return (p, r)
    }

    // MARK: ROUGE-L

    /// ROUGE-L precision, recall and F1 of one answer.
    public struct RougeScore: Codable, Sendable, Equatable {
        public var precision: Double
        public var recall: Double
        public var f: Double

        public init(precision: Double, recall: Double, f: Double) {
            self.precision = precision
            self.recall = recall
            self.f = f
        }
    }

    /// ROUGE-L F1 of `prediction` against `reference` (see ``rougeL(predictionTokens:referenceTokens:)``).
    public static func rougeL(prediction: String, reference: String) -> Double {
        rougeL(predictionTokens: tokens(prediction), referenceTokens: tokens(reference)).f
    }

    /// ROUGE-L as rouge-score defines it (Lin 2004, https://aclanthology.org/W04-1013):
    /// precision = LCS / |prediction|, recall = LCS / |reference|, F = 2PR / (P + R);
    /// all three are 0 when either side has no tokens or nothing is in common.
    ///
    /// - Complexity: O(|prediction| × |reference|) time, O(|prediction|) memory.
    public static func rougeL(predictionTokens: [String], referenceTokens: [String]) -> RougeScore {
        guard !predictionTokens.isEmpty, !referenceTokens.isEmpty else { return RougeScore(precision: 0, recall: 0, f: 0) }
        let (p, r) = ids(predictionTokens, referenceTokens)
        let lcs = Double(longestCommonSubsequence(r, p))
        let precision = lcs / Double(p.count)
        let recall = lcs / Double(r.count)
        let f = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
        return RougeScore(precision: precision, recall: recall, f: f)
    }

    /// Length of the longest common subsequence, by the classic dynamic programme kept to two rows.
    static func longestCommonSubsequence(_ a: [Int], _ b: [Int]) -> Int {
        var previous = [Int](repeating: 0, count: b.count + 1)  // row i-1 of the (|a|+1, |b|+1) table
        var current = previous
        for x in a {
            for j in 1...b.count {
                current[j] = x == b[j - 1] ? previous[j - 1] + 1 : max(previous[j], current[j - 1])
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }

    // MARK: BLEU

    /// BLEU's sufficient statistics; they add up over a corpus.
    public struct BLEUStatistics: Codable, Sendable, Equatable {
        /// Tokens in the prediction(s).
        public var predictionLength = 0
        /// Tokens in the reference(s).
        public var referenceLength = 0
        /// Clipped matching n-grams for n = 1...4: min(count in prediction, count in reference).
        public var matches = [Int](repeating: 0, count: TextMetrics.maxOrder)
        /// n-grams in the prediction for n = 1...4.
        public var totals = [Int](repeating: 0, count: TextMetrics.maxOrder)

        public init() {}

        public static func + (lhs: Self, rhs: Self) -> Self {
            var sum = lhs
            sum.predictionLength += rhs.predictionLength
            sum.referenceLength += rhs.referenceLength
            for n in 0..<TextMetrics.maxOrder {
                sum.matches[n] += rhs.matches[n]
                sum.totals[n] += rhs.totals[n]
            }
            return sum
        }
    }

    /// The statistics of one prediction against one reference (sacrebleu's segment statistics).
    public static func bleuStatistics(predictionTokens: [String], referenceTokens: [String]) -> BLEUStatistics {
        let (p, r) = ids(predictionTokens, referenceTokens)
        var stats = BLEUStatistics()
        stats.predictionLength = p.count
        stats.referenceLength = r.count
        for n in 1...maxOrder where p.count >= n {
            let predicted = ngramCounts(p, n)
            let available = ngramCounts(r, n)
            for (gram, count) in predicted {
                stats.totals[n - 1] += count
                stats.matches[n - 1] += min(count, available[gram] ?? 0)
            }
        }
        return stats
    }

    static func ngramCounts(_ ids: [Int], _ n: Int) -> [ArraySlice<Int>: Int] {
        var counts: [ArraySlice<Int>: Int] = [:]
        guard ids.count >= n else { return counts }
        for start in 0...(ids.count - n) { counts[ids[start..<(start + n)], default: 0] += 1 }
        return counts
    }

    /// BLEU-4 in [0, 1] from statistics, as sacrebleu's `BLEU.compute_bleu` with
    /// `smooth_method="exp"` (Chen & Cherry 2014 method 3, mteval-v13a's smoothing: the k-th
    /// order with no match gets precision 1 / (2^k · total)), divided by 100.
    ///
    /// With `effectiveOrder` (sentence level) the geometric mean runs only over the orders the
    /// prediction has n-grams of; without it (corpus level) an order with no n-grams at all
    /// makes the score 0. The brevity penalty is exp(1 − r/c) when c < r (0 when c = 0).
    public static func bleu(_ stats: BLEUStatistics, effectiveOrder: Bool) -> Double {
        let c = stats.predictionLength, r = stats.referenceLength
        var brevity = 1.0
        if c < r { brevity = c > 0 ? exp(1 - Double(r) / Double(c)) : 0 }
        guard stats.matches.contains(where: { $0 > 0 }) else { return 0 }
        var precisions = [Double](repeating: 0, count: maxOrder)  // percentages, as sacrebleu
        var smoothing = 1.0
        var order = maxOrder
        for n in 0..<maxOrder {
            guard stats.totals[n] > 0 else { break }
            if effectiveOrder { order = n + 1 }
            if stats.matches[n] == 0 {
                smoothing *= 2
                precisions[n] = 100 / (smoothing * Double(stats.totals[n]))
            } else {
                precisions[n] = 100 * Double(stats.matches[n]) / Double(stats.totals[n])
            }
        }
        var logSum = 0.0
        for p in precisions[..<order] { logSum += p > 0 ? log(p) : -9_999_999_999 }  // sacrebleu's my_log
        return brevity * exp(logSum / Double(order)) / 100
    }

    /// Sentence-level BLEU-4 in [0, 1]: sacrebleu `sentence_bleu` (exp smoothing, effective
    /// order) on our tokens.
    public static func sentenceBLEU(prediction: String, reference: String) -> Double {
        bleu(bleuStatistics(predictionTokens: tokens(prediction), referenceTokens: tokens(reference)), effectiveOrder: true)
    }

    /// Corpus-level BLEU-4 in [0, 1]: sacrebleu `corpus_bleu` (statistics summed over the items,
    /// one brevity penalty on the total lengths, exp smoothing, no effective order) on our tokens.
    ///
    /// - Throws: `TrainerError.unsupported` when the two arrays differ in length.
    public static func corpusBLEU(predictions: [String], references: [String]) throws -> Double {
        try requirePaired(predictions.count, references.count, "corpusBLEU")
        var total = BLEUStatistics()
        for (p, r) in zip(predictions, references) {
            total = total + bleuStatistics(predictionTokens: tokens(p), referenceTokens: tokens(r))
        }
        return bleu(total, effectiveOrder: false)
    }

    // MARK: Exact match and length

    /// The text exact match compares: NFKC, lower-cased one code point at a time, runs of
    /// Unicode White_Space collapsed to one space and trimmed, then trailing `. , ; : ! ? 。 、 ~`
    /// (after NFKC, so also their full-width forms) and spaces removed.
    public static func normalizedForMatch(_ text: String) -> String {
        var scalars: [Unicode.Scalar] = []
        var pendingSpace = false
        for scalar in nfkc(text).unicodeScalars {
            if scalar.properties.isWhitespace {
                pendingSpace = !scalars.isEmpty
                continue
            }
            if pendingSpace { scalars.append(" "); pendingSpace = false }
            scalars.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
        }
        while let last = scalars.last, trailingDropped.contains(last) || last.properties.isWhitespace {
            scalars.removeLast()
        }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    static let trailingDropped: Set<Unicode.Scalar> = [".", ",", ";", ":", "!", "?", "。", "、", "~"]

    /// Whether the two answers are the same after ``normalizedForMatch(_:)`` (code point by code
    /// point, not Swift's canonical equivalence, so the definition is the same in any language).
    public static func exactMatch(_ prediction: String, _ reference: String) -> Bool {
        normalizedForMatch(prediction).unicodeScalars.elementsEqual(normalizedForMatch(reference).unicodeScalars)
    }

    /// |prediction tokens| / |reference tokens|. An empty reference counts as length 1 when the
    /// prediction is not empty (so the ratio is the prediction's length), and two empty answers
    /// have ratio 1.
    public static func lengthRatio(predictionCount: Int, referenceCount: Int) -> Double {
        guard referenceCount > 0 else { return predictionCount == 0 ? 1 : Double(predictionCount) }
        return Double(predictionCount) / Double(referenceCount)
    }

    /// ``lengthRatio(predictionCount:referenceCount:)`` on the answers' tokens.
    public static func lengthRatio(prediction: String, reference: String) -> Double {
        lengthRatio(predictionCount: tokens(prediction).count, referenceCount: tokens(reference).count)
    }

    // MARK: All at once

    /// Every per-item metric of one answer, tokenizing each side once.
    public static func scores(prediction: String, reference: String) -> MetricScores {
        let p = tokens(prediction), r = tokens(reference)
        return MetricScores(
            rougeL: rougeL(predictionTokens: p, referenceTokens: r).f,
            bleu4: bleu(bleuStatistics(predictionTokens: p, referenceTokens: r), effectiveOrder: true),
            exactMatch: exactMatch(prediction, reference) ? 1 : 0,
            lengthRatio: lengthRatio(predictionCount: p.count, referenceCount: r.count))
    }

    /// Corpus-level metrics: means of ROUGE-L and exact match over the items, corpus BLEU-4,
    /// and the ratio of total prediction tokens to total reference tokens (sacrebleu's "ratio").
    ///
    /// - Throws: `TrainerError.unsupported` when the two arrays differ in length.
    public static func corpusScores(predictions: [String], references: [String]) throws -> CorpusMetricScores {
        try requirePaired(predictions.count, references.count, "corpusScores")
        var stats = BLEUStatistics()
        var rouge = 0.0, exact = 0.0
        for (prediction, reference) in zip(predictions, references) {
            let p = tokens(prediction), r = tokens(reference)
            rouge += rougeL(predictionTokens: p, referenceTokens: r).f
            exact += exactMatch(prediction, reference) ? 1 : 0
            stats = stats + bleuStatistics(predictionTokens: p, referenceTokens: r)
        }
        let n = Double(max(predictions.count, 1))
        return CorpusMetricScores(
            count: predictions.count, rougeL: rouge / n, bleu4: bleu(stats, effectiveOrder: false), exactMatch: exact / n,
            lengthRatio: lengthRatio(predictionCount: stats.predictionLength, referenceCount: stats.referenceLength))
    }

    static func requirePaired(_ a: Int, _ b: Int, _ function: String) throws {
        guard a == b else {
            throw TrainerError.unsupported(
                "\(function): \(a) predictions but \(b) references; score each model answer against the reference of the same item")
        }
    }
}

/// The per-item metrics of one model answer against its reference (all in [0, 1] except the
/// length ratio).
public struct MetricScores: Codable, Sendable, Equatable {
    /// ROUGE-L F1.
    public var rougeL: Double
    /// Sentence-level BLEU-4 (exp smoothing, effective order).
    public var bleu4: Double
    /// 1 when the normalized answers are equal, else 0 (a number, so means are accuracies).
    public var exactMatch: Double
    /// Prediction tokens / reference tokens.
    public var lengthRatio: Double

    public init(rougeL: Double, bleu4: Double, exactMatch: Double, lengthRatio: Double) {
        self.rougeL = rougeL
        self.bleu4 = bleu4
        self.exactMatch = exactMatch
        self.lengthRatio = lengthRatio
    }
}

/// Metrics of a whole evaluation set (see ``TextMetrics/corpusScores(predictions:references:)``).
public struct CorpusMetricScores: Codable, Sendable, Equatable {
    /// Number of items.
    public var count: Int
    /// Mean ROUGE-L F1 over the items.
    public var rougeL: Double
    /// Corpus-level BLEU-4.
    public var bleu4: Double
    /// Fraction of items that match exactly.
    public var exactMatch: Double
    /// Total prediction tokens / total reference tokens.
    public var lengthRatio: Double

    public init(count: Int, rougeL: Double, bleu4: Double, exactMatch: Double, lengthRatio: Double) {
        self.count = count
        self.rougeL = rougeL
        self.bleu4 = bleu4
        self.exactMatch = exactMatch
        self.lengthRatio = lengthRatio
    }
}

// MARK: - Paired bootstrap

extension TextMetrics {
    /// A paired bootstrap of the difference between two systems scored on the same items
    /// (Koehn 2004, https://aclanthology.org/W04-3250; Efron & Tibshirani 1993, percentile
    /// interval).
    ///
    /// `delta` is mean(a) − mean(b) over the items (a: the candidate, e.g. the adapter; b: the
    /// baseline). Each of `resamples` rounds draws `a.count` item indices uniformly with
    /// replacement from ``SplitMix64`` seeded with `seed` and takes the mean of a[i] − b[i]
    /// over them; `low` and `high` are the 2.5th and 97.5th percentiles of those means with
    /// linear interpolation between order statistics (numpy's default). Deterministic: the same
    /// inputs and seed give the same interval on any machine. If the interval excludes 0 the
    /// difference is significant at the 5% level.
    ///
    /// - Throws: `TrainerError.unsupported` when the arrays differ in length, are empty, or
    ///   `resamples` < 1.
    /// - Complexity: O(resamples × n + resamples × log resamples).
    public static func pairedBootstrap(a: [Double], b: [Double], resamples: Int = 1000, seed: UInt64 = 0) throws
        -> (delta: Double, low: Double, high: Double)
    {
        try requirePaired(a.count, b.count, "pairedBootstrap")
        guard !a.isEmpty, resamples >= 1 else {
            throw TrainerError.unsupported(
                "pairedBootstrap: needs at least one item and one resample (got \(a.count) items, \(resamples) resamples)")
        }
        let differences = zip(a, b).map { $0 - $1 }
        let n = differences.count
        var random = SplitMix64(seed: seed)
        var means = [Double]()
        means.reserveCapacity(resamples)
        for _ in 0..<resamples {
            var sum = 0.0
            for _ in 0..<n { sum += differences[Int(random.next(below: UInt64(n)))] }
            means.append(sum / Double(n))
        }
        means.sort()
        var sum = 0.0
        for d in differences { sum += d }
        return (sum / Double(n), percentile(means, 0.025), percentile(means, 0.975))
    }

    /// The q-quantile of sorted values, interpolating linearly between the order statistics at
    /// (count − 1)·q (numpy's "linear" method).
    static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        let h = Double(sorted.count - 1) * q
        let lower = Int(h)
        guard lower + 1 < sorted.count else { return sorted[lower] }
        return sorted[lower] + (h - Double(lower)) * (sorted[lower + 1] - sorted[lower])
    }
}

