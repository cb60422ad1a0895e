import CorpusDB
import Foundation
import Ingest
import Quality
import TestSupport
import Testing

@Suite("Normalization for comparison")
struct NormalizationTests {
    @Test func foldsWidthSpaceAndControls() {
        #expect(Normalizer.comparable("ＡＢＣ１２３，ｆｕｌｌ") == "ABC123,full")
        #expect(Normalizer.comparable("  头痛\u{3000}三天\r\n\t怎么办？ ") == "头痛 三天 怎么办?")
        #expect(Normalizer.comparable("a\u{0}b\u{7}c\u{1B}d") == "abcd")
        #expect(Normalizer.comparable("ﬁne e\u{301}") == "fine é")
        // Halfwidth katakana with a voiced mark composes (Foundation's one-step NFKC does not on Linux).
        #expect(Normalizer.comparable("ｶﾞｷﾞ") == "ガギ")
        #expect(Normalizer.comparable("") == "")
        #expect(Normalizer.comparable(" \n ") == "")
    }
}

@Suite("Exact duplicates")
struct ExactDuplicateTests {
    static func conversation(_ user: String, _ assistant: String) -> Conversation {
        Conversation(messages: [Message(role: .user, content: user), Message(role: .assistant, content: assistant)])
    }

    @Test func pairAndPromptKeys() {
        let a = Self.conversation("头痛怎么办？", "多休息。")
        let b = Self.conversation("头痛怎么办?  ", "多休息。")          // full-width ? and spaces: same after normalization
        let c = Self.conversation("头痛怎么办？", "请就医。")           // same question, another answer
        #expect(ExactDuplicates.key(a, on: .pair) == ExactDuplicates.key(b, on: .pair))
        #expect(ExactDuplicates.key(a, on: .pair) != ExactDuplicates.key(c, on: .pair))
        #expect(ExactDuplicates.key(a, on: .prompt) == ExactDuplicates.key(c, on: .prompt))
        let groups = ExactDuplicates.groups([(3, a), (5, c), (7, b), (9, c)], on: .pair)
        #expect(groups == [[3, 7], [5, 9]])
        #expect(ExactDuplicates.groups([(3, a), (5, c), (7, b)], on: .prompt) == [[3, 5, 7]])
    }

    /// The figures on real data: 112 exact duplicates in huanhuan.json, 14 in
    /// alpaca_en_demo.json (records beyond the first of each group; counted independently in Python).
    @Test(.needsShared("data/huanhuan.json", "data/alpaca_en_demo.json"), arguments: [("huanhuan.json", 112), ("alpaca_en_demo.json", 14)])
    func countsOnSharedData(file: String, expected: Int) throws {
        let path = try TestInputs.shared("data/\(file)").path
        let store = try TestSupport.temporaryStore()
        _ = try Ingestor(store: store, options: IngestOptions()).ingest(InputFile(path: path))
        let items = try store.records().map { (id: $0.id ?? 0, conversation: try $0.decodedConversation()) }
        let groups = ExactDuplicates.groups(items, on: .pair)
        #expect(groups.reduce(0) { $0 + $1.count - 1 } == expected)
    }
}

@Suite("PII")
struct PIITests {
    @Test func residentIDs() {
        #expect(PII.residentIDCheckCharacter([1, 1, 0, 1, 0, 5, 1, 9, 4, 9, 1, 2, 3, 1, 0, 0, 2]) == "X")
        let valid = PII.findings(in: "患者身份证11010519491231002X，请核对")
        #expect(valid.map(\.kind) == [.residentID])
        #expect(valid.first?.text == "11010519491231002X")
        #expect(PII.findings(in: "11010519491231002x").map(\.kind) == [.residentID])
        #expect(PII.findings(in: "110105194912310021").isEmpty)            // wrong check character
        var d = [1, 1, 0, 1, 0, 5, 1, 9, 4, 9, 1, 3, 3, 1, 0, 0, 2]
        let badDate = d.map(String.init).joined() + String(PII.residentIDCheckCharacter(d))
        #expect(PII.findings(in: badDate).isEmpty)
        d = [1, 1, 0, 1, 0, 5, 2, 0, 0, 0, 0, 2, 2, 9, 0, 0, 2]           // 2000-02-29 exists
        let leap = d.map(String.init).joined() + String(PII.residentIDCheckCharacter(d))
        #expect(PII.findings(in: leap).map(\.kind) == [.residentID])
        #expect(PII.findings(in: "911010519491231002X").isEmpty)            // inside a longer number
    }

    @Test func mobiles() {
        #expect(PII.findings(in: "电话13812345678").map(\.text) == ["13812345678"])
        #expect(PII.findings(in: "call +86 138-1234-5678 now").map(\.text) == ["+86 138-1234-5678"])
        #expect(PII.findings(in: "138 1234 5678").map(\.kind) == [.mobile])
        #expect(PII.findings(in: "12812345678").isEmpty)                   // 12x is not a mobile prefix
        #expect(PII.findings(in: "138123456789").isEmpty)                  // twelve digits
        #expect(PII.findings(in: "010-12345678").isEmpty)                  // a landline
        #expect(PII.findings(in: "订单号A13812345678").isEmpty)            // part of a code
    }

    @Test func emailsAndCards() {
        #expect(PII.findings(in: "写信到 zhang.san+med@example-hospital.cn。").map(\.text) == ["zhang.san+med@example-hospital.cn"])
        #expect(PII.findings(in: "a@b").isEmpty)
        #expect(PII.findings(in: "user@host.c").isEmpty)
        #expect(PII.luhn([4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]))
        #expect(!PII.luhn([4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2]))
        #expect(PII.findings(in: "卡号4111 1111 1111 1111").map(\.kind) == [.bankCard])
        #expect(PII.findings(in: "6222020200112233446").map(\.kind) == [.bankCard])
        #expect(PII.findings(in: "6222020200112233445").isEmpty)           // fails Luhn
        #expect(PII.findings(in: "4111-1111-1111-1112").isEmpty)
    }

    @Test func redaction() {
        let text = "张三，身份证11010519491231002X，手机13812345678，邮箱z@example.com，卡号4111111111111111。"
        #expect(PII.redact(text) == "张三，身份证[身份证号]，手机[手机号]，邮箱[邮箱]，卡号[银行卡号]。")
        #expect(PII.redact("没有个人信息") == "没有个人信息")
    }
}
