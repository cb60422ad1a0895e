import Foundation
import Testing
@testable import ModelRuntime
@testable import Trainer

/// The evaluation metrics against rouge-score and sacrebleu (Fixtures/metrics/reference.json,
/// made by scripts/make-metric-fixtures.py), plus cases worked by hand.
@Suite("Text metrics")
struct MetricsTests {
    struct Case {
        var group: String
        var prediction: String
        var reference: String
        var predictionTokens: [String]
        var referenceTokens: [String]
        var rouge: [String: Double]
        var bleu: Double
        var bleuStats: [Int]
        var exactMatch: Bool
        var normalizedPrediction: String
        var normalizedReference: String
        var lengthRatio: Double
        /// The reference values bit for bit (Python's float.hex), by name.
        var exact: [String: Double]
    }

    /// A Double from Python's float.hex() text, which JSON cannot round by an ulp.
    static func hexDouble(_ value: Any?) throws -> Double {
        let text = try #require(value as? String)
        return try #require(Double(text), "not a hexadecimal float: \(text)")
    }

    static func fixture() throws -> (json: [String: Any], cases: [Case]) {
        let json = try TrainerFixtures.json("metrics/reference.json")
        let cases = try #require(json["cases"] as? [[String: Any]]).map { c in
            Case(group: try #require(c["group"] as? String),
                 prediction: try #require(c["prediction"] as? String),
                 reference: try #require(c["reference"] as? String),
                 predictionTokens: try #require(c["prediction_tokens"] as? [String]),
                 referenceTokens: try #require(c["reference_tokens"] as? [String]),
                 rouge: try #require(c["rougeL"] as? [String: Double]),
                 bleu: try #require(c["bleu"] as? Double),
                 bleuStats: try #require(c["bleu_stats"] as? [Int]),
                 exactMatch: try #require(c["exact_match"] as? Bool),
                 normalizedPrediction: try #require(c["normalized_prediction"] as? String),
                 normalizedReference: try #require(c["normalized_reference"] as? String),
                 lengthRatio: try #require(c["length_ratio"] as? Double),
                 exact: try #require(c["hex"] as? [String: String]).mapValues { try hexDouble($0) })
        }
        return (json, cases)
    }

    // MARK: Against the reference libraries

    @Test func tokensAsTheFixture() throws {
        let (_, cases) = try Self.fixture()
        #expect(cases.count >= 60)
        for c in cases {
            #expect(TextMetrics.tokens(c.prediction) == c.predictionTokens, "\(c.prediction)")
            #expect(TextMetrics.tokens(c.reference) == c.referenceTokens, "\(c.reference)")
        }
    }

    @Test func rougeLAsRougeScore() throws {
        let (_, cases) = try Self.fixture()
        var worst = 0.0
        for c in cases {
            let s = TextMetrics.rougeL(predictionTokens: c.predictionTokens, referenceTokens: c.referenceTokens)
            for (name, value) in [("precision", s.precision), ("recall", s.recall), ("f", s.f)] {
                let expected = try #require(c.exact["rouge_" + name])
                #expect(abs(expected - (c.rouge[name] ?? -1)) <= 1e-15)
                worst = max(worst, abs(value - expected))
                #expect(abs(value - expected) <= 1e-9, "\(name) of \(c.prediction) | \(c.reference)")
            }
            #expect(abs(TextMetrics.rougeL(prediction: c.prediction, reference: c.reference) - (c.rouge["f"] ?? -1)) <= 1e-9)
        }
        print("ROUGE-L max |Swift - rouge-score| = \(worst)")
    }

