import CorpusDB
import Foundation
import Quality
import TestSupport
import Testing

/// A planted labelled set built from real short Chinese Q&A (../shared/data/alpaca_zh_10k.json):
/// bases that are pairwise far apart, then for each base three edited copies (its near
/// duplicates), one copy that differs only in width and spacing (an exact duplicate after
/// normalization), and hard negatives (a base's question with a different answer).
struct LabelledSet {
    /// The source of the set, in ../shared.
    static let file = "data/alpaca_zh_10k.json"

    enum Label: Equatable {
        case base
        case near(of: Int)       // index of the base
        case exact(of: Int)
        case negative
    }

    var conversations: [Conversation] = []
    var labels: [Label] = []

    /// Deterministic SplitMix64.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(1, n))) }
    }

    static func pair(_ q: String, _ a: String) -> Conversation {
        Conversation(messages: [Message(role: .user, content: q), Message(role: .assistant, content: a)])
    }

    /// The 3-gram sets of the comparable text, for the true Jaccard similarity.
    static func shingles(_ c: Conversation, n: Int = 3) -> Set<[UInt32]> {
        let hasher = MinHasher(NearDuplicateSettings())
        let s = hasher.comparableScalars(normalizedTurns: c.messages.map { ($0.role, Normalizer.comparable($0.content)) })
        if s.count <= n { return [s] }
        return Set((0...(s.count - n)).map { Array(s[$0..<($0 + n)]) })
    }

    static func jaccard(_ a: Set<[UInt32]>, _ b: Set<[UInt32]>) -> Double {
        let union = a.union(b).count
        return union == 0 ? 0 : Double(a.intersection(b).count) / Double(union)
    }

    /// Replaces or deletes `edits` characters at random places of `text` (never the first).
    static func typos(_ text: String, _ edits: Int, _ r: inout Random) -> String {
        var chars = Array(text)
        let pool = Array("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严")
        for _ in 0..<edits where chars.count > 2 {
            let at = 1 + r.below(chars.count - 1)
            if r.below(3) == 0 { chars.remove(at: at) } else { chars[at] = pool[r.below(pool.count)] }
        }
        return String(chars)
    }

    /// Half-width punctuation and extra spaces: the same after normalization except punctuation.
    static func repunctuate(_ text: String) -> String {
        text.replacingOccurrences(of: "，", with: ", ").replacingOccurrences(of: "。", with: ". ")
            .replacingOccurrences(of: "：", with: ":").replacingOccurrences(of: "；", with: ";")
    }

    /// Full-width ASCII and doubled spaces: an exact duplicate after normalization.
    static func widen(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { s in
            (0x21...0x7E).contains(s.value) ? Unicode.Scalar(s.value + 0xFEE0) ?? s : s
        })).replacingOccurrences(of: " ", with: "  ")
    }

    /// - Throws: when ../shared/data/alpaca_zh_10k.json is absent (tests using it carry `.needsShared(LabelledSet.file)`).
    static func make(bases count: Int = 300, negatives: Int = 160) throws -> LabelledSet {
        let path = try TestInputs.shared(file).path
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [[String: String]])
        var r = Random(state: 7)
        // Bases: answers of 20-400 characters, pairwise below 0.3 true Jaccard.
        // Other answers (from rows after those) make the hard negatives.
        var bases: [Conversation] = [], baseShingles: [Set<[UInt32]>] = [], otherAnswers: [String] = []
        for row in rows where otherAnswers.count < negatives {
            let q = [row["instruction"] ?? "", row["input"] ?? ""].filter { !$0.isEmpty }.joined(separator: "\n")
            let a = row["output"] ?? ""
            guard a.count >= 20, a.count <= 400, !q.isEmpty else { continue }
            let c = pair(q, a), sh = shingles(c)
            guard !baseShingles.contains(where: { jaccard($0, sh) >= 0.3 }) else { continue }
            if bases.count < count {
                bases.append(c)
                baseShingles.append(sh)
            } else {
                otherAnswers.append(a)
                baseShingles.append(sh)
            }
        }
        var set = LabelledSet()
        for b in bases {
            set.conversations.append(b)
            set.labels.append(.base)
        }
        let closings = ["希望对你有帮助。", "如有疑问请继续提问。", "以上仅供参考。"]
        for (i, b) in bases.enumerated() {
            let q = b.messages[0].content, a = b.messages[1].content
            // 1: a few typos in the answer (about one per 40 characters, at least 1).
            set.conversations.append(pair(q, typos(a, max(1, a.count / 40), &r)))
            // 2: half-width punctuation and a closing sentence.
            set.conversations.append(pair(repunctuate(q), repunctuate(a) + closings[r.below(closings.count)]))
            // 3: typos in both and the punctuation changed.
            set.conversations.append(pair(typos(q, 1, &r), repunctuate(typos(a, max(1, a.count / 60), &r))))
            set.labels += [.near(of: i), .near(of: i), .near(of: i)]
            // An exact duplicate after normalization.
            set.conversations.append(pair(widen(q), widen(a)))
            set.labels.append(.exact(of: i))
        }
        // Hard negatives: a base's question with an answer found nowhere else (the same question
        // answered differently is a conflicting answer, not a near duplicate).
        for (k, answer) in otherAnswers.enumerated() {
            set.conversations.append(pair(bases[k % bases.count].messages[0].content, answer))
            set.labels.append(.negative)
        }
        return set
    }

    /// The base a record belongs to, if any.
    func family(_ index: Int) -> Int? {
        switch labels[index] {
        case .base: return index
        case .near(let b), .exact(let b): return b
        case .negative: return nil
        }
    }

    /// Precision and recall of the near-duplicate check on the planted near copies.
    func measure(_ settings: NearDuplicateSettings) throws -> (precision: Double, recall: Double, found: Int, truePositives: Int) {
        var config = CheckConfiguration()
        config.nearDuplicates = settings
        config.skip = CheckConfiguration.checkNames.filter { $0 != "near_duplicate" && $0 != "exact_duplicate" }
        let inputs = conversations.enumerated().map { CheckInput(id: Int64($0.offset + 1), conversation: $0.element) }
        let outcome = try CheckRunner.run(inputs, configuration: config)
        var found = 0, truePositives = 0
        var representative: [Int: Int] = [:]
        for g in outcome.groups where g.kind == .near {
            for m in g.members where m != g.representative { representative[Int(m) - 1] = Int(g.representative) - 1 }
        }
        for (record, rep) in representative {
            found += 1
            if case .near = labels[record], let f = family(record), family(rep) == f { truePositives += 1 } else if ProcessInfo.processInfo.environment["NEAR_DEBUG"] != nil {
                print("false positive: \(labels[record]) \(record) ~ \(labels[rep]) \(rep): \(conversations[record].messages.map(\.content)) ~ \(conversations[rep].messages.map(\.content))")
            }
        }
        let planted = labels.filter { if case .near = $0 { return true } else { return false } }.count
        return (found == 0 ? 1 : Double(truePositives) / Double(found), Double(truePositives) / Double(planted), found, truePositives)
    }
}

