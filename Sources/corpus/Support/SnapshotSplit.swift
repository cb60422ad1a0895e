import CorpusDB
import ModelRuntime

/// A snapshot's split as chat messages, for training and evaluation alike.
enum SnapshotSplit {
    /// The split's conversations in snapshot order, withdrawn records left out (counted). Where
    /// the snapshot's checks found PII, the redacted text (`PIIRedaction`), as exports carry it;
    /// the store keeps the original.
    static func conversations(store: CorpusStore, snapshot: Snapshot, split: String) throws
        -> (conversations: [(id: Int64, messages: [ChatMessage])], withdrawn: Int)
    {
        let redaction = try PIIRedaction(store: store, snapshot: snapshot)
        let (members, withdrawn) = try store.snapshotConversations(snapshot, split: split)
        let conversations = members.map { member -> (id: Int64, messages: [ChatMessage]) in
            (member.recordId, member.conversation.messages.map {
                ChatMessage(role: $0.role.rawValue, content: redaction.apply($0.content, recordId: member.recordId))
            })
        }
        return (conversations, withdrawn)
    }
}
