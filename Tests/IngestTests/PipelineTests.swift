import CorpusDB
import Foundation
import Ingest
import TestSupport
import Testing

@Suite("The ingest pipeline in process")
struct PipelineTests {
    func jsonl(rows: Int) -> String {
        (0..<rows).map { #"{"question": "问题\#($0)", "answer": "回答\#($0)"}"# }.joined(separator: "\n") + "\n"
    }

    @Test func interruptedFileLeavesNothingBehind() throws {
        let store = try TestSupport.temporaryStore()
        let dir = try TestSupport.temporaryDirectory()
        let path = try TestSupport.write(jsonl(rows: 5000), to: "many.jsonl", in: dir)
        let ingestor = Ingestor(store: store, options: IngestOptions())
        nonisolated(unsafe) var polls = 0
        ingestor.isCancelled = { polls += 1; return polls >= 3 }
        do {
            _ = try ingestor.ingest(InputFile(path: path))
            Issue.record("the ingest was not interrupted")
        } catch let error as IngestError {
            #expect(error.code == .interrupted)
            #expect(error.message.contains("nothing of this file was kept"))
        }
        #expect(polls == 3)
        #expect(try store.status() == StoreStatus(schemaVersion: 17, sources: 0, records: 0, rejects: 0))
        #expect(try store.integrityProblems().isEmpty)

        // The same file afterwards ingests whole: the interrupted attempt left no trace.
        let summary = try Ingestor(store: store, options: IngestOptions()).ingest(InputFile(path: path))
        #expect(summary.records == 5000)
        #expect(summary.alreadyIngestedAs == nil)
        #expect(try store.status().records == 5000)
    }

    @Test func everyRowIsARecordOrAReject() throws {
        let store = try TestSupport.temporaryStore()
        let dir = try TestSupport.temporaryDirectory()
        let text = #"""
        [{"instruction": "解释", "input": "高血压", "output": "血压持续升高。"},
         {"instruction": "空", "input": "", "output": "  "},
         7,
         {"conversations": [{"from": "human", "value": "你好"}, {"from": "gpt", "value": "您好"}]}]
        """#
        let path = try TestSupport.write(text, to: "mixed.json", in: dir)
        let summary = try Ingestor(store: store, options: IngestOptions()).ingest(InputFile(path: path))
        #expect(summary.rows == 4)
        let source = try #require(try store.allSources().first)
        #expect(source.rowsRead == source.recordsAdded + source.rowsRejected)
        #expect(try store.records().count + store.rejects().count == 4)
    }

    @Test func reingestIsIdempotent() throws {
        let store = try TestSupport.temporaryStore()
        let dir = try TestSupport.temporaryDirectory()
        let path = try TestSupport.write(jsonl(rows: 10), to: "ten.jsonl", in: dir)
        let first = try Ingestor(store: store, options: IngestOptions()).ingest(InputFile(path: path))
        let second = try Ingestor(store: store, options: IngestOptions()).ingest(InputFile(path: path))
        #expect(first.sourceId == 1)
        #expect(second.sourceId == nil)
        #expect(second.alreadyIngestedAs == 1)
        #expect(try store.status() == StoreStatus(schemaVersion: 17, sources: 1, records: 10, rejects: 0))
        var options = IngestOptions()
        options.force = true
        let third = try Ingestor(store: store, options: options).ingest(InputFile(path: path))
        #expect(third.sourceId == 2)
        #expect(try store.status().records == 20)
        // Same content, same hashes, whichever source they came from.
        let hashes = try store.records().map(\.contentHash)
        #expect(Array(hashes[0..<10]) == Array(hashes[10..<20]))
    }

    /// CSV fields that repeat the conversation are stored by reference (docs/STORE.md); every
    /// field reads back whole.
    @Test func csvFieldsAreStoredByReference() throws {
        let store = try TestSupport.temporaryStore()
        let title = "高血压患者能吃党参吗？", ask = "我有高血压，最近想用党参泡水喝，可以吗？"
        let answer = "党参有补中益气的作用，一般剂量对血压影响不大，但高血压患者应在医生指导下使用。"
        let csv = "department,title,ask,answer\n内科,\(title),\(ask),\(answer)\n外科,短,问,答\n"
        let path = try TestSupport.write(csv, to: "rows.csv", in: try TestSupport.temporaryDirectory())
        let summary = try Ingestor(store: store, options: IngestOptions()).ingest(InputFile(path: path))
        #expect(summary.records == 2)
        let records = try store.records()
        #expect(records.map(\.originalRefs) == [#"{"answer":[1,0,117],"ask":[0,34,60],"title":[0,0,33]}"#, nil])
        #expect(records.map(\.original) == [#"{"department":"内科"}"#, #"{"answer":"答","ask":"问","department":"外科","title":"短"}"#])
        #expect(try records[0].originalFields() == CanonicalJSON.object(["department": "内科", "title": title, "ask": ask, "answer": answer]))
        #expect(try records[1].originalFields() == records[1].original)
    }
}
