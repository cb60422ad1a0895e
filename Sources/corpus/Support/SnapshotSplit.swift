import CorpusDB
import Quality
import Trainer

/// A snapshot's split as chat messages, for training and evaluation alike.
enum SnapshotSplit {
    /// The split's conversations in snapshot order, withdrawn records left out (counted). Where
    /// the snapshot's checks found PII, the redacted text, as exports carry it; the store keeps
    /// the original.
    static func conversations(store: CorpusStore, snapshot: Snapshot, split: String) throws
        -> (conversations: [(id: Int64, messages: [ChatMessage])], withdrawn: Int)
    {
        let flagged = try snapshot.checks.map { try store.failedRecords(configHash: $0, check: "pii") } ?? []
        let (members, withdrawn) = try store.snapshotConversations(snapshot, split: split)
        let conversations = members.map { member -> (id: Int64, messages: [ChatMessage]) in
            let redact = flagged.contains(member.recordId)
            return (member.recordId, member.conversation.messages.map {
                ChatMessage(role: $0.role.rawValue, content: redact ? PII.redact($0.content) : $0.content)
            })
        }
        return (conversations, withdrawn)
    }
}
