import Foundation

/// The file formats ingest reads.
public enum SourceFormat: String, Sendable, CaseIterable {
    case csv, json, jsonl
}

/// One JSON element (or JSONL line) with its position in the decoded text.
public struct JSONItem {
    /// "[12]", "[0][12]" (arrays nested one level), "data[3]" (`{"data": [...]}`), "$" (a lone
    /// top-level object), or "line 17" for JSONL.
    public var locator: String
    /// 0-based running row number within the file.
    public var index: Int
    /// 1-based line where the item starts.
    public var line: Int
    /// Byte range of the item's text in the decoded UTF-8.
    public var range: Range<Int>
    /// The parsed value (Foundation JSON types); nil when `problem` is set.
    public var value: Any?
    /// Nil when the item parsed; else "invalid JSON: …", "truncated: …" or "NUL byte …".
    public var problem: String?
}

/// Reads a JSON document whose records are the elements of its top-level array (also arrays
/// nested one level, `[[{…}], […]]`, and `{"data": [{…}]}`: an object with exactly one member
/// holding an array of objects). A top-level object of any other shape is one record.
///
/// A hand-written scanner finds each element's byte range first, and each element is then parsed
/// on its own, so one broken element is one reject and a truncated file keeps the elements before
/// the cut.
public struct JSONReader {
    public private(set) var items: [JSONItem] = []
    /// The longest element (or JSONL line) parsed (16 MiB, as `CSVReader.maximumFieldBytes`): a
    /// longer one is an item with a "too long" problem, so one hostile element cannot make the
    /// parser build a value many times the size of the file.
    public static let maximumElementBytes = 16 << 20

