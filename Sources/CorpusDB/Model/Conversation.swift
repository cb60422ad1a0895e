import Foundation

/// The speaker of one turn of a canonical conversation.
public enum Role: String, Codable, Sendable, CaseIterable {
    case system, user, assistant
    /// A tool or function call made by the assistant (ShareGPT `function_call`).
    case functionCall = "function_call"
    /// The result of a tool call (ShareGPT `observation`, OpenAI `tool`).
    case observation
}

/// One turn of a conversation.
public struct Message: Codable, Sendable, Equatable, Hashable {
    public var role: Role
    public var content: String

    public init(role: Role, content: String) {
        self.role = role
        self.content = content
    }
}

/// The canonical form every input row becomes: an optional system turn followed by ordered
/// user/assistant (and tool) turns. See docs/INGEST_MAPPING.md for the mapping rules.
///
/// A preference pair (DPO data) is one conversation too: `messages` is the prompt followed by
/// the chosen answer (its last turn), and `rejected` is the answer the reviewers did not prefer.
/// So everything that reads conversations (checks, supervised training, generation) sees a
/// pair as its chosen conversation; only preference training and ranking exports read
/// `rejected`. Without `rejected` the canonical form (and every content hash) is unchanged.
public struct Conversation: Codable, Sendable, Equatable, Hashable {
    public var messages: [Message]
    /// The rejected answer of a preference pair (an assistant turn); nil for a plain conversation.
    public var rejected: Message?

    public init(messages: [Message], rejected: Message? = nil) {
        self.messages = messages
        self.rejected = rejected
    }

    /// Whether this is a preference pair.
    public var isPair: Bool { rejected != nil }

    /// The prompt of a pair or of a conversation whose last turn is an answer: every turn before
    /// the last assistant turn.
    public var prompt: [Message] {
        guard let last = messages.lastIndex(where: { $0.role == .assistant }) else { return messages }
        return Array(messages[..<last])
    }

    /// The chosen answer of a pair (the last assistant turn), or a conversation's final answer:
    /// the reference answer GRPO's rewards compare with.
    public var finalAnswer: Message? { messages.last(where: { $0.role == .assistant }) }

    /// Every turn's text, the rejected answer included (what PII checks and redaction must see).
    public var allMessages: [Message] { rejected.map { messages + [$0] } ?? messages }
}
