import CorpusDB
import Foundation
@testable import Ingest
import TestSupport
import Testing

/// Ingest reads a CSV or JSONL file in windows (`TextStream`) so that it never holds the whole
/// file. Where the windows fall must change nothing: every file here is prepared with windows of
/// a few bytes to a few KB and compared, row by row and field by field (offsets, lines, hashes,
/// reject details), with the file read as one window.
@Suite("Reading files in windows")
struct WindowTests {
    /// What preparing a file gave: the format, the encoding and every row, or the error.
    enum Outcome: Equatable {
        case rows(SourceFormat, String, [PreparedRow])
        case failed(String)
    }

    static func outcome(_ bytes: [UInt8], window: Int, options: IngestOptions = IngestOptions()) -> Outcome {
        var options = options
        options.windowBytes = window
        var rows: [PreparedRow] = []
        var format: SourceFormat = .csv
        var encoding = ""
        do {
            try Ingestor.prepareAll(bytes, path: "input", options: options) { f, e in
                format = f
                encoding = e.name
            } row: { rows.append($0) }
        } catch let error as IngestError {
            return .failed(error.message)
        } catch {
            return .failed("\(error)")
        }
        return .rows(format, encoding, rows)
    }

    /// Every window size gives what one window of the whole file gives.
    static func expectSameInEveryWindow(_ bytes: [UInt8], _ name: String, options: IngestOptions = IngestOptions(),
                                        windows: [Int] = [1, 2, 3, 5, 16, 61, 256, 4096]) {
        let whole = outcome(bytes, window: Int.max / 4, options: options)
        for window in windows {
            let windowed = outcome(bytes, window: window, options: options)
            if windowed != whole {
                Issue.record("\(name): windows of \(window) bytes differ from the whole file: \(String(describing: windowed).prefix(600)) against \(String(describing: whole).prefix(600))")
                return
            }
        }
    }

    static func files(under folder: String, extensions: Set<String>) -> [URL] {
        let root = TestSupport.packageRoot.appendingPathComponent(folder)
        let names = (FileManager.default.enumerator(atPath: root.path)?.allObjects as? [String]) ?? []
        return names.sorted().map { root.appendingPathComponent($0) }.filter { extensions.contains($0.pathExtension) }
    }

    @Test func theRepositorysFilesReadTheSameInAnyWindows() throws {
        let files = Self.files(under: "fuzz/seeds/csv", extensions: ["csv", "tsv"])
            + Self.files(under: "fuzz/seeds/encoding", extensions: ["csv", "bin"])
            + Self.files(under: "fuzz/seeds/json", extensions: ["json", "jsonl"])
            + Self.files(under: "examples", extensions: ["csv", "jsonl"])
        #expect(files.count == 27)
        var rows = 0
        for file in files {
            let bytes = try [UInt8](Data(contentsOf: file))
            Self.expectSameInEveryWindow(bytes, file.lastPathComponent)
            if case let .rows(_, _, prepared) = Self.outcome(bytes, window: 64) { rows += prepared.count }
        }
        // The rows of the 22 files that ingest without options (the other 5 need --map or
        // --encoding; their errors are compared above): the number the ingest before windows
        // wrote for them, none lost or read twice in windows of 64 bytes.
        #expect(rows == 271)
        // The broken CSV with its mapping, row by row.
        var mapped = IngestOptions()
        mapped.map = "user=q,assistant=a"
        let broken = try [UInt8](Data(contentsOf: TestSupport.packageRoot.appendingPathComponent("fuzz/seeds/csv/broken.csv")))
        Self.expectSameInEveryWindow(broken, "broken.csv", options: mapped)
        guard case let .rows(_, _, brokenRows) = Self.outcome(broken, window: 5, options: mapped) else {
            Issue.record("broken.csv with its mapping failed")
            return
        }
        #expect(brokenRows.count > 3)
    }