@Suite("Near duplicates")
struct NearDuplicateTests {
    static func pair(_ q: String, _ a: String) -> Conversation { LabelledSet.pair(q, a) }

    static func nearOnly() -> CheckConfiguration {
        var c = CheckConfiguration()
        c.skip = CheckConfiguration.checkNames.filter { $0 != "near_duplicate" && $0 != "exact_duplicate" }
        return c
    }

    /// The defaults find the planted near copies of short Chinese Q&A and nothing else; shorter
    /// and longer n-grams are measured beside them (docs/QUALITY.md quotes these figures).
    @Test(.needsShared(LabelledSet.file)) func labelledSetPrecisionAndRecall() throws {
        let set = try LabelledSet.make()
        #expect(set.conversations.count == 300 * 5 + 160)
        let chosen = try set.measure(NearDuplicateSettings())
        print("near duplicates, defaults (3-grams, 128 permutations, 32x4, 0.7): precision \(chosen.precision) recall \(chosen.recall) (\(chosen.truePositives)/\(chosen.found) found, 900 planted)")
        #expect(chosen.precision >= 0.99)
        #expect(chosen.recall >= 0.95)
        for n in [2, 4, 5] {
            var s = NearDuplicateSettings()
            s.ngram = n
            let m = try set.measure(s)
            print("near duplicates, \(n)-grams: precision \(m.precision) recall \(m.recall) (\(m.truePositives)/\(m.found))")
        }
        // The web-page setting: 5-grams at 0.8 misses many short edited copies.
        var web = NearDuplicateSettings()
        web.ngram = 5
        web.threshold = 0.8
        let w = try set.measure(web)
        print("near duplicates, 5-grams at 0.8: precision \(w.precision) recall \(w.recall)")
        #expect(w.recall < chosen.recall)
    }

