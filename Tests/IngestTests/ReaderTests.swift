import Foundation
import Testing
@testable import Ingest

@Suite("CSV reader")
struct CSVReaderTests {
    func rows(_ text: String, delimiter: UInt8 = 0x2C) -> [CSVRow] {
        Array(CSVReader(utf8: Array(text.utf8), delimiter: delimiter))
    }

    @Test func quotedFieldsNewlinesAndDoubledQuotes() {
        let r = rows("q,a\r\n\"多行\n问题\",\"他说\"\"你好\"\"\"\r\nx,y")
        #expect(r.map(\.fields) == [["q", "a"], ["多行\n问题", "他说\"你好\""], ["x", "y"]])
        #expect(r.map(\.line) == [1, 2, 4])
        #expect(r.map(\.index) == [0, 1, 2])
        #expect(r[1].range == 5..<39)
        #expect(r.allSatisfy { $0.problem == nil })
    }

    @Test func lineEndingsAndBlankLines() {
        let r = rows("a,b\r\r\n\n1,2\r3,4\n\n")
        #expect(r.map(\.fields) == [["a", "b"], ["1", "2"], ["3", "4"]])
        #expect(r.map(\.line) == [1, 4, 5])
    }

    @Test func emptyFieldsAndTrailingDelimiter() {
        #expect(rows("a,,\"\"\n").first?.fields == ["a", "", ""])
    }

    @Test func unterminatedQuoteResumesOnTheNextLine() {
        let r = rows("q,a\n\"坏的,行\nok,好\n")
        #expect(r.count == 3)
        #expect(r[1].problem == "unterminated quoted field 1 starting at line 2")
        #expect(r[1].range == 4..<15)
        #expect(r[2].fields == ["ok", "好"])
        #expect(r[2].line == 3)
    }

    @Test func textAfterClosingQuoteIsAProblem() {
        let r = rows("\"abc\"def,x\n")
        #expect(r[0].fields == ["abcdef", "x"])
        #expect(r[0].problem == "text after the closing quote of field 1")
    }

    @Test func nulByte() {
        let r = Array(CSVReader(utf8: Array("a,b\n1,".utf8) + [0] + Array("x\n".utf8)))
        #expect(r[1].problem == "NUL byte in field 2")
    }

    @Test func sniffing() {
        #expect(CSVReader.sniffDelimiter(Array("a\tb\tc\n1,2\t3".utf8)) == 0x09)
        #expect(CSVReader.sniffDelimiter(Array("a;b;\"c;d,e,f\"\n".utf8)) == 0x3B)
        #expect(CSVReader.sniffDelimiter(Array("single\n".utf8)) == 0x2C)
        #expect(rows("a\tb\n1\t2\n", delimiter: 0x09).map(\.fields) == [["a", "b"], ["1", "2"]])
    }
}

@Suite("JSON and JSONL readers")
struct JSONReaderTests {
    func items(_ text: String) throws -> [JSONItem] { try JSONReader(utf8: Array(text.utf8)).items }

    @Test func arrayElementsWithRangesAndLines() throws {
        let text = "[\n  {\"q\": \"一\"},\n  {\"q\": \"二, ]}\"}\n]"
        let r = try items(text)
        #expect(r.map(\.locator) == ["[0]", "[1]"])
        #expect(r.map(\.line) == [2, 3])
        #expect(r.map(\.range) == [4..<16, 20..<36])
        #expect((r[1].value as? [String: String])?["q"] == "二, ]}")
    }

    @Test func nestedArraysAndDataMember() throws {
        #expect(try items(#"[[{"a":1},{"a":2}],[{"a":3}]]"#).map(\.locator) == ["[0][0]", "[0][1]", "[1][0]"])
        #expect(try items(#"{"version": 2, "data": [{"a":1}, {"a":2}]}"#).map(\.locator) == ["data[0]", "data[1]"])
        #expect(try items(#"{"question": "q", "answer": "a"}"#).map(\.locator) == ["$"])
    }

    @Test func truncatedAndBrokenElements() throws {
        let r = try items(#"[{"a":1}, {"a": tru}, {"a":"#)
        #expect(r.count == 3)
        #expect(r[0].problem == nil)
        #expect(r[1].problem?.hasPrefix("invalid JSON") == true)
        #expect(r[2].problem?.hasPrefix("truncated: element [2]") == true)
        #expect(r[2].range.lowerBound == 22)
    }

    @Test func topLevelScalarsAreErrors() {
        #expect(throws: IngestError.self) { try items("42") }
        #expect(throws: IngestError.self) { try items("\"text\"") }
        #expect(throws: IngestError.self) { try items("   \n") }
    }

    @Test func jsonLines() {
        let text = "{\"a\":1}\r\n\n  \n{\"a\":\n{\"a\":3}"
        let r = Array(JSONLReader(utf8: Array(text.utf8)))
        #expect(r.map(\.locator) == ["line 1", "line 4", "line 5"])
        #expect(r.map(\.index) == [0, 1, 2])
        #expect(r[0].range == 0..<7)
        #expect(r[1].problem?.hasPrefix("invalid JSON") == true)
        #expect((r[2].value as? [String: Int])?["a"] == 3)
    }

    @Test func formatSniffing() {
        #expect(FormatSniffer.sniff(Array("  [{}]".utf8)) == .json)
        #expect(FormatSniffer.sniff(Array("{\"a\":1}\n{\"a\":2}\n".utf8)) == .jsonl)
        #expect(FormatSniffer.sniff(Array("{\n \"a\": 1\n}".utf8)) == .json)
        #expect(FormatSniffer.sniff(Array("{\"data\": [1]}".utf8)) == .json)
        #expect(FormatSniffer.sniff(Array("question,answer\n".utf8)) == .csv)
    }
}