    /// The edges a window can cut: quoted fields holding line breaks, doubled quotes, CRLF, blank
    /// lines, a quote never closed (in the middle and at the end), wrong column counts, a NUL, a
    /// BOM, a last line without a line break, undecodable bytes (rejected, or kept with --lossy).
    @Test func csvEdgesReadTheSameInAnyWindows() throws {
        let text = "question,answer,科室\r\n"
            + "\"多行\n问题\",\"回答，带\"\"引号\"\"\r\n第二行\",内科\r\n"
            + "\r\n\n"
            + "简单问题,简单回答,外科\n"
            + "少一列,只有两列\n"
            + "\"未闭合的引号,回答,儿科\n"
            + "之后的问题,之后的回答,儿科\n"
            + "\"引号\"之后有字,回答,内科\n"
            + "含\u{0}字节,回答,内科\n"
            + "最后的问题,最后的回答,妇科"
        let utf8 = Array(text.utf8)
        Self.expectSameInEveryWindow(utf8, "utf8.csv")
        Self.expectSameInEveryWindow([0xEF, 0xBB, 0xBF] + utf8, "utf8-bom.csv")
        Self.expectSameInEveryWindow(Array(utf8.prefix(utf8.count - 3)) + [0xE5], "cut-utf8.csv")
        Self.expectSameInEveryWindow(Array(text.replacingOccurrences(of: "\n", with: "\r").utf8), "cr.csv")
        // A quote that never closes, in the last row: the rest of the file is read to find out.
        Self.expectSameInEveryWindow(Array((text + "\n\"没有闭合,的引号\n还有一行,回答,科\n").utf8), "open-quote.csv")

        // GB18030 with a damaged byte in one row, rejected and with --lossy kept.
        var gb = Self.gb18030(text)
        let damaged = try #require(gb.firstIndex(of: UInt8(ascii: "\n")).map { $0 + 5 })
        gb[damaged] = 0xFF
        Self.expectSameInEveryWindow(gb, "gb18030.csv")
        var lossy = IngestOptions()
        lossy.lossy = true
        Self.expectSameInEveryWindow(gb, "gb18030-lossy.csv", options: lossy)
        guard case let .rows(format, encoding, rows) = Self.outcome(gb, window: 7) else {
            Issue.record("the GB18030 file failed")
            return
        }
        #expect(format == .csv)
        #expect(encoding == "GB18030")
        // A multi-line row, a plain one, one a column short, one whose quote closes three lines
        // down (with text after it), one with a NUL, the last one.
        #expect(rows.count == 6)
    }

