import CorpusDB
import Foundation
import Ingest
import TestSupport
import Testing

/// The real third-party files in ../shared/data. Expected counts were computed independently in
/// Python with the rules of docs/INGEST_MAPPING.md (the script is in that document).
@Suite("Real files in ../shared/data", .needsShared("data"))
struct SharedDataTests {
    struct Expectation: Sendable, CustomStringConvertible {
        var file: String
        var map: String?
        var format: String
        var records: Int
        var rejects: [String: Int]
        var description: String { file + (map.map { " --map \($0)" } ?? "") }
    }

    static let cases: [Expectation] = [
        Expectation(file: "huanhuan.json", format: "json", records: 3729, rejects: [:]),
        Expectation(file: "alpaca_en_demo.json", format: "json", records: 999, rejects: [:]),
        Expectation(file: "alpaca_zh_10k.json", format: "json", records: 10015, rejects: ["empty_answer": 6]),
        Expectation(file: "sharegpt_zh_1k.jsonl", format: "jsonl", records: 992,
                    rejects: ["ends_on_user_turn": 6, "no_assistant_turn": 1, "empty_turn": 1]),
        Expectation(file: "legal_zixun_1k.json", map: "user=query,assistant=response,tag.laws=laws", format: "json", records: 1000, rejects: [:]),
        Expectation(file: "legal_zixun_1k.json", format: "json", records: 1000, rejects: [:]),
        Expectation(file: "dpo_en_demo.json", format: "json", records: 300, rejects: [:]),
    ]

    @Test(arguments: cases)
    func exactCounts(_ expected: Expectation) throws {
        let data = try TestInputs.shared("data")
        let store = try TestSupport.temporaryStore()
        var options = IngestOptions()
        options.map = expected.map
        let summary = try Ingestor(store: store, options: options).ingest(InputFile(path: data.appendingPathComponent(expected.file).path))
        #expect(summary.format?.rawValue == expected.format)
        #expect(summary.encoding == "UTF-8")
        #expect(summary.records == expected.records)
        #expect(Dictionary(uniqueKeysWithValues: summary.rejectsByReason.map { ($0.reason, $0.count) }) == expected.rejects)
        #expect(summary.rows == expected.records + expected.rejects.values.reduce(0, +))
        let status = try store.status()
        #expect(status.records == expected.records)
        #expect(try store.integrityProblems().isEmpty)
    }

    @Test func provenanceOfAKnownElement() throws {
        let data = try TestInputs.shared("data")
        let path = data.appendingPathComponent("alpaca_en_demo.json").path
        let store = try TestSupport.temporaryStore()
        _ = try Ingestor(store: store, options: IngestOptions()).ingest(InputFile(path: path))
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        // Every record's byte range, cut from the original file, parses back to its original fields.
        for record in try store.records(limit: 50) {
            let slice = Data(bytes[Int(record.byteOffset)..<Int(record.byteOffset + record.byteLength)])
            let fromFile = try JSONSerialization.jsonObject(with: slice) as? NSDictionary
            let stored = try JSONSerialization.jsonObject(with: Data(record.original.utf8)) as? NSDictionary
            #expect(fromFile == stored, "record \(record.id ?? 0) at \(record.locator)")
        }
        let first = try #require(try store.records(limit: 1).first)
        #expect(first.locator == "[0]")
        #expect(first.line == 2)
    }

    @Test func legalLawsBecomeATag() throws {
        let data = try TestInputs.shared("data")
        let store = try TestSupport.temporaryStore()
        var options = IngestOptions()
        options.map = "user=query,assistant=response,tag.laws=laws"
        _ = try Ingestor(store: store, options: options).ingest(InputFile(path: data.appendingPathComponent("legal_zixun_1k.json").path))
        let source = try #require(try store.allSources().first)
        #expect(source.mapping == #"{"assistant":"response","shape":"columns","tags":{"laws":"laws"},"user":["query"]}"#)
        let tagged = try store.records().filter { $0.decodedTags()["laws"] != nil }
        #expect(tagged.count == 1000)
    }

    /// LLaMA-Factory's DPO demo (sharegpt ranking rows): every row a pair, hashed as the canonical
    /// form of docs/STORE.md. The hashes were computed in Python (json.dumps with
    /// ensure_ascii=False and separators (",", ":") of {"messages": prompt + chosen, "rejected": …}).
    @Test func preferencePairsOfTheDPODemo() throws {
        let data = try TestInputs.shared("data")
        let store = try TestSupport.temporaryStore()
        _ = try Ingestor(store: store, options: IngestOptions()).ingest(InputFile(path: data.appendingPathComponent("dpo_en_demo.json").path))
        let source = try #require(try store.allSources().first)
        #expect(source.mapping == #"{"pairs":{"chosen":"chosen","rejected":"rejected"},"shape":"sharegpt"}"#)
        let records = try store.records()
        #expect(records.count == 300)
        #expect(try records.allSatisfy { try $0.decodedConversation().isPair })
        #expect(records[0].contentHash == "b4bb59ef1e0fb91091afe006ec81acf7fe1eda294f872f3ab5afdfe1cd72527d")
        #expect(records[5].contentHash == "e82c8749c0e5d5509258de46796b1044b9be8610c0ba80f18a568463865bcc3e")
        let sixth = try records[5].decodedConversation()
        #expect(sixth.messages.map(\.role) == [.system, .user, .assistant])
        #expect(sixth.rejected?.content.hasPrefix("Sure, I'd be happy to explain how I used") == true)
        #expect(try store.integrityProblems().isEmpty)
    }
}