    /// Planted exact copies are exact duplicates, and are not counted again as near duplicates.
    @Test(.needsShared(LabelledSet.file)) func exactCopiesAreNotNearDuplicates() throws {
        let set = try LabelledSet.make(bases: 40, negatives: 0)
        let inputs = set.conversations.enumerated().map { CheckInput(id: Int64($0.offset + 1), conversation: $0.element) }
        let outcome = try CheckRunner.run(inputs, configuration: Self.nearOnly())
        let exact = Set(outcome.verdicts.filter { $0.name == "exact_duplicate" && !$0.passed }.map(\.recordId))
        let near = Set(outcome.verdicts.filter { $0.name == "near_duplicate" && !$0.passed }.map(\.recordId))
        let plantedExact = Set(set.labels.indices.filter { if case .exact = set.labels[$0] { return true } else { return false } }.map { Int64($0 + 1) })
        #expect(exact == plantedExact)
        #expect(exact.isDisjoint(with: near))
        #expect(outcome.verdicts.filter { $0.name == "near_duplicate" }.count == set.conversations.count)
    }

    /// The estimate is unbiased: on edited copies of real texts, estimated minus true Jaccard
    /// averages near zero, with the spread 128 permutations allow (sd ≈ √(J(1-J)/128) ≤ 0.044).
    @Test(.needsShared(LabelledSet.file)) func estimateTracksTrueJaccard() throws {
        let set = try LabelledSet.make(bases: 100, negatives: 100)
        let hasher = MinHasher(NearDuplicateSettings())
        func signature(_ c: Conversation) throws -> [UInt32] {
            try #require(hasher.signature(of: hasher.comparableScalars(normalizedTurns: c.messages.map { ($0.role, Normalizer.comparable($0.content)) })))
        }
        var errors: [Double] = []
        for (index, label) in set.labels.enumerated() {
            let other: Int
            switch label {
            case .near(let b): other = b
            case .negative: other = index % 100
            default: continue
            }
            let truth = LabelledSet.jaccard(LabelledSet.shingles(set.conversations[index]), LabelledSet.shingles(set.conversations[other]))
            let estimate = MinHasher.similarity(try signature(set.conversations[index]), try signature(set.conversations[other]))
            errors.append(estimate - truth)
        }
        let mean = errors.reduce(0, +) / Double(errors.count)
        let rmse = (errors.map { $0 * $0 }.reduce(0, +) / Double(errors.count)).squareRoot()
        print("MinHash estimate over \(errors.count) pairs: mean error \(mean), RMSE \(rmse), worst \(errors.map(abs).max() ?? 0)")
        #expect(errors.count == 400)
        #expect(abs(mean) < 0.01)
        #expect(rmse < 0.04)
    }

    /// Signatures given as stored are not recomputed, and the findings equal a run from scratch.
    @Test(.needsShared(LabelledSet.file)) func storedSignaturesGiveTheSameFindings() throws {
        let set = try LabelledSet.make(bases: 60, negatives: 20)
        let inputs = set.conversations.enumerated().map { CheckInput(id: Int64($0.offset + 1), conversation: $0.element) }
        let fresh = try CheckRunner.run(inputs, configuration: Self.nearOnly())
        #expect(fresh.newSignatures.count == inputs.count)
        // The first 200 records were checked before; the rest are newly ingested.
        let stored = Dictionary(uniqueKeysWithValues: fresh.newSignatures.filter { $0.recordId <= 200 }.map { ($0.recordId, $0.signature) })
        let again = try CheckRunner.run(inputs, configuration: Self.nearOnly(), signatures: stored)
        #expect(again.newSignatures.map(\.recordId) == Array(201...Int64(inputs.count)))
        #expect(again.verdicts == fresh.verdicts)
        #expect(again.groups == fresh.groups)
    }

