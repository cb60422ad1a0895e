import CorpusDB
import Foundation
import TestSupport
import Testing

@Suite("Ingest transactions: one per file, rolled back on error")
struct IngestTransactionTests {
    static func source(_ path: String = "/in.csv") -> Source {
        Source(path: path, sha256: "ab", bytes: 10, format: "csv", encoding: "UTF-8", encodingConfidence: 100,
               encodingMethod: "utf8", mapping: "{}", importedAt: "2026-01-01T00:00:00Z", toolVersion: CorpusVersion.string)
    }

    static func record(_ sourceID: Int64, _ i: Int) -> CorpusDB.Record {
        let c = Conversation(messages: [Message(role: .user, content: "q\(i)"), Message(role: .assistant, content: "a\(i)")])
        return CorpusDB.Record(sourceId: sourceID, rowIndex: i, locator: "row \(i)", line: i + 1, byteOffset: Int64(i * 10), byteLength: 10,
                      conversation: CanonicalJSON.string(c), original: "{}", tags: "{}", contentHash: CanonicalJSON.contentHash(c))
    }

    static func reject(_ sourceID: Int64, _ i: Int) -> Reject {
        Reject(sourceId: sourceID, rowIndex: i, locator: "row \(i)", line: i + 1, byteOffset: Int64(i * 10), byteLength: 10,
               reason: "empty_answer", detail: "the answer is empty", excerpt: "q,")
    }

    @Test func commitsTheSourceItsRowsAndItsCounts() throws {
        let store = try TestSupport.temporaryStore()
        let id = try store.ingestTransaction(inserting: Self.source()) { writer in
            try writer.append(Self.record(writer.sourceID, 0))
            try writer.append(Self.reject(writer.sourceID, 1))
            try writer.append(Self.record(writer.sourceID, 2))
            #expect(writer.recordCount == 2 && writer.rejectCount == 1)
            return writer.sourceID
        }
        let found = try store.source(id: id)
        let source = try #require(found)
        #expect(source.rowsRead == 3 && source.recordsAdded == 2 && source.rowsRejected == 1)
        #expect(try store.status() == StoreStatus(schemaVersion: Migrations.latestVersion, sources: 1, records: 2, rejects: 1))
        #expect(try store.records(sourceId: id).map(\.rowIndex) == [0, 2])
    }

    struct Stop: Error {}

    @Test func rollsBackEverythingWhenTheBodyThrows() throws {
        let store = try TestSupport.temporaryStore()
        #expect(throws: Stop.self) {
            try store.ingestTransaction(inserting: Self.source()) { writer in
                try writer.append(Self.record(writer.sourceID, 0))
                try writer.append(Self.reject(writer.sourceID, 1))
                throw Stop()
            }
        }
        #expect(try store.status() == StoreStatus(schemaVersion: Migrations.latestVersion, sources: 0, records: 0, rejects: 0))
        // The next file gets the id the rolled-back one would have had: nothing of it stayed.
        let id = try store.ingestTransaction(inserting: Self.source("/next.csv")) { writer in
            try writer.append(Self.record(writer.sourceID, 0))
            return writer.sourceID
        }
        #expect(id == 1)
    }

    @Test func aWriterKeptPastItsTransactionRefusesRows() throws {
        let store = try TestSupport.temporaryStore()
        let writer = try store.ingestTransaction(inserting: Self.source()) { $0 }
        #expect(throws: CorpusDBError.self) { try writer.append(Self.record(writer.sourceID, 0)) }
        #expect(try store.status().records == 0)
    }
}
