import CorpusDB
import Foundation

/// Preference pairs: a prompt with a chosen and a rejected answer (docs/INGEST_MAPPING.md,
/// "Preference pairs"). The formats read:
///
/// - LLaMA-Factory sharegpt ranking: `{conversations: [...], chosen: {from, value}, rejected: {from, value}}`
/// - LLaMA-Factory alpaca ranking: `{instruction, input, chosen: "...", rejected: "..."}`
/// - OpenAI-style messages: `{messages: [...], chosen: ..., rejected: ...}`
/// - TRL's pairs: `{prompt: "..." | [messages], chosen: "..." | [messages], rejected: ...}`, and CSV
///   files with a question (prompt) column and `chosen` and `rejected` columns.
///
/// The prompt ends with a user turn; the pair becomes `Conversation(messages: prompt + [chosen],
/// rejected: rejected)`.
extension FieldMapper {
    /// Maps a JSON element of a preference file.
    func mapPair(object: [String: Any], original: () -> String) -> Result<MappedRow, RejectReason> {
        let prompt: Result<[Message], RejectReason>
        var tags: [String: String] = [:]
        switch shape {
        case .alpaca: prompt = alpacaPrompt(object)
        case .sharegpt, .messages: prompt = turns(object)
        case .columns:
            // TRL's prompt may be a list of messages; otherwise the question columns as text.
            if userKeys.count == 1, let list = object[userKeys[0]] as? [Any], list.first is [String: Any] {
                var messages: [Message] = []
                if let systemKey, let system = object[systemKey].flatMap({ text($0, joiner: "\n") }), !isBlank(system) {
                    messages.append(Message(role: .system, content: system))
                }
                prompt = Self.parseTurns(list).map { messages + $0 }
            } else {
                prompt = columnsPrompt(lookup: { object[$0].flatMap { text($0, joiner: "\n") } }, present: { object[$0] != nil })
                    .map { turns in
                        guard let systemKey, let system = object[systemKey].flatMap({ text($0, joiner: "\n") }), !isBlank(system) else { return turns }
                        return [Message(role: .system, content: system)] + turns
                    }
            }
            tags = self.tags(lookup: { object[$0].flatMap { text($0, joiner: "; ") } })
        }
        return mapPair(prompt: prompt, chosen: object[chosenColumn], rejected: object[rejectedColumn], tags: tags, original: original)
    }

    /// Checks the parts and builds the pair.
    func mapPair(prompt: Result<[Message], RejectReason>, chosen: Any?, rejected: Any?, tags: [String: String],
                 original: () -> String) -> Result<MappedRow, RejectReason> {
        let messages: [Message]
        switch prompt {
        case .failure(let reason): return .failure(reason)
        case .success(let list): messages = list
        }
        guard messages.contains(where: { $0.role == .user }) else {
            return .failure(RejectReason(code: "empty_prompt", detail: "the prompt has no user turn"))
        }
        if let last = messages.last, last.role != .user {
            return .failure(RejectReason(code: "malformed_pair", detail: "the prompt's last turn (\(messages.count)) is from the \(last.role.rawValue); in a preference pair the conversation ends with the question and '\(chosenColumn)'/'\(rejectedColumn)' hold the answers"))
        }
        let answers: [(key: String, value: Any?)] = [(chosenColumn, chosen), (rejectedColumn, rejected)]
        var texts: [String] = []
        for (key, value) in answers {
            switch Self.answerText(value, key: key) {
            case .failure(let reason): return .failure(reason)
            case .success(let text): texts.append(text)
            }
        }
        if texts[0].trimmingCharacters(in: .whitespacesAndNewlines) == texts[1].trimmingCharacters(in: .whitespacesAndNewlines) {
            return .failure(RejectReason(code: "identical_pair", detail: "'\(chosenColumn)' and '\(rejectedColumn)' are the same answer, so the pair prefers nothing"))
        }
        let conversation = Conversation(messages: messages + [Message(role: .assistant, content: texts[0])],
                                        rejected: Message(role: .assistant, content: texts[1]))
        return .success(MappedRow(conversation: conversation, tags: tags, originalJSON: original()))
    }

    /// The text of one answer: a string, a `{from, value}` / `{role, content}` turn from the
    /// assistant, or a list holding exactly one such turn (TRL's conversational pairs).
    static func answerText(_ value: Any?, key: String) -> Result<String, RejectReason> {
        guard let value, !(value is NSNull) else {
            return .failure(RejectReason(code: "missing_field", detail: "the row has no '\(key)' answer (a preference pair needs both chosen and rejected)"))
        }
        var candidate = value
        if let list = value as? [Any], list.first is [String: Any] {
            guard list.count == 1 else {
                return .failure(RejectReason(code: "malformed_pair", detail: "'\(key)' holds \(list.count) turns; a preference answer is one assistant turn"))
            }
            candidate = list[0]
        }
        let content: String?
        if let turn = candidate as? [String: Any] {
            let speaker = (turn["from"] ?? turn["role"]) as? String
            if let speaker, role(speaker) != .assistant {
                return .failure(RejectReason(code: "malformed_pair", detail: "'\(key)' is a turn from '\(speaker)'; it must be the assistant's answer"))
            }
            content = (turn["value"] ?? turn["content"]).flatMap { text($0, joiner: "\n") }
        } else {
            content = text(candidate, joiner: "\n")
        }
        guard let content, !isBlank(content) else {
            return .failure(RejectReason(code: "empty_answer", detail: "the '\(key)' answer is empty"))
        }
        return .success(content)
    }
}
