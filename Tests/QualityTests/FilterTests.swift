import CorpusDB
import Foundation
import Quality
import TestSupport
import Testing

/// Positive and negative cases for every filter of `corpus check`, first on the measurements
/// (`TextFilters`), then through `CheckRunner` with the default configuration.
@Suite("Filters")
struct FilterTests {
    static func scalars(_ s: String) -> [Unicode.Scalar] { Array(Normalizer.comparable(s).unicodeScalars) }

    @Test func dominantCharacter() {
        #expect(TextFilters.dominantCharacterShare(Self.scalars("啊啊啊啊啊啊啊啊")) == 1)
        #expect(TextFilters.dominantCharacterShare(Self.scalars("好……好……好")) == 1)              // punctuation does not count
        #expect(TextFilters.dominantCharacterShare(Self.scalars("AAAaaa!")) == 1)                  // case folded
        #expect(TextFilters.dominantCharacterShare(Self.scalars("abcd")) == 0.25)
        #expect(TextFilters.dominantCharacterShare(Self.scalars("……")) == 0)
        let prose = "高血压患者应当低盐饮食，规律服药，定期监测血压，并在医生指导下调整用药方案。"
        #expect(TextFilters.dominantCharacterShare(Self.scalars(prose)) < 0.15)
    }

    @Test func ngramRepetition() {
        // "我很好。" looped: of the 13 4-grams, every one after the first loop repeats an earlier one.
        let loop = Self.scalars("我很好。我很好。我很好。我很好。")            // 16 characters
        #expect(TextFilters.ngramRepetition(loop, n: 4) == 9.0 / 13.0)
        #expect(TextFilters.ngramRepetition(Self.scalars("一二三四五六七八九十"), n: 4) == 0)
        #expect(TextFilters.ngramRepetition(Self.scalars("abc"), n: 4) == 0)                   // shorter than n + 1
        #expect(TextFilters.ngramRepetition(Self.scalars("abcd"), n: 4) == 0)
    }

    @Test func specialCharacters() {
        #expect(TextFilters.specialCharacterShare(Self.scalars("★★★☆☆ 好评 ￥￥￥")) == 8.0 / 10.0)   // ￥ folds to ¥, a symbol
        #expect(TextFilters.specialCharacterShare(Self.scalars("你好，世界！(测试) \"ok\"")) == 0)
        #expect(TextFilters.specialCharacterShare(Self.scalars("a=b")) == 1.0 / 3.0)
        #expect(TextFilters.specialCharacterShare(Self.scalars("")) == 0)
        // Fenced code is left out before measuring.
        let code = Self.scalars("看代码：```x = {a: [1, 2]} <br>``` 完")
        #expect(String(String.UnicodeScalarView(TextFilters.withoutCode(code))) == "看代码: 完")
    }

    @Test func mojibake() {
        #expect(TextFilters.mojibake("锟斤拷锟斤拷的问题") == ["锟斤拷"])
        #expect(TextFilters.mojibake("caf\u{C3}\u{A9} and \u{E2}\u{20AC}\u{2122}s") == ["Ã©", "â€"])
        #expect(TextFilters.mojibake("a\u{FFFD}b 烫烫烫烫") == ["U+FFFD", "烫烫烫"])
        #expect(TextFilters.mojibake("\u{EF}\u{BB}\u{BF}hello") == ["ï»¿"])
        #expect(TextFilters.mojibake("São Paulo, café, naïve, 锟 alone, 烫烫") == [])
        #expect(TextFilters.mojibake("Ã") == [])                                          // at the very end
    }

    @Test func fillerOpenings() {
        let fillers = CheckConfiguration().filler.openings
        #expect(TextFilters.fillerOpening("嗯…这个问题", fillers: fillers) == "嗯")
        #expect(TextFilters.fillerOpening("我觉得可能是感冒", fillers: fillers) == "我觉得可能是")
        #expect(TextFilters.fillerOpening("Um, yes.", fillers: fillers) == "Um,")
        #expect(TextFilters.fillerOpening("Hmm", fillers: fillers) == "Hmm")
        #expect(TextFilters.fillerOpening("Hmmm, no", fillers: fillers) == nil)                // word boundary
        #expect(TextFilters.fillerOpening("建议多休息", fillers: fillers) == nil)
        #expect(TextFilters.fillerOpening("我觉得你应该就医", fillers: fillers) == nil)
    }

    @Test func echo() {
        #expect(TextFilters.echo(prompt: Self.scalars("头痛怎么办？"), answer: Self.scalars("头痛怎么办")) == 1)
        #expect(TextFilters.echo(prompt: Self.scalars("头痛怎么办？"), answer: Self.scalars("多休息。")) == 0)
        // 头痛 is the prompt's, 痛多 / 多休 / 休息 are not: 1 of 4 bigrams.
        #expect(TextFilters.echo(prompt: Self.scalars("头痛怎么办？"), answer: Self.scalars("头痛多休息")) == 0.25)
        #expect(TextFilters.echo(prompt: Self.scalars("Hello"), answer: Self.scalars("hello")) == 1)   // case folded
        #expect(TextFilters.echo(prompt: Self.scalars("x"), answer: Self.scalars("y")) == 0)
    }

