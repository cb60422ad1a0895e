import CorpusDB
import Foundation

/// Ingests files into a store: each file is read, decoded, split into rows, mapped to canonical
/// conversations and written as records or rejects in ONE transaction, so a failed or interrupted
/// file leaves nothing behind.
public final class Ingestor {
    public let store: CorpusStore
    public let options: IngestOptions
    /// Called a few times per second while a file is processed.
    public var onProgress: ((IngestProgress) -> Void)?
    /// Polled between rows; returning true rolls the current file back with `.interrupted`.
    public var isCancelled: () -> Bool = { false }

    public init(store: CorpusStore, options: IngestOptions) {
        self.store = store
        self.options = options
    }

    /// Ingests one file.
    /// - Throws: `IngestError` when the file as a whole cannot be ingested (nothing is written then).
    public func ingest(_ input: InputFile) throws -> FileSummary {
        let start = Date()
        let path = input.path
        let file = try load(path, start: start)
        var summary = FileSummary(path: path, sha256: file.sha256, bytes: file.source.size, sourceId: nil, alreadyIngestedAs: nil,
                                  format: nil, encoding: "", encodingConfidence: 0, rows: 0, records: 0,
                                  rejectsByReason: [], seconds: 0)
        if !options.force, let existing = try store.sources(sha256: file.sha256).first {
            summary.alreadyIngestedAs = existing.id
            summary.format = SourceFormat(rawValue: existing.format)
            summary.encoding = existing.encoding
            summary.seconds = Date().timeIntervalSince(start)
            return summary
        }
        let encoding = try encoding(of: file)
        let stream = TextStream(source: file.source, encoding: encoding, windowBytes: options.windowBytes, expectedSHA256: file.sha256)
        let (format, rows, mapper) = try Self.rows(of: stream, path: path, options: options)
        Self.phase("first window", start)
        summary.format = format
        summary.encoding = encoding.name
        summary.encodingConfidence = encoding.confidence

        let source = Source(path: path, sha256: file.sha256, bytes: Int64(file.source.size), format: format.rawValue,
                            encoding: encoding.name, encodingConfidence: encoding.confidence,
                            encodingMethod: encoding.method, mapping: mapper.mappingJSON,
                            tags: CanonicalJSON.object(options.tags.merging(input.directoryTags) { explicit, _ in explicit }),
                            options: jsonText(options.json), importedAt: Timestamp.now(),
                            toolVersion: CorpusVersion.string)
        let written = try write(source, rows: rows, mapper: mapper, input: input, encodingName: encoding.name, start: start)
        Self.phase("commit", start)
        summary.sourceId = written.sourceID
        summary.rows = written.rows
        summary.records = written.rows - written.rejectsByReason.values.reduce(0, +)
        summary.rejectsByReason = written.rejectsByReason.map { (reason: $0.key, count: $0.value) }
            .sorted { $0.count != $1.count ? $0.count > $1.count : $0.reason < $1.reason }
        summary.seconds = Date().timeIntervalSince(start)
        return summary
    }

    // MARK: - Steps

    /// A file opened and read once through: its hash, its start and its UTF-8 scan.
    struct LoadedFile {
        var source: ByteSource
        var sha256: String
        var scan: FileScan
    }

    /// Opens the file and reads it once through, hashing it and scanning it for UTF-8 (nothing of
    /// it is kept but its first 64 KiB).
    func load(_ path: String, start: Date) throws -> LoadedFile {
        let source = try ByteSource(path: path)
        guard source.size > 0 else {
            throw IngestError(.emptyFile, "\(path): the file is empty (0 bytes); nothing to ingest")
        }
        let scan = try FileScan(source)
        Self.phase("hash and scan", start)
        return LoadedFile(source: source, sha256: scan.sha256, scan: scan)
    }

    /// The file's encoding (forced or detected).
    /// - Throws: `IngestError` for an unknown forced encoding or a file that looks binary.
    func encoding(of file: LoadedFile) throws -> DetectedEncoding {
        try Self.encoding(prefix: file.scan.prefix, scan: file.scan.utf8, path: file.source.path, options: options)
    }

    static func encoding(prefix: [UInt8], scan: UTF8Scan, path: String, options: IngestOptions) throws -> DetectedEncoding {
        let encoding: DetectedEncoding
        if let forced = options.encoding {
            encoding = try EncodingDetector.forced(forced, bytes: prefix)
        } else {
            encoding = EncodingDetector.detect(prefix: prefix, scan: scan)
        }
        if let kind = binaryKind(prefix, encoding: encoding) {
            throw IngestError(.binaryFile, "\(path): this looks like a binary file (\(kind)), not CSV, JSON or JSONL text; export the data as CSV or JSON first")
        }
        return encoding
    }

    /// The format of the text (forced or sniffed), its rows and the field mapping (given with
    /// `--map` or inferred).
    /// - Throws: `IngestError` when the file's structure or mapping rules out every row.
    static func rows(of stream: TextStream, path: String, options: IngestOptions) throws -> (SourceFormat, RowSource, FieldMapper) {
        let (format, rows) = try RowSource.make(stream: stream, path: path, options: options)
        let mapper = try rows.mapper(options: options, path: path)
        return (format, rows, mapper)
    }

    /// What the transaction of one file wrote.
    struct Written {
        var sourceID: Int64
        var rows: Int
        var rejectsByReason: [String: Int]
    }

