/// One CSV row with its position in the decoded text.
public struct CSVRow: Sendable {
    /// 0-based row number in the file; the header is row 0. Blank lines are not rows.
    public var index: Int
    /// 1-based physical line where the row starts.
    public var line: Int
    /// Byte range of the row in the decoded UTF-8 text, without the line terminator.
    public var range: Range<Int>
    /// The fields, unquoted (`""` inside quotes becomes `"`).
    public var fields: [String]
    /// Nil for a well-formed row; otherwise what is wrong, naming the field or line.
    public var problem: String?
    /// The reject reason of `problem`: `nul_byte`, `malformed_row` or `too_long`.
    public var problemCode: String?
}

/// A streaming RFC 4180 reader over UTF-8 bytes, written by hand (instead of a CSV package)
/// because ingest must report physical line numbers and byte offsets and recover from broken rows.
///
/// - Quoted fields may hold delimiters, doubled quotes and line breaks (LF, CRLF or CR).
/// - Rows end at LF, CRLF or a lone CR; a final line break does not make an empty row, and empty
///   lines are skipped (they are not rows).
/// - A quote inside an unquoted field is kept as text (lenient, as Python's csv module is).
/// - Text after a closing quote (`"abc"def`) is kept but makes the row a problem.
/// - An unterminated quote must not swallow the rest of the file: the row is reported as a problem
///   ending at the end of the line where the quote opened, and reading resumes on the next line.
/// - A NUL byte in a field makes the row a problem.
/// - A field longer than `maximumFieldBytes` makes the row a problem and is not copied (its
///   text is left empty), so a hostile file costs no more memory than its own bytes.
public struct CSVReader: Sequence, IteratorProtocol {
    /// The longest field read (16 MiB): no question or answer comes near it.
    public static let maximumFieldBytes = 16 << 20

    private let utf8: [UInt8]
    private let delimiter: UInt8
    private var position = 0
    private var line = 1
    private var index = 0

    /// False for a window of a file that goes on after it (`TextStream`): a row that reaches the
    /// window's end may go on past it, and `next()` leaves it unread (see `stoppedAtEnd`).
    private let final: Bool
    /// Set when `next()` returned nil because the row ahead reaches the end of a window that is
    /// not `final`: it is read again, whole, from the next window (at `resume`).
    public private(set) var stoppedAtEnd = false

    public init(utf8: [UInt8], delimiter: UInt8 = UInt8(ascii: ",")) {
        self.init(utf8: utf8, delimiter: delimiter, resume: .start, final: true)
    }

    /// A reader of one window of a file that goes on where the window before stopped.
    init(utf8: [UInt8], delimiter: UInt8, resume: Resume, final: Bool) {
        self.utf8 = utf8
        self.delimiter = delimiter
        self.final = final
        self.position = resume.position
        self.line = resume.line
        self.index = resume.index
    }

    /// Where a reader stands: the next byte to read, its physical line, the next row's number.
    struct Resume: Equatable {
        var position: Int
        var line: Int
        var index: Int

        /// The start of a file.
        static let start = Resume(position: 0, line: 1, index: 0)
    }

    var resume: Resume { Resume(position: position, line: line, index: index) }

    /// The most frequent of `,` `\t` `;` `|` on the first line outside quotes (`,` when none).
    public static func sniffDelimiter(_ utf8: [UInt8]) -> UInt8 {
        sniffDelimiter(utf8, final: true) ?? 0x2C
    }

    /// `sniffDelimiter(_:)` of the start of a file (`final` false): nil when the first line
    /// may go on past `utf8`.
    static func sniffDelimiter(_ utf8: [UInt8], final: Bool) -> UInt8? {
        let candidates: [UInt8] = [0x2C, 0x09, 0x3B, 0x7C]
        var counts = [Int](repeating: 0, count: candidates.count)
        var quoted = false
        var ended = false
        for byte in utf8 {
            if byte == 0x22 { quoted.toggle(); continue }
            if quoted { continue }
            if byte == 0x0A || byte == 0x0D { ended = true; break }
            if let k = candidates.firstIndex(of: byte) { counts[k] += 1 }
        }
        if !ended && !final { return nil }
        guard let best = counts.indices.max(by: { counts[$0] < counts[$1] }), counts[best] > 0 else { return 0x2C }
        return candidates[best]
    }

    public mutating func next() -> CSVRow? {
        guard !stoppedAtEnd else { return nil }
        let before = resume
        guard let row = read() else { return nil }
        if !final && reachedEnd {
            // The row may go on in the next window: leave it (and any blank lines before it) unread.
            position = before.position
            line = before.line
            index = before.index
            stoppedAtEnd = true
            return nil
        }
        return row
    }

    /// Whether the last `read()` looked at the end of the bytes (its row may be cut there).
    private var reachedEnd = false

