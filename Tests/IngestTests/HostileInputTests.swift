import Foundation
import Testing
@testable import Ingest

/// Input files written to hurt ingest (docs/RELIABILITY.md): each ends in a reject or an
/// `IngestError` that names what is wrong, in memory bounded by the file's own size, never in a
/// trap or a value many times the file.
@Suite("Hostile ingest input")
struct IngestHostileInputTests {
    static let limit = CSVReader.maximumFieldBytes

    /// One unquoted field just over the limit: the row is a `too_long` reject naming the field and
    /// its size, the field's text is not copied, and the rows around it are read.
    @Test func csvFieldOverTheLimitIsATooLongReject() throws {
        var bytes = Array("question,answer\nq1,a1\nq2,".utf8)
        bytes += [UInt8](repeating: UInt8(ascii: "x"), count: Self.limit + 1)
        bytes += Array("\nq3,a3\n".utf8)
        let rows = Array(CSVReader(utf8: bytes))
        #expect(rows.count == 4)
        #expect(rows[2].problemCode == "too_long")
        #expect(rows[2].problem == "field 2 holds \(Self.limit + 1) bytes, more than the 16 MiB a field may hold; split the text or check for an unbalanced quote")
        #expect(rows[2].fields == ["q2", ""])
        #expect(rows[3].fields == ["q3", "a3"])

        let result = try Ingestor.dryRun(bytes, path: "big.csv")
        #expect(result.records.count == 2)
        #expect(result.rejects == ["too_long"])
    }

    /// A quoted field over the limit (doubled quotes inside, so the copying path runs), and a field
    /// exactly at the limit, which is read.
    @Test func quotedFieldOverTheLimitAndOneAtIt() throws {
        var over = Array("q,a\n\"".utf8)
        over += [UInt8](repeating: UInt8(ascii: "y"), count: Self.limit - 2) + Array("\"\"zz\",b\n".utf8)
        let rows = Array(CSVReader(utf8: over))
        #expect(rows[1].problemCode == "too_long")
        #expect(rows[1].fields == ["", "b"])

        var at = Array("q,a\n".utf8) + [UInt8](repeating: UInt8(ascii: "z"), count: Self.limit) + Array(",b\n".utf8)
        let atRows = Array(CSVReader(utf8: at))
        #expect(atRows[1].problem == nil)
        #expect(atRows[1].fields[0].utf8.count == Self.limit)
        at = []
    }

    /// An unterminated quote whose line runs past the limit keeps the row a `malformed_row` reject
    /// without copying the line.
    @Test func unterminatedQuoteOnAHugeLine() {
        let bytes = Array("q,a\n\"".utf8) + [UInt8](repeating: UInt8(ascii: "w"), count: Self.limit + 10)
        let rows = Array(CSVReader(utf8: bytes))
        #expect(rows[1].problemCode == "malformed_row")
        #expect(rows[1].fields == [""])
    }

    /// A JSON element and a JSONL line over the limit are `too_long` rejects; the others are read.
    @Test func jsonElementOverTheLimitIsATooLongReject() throws {
        let huge = String(repeating: "长", count: Self.limit / 3 + 1)
        let json = Array("[{\"question\": \"q\", \"answer\": \"a\"}, {\"question\": \"q2\", \"answer\": \"\(huge)\"}]".utf8)
        let result = try Ingestor.dryRun(json, path: "big.json")
        #expect(result.records.count == 1)
        #expect(result.rejects == ["too_long"])

        let jsonl = Array("{\"question\": \"q\", \"answer\": \"\(huge)\"}\n{\"question\": \"q\", \"answer\": \"a\"}\n".utf8)
        let lines = try Ingestor.dryRun(jsonl, path: "big.jsonl")
        #expect(lines.format == .jsonl)
        #expect(lines.records.count == 1)
        #expect(lines.rejects == ["too_long"])
    }

    /// `{"data": [...]}` bigger than the limit is not one record: its array is found by scanning
    /// and each element read, as for a small file.
    @Test func bigDataObjectStillReadsItsRecords() throws {
        let element = "{\"question\": \"\(String(repeating: "q", count: 1000))\", \"answer\": \"a\"}"
        let count = Self.limit / element.utf8.count + 10
        let text = "{\"version\": 1, \"data\": [" + Array(repeating: element, count: count).joined(separator: ",") + "], \"note\": [1]}"
        let result = try Ingestor.dryRun(Array(text.utf8), path: "big-data.json")
        #expect(result.records.count == count)
        #expect(result.rejects.isEmpty)
    }

    /// JSON nested 100,000 deep: an element that does not parse (Foundation stops at depth 512),
    /// reported with where it stopped, in a JSON array and in JSONL.
    @Test func deeplyNestedJSONIsAnInvalidJSONReject() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let json = Array("[{\"question\": \"q\", \"answer\": \"a\"}, {\"question\": \(deep), \"answer\": \"a\"}]".utf8)
        let result = try Ingestor.dryRun(json, path: "deep.json")
        #expect(result.records.count == 1)
        #expect(result.rejects == ["invalid_json"])
        let item = try JSONReader(utf8: json).items[1]
        #expect(item.problem?.contains("Too many nested arrays or dictionaries") == true)

        let jsonl = Array("{\"question\": \"q\", \"answer\": \"a\"}\n{\"question\": \"q2\", \"answer\": \"a\"}\n\(deep)\n".utf8)
        let lines = try Ingestor.dryRun(jsonl, path: "deep.jsonl")
        #expect(lines.format == .jsonl)
        #expect(lines.records.count == 2)
        #expect(lines.rejects == ["invalid_json"])
    }

    /// Valid UTF-8 is not copied when decoded (the file's bytes are the text).
    @Test func utf8TextSharesTheFileBytes() {
        let bytes = Array("question,answer\nq,a\n".utf8)
        let text = Transcoder.decodeUTF8(bytes, bom: 0)
        #expect(text.utf8 == bytes)
        bytes.withUnsafeBufferPointer { a in
            text.utf8.withUnsafeBufferPointer { b in #expect(a.baseAddress == b.baseAddress) }
        }
    }
}
