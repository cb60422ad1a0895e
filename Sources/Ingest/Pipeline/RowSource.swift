import CorpusDB
import Foundation

/// Why a row could not even be read (before mapping): becomes a reject.
struct RowProblem {
    var code: String
    var detail: String
}

/// One input row, whatever the format, with its position in the decoded text.
struct InputRow {
    enum Payload {
        case fields([String: String])
        case value(Any?)
    }

    var index: Int
    var locator: String
    var line: Int
    /// Byte range in the decoded UTF-8 text.
    var range: Range<Int>
    var problem: RowProblem?
    var payload: Payload

    func map(_ mapper: FieldMapper, text: [UInt8]) -> Result<MappedRow, RejectReason> {
        switch payload {
        case let .fields(fields):
            return mapper.map(fields: fields)
        case let .value(value):
            guard let object = value as? [String: Any] else {
                return .failure(RejectReason(code: "not_an_object",
                    detail: "the element is \(Self.kind(of: value)), expected an object with question and answer fields"))
            }
            return mapper.map(object: object, originalText: String(decoding: text[range], as: UTF8.self))
        }
    }

    static func kind(of value: Any?) -> String {
        switch value {
        case nil, is NSNull: return "null"
        case is String: return "a string"
        case is [Any]: return "an array"
        case is NSNumber: return "a number or boolean"
        default: return "not an object"
        }
    }
}

/// The rows of one file, for each format, read window by window from its `TextStream`.
final class RowSource {
    enum Kind {
        case csv(header: [String], delimiter: UInt8)
        case json([JSONItem])
        case jsonl
    }

    let kind: Kind
    let stream: TextStream
    /// The window the format was sniffed (and the header read) in.
    /// Until `forEach` starts; it then holds the windows itself, one at a time.
    private var first: TextWindow?
    /// Where the rows begin in `first` (after a CSV's header).
    let resume: CSVReader.Resume

    init(kind: Kind, stream: TextStream, first: TextWindow, resume: CSVReader.Resume) {
        self.kind = kind
        self.stream = stream
        self.first = first
        self.resume = resume
    }

    /// Reads the file's first window, sniffs its format (unless forced) and reads what comes
    /// before the rows (a CSV's header; a JSON array whole).
    /// - Throws: `IngestError` when the file is blank or its structure rules out every row.
    static func make(stream: TextStream, path: String, options: IngestOptions) throws -> (SourceFormat, RowSource) {
        var first = try stream.window(at: 0)
        // The first window must hold what the format, the delimiter and the mapping are told
        // from (text at all, two lines, the header, 50 JSONL objects): with 16 MiB windows it
        // always does but for giant lines; otherwise a longer first window is read.
        func longer() throws {
            first = try stream.window(at: 0, longerThan: first.end)
        }
        while first.text.utf8.allSatisfy(Self.isBlank) {
            if first.final {
                throw IngestError(.emptyFile, "\(path): the file holds only whitespace; nothing to ingest")
            }
            try longer()
        }
        var sniffed = options.format ?? FormatSniffer.sniff(first.text.utf8, final: first.final)
        while sniffed == nil {
            try longer()
            sniffed = FormatSniffer.sniff(first.text.utf8, final: first.final)
        }
        let format = sniffed ?? .csv
        switch format {
        case .csv:
            while true {
                guard let delimiter = options.delimiter ?? CSVReader.sniffDelimiter(first.text.utf8, final: first.final) else {
                    try longer()
                    continue
                }
                var reader = CSVReader(utf8: first.text.utf8, delimiter: delimiter, resume: .start, final: first.final)
                guard let header = reader.next() else {
                    if reader.stoppedAtEnd {
                        try longer()
                        continue
                    }
                    throw IngestError(.emptyFile, "\(path): no rows at all; nothing to ingest")
                }
                if let problem = header.problem {
                    throw IngestError(.malformedInput, "\(path): line \(header.line): the header row is malformed (\(problem)); fix the first line of the file")
                }
                let names = header.fields.enumerated().map { i, name -> String in
                    let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
                    return trimmed.isEmpty ? "column \(i + 1)" : trimmed
                }
                return (format, RowSource(kind: .csv(header: names, delimiter: delimiter), stream: stream, first: first, resume: reader.resume))
            }
        case .json:
            if !first.final {
                stream.readWhole()
                first = try stream.window(at: 0)
            }
            do {
                let items = try JSONReader(utf8: first.text.utf8).items
                return (format, RowSource(kind: .json(items), stream: stream, first: first, resume: .start))
            } catch let error as IngestError {
                throw IngestError(error.code, "\(path): \(error.message)")
            }
        case .jsonl:
            while !first.final && JSONLReader(utf8: first.text.utf8).lazy.compactMap({ $0.value as? [String: Any] }).prefix(50).count < 50 {
                try longer()
            }
            return (format, RowSource(kind: .jsonl, stream: stream, first: first, resume: .start))
        }
    }

    private static func isBlank(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }

    /// The explicit `--map`, or the mapping inferred from the header or the first objects' keys.
    func mapper(options: IngestOptions, path: String) throws -> FieldMapper {
        let keys = self.keys
        if let spec = options.map {
            return try FieldMapper(spec: spec, availableKeys: keys)
        }
        if let mapper = FieldMapper.infer(keys: keys) { return mapper }
        throw IngestError(.noMapping, FieldMapper.noMappingMessage(file: path, keys: keys))
    }

