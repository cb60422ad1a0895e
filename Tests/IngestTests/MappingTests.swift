@testable import CorpusDB
import Foundation
import Testing
@testable import Ingest

@Suite("Mapping rows to conversations")
struct MappingTests {
    func object(_ json: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] ?? [:]
    }

    func messages(_ result: Result<MappedRow, RejectReason>) -> [String] {
        guard case let .success(row) = result else { return [] }
        return row.conversation.messages.map { "\($0.role.rawValue): \($0.content)" }
    }

    func reason(_ result: Result<MappedRow, RejectReason>) -> String? {
        guard case let .failure(reason) = result else { return nil }
        return reason.code
    }

    func pair(_ result: Result<MappedRow, RejectReason>) -> [String] {
        guard case let .success(row) = result, let rejected = row.conversation.rejected else { return [] }
        return messages(result) + ["rejected: \(rejected.content)"]
    }

    @Test func sharegptRankingPairs() throws {
        let m = try #require(FieldMapper.infer(keys: ["conversations", "chosen", "rejected"]))
        #expect(m.shape == .sharegpt && m.preference)
        let row = #"{"system":"s","conversations":[{"from":"human","value":"q"}],"chosen":{"from":"gpt","value":"good"},"rejected":{"from":"gpt","value":"bad"}}"#
        #expect(pair(m.map(object: object(row))) == ["system: s", "user: q", "assistant: good", "rejected: bad"])
        let multi = #"{"conversations":[{"from":"human","value":"q1"},{"from":"gpt","value":"a1"},{"from":"human","value":"q2"}],"chosen":{"from":"gpt","value":"c"},"rejected":{"from":"gpt","value":"r"}}"#
        #expect(pair(m.map(object: object(multi))) == ["user: q1", "assistant: a1", "user: q2", "assistant: c", "rejected: r"])
        #expect(reason(m.map(object: object(#"{"conversations":[{"from":"human","value":"q"}],"chosen":{"from":"gpt","value":"c"}}"#))) == "missing_field")
        #expect(reason(m.map(object: object(#"{"conversations":[{"from":"human","value":"q"}],"chosen":{"from":"gpt","value":"same "},"rejected":{"from":"gpt","value":" same"}}"#))) == "identical_pair")
        #expect(reason(m.map(object: object(#"{"conversations":[{"from":"human","value":"q"},{"from":"gpt","value":"a"}],"chosen":{"from":"gpt","value":"c"},"rejected":{"from":"gpt","value":"r"}}"#))) == "malformed_pair")
        #expect(reason(m.map(object: object(#"{"conversations":[{"from":"human","value":"q"}],"chosen":{"from":"human","value":"c"},"rejected":{"from":"gpt","value":"r"}}"#))) == "malformed_pair")
        #expect(reason(m.map(object: object(#"{"conversations":[{"from":"human","value":"q"}],"chosen":{"from":"gpt","value":"c"},"rejected":{"from":"gpt","value":"  "}}"#))) == "empty_answer")
    }

    @Test func alpacaAndOpenAIAndTRLPairs() throws {
        let alpaca = try #require(FieldMapper.infer(keys: ["instruction", "input", "chosen", "rejected"]))
        #expect(alpaca.shape == .alpaca && alpaca.preference)
        #expect(pair(alpaca.map(object: object(#"{"instruction":"剂量？","input":"布洛芬","chosen":"每次200mg","rejected":"随便吃"}"#)))
                == ["user: 剂量？\n布洛芬", "assistant: 每次200mg", "rejected: 随便吃"])
        let openAI = try #require(FieldMapper.infer(keys: ["messages", "chosen", "rejected"]))
        #expect(pair(openAI.map(object: object(#"{"messages":[{"role":"user","content":"q"}],"chosen":{"role":"assistant","content":"c"},"rejected":"r"}"#)))
                == ["user: q", "assistant: c", "rejected: r"])
        let trl = try #require(FieldMapper.infer(keys: ["prompt", "chosen", "rejected"]))
        #expect(trl.shape == .columns && trl.preference)
        #expect(pair(trl.map(object: object(#"{"prompt":"q","chosen":"c","rejected":"r"}"#))) == ["user: q", "assistant: c", "rejected: r"])
        let conversational = #"{"prompt":[{"role":"system","content":"s"},{"role":"user","content":"q"}],"chosen":[{"role":"assistant","content":"c"}],"rejected":[{"role":"assistant","content":"r"}]}"#
        #expect(pair(trl.map(object: object(conversational))) == ["system: s", "user: q", "assistant: c", "rejected: r"])
        #expect(reason(trl.map(object: object(#"{"prompt":"q","chosen":[{"role":"assistant","content":"c"},{"role":"assistant","content":"d"}],"rejected":"r"}"#))) == "malformed_pair")
        #expect(reason(trl.map(object: object(#"{"prompt":"q","chosen":"c","rejected":null}"#))) == "missing_field")
        // CSV columns, and --map naming them.
        #expect(pair(trl.map(fields: ["prompt": "q", "chosen": "c", "rejected": "r"])) == ["user: q", "assistant: c", "rejected: r"])
        let mapped = try FieldMapper(spec: "user=问题,chosen=好,rejected=差", availableKeys: ["问题", "好", "差"])
        #expect(pair(mapped.map(fields: ["问题": "q", "好": "c", "差": "r"])) == ["user: q", "assistant: c", "rejected: r"])
        #expect(mapped.mappingJSON == #"{"pairs":{"chosen":"好","rejected":"差"},"shape":"columns","user":["问题"]}"#)
        #expect(throws: IngestError.self) { try FieldMapper(spec: "user=问题,chosen=好", availableKeys: ["问题", "好", "差"]) }
    }

    /// A pair's canonical form adds its rejected turn after the messages; a plain conversation's
    /// bytes (and hash) are what they always were.
    @Test func canonicalFormOfAPair() throws {
        let plain = Conversation(messages: [Message(role: .user, content: "q"), Message(role: .assistant, content: "a")])
        #expect(CanonicalJSON.string(plain) == #"{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}"#)
        var pair = plain
        pair.rejected = Message(role: .assistant, content: "坏\n")
        let text = CanonicalJSON.string(pair)
        #expect(text == #"{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"rejected":{"role":"assistant","content":"坏\n"}}"#)
        #expect(try CanonicalJSON.decode(text) == pair)
        #expect(CanonicalJSON.decodeCanonical(text) == pair)
        #expect(pair.prompt == [Message(role: .user, content: "q")] && pair.finalAnswer?.content == "a" && pair.allMessages.count == 3)
    }

    @Test func alpaca() throws {
        let m = try #require(FieldMapper.infer(keys: ["instruction", "input", "output"]))
        #expect(m.shape == .alpaca)
        #expect(messages(m.map(object: object(#"{"instruction":"翻译","input":"hello","output":"你好"}"#))) == ["user: 翻译\nhello", "assistant: 你好"])
        #expect(messages(m.map(object: object(#"{"instruction":"","input":"只有输入","output":"答"}"#))) == ["user: 只有输入", "assistant: 答"])
        #expect(messages(m.map(object: object(#"{"instruction":"q","output":"a","system":"你是医生","history":[["h1","a1"]]}"#)))
                == ["system: 你是医生", "user: h1", "assistant: a1", "user: q", "assistant: a"])
        #expect(reason(m.map(object: object(#"{"instruction":"q","input":"","output":"  "}"#))) == "empty_answer")
        #expect(reason(m.map(object: object(#"{"instruction":" ","input":"","output":"a"}"#))) == "empty_prompt")
        #expect(reason(m.map(object: object(#"{"instruction":"q"}"#))) == "missing_field")
    }

    @Test func sharegpt() throws {
        let m = try #require(FieldMapper.infer(keys: ["conversations", "id"]))
        #expect(m.shape == .sharegpt)
        let ok = #"{"system":"s","conversations":[{"from":"human","value":"q"},{"from":"gpt","value":"a"},{"from":"function_call","value":"f"},{"from":"observation","value":"o"},{"from":"gpt","value":"a2"}]}"#
        #expect(messages(m.map(object: object(ok))) == ["system: s", "user: q", "assistant: a", "function_call: f", "observation: o", "assistant: a2"])
        #expect(reason(m.map(object: object(#"{"conversations":[{"from":"human","value":"q"},{"from":"gpt","value":""}]}"#))) == "empty_turn")
        #expect(reason(m.map(object: object(#"{"conversations":[{"from":"human","value":"q"},{"from":"gpt","value":"a"},{"from":"human","value":"q2"}]}"#))) == "ends_on_user_turn")
        #expect(reason(m.map(object: object(#"{"conversations":[{"from":"human","value":"q"}]}"#))) == "no_assistant_turn")
        #expect(reason(m.map(object: object(#"{"conversations":[{"from":"alien","value":"q"}]}"#))) == "unknown_role")
        #expect(reason(m.map(object: object(#"{"conversations":"not a list"}"#))) == "missing_field")
    }

    @Test func openAIMessages() throws {
        let m = try #require(FieldMapper.infer(keys: ["messages"]))
        let text = #"{"messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"多部分"}]},{"role":"assistant","content":"a"}]}"#
        #expect(messages(m.map(object: object(text))) == ["system: s", "user: 多部分", "assistant: a"])
    }

    @Test func columnsByName() throws {
        let m = try #require(FieldMapper.infer(keys: ["department", "title", "ask", "answer"]))
        #expect(m.mappingJSON == #"{"assistant":"answer","shape":"columns","tags":{"department":"department"},"user":["title","ask"]}"#)
        let row = m.map(fields: ["department": "内科", "title": "头痛", "ask": "头痛怎么办", "answer": "休息"])
        #expect(messages(row) == ["user: 头痛\n头痛怎么办", "assistant: 休息"])
        guard case let .success(mapped) = row else { return }
        #expect(mapped.tags == ["department": "内科"])
        #expect(mapped.originalJSON == #"{"answer":"休息","ask":"头痛怎么办","department":"内科","title":"头痛"}"#)
        // Title repeated in ask is not doubled.
        #expect(messages(m.map(fields: ["department": "", "title": "同", "ask": "同", "answer": "a"])) == ["user: 同", "assistant: a"])
        let chinese = try #require(FieldMapper.infer(keys: ["问题", "回答", "科室"]))
        #expect(messages(chinese.map(fields: ["问题": "q", "回答": "a", "科室": "外科"])) == ["user: q", "assistant: a"])
        #expect(FieldMapper.infer(keys: ["foo", "bar"]) == nil)
    }

    @Test func explicitMap() throws {
        let m = try FieldMapper(spec: "user=query,assistant=response,tag.laws=laws", availableKeys: ["query", "response", "laws"])
        let result = m.map(object: object(#"{"query":"q","response":"a","laws":["甲法","乙法"]}"#))
        guard case let .success(row) = result else { Issue.record("not mapped"); return }
        #expect(row.tags == ["laws": "甲法; 乙法"])
        #expect(throws: IngestError.self) { try FieldMapper(spec: "user=nope,assistant=response", availableKeys: ["query", "response"]) }
        #expect(throws: IngestError.self) { try FieldMapper(spec: "user=query", availableKeys: ["query", "response"]) }
        #expect(throws: IngestError.self) { try FieldMapper(spec: "speaker=query,assistant=response", availableKeys: ["query", "response"]) }
        let message = FieldMapper.noMappingMessage(file: "x.json", keys: ["foo", "bar"])
        #expect(message == "x.json: no field maps to a question and an answer. Columns or keys found: foo, bar. Name them with --map, for example --map 'user=foo,assistant=bar' (add tag.NAME=COLUMN for tags)")
    }
}
