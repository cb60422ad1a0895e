import CorpusDB
import Foundation

/// A row ready to be written: a record or a reject, and the file offset where it ends.
package enum PreparedRow: Sendable, Equatable {
    case record(Record, position: Int)
    case reject(Reject, position: Int)

    var position: Int {
        switch self {
        case let .record(_, position), let .reject(_, position): return position
        }
    }
}

/// Turns input rows into records or rejects: everything but the database write (the producer
/// stage of the ingest pipeline).
struct RowPreparer: Sendable {
    let sourceID: Int64
    let mapper: FieldMapper
    let options: IngestOptions
    let directoryTags: [String: String]
    let encodingName: String

    /// Prepares `row`, which lies in `text` (the window of the file it was read from).
    func prepare(_ row: InputRow, in text: DecodedText) -> PreparedRow {
        let offset = text.originalOffset(ofUTF8Offset: row.range.lowerBound)
        let end = text.originalOffset(ofUTF8Offset: row.range.upperBound)
        func reject(_ code: String, _ detail: String) -> PreparedRow {
            .reject(Reject(sourceId: sourceID, rowIndex: row.index, locator: row.locator, line: row.line,
                           byteOffset: Int64(offset), byteLength: Int64(end - offset), reason: code,
                           detail: detail, excerpt: Ingestor.excerpt(text.utf8, row.range)), position: end)
        }
        if let problem = row.problem { return reject(problem.code, problem.detail) }
        var flags: [String] = []
        let invalid = text.invalidSpans(in: row.range)
        if let first = invalid.first {
            if options.lossy {
                flags.append("lossy_decoding")
            } else {
                let hex = first.bytes.map { String(format: "0x%02X", $0) }.joined(separator: " ")
                return reject("undecodable_bytes",
                              "invalid \(encodingName) byte sequence \(hex) at byte offset \(first.originalOffset)"
                              + (invalid.count > 1 ? " (and \(invalid.count - 1) more in this row)" : "")
                              + "; fix the file, force another --encoding, or re-run with --lossy to keep the row with U+FFFD")
            }
        }
        switch row.map(mapper, text: text.utf8) {
        case let .failure(reason):
            return reject(reason.code, reason.detail)
        case let .success(mapped):
            // Precedence: directory tags are defaults, the row's own columns win over them, and an
            // explicit --tag wins over both.
            var tags = directoryTags
            tags.merge(mapped.tags) { _, row in row }
            tags.merge(options.tags) { _, explicit in explicit }
            let canonical = CanonicalJSON.encode(mapped.conversation)
            let original: (original: String, refs: String?) = mapped.fields.map { OriginalFields.split($0, conversation: mapped.conversation) }
                ?? (mapped.originalJSON, nil)
            return .record(Record(sourceId: sourceID, rowIndex: row.index, locator: row.locator, line: row.line,
                                  byteOffset: Int64(offset), byteLength: Int64(end - offset),
                                  conversation: String(decoding: canonical, as: UTF8.self),
                                  original: original.original, tags: CanonicalJSON.object(tags),
                                  contentHash: ContentHash.sha256Hex(canonical),
                                  flags: flags.isEmpty ? "[]" : jsonText(flags), originalRefs: original.refs), position: end)
        }
    }
}

/// A bounded first-in-first-out queue between one producer and one consumer thread.
final class BatchQueue<Element: Sendable>: @unchecked Sendable {
    // @unchecked: every stored property is read and written only while `condition` is locked.
    private let condition = NSCondition()
    private var batches: [[Element]] = []
    private var finished = false
    private var failure: (any Error)?
    private var cancelled = false
    private let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Adds a batch, waiting while the queue is full; false when the consumer has cancelled.
    func put(_ batch: [Element]) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while batches.count >= capacity && !cancelled { condition.wait() }
        if cancelled { return false }
        batches.append(batch)
        condition.broadcast()
        return true
    }

    /// The producer is done.
    func finish() {
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    /// The producer stopped on `error`: the consumer's next `take` throws it.
    func fail(_ error: any Error) {
        condition.lock()
        failure = error
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    /// The consumer stops: the producer's next `put` returns false.
    func cancel() {
        condition.lock()
        cancelled = true
        batches.removeAll()
        condition.broadcast()
        condition.unlock()
    }

    /// The next batch, waiting for one; nil when the producer finished and the queue is empty.
    /// - Throws: the producer's error, once the batches it put before it are taken.
    func take() throws -> [Element]? {
        condition.lock()
        defer { condition.unlock() }
        while batches.isEmpty && !finished { condition.wait() }
        if batches.isEmpty {
            if let failure { throw failure }
            return nil
        }
        let batch = batches.removeFirst()
        condition.broadcast()
        return batch
    }
}

/// Hands a value that is not `Sendable` to exactly one other thread.
struct UncheckedSendable<Value>: @unchecked Sendable {
    // @unchecked: used only to move the row source (Foundation JSON values) to the producer
    // thread; after the hand-off no other thread touches it.
    let value: Value

    init(_ value: Value) {
        self.value = value
    }
}
