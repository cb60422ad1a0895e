import CorpusDB
import Foundation
import TestSupport
import Testing

/// The bad-input corpus: each file gets a clear message or rejects with reasons, a documented
/// exit code, an intact store, and nothing half-imported.
@Suite("corpus binary on bad input")
struct BadInputTests {
    struct Fixture {
        let db: String
        let dir: URL

        init() throws {
            dir = try TestSupport.temporaryDirectory("corpus-bad")
            db = dir.appendingPathComponent("corpus.db").path
            _ = try TestSupport.run(["init", "--db", db])
        }

        func ingest(_ path: String, _ extra: [String] = []) throws -> CommandResult {
            try TestSupport.run(["ingest", "--db", db] + extra + [path])
        }

        func status() throws -> StoreStatus {
            try CorpusStore(path: db).status()
        }

        func rejects() throws -> [Reject] { try CorpusStore(path: db).rejects() }

        func expectIntact() throws {
            #expect(try CorpusStore(path: db).integrityProblems().isEmpty)
        }

        /// A failed file: exit 3, the message contains `text`, and nothing was written.
        func expectFailure(_ path: String, _ text: String, _ extra: [String] = []) throws {
            let result = try ingest(path, extra)
            #expect(result.status == 3, "\(path): \(result.stderr)")
            #expect(result.stderr.contains(text), "\(result.stderr)")
            #expect(result.stderr.contains(path), "the message names the file: \(result.stderr)")
            let status = try status()
            #expect(status.sources == 0 && status.records == 0 && status.rejects == 0)
            try expectIntact()
        }
    }

    @Test func emptyFile() throws {
        let f = try Fixture()
        try f.expectFailure(TestSupport.write([], to: "empty.csv", in: f.dir), "empty")
    }

    @Test func whitespaceOnlyFile() throws {
        let f = try Fixture()
        try f.expectFailure(TestSupport.write(" \n\n  \r\n", to: "blank.jsonl", in: f.dir), "only whitespace")
    }

    @Test func headerOnlyCSV() throws {
        let f = try Fixture()
        try f.expectFailure(TestSupport.write("question,answer\r\n", to: "header.csv", in: f.dir), "no data rows")
    }

    @Test func binaryFile() throws {
        let f = try Fixture()
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        png += (0..<2000).map { UInt8(truncatingIfNeeded: $0 &* 37) }
        try f.expectFailure(TestSupport.write(png, to: "picture.csv", in: f.dir), "binary file (PNG image)")
        let noise = (0..<4096).map { UInt8(truncatingIfNeeded: ($0 &* 7919) % 31) }
        try f.expectFailure(TestSupport.write(noise, to: "noise.json", in: f.dir), "binary file")
    }

    @Test func jsonTopLevelNotArrayOrObject() throws {
        let f = try Fixture()
        try f.expectFailure(TestSupport.write("42\n", to: "number.json", in: f.dir), "expected an array", ["--format", "json"])
    }

    @Test func noMappingListsKeysAndExample() throws {
        let f = try Fixture()
        let path = try TestSupport.write(#"[{"foo": "a", "bar": "b"}]"#, to: "odd.json", in: f.dir)
        try f.expectFailure(path, "--map")
        let result = try f.ingest(path)
        #expect(result.stderr.contains("foo") && result.stderr.contains("bar"))
    }

    @Test func directoryWithNoReadableFiles() throws {
        let f = try Fixture()
        let dir = f.dir.appendingPathComponent("nothing")
        try TestSupport.write("not data", to: "readme.md", in: dir)
        try f.expectFailure(dir.path, "no readable")
    }

    @Test func missingPath() throws {
        let f = try Fixture()
        try f.expectFailure(f.dir.appendingPathComponent("nope.csv").path, "no such file")
    }

    @Test func truncatedJSONKeepsCompleteElements() throws {
        let f = try Fixture()
        let path = try TestSupport.write(#"[{"question": "a?", "answer": "b"}, {"question": "c?", "answer": "d"}, {"question": "e?", "ans"#,
                                         to: "cut.json", in: f.dir)
        let result = try f.ingest(path)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try f.status() == StoreStatus(schemaVersion: 17, sources: 1, records: 2, rejects: 1))
        let reject = try #require(try f.rejects().first)
        #expect(reject.reason == "truncated")
        #expect(reject.byteOffset == 71)
        try f.expectIntact()
    }