    /// Writes the source and its rows in the store's one transaction for the file.
    ///
    /// Two stages on the two cores: a producer thread reads the file window by window, decodes,
    /// parses, maps, serializes and hashes rows into batches; this thread writes them. The bounded
    /// queue and the windows keep memory flat, whatever the file's size.
    func write(_ source: Source, rows: RowSource, mapper: FieldMapper, input: InputFile,
               encodingName: String, start: Date) throws -> Written {
        let path = input.path
        var counts: [String: Int] = [:]
        var rowCount = 0
        var lastProgress = Date()
        let sourceID: Int64 = try store.ingestTransaction(inserting: source) { writer in
            let preparer = RowPreparer(sourceID: writer.sourceID, mapper: mapper, options: options,
                                       directoryTags: input.directoryTags, encodingName: encodingName)
            let queue = Self.produce(rows, preparer)
            defer { queue.cancel() }
            while let batch = try queue.take() {
                for prepared in batch {
                    rowCount += 1
                    switch prepared {
                    case let .record(record, _): try writer.append(record)
                    case let .reject(reject, _):
                        counts[reject.reason, default: 0] += 1
                        try writer.append(reject)
                    }
                }
                if self.isCancelled() {
                    throw IngestError(.interrupted, "\(path): interrupted after \(rowCount) rows; nothing of this file was kept, run the same command again")
                }
                let now = Date()
                if now.timeIntervalSince(lastProgress) > 0.5, let onProgress = self.onProgress, let last = batch.last {
                    lastProgress = now
                    onProgress(IngestProgress(path: path, rows: rowCount, processed: last.position,
                                              total: rows.stream.source.size, elapsed: now.timeIntervalSince(start)))
                }
            }
            Self.phase("rows", start)
            if rowCount == 0 {
                throw IngestError(.emptyFile, "\(path): no data rows (\(rows.emptyDescription)); nothing to ingest")
            }
            return writer.sourceID
        }
        return Written(sourceID: sourceID, rows: rowCount, rejectsByReason: counts)
    }

    /// Starts the producer thread: reads the file window by window and prepares its rows in
    /// batches of 256 into a bounded queue, which it finishes when the rows run out or the
    /// consumer cancels, or fails with the error that stopped it (a read error, a file that
    /// changed): the consumer then throws it and nothing of the file is kept.
    static func produce(_ rows: RowSource, _ preparer: RowPreparer) -> BatchQueue<PreparedRow> {
        let queue = BatchQueue<PreparedRow>(capacity: 8)
        let producer = UncheckedSendable(rows)
        DispatchQueue.global(qos: .userInitiated).async {
            var batch: [PreparedRow] = []
            batch.reserveCapacity(256)
            do {
                try producer.value.forEach { row, text in
                    batch.append(preparer.prepare(row, in: text))
                    if batch.count == 256 {
                        guard queue.put(batch) else { throw CancellationError() }
                        batch.removeAll(keepingCapacity: true)
                    }
                }
                if !batch.isEmpty { _ = queue.put(batch) }
                queue.finish()
            } catch is CancellationError {
                queue.finish()
            } catch {
                queue.fail(error)
            }
        }
        return queue
    }

    // MARK: - Helpers

    /// With CORPUS_TIMING=1, prints the seconds since `start` at the end of each phase to stderr.
    static func phase(_ name: String, _ start: Date) {
        guard ProcessInfo.processInfo.environment["CORPUS_TIMING"] == "1" else { return }
        FileHandle.standardError.write(Data(String(format: "  [timing] %@ done at %.3fs\n", name, Date().timeIntervalSince(start)).utf8))
    }

    /// Names the kind of binary file, or nil for text. Magic numbers first, then the share of
    /// control bytes in the first 64 KiB (UTF-16 text legitimately has NULs and is exempt).
    static func binaryKind(_ bytes: [UInt8], encoding: DetectedEncoding) -> String? {
        let magics: [([UInt8], String)] = [
            ([0x89, 0x50, 0x4E, 0x47], "PNG image"), ([0x25, 0x50, 0x44, 0x46], "PDF document"),
            ([0x50, 0x4B, 0x03, 0x04], "ZIP archive, e.g. .xlsx or .docx"), ([0x7F, 0x45, 0x4C, 0x46], "ELF executable"),
            ([0x1F, 0x8B], "gzip archive"), (Array("SQLite format 3".utf8), "SQLite database"),
            ([0xD0, 0xCF, 0x11, 0xE0], "OLE document, e.g. .xls or .doc"), ([0xFF, 0xD8, 0xFF], "JPEG image"),
        ]
        for (magic, name) in magics where bytes.starts(with: magic) { return name }
        if encoding.name.hasPrefix("UTF-16") || encoding.name.hasPrefix("UTF-32") { return nil }
        let sample = bytes.prefix(65_536)
        let control = sample.reduce(0) { n, b in n + ((b < 0x09 || (b > 0x0D && b < 0x20 && b != 0x1B)) ? 1 : 0) }
        return control * 10 > sample.count ? "\(control) of its first \(sample.count) bytes are control characters" : nil
    }

    static func excerpt(_ utf8: [UInt8], _ range: Range<Int>) -> String {
        let end = min(range.upperBound, range.lowerBound + 600)
        var text = String(decoding: utf8[range.lowerBound..<end], as: UTF8.self)
        if text.count > 200 { text = String(text.prefix(200)) + "…" }
        return text.replacingOccurrences(of: "\u{0}", with: "\\0")
    }
}
