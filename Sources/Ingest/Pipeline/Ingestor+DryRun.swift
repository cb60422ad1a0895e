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
        var result: DryRunResult?
        try prepareAll(bytes, path: path, options: options) { format, encoding in
            result = DryRunResult(format: format, encoding: encoding, records: [], rejects: [])
        } row: { prepared in
            switch prepared {
            case let .record(record, _): result?.records.append(record.conversation)
            case let .reject(reject, _): result?.rejects.append(reject.reason)
            }
        }
        guard let result else { throw IngestError(.emptyFile, "\(path): no rows") }
        return result
    }

    /// Every row of `bytes` prepared as `ingest(_:)` prepares it (source id 1, no directory tags),
    /// in file order: the dry run's and the tests' way to see what ingest would write.
    package static func prepareAll(_ bytes: [UInt8], path: String, options: IngestOptions,
                           started: (SourceFormat, DetectedEncoding) -> Void, row: (PreparedRow) -> Void) throws {
        guard !bytes.isEmpty else { throw IngestError(.emptyFile, "\(path): the file is empty (0 bytes); nothing to ingest") }
        let source = ByteSource(bytes: bytes, path: path)
        let scan = try FileScan(source)
        let encoding = try Self.encoding(prefix: scan.prefix, scan: scan.utf8, path: path, options: options)
        let stream = TextStream(source: source, encoding: encoding, windowBytes: options.windowBytes, expectedSHA256: scan.sha256)
        let (format, rows, mapper) = try Self.rows(of: stream, path: path, options: options)
        started(format, encoding)
        let preparer = RowPreparer(sourceID: 1, mapper: mapper, options: options, directoryTags: [:], encodingName: encoding.name)
        try rows.forEach { input, text in row(preparer.prepare(input, in: text)) }
    }
}
