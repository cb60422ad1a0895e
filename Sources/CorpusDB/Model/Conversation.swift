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
public struct Conversation: Codable, Sendable, Equatable, Hashable {
    public var messages: [Message]

    public init(messages: [Message]) {
        self.messages = messages
    }
}