    @Test func scripts() {
        #expect(TextFilters.script(Self.scalars("头痛需要做CT检查吗")) == .chinese)
        #expect(TextFilters.script(Self.scalars("You should see a doctor soon.")) == .latin)
        #expect(TextFilters.script(Self.scalars("好的")) == .undetermined)                    // too little text
        #expect(TextFilters.script(Self.scalars("CT MRI X光 scan 片")) == .undetermined)        // 2 Han and 4 words: neither enough
        #expect(TextFilters.script(Self.scalars("12345 !!!")) == .undetermined)
    }

    @Test func sentences() {
        let s = TextFilters.sentences(Self.scalars("多休息。多喝水！ 如有不适请就医? Then rest. OK"))
        #expect(s.map { String(String.UnicodeScalarView($0)) } == ["多休息。", "多喝水!", "如有不适请就医?", "Then rest.", "OK"])
    }

    // MARK: Through the runner

    static func input(_ id: Int64, _ user: String, _ assistant: String) -> CheckInput {
        CheckInput(id: id, conversation: Conversation(messages: [Message(role: .user, content: user), Message(role: .assistant, content: assistant)]))
    }

    static func failed(_ outcome: CheckOutcome, _ check: String) -> [Int64] {
        outcome.verdicts.filter { $0.name == check && !$0.passed }.map(\.recordId)
    }

    /// Pairs are exact duplicates only with the same rejected answer too; the pii check reads the
    /// rejected answer.
    @Test func preferencePairsThroughTheRunner() throws {
        func pair(_ id: Int64, _ rejected: String) -> CheckInput {
            CheckInput(id: id, conversation: Conversation(messages: [Message(role: .user, content: "布洛芬一次吃多少？"),
                                                                     Message(role: .assistant, content: "成人一次200到400毫克，按说明书服用。")],
                                                          rejected: Message(role: .assistant, content: rejected)))
        }
        let outcome = try CheckRunner.run([pair(1, "随便吃。"), pair(2, "越多越好。"), pair(3, "随便吃。"), pair(4, "打13812345678问我")],
                                      configuration: CheckConfiguration())
        #expect(Self.failed(outcome, "exact_duplicate") == [3])
        #expect(Self.failed(outcome, "pii") == [4])
    }