    @Test func jsonlAndJSONReadTheSameInAnyWindows() throws {
        var lines = (0..<60).map { #"{"question": "问题\#($0)", "answer": "回答\#($0)", "extra\#($0 % 7)": 1}"# }
        lines[10] = #"{"question": "坏的 JSON""#
        lines[20] = ""
        lines[30] = "   "
        lines[40] = #"[1, 2]"#
        let jsonl = lines.joined(separator: "\r\n")
        Self.expectSameInEveryWindow(Array(jsonl.utf8), "lines.jsonl")
        Self.expectSameInEveryWindow(Array((jsonl + "\n").utf8), "lines-lf.jsonl")
        Self.expectSameInEveryWindow(Self.gb18030(jsonl), "lines-gb18030.jsonl")
        // A JSON array is read whole, whatever the window.
        let array = "[\n" + (0..<20).map { #"  {"question": "问\#($0)", "answer": "答\#($0)"}"# }.joined(separator: ",\n") + "\n]\n"
        Self.expectSameInEveryWindow(Array(array.utf8), "array.json")
        // Only whitespace, in windows or not, is refused the same way.
        #expect(Self.outcome(Array("  \n\n \t\n".utf8), window: 2) == .failed("input: the file holds only whitespace; nothing to ingest"))
    }

    @Test func sharedDataReadsTheSameInWindows() throws {
        for name in ["sharegpt_zh_1k.jsonl", "legal_zixun_1k.json"] {
            guard let path = TestSupport.sharedFile(name) else { continue }
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            Self.expectSameInEveryWindow(bytes, name, windows: [97, 4096, 65_536])
        }
    }

    /// A file that changes between the first pass (its hash) and the reading of its rows fails,
    /// and nothing of it is kept.
    @Test func aFileThatChangesWhileReadFailsAndKeepsNothing() throws {
        let dir = try TestSupport.temporaryDirectory()
        let rows = (0..<400).map { "问题\($0),回答\($0)" }.joined(separator: "\n")
        let path = try TestSupport.write("question,answer\n" + rows + "\n", to: "changing.csv", in: dir)
        let source = try ByteSource(path: path)
        let scan = try FileScan(source)
        // Same length, one character changed near the end.
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 3] = UInt8(ascii: "X")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let encoding = EncodingDetector.detect(prefix: scan.prefix, scan: scan.utf8)
        let stream = TextStream(source: source, encoding: encoding, windowBytes: 512, expectedSHA256: scan.sha256)
        var options = IngestOptions()
        options.windowBytes = 512
        let (_, rowSource, _) = try Ingestor.rows(of: stream, path: path, options: options)
        var seen = 0
        do {
            try rowSource.forEach { _, _ in seen += 1 }
            Issue.record("the changed file was read without an error")
        } catch let error as IngestError {
            #expect(error.code == .unreadableFile)
            #expect(error.message.contains("the file changed while it was being read"))
        }
        #expect(seen == 400)
    }

    /// Through the ingestor: the file changes after the writer took its first batch (the reader
    /// is then at most a few thousand rows ahead of it); the reader's error reaches the writer,
    /// which rolls the file back, and the file ingests whole when run again.
    @Test func aFileChangedDuringIngestIsRolledBack() throws {
        let dir = try TestSupport.temporaryDirectory()
        let rows = (0..<20_000).map { "问题\($0),回答\($0)" }.joined(separator: "\n")
        let path = try TestSupport.write("question,answer\n" + rows + "\n", to: "changing.csv", in: dir)
        let store = try TestSupport.temporaryStore()
        var options = IngestOptions()
        options.windowBytes = 4096
        let ingestor = Ingestor(store: store, options: options)
        nonisolated(unsafe) var changed = false
        ingestor.isCancelled = {
            if !changed, var bytes = try? [UInt8](Data(contentsOf: URL(fileURLWithPath: path))) {
                bytes[bytes.count - 3] = UInt8(ascii: "X")
                try? Data(bytes).write(to: URL(fileURLWithPath: path))
                changed = true
            }
            return false
        }
        do {
            _ = try ingestor.ingest(InputFile(path: path))
            Issue.record("the changed file was ingested")
        } catch let error as IngestError {
            #expect(error.code == .unreadableFile)
            #expect(error.message.contains("the file changed while it was being read"))
        }
        #expect(changed)
        #expect(try store.status() == StoreStatus(schemaVersion: 17, sources: 0, records: 0, rejects: 0))
        let summary = try Ingestor(store: store, options: options).ingest(InputFile(path: path))
        #expect(summary.records == 20_000)
        #expect(try store.status().records == 20_000)
    }

    /// Ingesting through windows of 1 KB writes what one window writes: the same sources'
    /// hashes and sizes, records and rejects, in the same order.
    @Test func ingestInWindowsStoresTheSame() throws {
        let dir = try TestSupport.temporaryDirectory()
        let csv = "question,answer\n" + (0..<500).map { i in
            i % 50 == 7 ? "\"坏\(i),回答\n" : "\"问题\n\(i)\",\"回答\"\"\(i)\"\"\"" }.joined(separator: "\n") + "\n"
        let path = try TestSupport.write(Self.gb18030(csv), to: "windows.csv", in: dir)
        func ingest(window: Int) throws -> ([Record], [Reject], FileSummary) {
            let store = try TestSupport.temporaryStore()
            var options = IngestOptions()
            options.windowBytes = window
            options.encoding = "GB18030"
            let summary = try Ingestor(store: store, options: options).ingest(InputFile(path: path))
            return (try store.records(), try store.rejects(), summary)
        }
        let (records, rejects, summary) = try ingest(window: 1024)
        let (wholeRecords, wholeRejects, wholeSummary) = try ingest(window: 1 << 30)
        #expect(summary.rows == 500)
        #expect(summary.records == wholeSummary.records)
        #expect(summary.sha256 == wholeSummary.sha256)
        #expect(records == wholeRecords)
        #expect(rejects == wholeRejects)
        #expect(records.count + rejects.count == 500)
    }

    /// `text` in GB18030 (glibc's iconv; empty if it has no such converter).
    static func gb18030(_ text: String) -> [UInt8] {
        let converter = iconv_open("GB18030", "UTF-8")
        guard converter != iconv_t(bitPattern: -1) else { return [] }
        defer { iconv_close(converter) }
        var input = Array(text.utf8).map { CChar(bitPattern: $0) }
        var output = [CChar](repeating: 0, count: input.count * 2 + 16)
        let written = input.withUnsafeMutableBufferPointer { inBuffer -> Int in
            output.withUnsafeMutableBufferPointer { outBuffer -> Int in
                var inPointer = inBuffer.baseAddress
                var inLeft = inBuffer.count
                var outPointer = outBuffer.baseAddress
                var outLeft = outBuffer.count
                guard iconv(converter, &inPointer, &inLeft, &outPointer, &outLeft) != -1, inLeft == 0 else { return -1 }
                return outBuffer.count - outLeft
            }
        }
        return written < 0 ? [] : output.prefix(written).map { UInt8(bitPattern: $0) }
    }
}
