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

    @Test func tagObjectsAreSortedByBytes() {
        #expect(CanonicalJSON.object(["b": "2", "a": "1", "科室": "内科"]) == #"{"a":"1","b":"2","科室":"内科"}"#)
        #expect(CanonicalJSON.object([:]) == "{}")
    }

    @Test func sha256MatchesStandardVector() {
        #expect(ContentHash.sha256Hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