    /// Column names, or the keys of the first objects (in order of first appearance).
    var keys: [String] {
        switch kind {
        case let .csv(header, _):
            return header
        case let .json(items):
            return Self.keys(of: items.lazy.compactMap { $0.value as? [String: Any] }.prefix(50))
        case .jsonl:
            // The first 50 objects (the first window holds them).
            return Self.keys(of: JSONLReader(utf8: first?.text.utf8 ?? []).lazy.compactMap { $0.value as? [String: Any] }.prefix(50))
        }
    }

    var emptyDescription: String {
        switch kind {
        case .csv: return "the CSV has a header and no data rows"
        case .json: return "the JSON array is empty"
        case .jsonl: return "no non-blank lines"
        }
    }

    private static func keys<S: Sequence>(of objects: S) -> [String] where S.Element == [String: Any] {
        var seen = Set<String>()
        var out: [String] = []
        for object in objects {
            for key in object.keys.sorted() where seen.insert(key).inserted { out.append(key) }
        }
        return out
    }

    /// Visits every row in file order, with the window of text it lies in (its ranges are the
    /// window's), then checks that the bytes read are the bytes hashed. Once only: the first
    /// window is let go as soon as the second is read, so at most one window is held.
    func forEach(_ body: (InputRow, DecodedText) throws -> Void) throws {
        // The first window is taken out of `first` into `next`, which lets it go when the
        // second is asked for: no other binding holds it. Each window is a local of one turn of
        // the loop, freed before the next is read.
        guard var next = first.map(Next.window) else { return }
        first = nil
        var lines = 0, items = 0
        var resume = self.resume
        func read(_ next: Next) throws -> TextWindow {
            switch next {
            case let .window(window): return window
            case let .at(start, longerThan): return try stream.window(at: start, longerThan: longerThan)
            }
        }
        switch kind {
        case let .csv(header, delimiter):
            while true {
                let window = try read(next)
                var reader = CSVReader(utf8: window.text.utf8, delimiter: delimiter, resume: resume, final: window.final)
                while let row = reader.next() {
                    var problem: RowProblem?
                    var fields: [String: String] = [:]
                    if let p = row.problem {
                        problem = RowProblem(code: row.problemCode ?? "malformed_row", detail: p)
                    } else if row.fields.count != header.count {
                        problem = RowProblem(code: "wrong_column_count",
                            detail: "the row has \(row.fields.count) fields, the header has \(header.count); check for an unquoted delimiter or a missing field")
                    } else {
                        for (name, value) in zip(header, row.fields) where fields[name] == nil { fields[name] = value }
                    }
                    try body(InputRow(index: row.index, locator: "row \(row.index)", line: row.line, range: row.range,
                                      problem: problem, payload: .fields(fields)), window.text)
                }
                if window.final { break }
                let stop = reader.resume
                if reader.stoppedAtEnd && stop.position == resume.position {
                    // Not one whole row fits: read a longer window from the same place (the same
                    // text up to its old end, so `resume` still holds).
                    next = .at(window.start, longerThan: window.end)
                } else {
                    next = .at(windowStart(window, stop), longerThan: nil)
                    resume = CSVReader.Resume(position: 0, line: stop.line, index: stop.index)
                }
            }
        case let .json(items):
            // One window, the whole file.
            let whole = try read(next)
            for item in items {
                try body(InputRow(index: item.index, locator: item.locator, line: item.line, range: item.range,
                                  problem: item.problem.map(Self.jsonProblem), payload: .value(item.value)), whole.text)
            }
        case .jsonl:
            while true {
                let window = try read(next)
                // A window ends after a line feed: every line in it is whole.
                var reader = JSONLReader(utf8: window.text.utf8, lines: lines, items: items)
                while let item = reader.next() {
                    try body(InputRow(index: item.index, locator: item.locator, line: item.line, range: item.range,
                                      problem: item.problem.map(Self.jsonProblem), payload: .value(item.value)), window.text)
                }
                if window.final { break }
                lines = reader.lines
                items = reader.items
                next = .at(window.end, longerThan: nil)
            }
        }
        try stream.verifyHash()
    }

    /// The window `forEach` reads next: the first one (already read), or one starting at a file
    /// offset.
    private enum Next {
        case window(TextWindow)
        case at(Int, longerThan: Int?)
    }

    /// The file offset where the next window starts: where the reader stopped in `window`.
    private func windowStart(_ window: TextWindow, _ stop: CSVReader.Resume) -> Int {
        stop.position >= window.text.utf8.count ? window.end : window.text.originalOffset(ofUTF8Offset: stop.position)
    }

    private static func jsonProblem(_ problem: String) -> RowProblem {
        if problem.hasPrefix("truncated") { return RowProblem(code: "truncated", detail: problem) }
        if problem.hasPrefix("too long") { return RowProblem(code: "too_long", detail: problem) }
        if problem.contains("NUL") { return RowProblem(code: "nul_byte", detail: problem) }
        return RowProblem(code: "invalid_json", detail: problem)
    }
}
