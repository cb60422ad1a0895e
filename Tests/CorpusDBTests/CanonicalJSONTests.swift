import CorpusDB
import Foundation
import Testing

@Suite("Canonical JSON and content hashes")
struct CanonicalJSONTests {
    let conversation = Conversation(messages: [
        Message(role: .user, content: "高血压患者能吃党参吗？\n\"引号\"\t\\"),
        Message(role: .assistant, content: "可以\u{1}。"),
    ])

    @Test func exactBytes() {
        // Expected text and hash computed independently in Python (see docs/STORE.md, "Content hash").
        #expect(CanonicalJSON.string(conversation)
            == #"{"messages":[{"role":"user","content":"高血压患者能吃党参吗？\n\"引号\"\t\\"},{"role":"assistant","content":"可以\u0001。"}]}"#)
        #expect(CanonicalJSON.contentHash(conversation) == "aced9d0e236166a1812f334a9c3578bfeafffdb330989dab27eaf56967ff57a1")
    }

    @Test func roundTrip() throws {
        #expect(try CanonicalJSON.decode(CanonicalJSON.string(conversation)) == conversation)
    }

    /// The Foundation-free reader gives what JSONDecoder gives on canonical text, including every
    /// control character, and hands anything else (other spacing, key order, escapes) to JSONDecoder.
    @Test func fastReaderAgreesWithJSONDecoder() throws {
        let controls = String(String.UnicodeScalarView((0..<0x20).compactMap(Unicode.Scalar.init)))
        let cases = [
            conversation,
            Conversation(messages: []),
            Conversation(messages: [Message(role: .system, content: ""), Message(role: .user, content: controls + "\\/\"\u{7F}😀")]),
            Conversation(messages: [Message(role: .user, content: "a"), Message(role: .assistant, content: "b"), Message(role: .user, content: "c"), Message(role: .assistant, content: "d")]),
        ]
        for c in cases {
            let text = CanonicalJSON.string(c)
            #expect(try JSONDecoder().decode(Conversation.self, from: Data(text.utf8)) == c)
            #expect(try CanonicalJSON.decode(text) == c)
        }
        let loose = #"{ "messages": [ {"content": "\u4f60\u597d", "role": "user"} ] }"#
        #expect(try CanonicalJSON.decode(loose) == Conversation(messages: [Message(role: .user, content: "你好")]))
        #expect(throws: CorpusDBError.self) { try CanonicalJSON.decode(#"{"messages":[{"role":"robot","content":"x"}]}"#) }
        #expect(throws: CorpusDBError.self) { try CanonicalJSON.decode(#"{"messages":[{"role":"user","content":"x"}]"#) }
    }

    @Test func tagObjectsAreSortedByBytes() {
        #expect(CanonicalJSON.object(["b": "2", "a": "1", "科室": "内科"]) == #"{"a":"1","b":"2","科室":"内科"}"#)
        #expect(CanonicalJSON.object([:]) == "{}")
    }

    @Test func sha256MatchesStandardVector() {
        #expect(ContentHash.sha256Hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
