import CorpusDB
import ModelRuntime
import Trainer

/// A snapshot's split as chat messages, for training and evaluation alike.
enum SnapshotSplit {
    /// The split's conversations in snapshot order, withdrawn records left out (counted), and how
    /// many of them are preference pairs (seen here as their chosen conversation). Where the
    /// snapshot's checks found PII, the redacted text (`PIIRedaction`), as exports carry it; the
    /// store keeps the original.
    static func conversations(store: CorpusStore, snapshot: Snapshot, split: String) throws
        -> (conversations: [(id: Int64, messages: [ChatMessage])], withdrawn: Int, pairs: Int)
    {
        let redaction = try PIIRedaction(store: store, snapshot: snapshot)
        let (members, withdrawn) = try store.snapshotConversations(snapshot, split: split)
        let conversations = members.map { member -> (id: Int64, messages: [ChatMessage]) in
            (member.recordId, member.conversation.messages.map {
                ChatMessage(role: $0.role.rawValue, content: redaction.apply($0.content, recordId: member.recordId))
            })
        }
        return (conversations, withdrawn, members.filter { $0.conversation.isPair }.count)
    }
}

extension SnapshotSplit {
    /// The split's preference pairs in snapshot order (its plain conversations and withdrawn
    /// records left out, both counted), redacted as `conversations` redacts.
    static func pairs(store: CorpusStore, snapshot: Snapshot, split: String) throws
        -> (pairs: [TrainingData.Pair], conversations: Int, withdrawn: Int)
    {
        let redaction = try PIIRedaction(store: store, snapshot: snapshot)
        let (members, withdrawn) = try store.snapshotConversations(snapshot, split: split)
        var pairs: [TrainingData.Pair] = [], conversations = 0
        for member in members {
            let c = member.conversation
            guard let rejected = c.rejected, let chosen = c.finalAnswer else { conversations += 1; continue }
            func text(_ s: String) -> String { redaction.apply(s, recordId: member.recordId) }
            pairs.append(TrainingData.Pair(id: member.recordId, prompt: c.prompt.map { ChatMessage(role: $0.role.rawValue, content: text($0.content)) },
                                           chosen: text(chosen.content), rejected: text(rejected.content)))
        }
        return (pairs, conversations, withdrawn)
    }
}