    /// - Throws: `IngestError(.malformedInput)` when the top level is not an array or an object,
    ///   `IngestError(.emptyFile)` when there is nothing but whitespace.
    public init(utf8: [UInt8]) throws {
        var scanner = JSONScanner(utf8)
        scanner.skipWhitespace()
        guard let first = scanner.peek() else {
            throw IngestError(.emptyFile, "the file holds only whitespace; nothing to ingest")
        }
        switch first {
        case UInt8(ascii: "["):
            readArray(&scanner, prefix: "", nested: true)
        case UInt8(ascii: "{"):
            readObject(&scanner)
        default:
            let kind: String
            switch first {
            case UInt8(ascii: "\""): kind = "a string"
            case UInt8(ascii: "t"), UInt8(ascii: "f"): kind = "a boolean"
            case UInt8(ascii: "n"): kind = "null"
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): kind = "a number"
            default: kind = "not JSON (it starts with byte 0x\(String(first, radix: 16, uppercase: true)))"
            }
            throw IngestError(.malformedInput, "line \(scanner.lineNumber): the top-level value is \(kind); expected an array of objects or an object (use --format csv or jsonl if the file is not a JSON document)")
        }
    }

    private mutating func readArray(_ s: inout JSONScanner, prefix: String, nested: Bool) {
        s.advance() // [
        var k = 0
        while true {
            s.skipWhitespace()
            guard let c = s.peek() else { return } // ends after a complete element: keep what we have
            if c == UInt8(ascii: "]") { s.advance(); return }
            if c == UInt8(ascii: ",") { s.advance(); continue }
            let start = s.position
            let line = s.lineNumber
            if nested && c == UInt8(ascii: "[") {
                readArray(&s, prefix: "\(prefix)[\(k)]", nested: false)
                k += 1
                continue
            }
            guard let end = s.skipValue() else {
                items.append(JSONItem(locator: "\(prefix)[\(k)]", index: items.count, line: line, range: start..<s.count, value: nil,
                                      problem: "truncated: element \(prefix)[\(k)] starting at line \(line) never closes before the end of the file"))
                s.position = s.count
                return
            }
            items.append(Self.parse(s.bytes, start..<end, locator: "\(prefix)[\(k)]", index: items.count, line: line))
            k += 1
            s.skipWhitespace()
            if let next = s.peek(), next != UInt8(ascii: ","), next != UInt8(ascii: "]") {
                // Broken structure between elements: report the rest as one item and stop.
                let line = s.lineNumber
                items.append(JSONItem(locator: "\(prefix)[\(k)]", index: items.count, line: line, range: s.position..<s.count, value: nil,
                                      problem: "invalid JSON: expected ',' or ']' after element \(prefix)[\(k - 1)], found '\(Character(UnicodeScalar(next)))' at line \(line)"))
                s.position = s.count
                return
            }
        }
    }

    private mutating func readObject(_ s: inout JSONScanner) {
        let start = s.position
        let line = s.lineNumber
        // Parse the object whole, then decide whether it holds the records or is one.
        guard let end = s.skipValue() else {
            items.append(JSONItem(locator: "$", index: 0, line: line, range: start..<s.count, value: nil,
                                  problem: "truncated: the top-level object starting at line \(line) never closes before the end of the file"))
            return
        }
        if end - start > Self.maximumElementBytes {
            // Too big to parse whole: find the one member holding an array of objects by scanning.
            let candidates = Self.memberArraysOfObjects(s.bytes, objectStart: start)
            if candidates.count == 1, var inner = Self.scannerAtMember(s.bytes, objectStart: start, key: candidates[0]) {
                readArray(&inner, prefix: candidates[0], nested: false)
                return
            }
            items.append(Self.parse(s.bytes, start..<end, locator: "$", index: 0, line: line))
            return
        }
        let whole = Self.parse(s.bytes, start..<end, locator: "$", index: 0, line: line)
        if let object = whole.value as? [String: Any] {
            let candidates = object.filter { ($0.value as? [Any])?.first is [String: Any] }
            if candidates.count == 1, let key = candidates.first?.key,
               var inner = Self.scannerAtMember(s.bytes, objectStart: start, key: key) {
                readArray(&inner, prefix: key, nested: false)
                return
            }
        }
        items.append(whole)
    }

    /// The keys of the object starting at `objectStart` whose value is an array whose first
    /// element is an object, found by scanning (no value is built but the keys).
    private static func memberArraysOfObjects(_ bytes: [UInt8], objectStart: Int) -> [String] {
        var s = JSONScanner(bytes)
        s.position = objectStart
        s.advance() // {
        var keys: [String] = []
        while true {
            s.skipWhitespace()
            guard let c = s.peek(), c != UInt8(ascii: "}") else { return keys }
            if c == UInt8(ascii: ",") { s.advance(); continue }
            let keyStart = s.position
            guard c == UInt8(ascii: "\""), let keyEnd = s.skipValue(), keyEnd - keyStart <= maximumElementBytes else { return keys }
            let name = (try? JSONSerialization.jsonObject(with: Data(bytes[keyStart..<keyEnd]), options: [.fragmentsAllowed])) as? String
            s.skipWhitespace()
            guard s.peek() == UInt8(ascii: ":") else { return keys }
            s.advance()
            s.skipWhitespace()
            if s.peek() == UInt8(ascii: "[") {
                var inside = s
                inside.advance()
                inside.skipWhitespace()
                if inside.peek() == UInt8(ascii: "{"), let name { keys.append(name) }
            }
            guard s.skipValue() != nil else { return keys }
        }
    }

    /// A scanner positioned at the value of member `key` of the object starting at `objectStart`.
    private static func scannerAtMember(_ bytes: [UInt8], objectStart: Int, key: String) -> JSONScanner? {
        var s = JSONScanner(bytes)
        s.position = objectStart
        s.lineNumber = 1 + bytes[..<objectStart].reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
        s.advance() // {
        while true {
            s.skipWhitespace()
            guard let c = s.peek(), c != UInt8(ascii: "}") else { return nil }
            if c == UInt8(ascii: ",") { s.advance(); continue }
            let keyStart = s.position
            guard let keyEnd = s.skipValue() else { return nil }
            let name = (try? JSONSerialization.jsonObject(with: Data(bytes[keyStart..<keyEnd]), options: [.fragmentsAllowed])) as? String
            s.skipWhitespace()
            guard s.peek() == UInt8(ascii: ":") else { return nil }
            s.advance()
            s.skipWhitespace()
            if name == key { return s }
            guard s.skipValue() != nil else { return nil }
        }
    }

    static func parse(_ bytes: [UInt8], _ range: Range<Int>, locator: String, index: Int, line: Int) -> JSONItem {
        if range.count > maximumElementBytes {
            return JSONItem(locator: locator, index: index, line: line, range: range, value: nil,
                            problem: "too long: the element holds \(range.count) bytes, more than the \(maximumElementBytes >> 20) MiB one record may hold; split it or check for an unbalanced quote or bracket")
        }
        if let nul = bytes[range].firstIndex(of: 0) {
            return JSONItem(locator: locator, index: index, line: line, range: range, value: nil,
                            problem: "NUL byte at offset \(nul - range.lowerBound) of the element")
        }
        do {
            let value = try JSONSerialization.jsonObject(with: Data(bytes[range]), options: [.fragmentsAllowed])
            return JSONItem(locator: locator, index: index, line: line, range: range, value: value, problem: nil)
        } catch {
            return JSONItem(locator: locator, index: index, line: line, range: range, value: nil,
                            problem: "invalid JSON: \(JSONScanner.describe(error))")
        }
    }
}

/// Reads JSON Lines: one value per line. Blank lines are not rows; a line that does not parse is
/// an item with a problem.
public struct JSONLReader: Sequence, IteratorProtocol {
    private let utf8: [UInt8]
    private var position = 0
    private var line = 0
    private var index = 0

    public init(utf8: [UInt8]) {
        self.utf8 = utf8
    }