    /// A corpus fed in batches (as `corpus check` streams it, stored signatures and all) gives
    /// exactly what one call over all of it gives, whatever the batch size: duplicates across
    /// batches, conflicts, boilerplate and every verdict.
    @Test(.needsShared(LabelledSet.file)) func batchesGiveTheSameOutcomeAsOnePass() throws {
        let set = try LabelledSet.make(bases: 60, negatives: 20)
        var inputs = set.conversations.enumerated().map { CheckInput(id: Int64($0.offset + 1), conversation: $0.element) }
        // Boilerplate: one sentence closes 40 answers, spread over every batch.
        let closing = "以上内容仅供参考，如有不适请及时就医。"
        for i in stride(from: 0, to: inputs.count, by: inputs.count / 40) {
            inputs[i].conversation.messages[1].content += closing
        }
        var config = CheckConfiguration()
        config.boilerplate.minRecords = 20
        let whole = try CheckRunner.run(inputs, configuration: config)
        #expect(whole.boilerplate.first?.sentence == Normalizer.comparable(closing))
        #expect(whole.groups.contains { $0.kind == .exact } && whole.groups.contains { $0.kind == .near })
        let stored = Dictionary(uniqueKeysWithValues: whole.newSignatures.filter { $0.recordId % 3 == 0 }.map { ($0.recordId, $0.signature) })
        let byId = Dictionary(uniqueKeysWithValues: inputs.map { ($0.id, $0.conversation) })
        // In memory, and with the signatures spilled to disk beside a store (`corpus check`).
        let folder = try TestSupport.temporaryDirectory("near-spill")
        let store = folder.appendingPathComponent("corpus.db").path
        for (size, spilled) in [(1, false), (7, false), (64, false), (inputs.count, false), (7, true), (inputs.count, true)] {
            do {
                var pass = CheckPass(configuration: config)
                if spilled { try pass.spillToDisk(besideStore: store) }
                #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).count == (spilled ? 1 : 0))
                for start in stride(from: 0, to: inputs.count, by: size) {
                    let chunk = Array(inputs[start..<min(inputs.count, start + size)])
                    try pass.add(chunk, stored: stored.filter { id, _ in chunk.contains { $0.id == id } })
                }
                let batched = try (consume pass).finish { byId[$0] }
                #expect(batched.packed == whole.packed, "batch size \(size), spilled \(spilled)")
                // Scores by bit pattern (a check with no measure scores NaN).
                #expect(batched.packed.map { $0.scores.map(\.bitPattern) } == whole.packed.map { $0.scores.map(\.bitPattern) },
                        "batch size \(size), spilled \(spilled)")
                #expect(batched.groups == whole.groups, "batch size \(size), spilled \(spilled)")
                #expect(batched.boilerplate.map(\.sentence) == whole.boilerplate.map(\.sentence))
                #expect(batched.boilerplate.map(\.records) == whole.boilerplate.map(\.records))
                #expect(batched.newSignatureIds == whole.newSignatures.map(\.recordId).filter { $0 % 3 != 0 })
                #expect(batched.newSignatures.map(\.signature) == whole.newSignatures.filter { $0.recordId % 3 != 0 }.map(\.signature))
            }
            // The spill folder goes with the outcome.
            #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty, "spilled \(spilled)")
        }
        // A folder left by a check that was killed (its process gone) is removed by the next one.
        let abandoned = folder.appendingPathComponent("corpus.db.check-2147483646-0")
        try FileManager.default.createDirectory(at: abandoned, withIntermediateDirectories: false)
        try Data([1, 2, 3]).write(to: abandoned.appendingPathComponent("signatures"))
        var pass = CheckPass(configuration: config)
        try pass.spillToDisk(besideStore: store)
        #expect(!FileManager.default.fileExists(atPath: abandoned.path))
    }

    /// A record is a near duplicate of a kept earlier record it matches even when more similar
    /// earlier records (themselves near duplicates, so not kept) are more than a handful: every
    /// confirmed candidate counts. Record 0 is kept; 1...7 each match it on bands 0-22 (92 of
    /// 128 values) and are its near duplicates; record 8 matches 0 on bands 0-22 and each k of
    /// 1...7 on bands 0-22 and its own band 22+k (96 values): its candidates are all eight, and
    /// its representative is 0, the one kept. (A search that kept six neighbours a record, as
    /// before, dropped 0 for the closer copies and left record 8 unflagged.)
    @Test func everyConfirmedCandidateCounts() throws {
        let s = NearDuplicateSettings()
        #expect(s.permutations == 128 && s.bands == 32 && s.rows == 4)
        var next: UInt32 = 1_000
        func fresh() -> UInt32 { next += 1; return next }
        let x = (0..<128).map { _ in fresh() }                           // record 8's values
        var rows: [[UInt32]] = []
        rows.append((0..<128).map { $0 < 92 ? x[$0] : fresh() })        // record 0
        for k in 1...7 {
            let own = (22 + k) * 4
            rows.append((0..<128).map { $0 < 92 || ($0 >= own && $0 < own + 4) ? x[$0] : fresh() })
        }
        rows.append(x)
        let ids = (0..<9).map { Int64(100 + $0) }
        let result = NearDuplicateFinder.find(ids: ids, signatures: rows.flatMap { $0 }, settings: s)
        for k in 1...8 {
            #expect(result.duplicates[ids[k]]?.other == 100 && result.duplicates[ids[k]]?.similarity == 92.0 / 128, "record \(k)")
        }
        #expect(result.duplicates.count == 8 && result.borderline.isEmpty)
    }

    @Test func groupsRepresentativesAndBorderline() throws {
        let q = "高血压患者日常饮食需要注意哪些问题？"
        let a = "高血压患者应当低盐饮食，每日食盐不超过五克，多吃新鲜蔬菜和水果，限制饮酒，控制体重，规律运动，按时服药并定期测量血压。"
        let records = [
            CheckInput(id: 10, conversation: Self.pair(q, a)),
            CheckInput(id: 11, conversation: Self.pair("今天天气怎么样？", "今天晴，最高气温二十五度，适合户外活动。")),
            CheckInput(id: 12, conversation: Self.pair(q, a.replacingOccurrences(of: "五克", with: "六克"))),
            CheckInput(id: 13, conversation: Self.pair(q, String(a.dropLast(12)) + "另需戒烟，并保持良好作息。")),
        ]
        let outcome = try CheckRunner.run(records, configuration: Self.nearOnly())
        let near = outcome.groups.filter { $0.kind == .near }
        #expect(near.count == 1)
        #expect(near.first?.representative == 10)
        #expect(near.first?.members == [10, 12])
        let verdict = outcome.verdicts.first { $0.recordId == 12 && $0.name == "near_duplicate" }
        #expect(verdict?.passed == false)
        #expect(verdict?.detail.hasPrefix("near duplicate of record 10 (similarity 0.") == true)
        #expect(outcome.verdicts.filter { $0.name == "near_duplicate" && !$0.passed }.map(\.recordId) == [12])
        // Record 13 keeps the question and most of the answer but not its end: similar, below 0.7.
        let borderline = outcome.groups.filter { $0.kind == .borderline }
        let hasher = MinHasher(NearDuplicateSettings())
        func signature(_ c: Conversation) -> [UInt32] {
            hasher.signature(of: hasher.comparableScalars(normalizedTurns: c.messages.map { ($0.role, Normalizer.comparable($0.content)) })) ?? []
        }
        let thirteen = MinHasher.similarity(signature(records[3].conversation), signature(records[0].conversation))
        print("record 13 vs 10: estimated similarity \(thirteen)")
        if thirteen >= 0.6 && thirteen < 0.7 {
            #expect(borderline.map(\.members) == [[13]])
            #expect(borderline.first?.representative == 10)
        } else {
            Issue.record("record 13 was meant to be borderline (0.6-0.7), estimated \(thirteen)")
        }
    }

    @Test func signatureBlobsAndSettings() throws {
        let hasher = MinHasher(NearDuplicateSettings())
        let s = try #require(hasher.signature(of: hasher.comparableScalars(normalizedTurns: [(.user, "头痛怎么办"), (.assistant, "多休息")])))
        #expect(s.count == 128)
        #expect(MinHasher.blob(s).count == 512)
        #expect(MinHasher.signature(blob: MinHasher.blob(s), permutations: 128) == s)
        #expect(MinHasher.signature(blob: MinHasher.blob(s), permutations: 64) == nil)
        // Punctuation, spaces and Latin case are not compared; the turn boundary is.
        let t = hasher.comparableScalars(normalizedTurns: [(.user, "Hello, World! 头痛？"), (.assistant, "OK.")])
        #expect(t == Array("helloworld头痛\u{1E}ok".unicodeScalars.map(\.value)))
        #expect(hasher.signature(of: hasher.comparableScalars(normalizedTurns: [(.user, "？！"), (.assistant, "…")])) == nil)
        // Identical text, identical signature; the seed changes it.
        var other = NearDuplicateSettings()
        other.seed = 2
        #expect(MinHasher(other).signature(of: t) != hasher.signature(of: t))
        #expect(hasher.signature(of: t) == MinHasher(NearDuplicateSettings()).signature(of: t))
        #expect(other.signatureKey != NearDuplicateSettings().signatureKey)
        var banded = NearDuplicateSettings()
        banded.threshold = 0.9
        #expect(banded.signatureKey == NearDuplicateSettings().signatureKey)
    }

    @Test func badSettingsAreNamed() throws {
        let dir = try TestSupport.temporaryDirectory()
        let path = try TestSupport.write(#"{"near_duplicates": {"bands": 30}}"#, to: "c.json", in: dir)
        #expect(throws: QualityError.self) { try CheckConfiguration.load(path: path) }
        do {
            _ = try CheckConfiguration.load(path: path)
        } catch let error as QualityError {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains("near_duplicates.bands (30) must divide permutations (128)"))
        }
        let ok = try TestSupport.write(#"{"near_duplicates": {"ngram": 5, "threshold": 0.8}}"#, to: "d.json", in: dir)
        let c = try CheckConfiguration.load(path: ok)
        #expect(c.nearDuplicates.ngram == 5)
        #expect(c.nearDuplicates.permutations == 128)
    }

    /// The Foundation-free path of the normalizer gives what NFKC gives, on every text of the
    /// shared data and on the scalars at the edges of its ranges.
    @Test func fastNormalizationAgreesWithNFKC() throws {
        var texts = ["ＡＢＣ１２３，ｆｕｌｌ\u{3000}x", "a\u{0}b\u{7F}c", "〈《「『【】』」》〉", "“引号”‘单’—", "\t\n a  b \r\n", "～｀｛｝"]
        for name in ["alpaca_zh_10k.json", "huanhuan.json", "legal_zixun_1k.json", "alpaca_en_demo.json"] {
            guard let path = TestSupport.sharedFile(name) else { continue }
            let text = try String(contentsOfFile: path, encoding: .utf8)
            texts += text.split(separator: "\n").map(String.init)
        }
        var fast = 0
        for t in texts {
            let folded = t.decomposedStringWithCompatibilityMapping.precomposedStringWithCanonicalMapping
            var slow = String.UnicodeScalarView(), pending = false
            for s in folded.unicodeScalars {
                if s.properties.isWhitespace { pending = !slow.isEmpty; continue }
                if s.properties.generalCategory == .control { continue }
                if pending { slow.append(" "); pending = false }
                slow.append(s)
            }
            if Normalizer.comparableWithoutFoundation(t) != nil { fast += 1 }
            #expect(Normalizer.comparable(t) == String(slow), "\(t)")
        }
        print("normalization: \(fast) of \(texts.count) lines took the fast path")
        #expect(fast > texts.count / 2)
    }
}
