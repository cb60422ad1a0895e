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
        var summary = FileSummary(path: path, sha256: file.sha256, bytes: file.bytes.count, sourceId: nil, alreadyIngestedAs: nil,
                                  format: nil, encoding: "", encodingConfidence: 0, rows: 0, records: 0,
                                  rejectsByReason: [], seconds: 0)
        if !options.force, let existing = try store.sources(sha256: file.sha256).first {
            summary.alreadyIngestedAs = existing.id
            summary.format = SourceFormat(rawValue: existing.format)
            summary.encoding = existing.encoding
            summary.seconds = Date().timeIntervalSince(start)
            return summary
        }
        if let kind = file.binary {
            throw IngestError(.binaryFile, "\(path): this looks like a binary file (\(kind)), not CSV, JSON or JSONL text; export the data as CSV or JSON first")
        }
        let text = try file.decoded.get()
        if text.utf8.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            throw IngestError(.emptyFile, "\(path): the file holds only whitespace; nothing to ingest")
        }
        let (format, rows, mapper) = try Self.rows(of: text, path: path, options: options)
        summary.format = format
        summary.encoding = file.encoding.name
        summary.encodingConfidence = file.encoding.confidence

        let source = Source(path: path, sha256: file.sha256, bytes: Int64(file.bytes.count), format: format.rawValue,
                            encoding: file.encoding.name, encodingConfidence: file.encoding.confidence,
                            encodingMethod: file.encoding.method, mapping: mapper.mappingJSON,
                            tags: CanonicalJSON.object(options.tags.merging(input.directoryTags) { explicit, _ in explicit }),
                            options: jsonText(options.json), importedAt: Timestamp.now(),
                            toolVersion: CorpusVersion.string)
        let written = try write(source, rows: rows, mapper: mapper, text: text, input: input, encodingName: file.encoding.name, start: start)
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

    /// A file read, hashed, and (unless it looks binary) decoded.
    struct LoadedFile {
        var bytes: [UInt8]
        var sha256: String
        var encoding: DetectedEncoding
        /// The kind of binary file it looks like, or nil for text.
        var binary: String?
        /// The decoded text; a failure when the file is binary or does not decode.
        var decoded: Result<DecodedText, any Error>
    }

    /// Reads the file, detects its encoding and decodes it while hashing it on the other core.
    func load(_ path: String, start: Date) throws -> LoadedFile {
        let bytes = try Self.readFile(path)
        guard !bytes.isEmpty else {
            throw IngestError(.emptyFile, "\(path): the file is empty (0 bytes); nothing to ingest")
        }
        // SHA-256 runs at ~80 MB/s on this class of CPU: hash on the other core while this one
        // detects and decodes. A file that turns out to be in the store already costs its decode.
        let hashing = BackgroundResult { ContentHash.sha256Hex(bytes) }
        let encoding: DetectedEncoding
        if let forced = options.encoding {
            encoding = try EncodingDetector.forced(forced, bytes: bytes)
        } else {
            encoding = EncodingDetector.detect(bytes)
        }
        Self.phase("detect", start)
        let binary = Self.binaryKind(bytes, encoding: encoding)
        let decoded: Result<DecodedText, any Error>
        if binary == nil {
            decoded = Result { try Transcoder.decode(bytes, as: encoding) }
        } else {
            decoded = .failure(CancellationError())
        }
        Self.phase("decode", start)
        let sha256 = hashing.value()
        Self.phase("hash", start)
        return LoadedFile(bytes: bytes, sha256: sha256, encoding: encoding, binary: binary, decoded: decoded)
    }

    /// The format of decoded text (forced or sniffed), its rows and the field mapping (given with
    /// `--map` or inferred).
    /// - Throws: `IngestError` when the file's structure or mapping rules out every row.
    static func rows(of text: DecodedText, path: String, options: IngestOptions) throws -> (SourceFormat, RowSource, FieldMapper) {
        let format = options.format ?? FormatSniffer.sniff(text.utf8)
        let rows = try RowSource.make(format: format, text: text, path: path, options: options)
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
    /// Two stages on the two cores: a producer thread reads, maps, serializes and hashes rows into
    /// batches; this thread writes them. The bounded queue keeps memory flat.
    func write(_ source: Source, rows: RowSource, mapper: FieldMapper, text: DecodedText, input: InputFile,
               encodingName: String, start: Date) throws -> Written {
        let path = input.path
        var counts: [String: Int] = [:]
        var rowCount = 0
        var lastProgress = Date()
        let sourceID: Int64 = try store.ingestTransaction(inserting: source) { writer in
            let preparer = RowPreparer(sourceID: writer.sourceID, text: text, mapper: mapper, options: options,
                                       directoryTags: input.directoryTags, encodingName: encodingName)
            let queue = Self.produce(rows, preparer)
            defer { queue.cancel() }
            while let batch = queue.take() {
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
                                              total: text.utf8.count, elapsed: now.timeIntervalSince(start)))
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

    /// Starts the producer thread: prepares `rows` in batches of 256 into a bounded queue, which
    /// it finishes when the rows run out or the consumer cancels.
    static func produce(_ rows: RowSource, _ preparer: RowPreparer) -> BatchQueue<PreparedRow> {
        let queue = BatchQueue<PreparedRow>(capacity: 8)
        let producer = UncheckedSendable(rows)
        DispatchQueue.global(qos: .userInitiated).async {
            var batch: [PreparedRow] = []
            batch.reserveCapacity(256)
            do {
                try producer.value.forEach { row in
                    batch.append(preparer.prepare(row))
                    if batch.count == 256 {
                        guard queue.put(batch) else { throw CancellationError() }
                        batch.removeAll(keepingCapacity: true)
                    }
                }
                if !batch.isEmpty { _ = queue.put(batch) }
            } catch {}
            queue.finish()
        }
        return queue
    }

    // MARK: - Helpers

    /// A value computed on another thread; `value()` waits for it.
    final class BackgroundResult<Value: Sendable>: @unchecked Sendable {
        // @unchecked: `result` is written once by the worker before `done` is signalled and read
        // only after waiting on `done`.
        private var result: Value?
        private let done = DispatchSemaphore(value: 0)
        private let work: @Sendable () -> Value

        init(_ work: @escaping @Sendable () -> Value) {
            self.work = work
            DispatchQueue.global(qos: .userInitiated).async {
                self.result = work()
                self.done.signal()
            }
        }

        func value() -> Value {
            done.wait()
            done.signal()
            // The worker always stores a value before signalling; computing it here is a fallback
            // that cannot be reached, kept so that no path can crash.
            return result ?? work()
        }
    }

    /// With CORPUS_TIMING=1, prints the seconds since `start` at the end of each phase to stderr.
    static func phase(_ name: String, _ start: Date) {
        guard ProcessInfo.processInfo.environment["CORPUS_TIMING"] == "1" else { return }
        FileHandle.standardError.write(Data(String(format: "  [timing] %@ done at %.3fs\n", name, Date().timeIntervalSince(start)).utf8))
    }

    /// The file's bytes, read straight into one buffer of the file's size (FileHandle's
    /// `readToEnd` grows a `Data` piece by piece and the copy into an array doubles that: for a
    /// 2.9 GB file, 33 s against about 3).
    static func readFile(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw IngestError(.unreadableFile, "\(path): cannot open the file for reading (\(String(cString: strerror(errno)))); check that it exists and that you may read it")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw IngestError(.unreadableFile, "\(path): cannot read the file's size (\(String(cString: strerror(errno))))")
        }
        // A regular file is read into a buffer of its size (one that grows meanwhile is taken up
        // to the size it had when opened; its hash is of exactly these bytes); a pipe or device
        // until it ends, in growing steps.
        let regular = info.st_mode & S_IFMT == S_IFREG
        var bytes = [UInt8](repeating: 0, count: regular ? Int(info.st_size) : 1 << 20)
        var filled = 0
        while true {
            if filled == bytes.count {
                if regular { break }
                bytes += [UInt8](repeating: 0, count: bytes.count)
            }
            let n = bytes.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return read(fd, base + filled, min(raw.count - filled, 1 << 30))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw IngestError(.unreadableFile, "\(path): reading failed after \(filled) bytes (\(String(cString: strerror(errno))))")
            }
            if n == 0 { break }
            filled += n
        }
        if filled < bytes.count { bytes.removeLast(bytes.count - filled) }
        return bytes
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