    @Test func sentenceBLEUAsSacrebleu() throws {
        let (_, cases) = try Self.fixture()
        var worst = 0.0
        for c in cases {
            let stats = TextMetrics.bleuStatistics(predictionTokens: c.predictionTokens, referenceTokens: c.referenceTokens)
            #expect([stats.predictionLength, stats.referenceLength] + stats.matches + stats.totals == c.bleuStats,
                    "\(c.prediction) | \(c.reference)")
            let value = TextMetrics.sentenceBLEU(prediction: c.prediction, reference: c.reference)
            let expected = try #require(c.exact["bleu"])
            worst = max(worst, abs(value - expected))
            #expect(abs(value - expected) <= 1e-6, "\(c.prediction) | \(c.reference): \(value) vs \(expected)")
        }
        print("sentence BLEU max |Swift - sacrebleu| = \(worst)")
    }

    @Test func corpusBLEUAsSacrebleu() throws {
        let (json, cases) = try Self.fixture()
        let corpora = try #require(json["corpora"] as? [[String: Any]])
        #expect(corpora.count == 4)
        var worst = 0.0
        for corpus in corpora {
            let indices = try #require(corpus["cases"] as? [Int])
            let expected = try Self.hexDouble(corpus["bleu_hex"])
            let value = try TextMetrics.corpusBLEU(predictions: indices.map { cases[$0].prediction },
                                                   references: indices.map { cases[$0].reference })
            worst = max(worst, abs(value - expected))
            #expect(abs(value - expected) <= 1e-6, "\(corpus["name"] ?? "")")
        }
        print("corpus BLEU max |Swift - sacrebleu| = \(worst)")
    }

    @Test func exactMatchAndLengthAsTheScript() throws {
        let (_, cases) = try Self.fixture()
        for c in cases {
            #expect(TextMetrics.normalizedForMatch(c.prediction).unicodeScalars.elementsEqual(c.normalizedPrediction.unicodeScalars),
                    "\(c.prediction)")
            #expect(TextMetrics.normalizedForMatch(c.reference).unicodeScalars.elementsEqual(c.normalizedReference.unicodeScalars),
                    "\(c.reference)")
            #expect(TextMetrics.exactMatch(c.prediction, c.reference) == c.exactMatch, "\(c.prediction) | \(c.reference)")
            // Bit for bit: both sides divide two small integers.
            #expect(TextMetrics.lengthRatio(prediction: c.prediction, reference: c.reference) == c.exact["length_ratio"])
            let all = TextMetrics.scores(prediction: c.prediction, reference: c.reference)
            #expect(abs(all.rougeL - (c.rouge["f"] ?? -1)) <= 1e-9 && abs(all.bleu4 - c.bleu) <= 1e-6)
            #expect(all.exactMatch == (c.exactMatch ? 1 : 0) && all.lengthRatio.isApproximately(c.lengthRatio))
            #expect(all.rougeL == c.exact["rouge_f"])
        }
    }

    @Test func bootstrapAsTheScript() throws {
        let (json, _) = try Self.fixture()
        let first = try #require(json["splitmix64_seed0_first3"] as? [String])
        var random = SplitMix64(seed: 0)
        #expect(first == (0..<3).map { _ in String(random.next()) })
        var worst = 0.0
        for entry in try #require(json["bootstrap"] as? [[String: Any]]) {
            let a = try #require(entry["a"] as? [Double]), b = try #require(entry["b"] as? [Double])
            let seedText = try #require(entry["seed"] as? String)
            let seed = try #require(UInt64(seedText))
            let result = try TextMetrics.pairedBootstrap(a: a, b: b, resamples: try #require(entry["resamples"] as? Int), seed: seed)
            let exact = try #require(entry["hex"] as? [String: String])
            for (value, key) in [(result.delta, "delta"), (result.low, "low"), (result.high, "high")] {
                let expected = try Self.hexDouble(exact[key])
                worst = max(worst, abs(value - expected))
                #expect(abs(value - expected) <= 1e-12, "\(entry["name"] ?? "") \(key): \(value) vs \(expected)")
            }
        }
        print("bootstrap max |Swift - Python| = \(worst)")
    }

    // MARK: By hand

    @Test func tokenRules() {
        #expect(TextMetrics.tokens("高血压患者能吃党参吗？") == ["高", "血", "压", "患", "者", "能", "吃", "党", "参", "吗"])
        // Latin runs stay words (lower-cased) inside Chinese; full-width forms fold by NFKC.
        #expect(TextMetrics.tokens("ＣＴ显示5mm结节，BMI 23.5") == ["ct", "显", "示", "5mm", "结", "节", "bmi", "23", "5"])
        // rouge-score's tokenizer on English: punctuation splits and is dropped.
        #expect(TextMetrics.tokens("It's the patient's 2nd visit!") == ["it", "s", "the", "patient", "s", "2nd", "visit"])
        #expect(TextMetrics.tokens("ひらがなカタカナ한국") == ["ひ", "ら", "が", "な", "カ", "タ", "カ", "ナ", "한", "국"])
        #expect(TextMetrics.tokens("。，！……  \n").isEmpty)
        // Real NFKC: halfwidth ｶﾞ composes to ガ (Foundation's one-step NFKC on Linux leaves カ + U+3099).
        #expect(TextMetrics.tokens("ｶﾞｲﾄﾞ") == ["ガ", "イ", "ド"])
        #expect(TextMetrics.exactMatch("ｶﾞｲﾄﾞﾗｲﾝ。", "ガイドライン"))
        #expect(TextMetrics.tokens("").isEmpty)
    }

    @Test func rougeLByHand() {
        // "the cat is on the mat" vs "the cat sat on the mat": LCS = the cat on the mat = 5,
        // P = R = 5/6, F = 2·(5/6)²/(10/6) = 5/6.
        let english = TextMetrics.rougeL(predictionTokens: ["the", "cat", "is", "on", "the", "mat"],
                                         referenceTokens: ["the", "cat", "sat", "on", "the", "mat"])
        #expect(abs(english.f - 5.0 / 6.0) < 1e-15)
        // 多喝水 vs 多喝热水: LCS = 3, P = 3/3 = 1, R = 3/4, F = 2·0.75/1.75 = 6/7.
        let chinese = TextMetrics.rougeL(prediction: "多喝水", reference: "多喝热水")
        #expect(chinese.isApproximately(6.0 / 7.0))
        // Either side empty: 0 (rouge-score returns 0 rather than dividing by zero).
        #expect(TextMetrics.rougeL(prediction: "", reference: "多喝水") == 0)
        #expect(TextMetrics.rougeL(prediction: "", reference: "") == 0)
        #expect(TextMetrics.rougeL(prediction: "高血压", reference: "高血压") == 1)
    }

    @Test func sentenceBLEUByHand() {
        // 多喝水 vs 多喝热水: c = 3, r = 4.
        // 1-grams 3/3; 2-grams {多喝, 喝水} vs {多喝, 喝热, 热水}: 1/2; 3-grams 0/1, the first
        // order without a match: exp smoothing 1/(2·1) = 1/2; no 4-grams: effective order 3.
        // BP = exp(1 − 4/3). BLEU = exp(−1/3) · (1 · 1/2 · 1/2)^(1/3) ≈ 0.4514.
        let expected = exp(-1.0 / 3.0) * pow(0.25, 1.0 / 3.0)
        #expect(TextMetrics.sentenceBLEU(prediction: "多喝水", reference: "多喝热水").isApproximately(expected))
        // Clipping: "the" ×7 vs "the cat is on the mat" (c = 7 > r = 6, BP = 1).
        // 1-grams min(7, 2)/7 = 2/7; 2-, 3-, 4-grams 0/6, 0/5, 0/4 smoothed to 1/(2·6), 1/(4·5), 1/(8·4).
        let clipped = pow(2.0 / 7.0 * (1.0 / 12.0) * (1.0 / 20.0) * (1.0 / 32.0), 0.25)
        #expect(TextMetrics.sentenceBLEU(prediction: "the the the the the the the", reference: "the cat is on the mat")
            .isApproximately(clipped))
        // No unigram match at all: 0, however short; identical: 1; empty prediction: 0.
        #expect(TextMetrics.sentenceBLEU(prediction: "不能", reference: "可以") == 0)
        #expect(TextMetrics.sentenceBLEU(prediction: "yes", reference: "yes").isApproximately(1))  // exp(log 100)/100
        #expect(TextMetrics.sentenceBLEU(prediction: "", reference: "yes") == 0)
    }

    @Test func corpusBLEUByHand() throws {
        // Statistics add up before the geometric mean: 高血压 vs 高血压病 and 多喝水 vs 多喝热水 give
        // c = 6, r = 8, 1-grams 6/6, 2-grams (2 + 1)/4, 3-grams (1 + 0)/2, 4-grams 0/0.
        // Without effective order a missing order makes corpus BLEU 0 (as sacrebleu).
        #expect(try TextMetrics.corpusBLEU(predictions: ["高血压", "多喝水"], references: ["高血压病", "多喝热水"]) == 0)
        // Add 高血压患者 vs 高血压患者 (5 tokens): c = 11, r = 13; 1-grams 11/11, 2-grams 7/8,
        // 3-grams 4/5, 4-grams 2/2; BP = exp(1 − 13/11).
        let expected = exp(1 - 13.0 / 11.0) * pow(1 * (7.0 / 8.0) * (4.0 / 5.0) * 1, 0.25)
        let value = try TextMetrics.corpusBLEU(predictions: ["高血压", "多喝水", "高血压患者"],
                                               references: ["高血压病", "多喝热水", "高血压患者"])
        #expect(value.isApproximately(expected))
        #expect(throws: TrainerError.self) { try TextMetrics.corpusBLEU(predictions: ["a"], references: []) }
        let summary = try TextMetrics.corpusScores(predictions: ["高血压", "多喝水", "高血压患者"],
                                                   references: ["高血压病", "多喝热水", "高血压患者。"])
        #expect(summary.count == 3 && summary.exactMatch.isApproximately(1.0 / 3.0) && summary.bleu4.isApproximately(expected))
        #expect(summary.lengthRatio.isApproximately(11.0 / 13.0))
    }

    @Test func exactMatchAndLengthByHand() {
        #expect(TextMetrics.exactMatch("高血压。", "高血压"))
        #expect(TextMetrics.exactMatch("ＣＴ检查！", "ct检查"))               // NFKC folds full-width forms
        #expect(TextMetrics.exactMatch(" The Patient\u{3000} has  fever. ", "the patient has fever"))
        #expect(!TextMetrics.exactMatch("高 血压", "高血压"))                 // inner spaces are kept (collapsed)
        #expect(!TextMetrics.exactMatch("50%", "50"))                        // only sentence punctuation goes
        #expect(TextMetrics.exactMatch("", "。"))
        #expect(TextMetrics.lengthRatio(prediction: "", reference: "") == 1)
        #expect(TextMetrics.lengthRatio(prediction: "高血压", reference: "") == 3)
        #expect(TextMetrics.lengthRatio(prediction: "高血压", reference: "高血压病") == 0.75)
    }

    @Test func bootstrapDeterministicAndSane() throws {
        var random = SplitMix64(seed: 99)
        let base = (0..<50).map { _ in Double(random.next() >> 11) / Double(1 << 53) }
        let noisy = base.map { $0 + 0.05 * Double(random.next(below: 5)) }
        let first = try TextMetrics.pairedBootstrap(a: noisy, b: base, resamples: 1000, seed: 1)
        let again = try TextMetrics.pairedBootstrap(a: noisy, b: base, resamples: 1000, seed: 1)
        #expect(first == again)
        let otherSeed = try TextMetrics.pairedBootstrap(a: noisy, b: base, resamples: 1000, seed: 2)
        #expect(otherSeed.delta == first.delta && (otherSeed.low, otherSeed.high) != (first.low, first.high))
        // A clearly better system: every item +0.05·k, k uniform in 0...4 (mean +0.1); the
        // interval excludes 0 and contains delta.
        #expect(first.low > 0 && first.low <= first.delta && first.delta <= first.high)
        // Identical systems: delta 0 and the interval [0, 0].
        let same = try TextMetrics.pairedBootstrap(a: base, b: base, resamples: 1000, seed: 3)
        #expect(same.delta == 0 && same.low == 0 && same.high == 0)
        // Swapped systems: the interval mirrors.
        let swapped = try TextMetrics.pairedBootstrap(a: base, b: noisy, resamples: 1000, seed: 1)
        #expect(swapped.delta.isApproximately(-first.delta) && swapped.high.isApproximately(-first.low))
        #expect(throws: TrainerError.self) { try TextMetrics.pairedBootstrap(a: [1], b: [1, 2]) }
        #expect(throws: TrainerError.self) { try TextMetrics.pairedBootstrap(a: [], b: []) }
        #expect(throws: TrainerError.self) { try TextMetrics.pairedBootstrap(a: [1], b: [1], resamples: 0) }
    }

    @Test func boundedRandomIsInRangeAndCoversIt() {
        var random = SplitMix64(seed: 7)
        var seen = Set<UInt64>()
        for _ in 0..<1000 {
            let x = random.next(below: 7)
            #expect(x < 7)
            seen.insert(x)
        }
        #expect(seen.count == 7)
        #expect(random.next(below: 0) == 0)
    }
}

extension Double {
    fileprivate func isApproximately(_ other: Double, tolerance: Double = 1e-12) -> Bool {
        abs(self - other) <= tolerance
    }
}