    @Test func invalidUTF8ByteInOneLine() throws {
        let f = try Fixture()
        var bytes = Array(#"{"question": "头痛怎么办", "answer": "多休息"}"#.utf8) + [0x0A]
        let second = Array(#"{"question": "咳嗽", "answer": "多喝水"#.utf8) + [0xFF] + Array(#""}"#.utf8) + [0x0A]
        bytes += second
        bytes += Array(#"{"question": "发烧", "answer": "量体温"}"#.utf8) + [0x0A]
        let path = try TestSupport.write(bytes, to: "bad-utf8.jsonl", in: f.dir)
        let result = try f.ingest(path)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try f.status().records == 2)
        let reject = try #require(try f.rejects().first)
        #expect(reject.reason == "undecodable_bytes")
        #expect(reject.line == 2)
        let firstLineLength = Array(#"{"question": "头痛怎么办", "answer": "多休息"}"#.utf8).count + 1
        #expect(reject.byteOffset == Int64(firstLineLength))
        #expect(reject.detail.contains("0xFF at byte offset \(firstLineLength + second.count - 4)"))
    }

    @Test func nulByteInAField() throws {
        let f = try Fixture()
        let bytes = Array("question,answer\n胸痛,及时就医\n腹痛,".utf8) + [0x00] + Array("观察\n头晕,休息\n".utf8)
        let result = try f.ingest(TestSupport.write(bytes, to: "nul.csv", in: f.dir))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try f.status().records == 2)
        #expect(try f.rejects().map(\.reason) == ["nul_byte"])
        #expect(try f.rejects().first?.locator == "row 2")
    }

    @Test func raggedRowsAndUnterminatedQuote() throws {
        let f = try Fixture()
        let csv = "question,answer\n一,答一\n二,答二,多余\n\"三,答三\n四,答四\n"
        let result = try f.ingest(TestSupport.write(csv, to: "ragged.csv", in: f.dir))
        #expect(result.status == 0, "\(result.stderr)")
        let rejects = try f.rejects()
        #expect(rejects.map(\.reason) == ["wrong_column_count", "malformed_row"])
        #expect(rejects.map(\.line) == [3, 4])
        let records = try CorpusStore(path: f.db).records()
        #expect(try records.map { try $0.decodedConversation().messages[0].content } == ["一", "四"])
        #expect(try f.status().rejects == 2)
    }

    @Test func tenMegabyteField() throws {
        let f = try Fixture()
        let answer = String(repeating: "很长的回答。", count: 10 * 1024 * 1024 / 18 + 1)
        let result = try f.ingest(TestSupport.write("question,answer\n长吗,\"\(answer)\"\n", to: "big-field.csv", in: f.dir))
        #expect(result.status == 0, "\(result.stderr)")
        let record = try #require(try CorpusStore(path: f.db).records().first)
        #expect(try record.decodedConversation().messages[1].content == answer)
    }

    @Test func utf16WithoutBOM() throws {
        let f = try Fixture()
        let text = "question,answer\n失眠怎么办,睡前少看手机。\n"
        var bytes: [UInt8] = []
        for unit in text.utf16 { bytes += [UInt8(unit & 0xFF), UInt8(unit >> 8)] }
        let result = try f.ingest(TestSupport.write(bytes, to: "utf16.csv", in: f.dir))
        #expect(result.status == 0, "\(result.stderr)")
        let source = try #require(try CorpusStore(path: f.db).allSources().first)
        #expect(source.encoding == "UTF-16LE")
        let record = try #require(try CorpusStore(path: f.db).records().first)
        #expect(record.byteOffset == 32)
        #expect(try record.decodedConversation().messages.map(\.content) == ["失眠怎么办", "睡前少看手机。"])
    }

    @Test func oneBadFileDoesNotStopTheOthers() throws {
        let f = try Fixture()
        let good = try TestSupport.write("question,answer\n问,答\n", to: "good.csv", in: f.dir)
        let bad = try TestSupport.write([], to: "bad.csv", in: f.dir)
        let result = try TestSupport.run(["ingest", "--db", f.db, bad, good])
        #expect(result.status == 3)
        #expect(try f.status().records == 1)
    }
}

@Suite("Interrupting corpus ingest")
struct InterruptTests {
    @Test func ctrlCRollsTheFileBack() throws {
        let dir = try TestSupport.temporaryDirectory("corpus-interrupt")
        let db = dir.appendingPathComponent("corpus.db").path
        _ = try TestSupport.run(["init", "--db", db])
        // Big enough that the ingest is still running when the signal arrives.
        var text = ""
        for i in 0..<300_000 { text += #"{"question": "第\#(i)个问题：头痛怎么办？", "answer": "第\#(i)个回答：多休息，必要时就医。"}"# + "\n" }
        let path = try TestSupport.write(text, to: "big.jsonl", in: dir)
        let process = Process()
        process.executableURL = TestSupport.corpusBinary
        process.arguments = ["ingest", "--db", db, path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        Thread.sleep(forTimeInterval: 1.0)
        let stillRunning = process.isRunning
        process.interrupt() // SIGINT, as Ctrl-C sends
        process.waitUntilExit()
        let status = try CorpusStore(path: db).status()
        #expect(try CorpusStore(path: db).integrityProblems().isEmpty)
        if stillRunning {
            #expect(process.terminationStatus == 130)
            #expect(status.sources == 0 && status.records == 0 && status.rejects == 0)
        } else {
            // The machine was fast enough to finish first: then the file is there whole.
            #expect(status.records == 300_000)
        }
    }
}

/// `corpus bench` with out-of-range numbers: a usage error (exit 64) naming the option and the
/// allowed range, reported by `validate()` before any model is loaded (the model path does not
/// exist, so reaching the loader would exit 3 instead).
extension BadInputTests {
    static let missingModel = "/nonexistent/corpus-bench-model.gguf"

    @Test(arguments: [
        (["--prompt", "0"], "--prompt 0 is out of range: give 1 to 131072 tokens"),
        (["--prompt=-1"], "--prompt -1 is out of range: give 1 to 131072 tokens"),
        (["--prompt", "200000"], "--prompt 200000 is out of range: give 1 to 131072 tokens"),
        (["--generate", "0"], "--generate 0 is out of range: give 1 to 131072 tokens"),
        (["--generate=-5"], "--generate -5 is out of range: give 1 to 131072 tokens"),
        (["--repeats", "0"], "--repeats 0 is out of range: give 1 to 100 repetitions"),
        (["--batch=-1"], "--batch -1 is out of range: give 0 to 256 sequences"),
        (["--batch", "100000"], "--batch 100000 is out of range: give 0 to 256 sequences"),
    ])
    func benchRejectsOutOfRangeNumbers(_ options: [String], _ message: String) throws {
        let result = try TestSupport.run(["bench", "--model", Self.missingModel] + options)
        #expect(result.status == 64, "\(options): \(result.stderr)")
        #expect(result.stderr.contains(message), "\(result.stderr)")
        #expect(!result.stderr.contains(Self.missingModel), "validation comes before the model is looked at: \(result.stderr)")
    }

    /// Written with a space, `-1` looks like an option to the parser: still a usage error.
    @Test func benchNegativeNumberAfterASpaceIsAUsageError() throws {
        let result = try TestSupport.run(["bench", "--model", Self.missingModel, "--prompt", "-1"])
        #expect(result.status == 64, "\(result.stderr)")
        #expect(result.stderr.contains("--prompt"), "\(result.stderr)")
    }

    @Test func benchWithValidNumbersReachesTheModel() throws {
        let result = try TestSupport.run(["bench", "--model", Self.missingModel, "--prompt", "1", "--generate", "1", "--repeats", "1", "--batch", "0"])
        #expect(result.status == 3, "\(result.stderr)")
        #expect(result.stderr.contains(Self.missingModel))
    }
}
