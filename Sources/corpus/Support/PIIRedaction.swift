import CorpusDB
import Quality

/// The PII step every reader of a snapshot applies (export, training, evaluation): the records the
/// snapshot's checks flagged for PII get `PII.redact` on every message; the store keeps the
/// original text.
struct PIIRedaction {
    /// The records whose text is redacted: those that failed the `pii` check under the snapshot's
    /// check configuration (none when the snapshot was made without checks).
    let recordIds: Set<Int64>

    /// The redaction applied to each message of a flagged record.
    static let redact: @Sendable (String) -> String = PII.redact

    init(store: CorpusStore, snapshot: Snapshot) throws {
        recordIds = try snapshot.checks.map { try store.failedRecords(configHash: $0, check: "pii") } ?? []
    }

    /// `text` as readers see it: redacted when it belongs to a flagged record.
    func apply(_ text: String, recordId: Int64) -> String {
        recordIds.contains(recordId) ? Self.redact(text) : text
    }
}