    /// A reader of one window of a file (`TextStream`) that goes on where the window before
    /// stopped: `lines` lines and `items` items were read before it.
    init(utf8: [UInt8], lines: Int, items: Int) {
        self.utf8 = utf8
        self.line = lines
        self.index = items
    }

    /// Lines and items read so far (in the whole file, for a resumed reader).
    var lines: Int { line }
    var items: Int { index }

    public mutating func next() -> JSONItem? {
        while position < utf8.count {
            line += 1
            let start = position
            var end = start
            utf8.withUnsafeBufferPointer { p in
                while end < p.count && p[end] != 0x0A { end += 1 }
            }
            position = end + 1
            var contentEnd = end
            if contentEnd > start && utf8[contentEnd - 1] == 0x0D { contentEnd -= 1 }
            if utf8[start..<contentEnd].allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            let item = JSONReader.parse(utf8, start..<contentEnd, locator: "line \(line)", index: index, line: line)
            index += 1
            return item
        }
        return nil
    }
}

/// Detects the format of decoded text from its content.
public enum FormatSniffer {
    /// `[` → json; `{` whose first line is a whole JSON value followed by another line starting
    /// with `{` → jsonl; other `{` (one minified object included) → json; anything else → csv.
    /// A first line longer than `JSONReader.maximumElementBytes` is not parsed: a line starting
    /// with `{` after it makes the file jsonl.
    public static func sniff(_ utf8: [UInt8]) -> SourceFormat {
        sniff(utf8, final: true) ?? .csv
    }

    /// `sniff(_:)` of the start of a file (`final` false): nil when the answer may depend on
    /// what follows.
    static func sniff(_ utf8: [UInt8], final: Bool) -> SourceFormat? {
        var i = 0
        while i < utf8.count, [0x20, 0x09, 0x0A, 0x0D].contains(utf8[i]) { i += 1 }
        guard i < utf8.count else { return final ? .csv : nil }
        if utf8[i] == UInt8(ascii: "[") { return .json }
        guard utf8[i] == UInt8(ascii: "{") else { return .csv }
        var end = i
        while end < utf8.count && utf8[end] != 0x0A { end += 1 }
        if end == utf8.count && !final { return nil }
        // A first line too long to be parsed is not parsed: the next line decides alone.
        if end - i <= JSONReader.maximumElementBytes {
            let firstLine = Data(utf8[i..<end])
            guard (try? JSONSerialization.jsonObject(with: firstLine)) != nil else { return .json }
        }
        var j = end
        while j < utf8.count, [0x20, 0x09, 0x0A, 0x0D].contains(utf8[j]) { j += 1 }
        if j == utf8.count && !final { return nil }
        return j < utf8.count && utf8[j] == UInt8(ascii: "{") ? .jsonl : .json
    }
}

/// Finds the ends of JSON values without building them.
struct JSONScanner {
    let bytes: [UInt8]
    var position = 0
    var lineNumber = 1
    var count: Int { bytes.count }

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    func peek() -> UInt8? { position < bytes.count ? bytes[position] : nil }

    mutating func advance() {
        if position < bytes.count && bytes[position] == 0x0A { lineNumber += 1 }
        position += 1
    }

    mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0D: position += 1
            case 0x0A: position += 1; lineNumber += 1
            default: return
            }
        }
    }

    /// Moves past the value starting here and returns its end, or nil when the bytes end first.
    mutating func skipValue() -> Int? {
        bytes.withUnsafeBufferPointer { p -> Int? in
            let n = p.count
            var i = position
            var depth = 0
            var lines = 0
            defer { lineNumber += lines }
            guard i < n else { return nil }
            if p[i] != UInt8(ascii: "{") && p[i] != UInt8(ascii: "[") && p[i] != UInt8(ascii: "\"") {
                // A scalar: up to the next delimiter.
                while i < n, ![UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}"), 0x20, 0x09, 0x0A, 0x0D].contains(p[i]) { i += 1 }
                position = i
                return i
            }
            while i < n {
                let b = p[i]
                switch b {
                case UInt8(ascii: "\""):
                    i += 1
                    while i < n && p[i] != UInt8(ascii: "\"") {
                        if p[i] == UInt8(ascii: "\\") { i += 1 }
                        else if p[i] == 0x0A { lines += 1 }
                        i += 1
                    }
                    guard i < n else { position = n; return nil }
                    i += 1
                    if depth == 0 { position = i; return i }
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { position = i + 1; return i + 1 }
                case 0x0A:
                    lines += 1
                default:
                    break
                }
                i += 1
            }
            position = n
            return nil
        }
    }

    /// A short description of a JSONSerialization error.
    static func describe(_ error: any Error) -> String {
        let ns = error as NSError
        if let debug = ns.userInfo["NSDebugDescription"] as? String { return debug }
        return ns.localizedDescription
    }
}