    private mutating func read() -> CSVRow? {
        reachedEnd = false
        return utf8.withUnsafeBufferPointer { p -> CSVRow? in
            let n = p.count
            // Skip empty lines.
            while position < n && (p[position] == 0x0A || p[position] == 0x0D) {
                if p[position] == 0x0D && position + 1 < n && p[position + 1] == 0x0A { position += 1 }
                position += 1
                line += 1
            }
            guard position < n else { return nil }
            let start = position
            let startLine = line
            var fields: [String] = []
            var problem: String?
            var code: String?
            func report(_ what: String, _ kind: String) {
                if problem == nil { problem = what; code = kind }
            }
            func tooLong(_ field: Int, _ bytes: Int) {
                report("field \(field) holds \(bytes) bytes, more than the \(Self.maximumFieldBytes >> 20) MiB a field may hold; split the text or check for an unbalanced quote", "too_long")
            }
            var i = position
            var rowEnd = n
            var finished = false
            while !finished {
                let fieldNumber = fields.count + 1
                if i < n && p[i] == 0x22 {
                    // A quoted field.
                    let quoteLine = line
                    var j = i + 1
                    var bytes: [UInt8] = []
                    var chunkStart = j
                    var closed = false
                    while j < n {
                        let b = p[j]
                        if b == 0x22 {
                            if j + 1 < n && p[j + 1] == 0x22 {
                                if j - (i + 1) < Self.maximumFieldBytes { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: p[chunkStart...j])) }
                                j += 2
                                chunkStart = j
                                continue
                            }
                            closed = true
                            break
                        }
                        if b == 0x0A || (b == 0x0D && !(j + 1 < n && p[j + 1] == 0x0A)) { line += 1 }
                        if b == 0 { report("NUL byte in field \(fieldNumber)", "nul_byte") }
                        j += 1
                    }
                    if !closed {
                        reachedEnd = true
                        // Unterminated: end the row at the end of the line where the quote opened.
                        line = quoteLine
                        var k = i
                        while k < n && p[k] != 0x0A && p[k] != 0x0D { k += 1 }
                        let text = k - (i + 1) <= Self.maximumFieldBytes ? UnsafeBufferPointer(rebasing: p[(i + 1)..<k]) : UnsafeBufferPointer(rebasing: p[i..<i])
                        fields.append(String(decoding: text, as: UTF8.self))
                        problem = "unterminated quoted field \(fieldNumber) starting at line \(quoteLine)"
                        code = "malformed_row"
                        rowEnd = k
                        i = k
                        finished = true
                        break
                    }
                    let quotedEnd = j
                    if j - (i + 1) <= Self.maximumFieldBytes { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: p[chunkStart..<j])) }
                    let opening = i
                    i = j + 1
                    // After the closing quote: a delimiter, a line break or the end.
                    if i < n && p[i] != delimiter && p[i] != 0x0A && p[i] != 0x0D {
                        var k = i
                        while k < n && p[k] != delimiter && p[k] != 0x0A && p[k] != 0x0D { k += 1 }
                        if k - (opening + 1) <= Self.maximumFieldBytes { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: p[i..<k])) }
                        report("text after the closing quote of field \(fieldNumber)", "malformed_row")
                        i = k
                    }
                    if i - (opening + 1) > Self.maximumFieldBytes || quotedEnd - (opening + 1) > Self.maximumFieldBytes {
                        tooLong(fieldNumber, i - opening)
                        bytes = []
                    }
                    fields.append(String(decoding: bytes, as: UTF8.self))
                } else {
                    var j = i
                    while j < n {
                        let b = p[j]
                        if b == delimiter || b == 0x0A || b == 0x0D { break }
                        if b == 0 { report("NUL byte in field \(fieldNumber)", "nul_byte") }
                        j += 1
                    }
                    if j - i > Self.maximumFieldBytes {
                        tooLong(fieldNumber, j - i)
                        fields.append("")
                    } else {
                        fields.append(String(decoding: UnsafeBufferPointer(rebasing: p[i..<j]), as: UTF8.self))
                    }
                    i = j
                }
                if i < n && p[i] == delimiter {
                    i += 1
                    continue
                }
                rowEnd = i
                finished = true
            }
            if rowEnd == n { reachedEnd = true }
            // Consume the line terminator.
            if rowEnd < n {
                if p[rowEnd] == 0x0D && rowEnd + 1 < n && p[rowEnd + 1] == 0x0A { position = rowEnd + 2 } else { position = rowEnd + 1 }
                line += 1
            } else {
                position = n
            }
            let row = CSVRow(index: index, line: startLine, range: start..<rowEnd, fields: fields, problem: problem, problemCode: code)
            index += 1
            return row
        }
    }
}