    @Test func everyFilterThroughTheRunner() throws {
        let good = "多休息，多喝水，必要时请到医院就诊。"
        let records = [
            Self.input(1, "头痛怎么办？", good),
            Self.input(2, "头痛怎么办？", "哈哈哈哈哈哈哈哈哈哈哈哈"),                           // char_repetition (and the same question: conflict)
            Self.input(3, "失眠怎么办？", String(repeating: "早点睡觉吧。", count: 6)),             // ngram_repetition
            Self.input(4, "评价一下", "★★★★★☆☆☆☆☆ ￥￥￥ 很好"),                                // special_characters
            Self.input(5, "发烧怎么办？", "锟斤拷锟斤拷，请多喝水。"),                              // mojibake
            Self.input(6, "咳嗽怎么办？", "嗯…我觉得可能是感冒了吧。"),                            // filler_opening
            Self.input(7, "请问颈椎病怎么治疗比较好呢", "请问颈椎病怎么治疗比较好"),                // answer_echoes_prompt
            Self.input(8, "胃痛应该怎么办才好呢？", "You should see a doctor as soon as you can."), // language_mismatch
            Self.input(9, "把这句话翻译成英文：你好吗", "How are you?"),                            // exempt: translation
            Self.input(10, "腰疼怎么办？", ""),                                                    // answer_length (empty)
            Self.input(11, "牙疼怎么办", "刷牙。请联系13812345678。"),                              // pii
        ]
        let outcome = try CheckRunner.run(records, configuration: CheckConfiguration())
        #expect(Self.failed(outcome, "char_repetition") == [2])
        #expect(Self.failed(outcome, "ngram_repetition") == [2, 3])                  // 哈×12: 2 of 3 10-grams repeat
        #expect(Self.failed(outcome, "special_characters") == [4])
        #expect(Self.failed(outcome, "mojibake") == [5])
        #expect(Self.failed(outcome, "filler_opening") == [6])
        #expect(Self.failed(outcome, "answer_echoes_prompt") == [7])
        #expect(Self.failed(outcome, "language_mismatch") == [8])
        #expect(Self.failed(outcome, "answer_length") == [10])
        #expect(Self.failed(outcome, "pii") == [11])
        #expect(Self.failed(outcome, "conflicting_answer") == [1, 2])
        #expect(Self.failed(outcome, "exact_duplicate") == [])
        #expect(Self.failed(outcome, "boilerplate") == [])
        #expect(outcome.verdicts.first { $0.recordId == 5 && $0.name == "mojibake" }?.detail == "garbled encoding: 锟斤拷")
        #expect(outcome.verdicts.first { $0.recordId == 2 && $0.name == "conflicting_answer" }?.detail
            == "same question as record 1 with another answer (2 different answers)")
        #expect(outcome.groups == [DuplicateGroup(kind: .conflict, representative: 1, members: [1, 2])])
        // 14 checks for each of 11 records; no tokenizer, so no token checks.
        #expect(outcome.verdicts.count == 14 * 11)
    }

    /// Keys that share their first 8 bytes but differ after are told apart (the pass sorts by
    /// the first 8 bytes and compares the whole keys within a run), in memory and spilled.
    @Test func keysSharingTheirFirstBytesAreToldApart() throws {
        func key(_ a: UInt64, _ b: UInt64) -> SHA256Key { SHA256Key(a, b, 0, 0) }
        func facts(_ pair: SHA256Key, _ prompt: SHA256Key) -> CheckFacts {
            CheckFacts(pairKey: pair, promptKey: prompt, answerLength: 3, sentences: [])
        }
        let known: [(id: Int64, facts: CheckFacts, signature: [UInt32]?)] = [
            (1, facts(key(5, 1), key(9, 0)), nil), (2, facts(key(5, 2), key(9, 0)), nil), (3, facts(key(5, 1), key(9, 0)), nil),
            (4, facts(key(5, 2), key(9, 1)), nil), (5, facts(key(7, 0), key(9, 1)), nil),
        ]
        let folder = try TestSupport.temporaryDirectory("key-prefixes")
        for spilled in [false, true] {
            var pass = CheckPass(configuration: CheckConfiguration())
            if spilled { try pass.spillToDisk(besideStore: folder.appendingPathComponent("corpus.db").path) }
            try pass.add(known: known)
            let outcome = try (consume pass).finish { _ in nil }
            #expect(outcome.members.kinds == [.conflict, .conflict, .conflict, .conflict, .conflict, .exact, .exact, .exact, .exact], "spilled \(spilled)")
            #expect(outcome.members.records == [1, 2, 3, 4, 5, 1, 2, 3, 4], "spilled \(spilled)")
            #expect(outcome.members.representatives == [1, 1, 1, 4, 4, 1, 2, 1, 2], "spilled \(spilled)")
        }
    }

    @Test func boilerplateByFrequency() throws {
        let closing = "以上内容仅供参考，具体请咨询专业医生。"
        var records: [CheckInput] = []
        for i in 1...30 {
            records.append(Self.input(Int64(i), "问题\(i)：头痛怎么办？", "第\(i)条建议：注意休息和饮水。" + closing))
        }
        records.append(Self.input(31, "还有什么建议？", closing))                  // nothing but the closing sentence
        var c = CheckConfiguration()
        let outcome = try CheckRunner.run(records, configuration: c)
        #expect(outcome.boilerplate.map(\.sentence) == ["以上内容仅供参考,具体请咨询专业医生。"])
        #expect(outcome.boilerplate.map(\.records) == [31])
        #expect(Self.failed(outcome, "boilerplate") == [31])
        let score = outcome.verdicts.first { $0.recordId == 1 && $0.name == "boilerplate" }?.score ?? 0
        #expect(abs(score - 19.0 / 33.0) < 1e-12)                   // 19 of the answer's 33 characters
        // Fewer records than min_records: nothing recurs often enough.
        c.boilerplate.minRecords = 32
        #expect(try CheckRunner.run(records, configuration: c).boilerplate.isEmpty)
    }

    @Test func judgedSubsetStillSeesTheWholeCorpus() throws {
        let records = [Self.input(1, "头痛怎么办？", "多休息。"), Self.input(2, "头痛怎么办?", "多休息。")]
        let outcome = try CheckRunner.run(records, configuration: CheckConfiguration(), judged: [2])
        #expect(Set(outcome.verdicts.map(\.recordId)) == [2])
        #expect(outcome.verdicts.first { $0.name == "exact_duplicate" }?.detail == "duplicate of record 1")
    }

    @Test func skippedChecksAndTokens() throws {
        var c = CheckConfiguration()
        c.skip = ["pii", "mojibake"]
        c.length.maxAnswerTokens = 3
        let outcome = try CheckRunner.run([Self.input(1, "头痛怎么办？", "多休息，多喝水。")], configuration: c,
                                      tokens: { $0.unicodeScalars.count })
        #expect(!outcome.verdicts.contains { $0.name == "pii" || $0.name == "mojibake" })
        #expect(Self.failed(outcome, "answer_tokens") == [1])
        #expect(Self.failed(outcome, "prompt_tokens") == [])       // 0 = no bound
    }
}
