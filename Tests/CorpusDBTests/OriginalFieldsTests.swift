@testable import CorpusDB
import Foundation
import GRDB
import TestSupport
import Testing

@Suite("Original fields stored by reference to the conversation (migration 0013)")
struct OriginalFieldsTests {
    static let title = "高血压患者能吃党参吗？"  // 33 UTF-8 bytes
    static let ask = "我有高血压，最近想用党参泡水喝，可以吗？"  // 60
    static let answer = "党参有补中益气的作用，一般剂量对血压影响不大，但高血压患者应在医生指导下使用。"
    static let fields = ["department": "内科", "title": title, "ask": ask, "answer": answer, "note": "not in the conversation at all"]
    static let conversation = Conversation(messages: [Message(role: .user, content: title + "\n" + ask),
                                                      Message(role: .assistant, content: answer)])

    @Test func fieldsThatRepeatATurnBecomeReferences() throws {
        let (original, refs) = OriginalFields.split(Self.fields, conversation: Self.conversation)
        // department is too short to be worth a reference; note occurs in no turn.
        #expect(original == #"{"department":"内科","note":"not in the conversation at all"}"#)
        #expect(refs == #"{"answer":[1,0,117],"ask":[0,34,60],"title":[0,0,33]}"#)
        let json = String(decoding: CanonicalJSON.encode(Self.conversation), as: UTF8.self)
        let whole = try OriginalFields.resolve(original: original, refs: refs, conversation: json, record: 7)
        #expect(whole == CanonicalJSON.object(Self.fields))
        // Nothing to reference: stored whole, no refs.
        let plain = OriginalFields.split(["q": "x", "a": "y"], conversation: Self.conversation)
        #expect(plain.original == #"{"a":"y","q":"x"}"#)
        #expect(plain.refs == nil)
        #expect(try OriginalFields.resolve(original: plain.original, refs: nil, conversation: json, record: 7) == plain.original)
    }

    @Test func aRejectedAnswerIsTheTurnAfterTheMessages() throws {
        let rejected = "这个问题我无法回答，请咨询医生或者去医院检查一下。"
        let pair = Conversation(messages: Self.conversation.messages, rejected: Message(role: .assistant, content: rejected))
        let (original, refs) = OriginalFields.split(["chosen": Self.answer, "rejected": rejected], conversation: pair)
        #expect(original == "{}")
        #expect(refs == #"{"chosen":[1,0,117],"rejected":[2,0,\#(rejected.utf8.count)]}"#)
        let json = String(decoding: CanonicalJSON.encode(pair), as: UTF8.self)
        #expect(try OriginalFields.resolve(original: original, refs: refs, conversation: json, record: 1)
                == CanonicalJSON.object(["chosen": Self.answer, "rejected": rejected]))
    }

    @Test func referencesThatDoNotFitAreRefusedWithTheRecord() throws {
        let json = String(decoding: CanonicalJSON.encode(Self.conversation), as: UTF8.self)
        for (refs, what) in [(#"{"ask":[2,0,3]}"#, "names no turn"), (#"{"ask":[0,90,60]}"#, "outside its turn"),
                             (#"{"ask":[0,1,3]}"#, "character boundary"), (#"{"ask":"x"}"#, "not the expected JSON")] {
            do {
                _ = try OriginalFields.resolve(original: "{}", refs: refs, conversation: json, record: 42)
                Issue.record("\(refs) was accepted")
            } catch let error as CorpusDBError {
                #expect(error.message.contains("record 42"))
                #expect(error.message.contains(what), "\(error.message)")
            }
        }
    }

    @Test func rowsStoredBeforeTheMigrationKeepTheirFieldsWhole() throws {
        let path = try TestSupport.temporaryDirectory("refs-migration").appendingPathComponent("corpus.db").path
        let queue = try DatabaseQueue(path: path)
        try Migrations.migrator().migrate(queue, upTo: "0012_packed_verdicts")
        let whole = CanonicalJSON.object(Self.fields)
        let json = String(decoding: CanonicalJSON.encode(Self.conversation), as: UTF8.self)
        try queue.write { db in
            try db.execute(sql: """
                INSERT INTO sources (id, path, sha256, bytes, format, encoding, encoding_confidence, encoding_method, mapping, imported_at, tool_version)
                VALUES (1, '/in.csv', 'ab', 10, 'csv', 'UTF-8', 100, 'utf8', '{}', '2026-01-01T00:00:00Z', 'test');
                INSERT INTO records (id, source_id, row_index, locator, line, byte_offset, byte_length, conversation, original, content_hash)
                VALUES (1, 1, 0, 'row 1', 2, 0, 1, ?, ?, 'cd');
                """, arguments: [json, whole])
        }
        try queue.close()
        let store = try CorpusStore(path: path)
        #expect(try store.schemaVersion() == 17)
        let record = try #require(try store.record(id: 1))
        #expect(record.originalRefs == nil)
        #expect(try record.originalFields() == whole)
    }
}
