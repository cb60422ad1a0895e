import CorpusDB
import Foundation

/// What ingesting some bytes would make of them, with no store: the fuzz targets' way into the
/// readers, the field mapper and the row preparation (docs/RELIABILITY.md).
package struct DryRunResult: Sendable {
    package var format: SourceFormat
    package var encoding: DetectedEncoding
    /// The records' canonical conversations (JSON), in row order.
    package var records: [String]
    /// The rejects' reason codes, in row order.
    package var rejects: [String]
}

extension Ingestor {
    /// Runs everything `ingest(_:)` does to a file's bytes before the store sees them: encoding
    /// detection (or `options.encoding`), decoding, the binary and blank checks, format sniffing (or
    /// `options.format`), reading rows, mapping and preparing each row as a record or a reject.
    /// - Throws: `IngestError` where `ingest(_:)` would refuse the whole file.
    package static func dryRun(_ bytes: [UInt8], path: String = "input", options: IngestOptions = IngestOptions()) throws -> DryRunResult {
        guard !bytes.isEmpty else { throw IngestError(.emptyFile, "\(path): the file is empty (0 bytes); nothing to ingest") }
        let encoding = try options.encoding.map { try EncodingDetector.forced($0, bytes: bytes) } ?? EncodingDetector.detect(bytes)
        if let kind = binaryKind(bytes, encoding: encoding) {
            throw IngestError(.binaryFile, "\(path): this looks like a binary file (\(kind))")
        }
        let text = try Transcoder.decode(bytes, as: encoding)
        if text.utf8.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            throw IngestError(.emptyFile, "\(path): the file holds only whitespace; nothing to ingest")
        }
        let (format, rows, mapper) = try Self.rows(of: text, path: path, options: options)
        let preparer = RowPreparer(sourceID: 1, text: text, mapper: mapper, options: options, directoryTags: [:], encodingName: encoding.name)
        var result = DryRunResult(format: format, encoding: encoding, records: [], rejects: [])
        try rows.forEach { row in
            switch preparer.prepare(row) {
            case let .record(record, _): result.records.append(record.conversation)
            case let .reject(reject, _): result.rejects.append(reject.reason)
            }
        }
        return result
    }
}
