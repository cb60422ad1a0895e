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

/// The rows of one decoded file, for each format.
enum RowSource {
    case csv(header: [String], delimiter: UInt8, text: [UInt8])
    case json([JSONItem])
    case jsonl([UInt8])

    static func make(format: SourceFormat, text: DecodedText, path: String, options: IngestOptions) throws -> RowSource {
        switch format {
        case .csv:
            let delimiter = options.delimiter ?? CSVReader.sniffDelimiter(text.utf8)
            var reader = CSVReader(utf8: text.utf8, delimiter: delimiter)
            guard let header = reader.next() else {
                throw IngestError(.emptyFile, "\(path): no rows at all; nothing to ingest")
            }
            if let problem = header.problem {
                throw IngestError(.malformedInput, "\(path): line \(header.line): the header row is malformed (\(problem)); fix the first line of the file")
            }
            let names = header.fields.enumerated().map { i, name -> String in
                let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
                return trimmed.isEmpty ? "column \(i + 1)" : trimmed
            }
            return .csv(header: names, delimiter: delimiter, text: text.utf8)
        case .json:
            do {
                return .json(try JSONReader(utf8: text.utf8).items)
            } catch let error as IngestError {
                throw IngestError(error.code, "\(path): \(error.message)")
            }
        case .jsonl:
            return .jsonl(text.utf8)
        }
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
        switch self {
        case let .csv(header, _, _):
            return header
        case let .json(items):
            return Self.keys(of: items.lazy.compactMap { $0.value as? [String: Any] }.prefix(50))
        case let .jsonl(text):
            return Self.keys(of: JSONLReader(utf8: text).lazy.compactMap { $0.value as? [String: Any] }.prefix(50))
        }
    }

    var emptyDescription: String {
        switch self {
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

    /// Visits every row in file order.
    func forEach(_ body: (InputRow) throws -> Void) throws {
        switch self {
        case let .csv(header, delimiter, text):
            var reader = CSVReader(utf8: text, delimiter: delimiter)
            _ = reader.next() // the header
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
                                  problem: problem, payload: .fields(fields)))
            }
        case let .json(items):
            for item in items {
                try body(InputRow(index: item.index, locator: item.locator, line: item.line, range: item.range,
                                  problem: item.problem.map(Self.jsonProblem), payload: .value(item.value)))
            }
        case let .jsonl(text):
            for item in JSONLReader(utf8: text) {
                try body(InputRow(index: item.index, locator: item.locator, line: item.line, range: item.range,
                                  problem: item.problem.map(Self.jsonProblem), payload: .value(item.value)))
            }
        }
    }

    private static func jsonProblem(_ problem: String) -> RowProblem {
        if problem.hasPrefix("truncated") { return RowProblem(code: "truncated", detail: problem) }
        if problem.hasPrefix("too long") { return RowProblem(code: "too_long", detail: problem) }
        if problem.contains("NUL") { return RowProblem(code: "nul_byte", detail: problem) }
        return RowProblem(code: "invalid_json", detail: problem)
    }
}
