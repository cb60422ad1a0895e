import Foundation
import Ingest

/// The ingest readers: CSV, JSON and JSONL with the field mapper, and encoding detection and
/// transcoding.
enum IngestTargets {
    static let csv = FuzzTarget(name: "csv", summary: "CSVReader (delimiter sniffing, rows, lines, byte ranges) and ingest of the bytes as CSV up to the store") { bytes in
        let delimiter = CSVReader.sniffDelimiter(bytes)
        var reader = CSVReader(utf8: bytes, delimiter: delimiter)
        var end = 0, line = 0, index = 0
        while let row = reader.next() {
            FuzzCheck.require(row.index == index, "row \(row.index) after \(index - 1) rows")
            FuzzCheck.require(row.line >= line, "row \(row.index) starts at line \(row.line), before line \(line)")
            FuzzCheck.require(row.range.lowerBound >= end && row.range.upperBound <= bytes.count, "row \(row.index) range \(row.range) (previous end \(end), \(bytes.count) bytes)")
            FuzzCheck.require(!row.fields.isEmpty, "row \(row.index) has no field")
            end = row.range.upperBound
            line = row.line
            index += 1
        }
        var options = IngestOptions()
        options.format = .csv
        dryRun(bytes, options)
    }

    static let json = FuzzTarget(name: "json", summary: "JSONReader, JSONLReader, FormatSniffer and the field mapper (alpaca, sharegpt, messages, columns, preference pairs), as ingest runs them") { bytes in
        _ = FormatSniffer.sniff(bytes)
        if let reader = try? JSONReader(utf8: bytes) {
            var previous = -1
            for item in reader.items {
                FuzzCheck.require(item.index == previous + 1, "item \(item.locator) has index \(item.index) after \(previous)")
                FuzzCheck.require(item.range.lowerBound >= 0 && item.range.upperBound <= bytes.count && !item.range.isEmpty || item.problem != nil,
                                  "item \(item.locator) range \(item.range) of \(bytes.count) bytes")
                FuzzCheck.require((item.value == nil) == (item.problem != nil), "item \(item.locator): value and problem disagree")
                previous = item.index
            }
        }
        for item in JSONLReader(utf8: bytes) {
            FuzzCheck.require(item.range.upperBound <= bytes.count, "line item \(item.locator) range \(item.range) of \(bytes.count) bytes")
        }
        for format in [SourceFormat.json, .jsonl] {
            var options = IngestOptions()
            options.format = format
            dryRun(bytes, options)
        }
    }

    /// The encodings a forced `--encoding` run tries, the first input byte choosing one.
    static let encodings = ["GB18030", "Big5", "Shift_JIS", "UTF-16LE", "UTF-16BE", "ISO-8859-1", "UTF-8", "EUC-KR", "ISO-2022-JP", "windows-1252", "UTF-32LE"]

    static let encoding = FuzzTarget(name: "encoding", summary: "EncodingDetector (BOM, UTF-16 without BOM, UTF-8 scan, ICU ucsdet) and Transcoder (strict UTF-8, ICU conversion, invalid spans, offsets back into the file)") { bytes in
        let detected = EncodingDetector.detect(bytes)
        check(bytes, detected)
        guard let first = bytes.first else { return }
        let rest = Array(bytes.dropFirst())
        if let forced = try? EncodingDetector.forced(encodings[Int(first) % encodings.count], bytes: rest) {
            check(rest, forced)
        }
    }

    /// Decodes `bytes` and checks the text and the offsets it maps back to.
    static func check(_ bytes: [UInt8], _ encoding: DetectedEncoding) {
        guard let text = try? Transcoder.decode(bytes, as: encoding) else { return }
        FuzzCheck.require(String(validating: text.utf8, as: UTF8.self) != nil, "decoding as \(encoding.name) gave invalid UTF-8")
        // Big files reach ICU in pieces ending after a line feed (it takes less than 2 GiB a
        // call): small pieces must give the same text and invalid spans.
        if encoding.name != "UTF-8" {
            let chunk = 1 + bytes.count % 13
            let pieces = try? Transcoder.decode(bytes, as: encoding, chunk: chunk)
            FuzzCheck.require(pieces?.utf8 == text.utf8 && pieces?.invalidSpans == text.invalidSpans,
                              "\(encoding.name): decoding in pieces of \(chunk) bytes differs from decoding whole")
        }
        var previous = 0
        var checked = 0
        for (offset, byte) in text.utf8.enumerated() where byte & 0xC0 != 0x80 && checked < 256 {
            let original = text.originalOffset(ofUTF8Offset: offset)
            FuzzCheck.require(original >= previous && original <= bytes.count,
                              "\(encoding.name): UTF-8 offset \(offset) maps to \(original) (previous \(previous), \(bytes.count) bytes)")
            previous = original
            checked += 1
        }
        let end = text.originalOffset(ofUTF8Offset: text.utf8.count)
        FuzzCheck.require(end >= previous && end <= bytes.count, "\(encoding.name): the end maps to \(end) of \(bytes.count) bytes")
        var last = -1
        for span in text.invalidSpans {
            FuzzCheck.require(span.utf8Offset > last && span.utf8Offset + 3 <= text.utf8.count, "\(encoding.name): invalid span at \(span.utf8Offset)")
            FuzzCheck.require(span.originalOffset >= 0 && span.originalOffset < bytes.count, "\(encoding.name): invalid span at original \(span.originalOffset) of \(bytes.count)")
            last = span.utf8Offset
        }
        _ = text.invalidSpans(in: 0..<text.utf8.count)
    }

    /// Ingest without the store; the rows it makes must all be accounted for.
    static func dryRun(_ bytes: [UInt8], _ options: IngestOptions) {
        guard let result = try? Ingestor.dryRun(bytes, path: "fuzz-input", options: options) else { return }
        for record in result.records {
            FuzzCheck.require((try? JSONSerialization.jsonObject(with: Data(record.utf8))) != nil, "a record's canonical conversation is not JSON: \(record.prefix(200))")
        }
        FuzzCheck.require(result.rejects.allSatisfy { !$0.isEmpty }, "a reject without a reason")
    }
}
