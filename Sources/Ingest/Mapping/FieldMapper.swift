import CorpusDB
import Foundation

/// Why one row did not become a record.
public struct RejectReason: Error, Sendable, Equatable, Hashable {
    /// Stable snake_case code (docs/INGEST.md lists them all).
    public var code: String
    /// A sentence naming the field or turn.
    public var detail: String

    public init(code: String, detail: String) {
        self.code = code
        self.detail = detail
    }
}

/// A row mapped to the canonical form.
public struct MappedRow: Sendable {
    public var conversation: Conversation
    public var tags: [String: String]
    /// A CSV row's fields as read (header → value); nil for JSON input.
    public var fields: [String: String]?
    /// JSON input: the element's own text.
    var originalText: String

    init(conversation: Conversation, tags: [String: String], originalJSON: String) {
        self.conversation = conversation
        self.tags = tags
        originalText = originalJSON
    }

    /// The row's original fields as a JSON object, so export can reproduce them: for JSON input
    /// the element's own text, for CSV the header → value object with sorted keys.
    public var originalJSON: String { fields.map { CanonicalJSON.object($0) } ?? originalText }
}

/// The recognised shapes of a row.
public enum RecordShape: String, Sendable {
    /// `{instruction, input, output}` (+ optional `system`, `history`).
    case alpaca
    /// `{conversations: [{from, value}]}` (+ optional `system`).
    case sharegpt
    /// `{messages: [{role, content}]}`.
    case messages
    /// Question and answer columns, by name or by `--map`.
    case columns
}

/// Keys that make a file preference data (LLaMA-Factory's ranking formats, TRL's pairs).
let chosenKey = "chosen", rejectedKey = "rejected"

/// Turns a row (CSV fields or a JSON object) into a canonical conversation. The rules are in
/// docs/INGEST_MAPPING.md.
public struct FieldMapper: Sendable {
    public private(set) var shape: RecordShape
    /// Every row is a preference pair: a prompt with `chosen` and `rejected` answers (the file has
    /// those keys or columns). A row missing either is a reject.
    public private(set) var preference = false
    /// Columns joined (with "\n", skipping empty and repeated values) into the user turn.
    var userKeys: [String] = []
    var assistantKey: String = ""
    var systemKey: String?
    /// Tag name → column.
    var tagKeys: [String: String] = [:]
    /// The columns of a preference file's answers (their spelling in the file).
    var chosenColumn = chosenKey, rejectedColumn = rejectedKey

    /// Column names recognised as the question, in order of preference (compared trimmed and
    /// case-insensitively). `title` and `ask` together make one question.
    static let userNames = ["question", "问题", "ask", "query", "prompt", "问", "提问", "title", "标题", "input"]
    static let assistantNames = ["answer", "回答", "response", "output", "reply", "答案", "答", "回复"]
    /// Column → tag name.
    static let tagNames: [String: String] = ["department": "department", "科室": "department", "科别": "department",
                                             "category": "category", "类别": "category", "分类": "category"]

    private init(shape: RecordShape) {
        self.shape = shape
    }

    /// Infers the mapping from the header of a CSV or the keys of the first objects; nil when
    /// nothing maps.
    public static func infer(keys: [String]) -> FieldMapper? {
        let lower = Dictionary(keys.map { ($0.trimmingCharacters(in: .whitespaces).lowercased(), $0) }, uniquingKeysWith: { a, _ in a })
        let preference = lower[chosenKey] != nil || lower[rejectedKey] != nil
        func made(_ shape: RecordShape) -> FieldMapper {
            var mapper = FieldMapper(shape: shape)
            mapper.preference = preference
            return mapper
        }
        if lower["conversations"] != nil { return made(.sharegpt) }
        if lower["messages"] != nil { return made(.messages) }
        if lower["instruction"] != nil && (lower["output"] != nil || preference) { return made(.alpaca) }
        var mapper = made(.columns)
        if let title = lower["title"], let ask = lower["ask"] {
            mapper.userKeys = [title, ask]
        } else if let user = userNames.lazy.compactMap({ lower[$0] }).first {
            mapper.userKeys = [user]
        }
        if preference {
            // TRL's {prompt, chosen, rejected}, or question/chosen/rejected columns.
            guard !mapper.userKeys.isEmpty else { return nil }
            mapper.chosenColumn = lower[chosenKey] ?? chosenKey
            mapper.rejectedColumn = lower[rejectedKey] ?? rejectedKey
        } else {
            guard !mapper.userKeys.isEmpty, let assistant = assistantNames.lazy.compactMap({ lower[$0] }).first else { return nil }
            mapper.assistantKey = assistant
        }
        mapper.systemKey = lower["system"]
        for (name, original) in lower.sorted(by: { $0.key < $1.key }) {
            if let tag = tagNames[name] { mapper.tagKeys[tag] = original }
        }
        return mapper
    }

    /// An explicit mapping: `user=query,assistant=response,system=sys,tag.laws=laws`, where `user`
    /// may join several columns with `+` (`user=title+ask`).
    /// - Throws: `IngestError(.invalidOption)` naming the part that is wrong and the columns found.
    public init(spec: String, availableKeys: [String]) throws {
        self.init(shape: .columns)
        let found = availableKeys.isEmpty ? "(none)" : availableKeys.joined(separator: ", ")
        func column(_ name: String) throws -> String {
            let trimmed = name.trimmingCharacters(in: .whitespaces)
            if availableKeys.contains(trimmed) { return trimmed }
            if let match = availableKeys.first(where: { $0.lowercased() == trimmed.lowercased() }) { return match }
            throw IngestError(.invalidOption, "--map: there is no column or key '\(trimmed)'; found: \(found)")
        }
        for part in spec.split(separator: ",") {
            let pieces = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pieces.count == 2, !pieces[0].isEmpty, !pieces[1].isEmpty else {
                throw IngestError(.invalidOption, "--map: '\(part)' is not target=column (e.g. user=query,assistant=response,tag.laws=laws)")
            }
            let (target, source) = (pieces[0], pieces[1])
            switch target {
            case "user": userKeys = try source.split(separator: "+").map { try column(String($0)) }
            case "assistant": assistantKey = try column(source)
            case "system": systemKey = try column(source)
            case "chosen": chosenColumn = try column(source); preference = true
            case "rejected": rejectedColumn = try column(source); preference = true
            default:
                guard target.hasPrefix("tag."), target.count > 4 else {
                    throw IngestError(.invalidOption, "--map: unknown target '\(target)'; use user, assistant, system, chosen, rejected or tag.NAME")
                }
                tagKeys[String(target.dropFirst(4))] = try column(source)
            }
        }
        if preference {
            guard !userKeys.isEmpty, spec.contains("chosen="), spec.contains("rejected=") else {
                throw IngestError(.invalidOption, "--map \(spec): a preference file needs user=, chosen= and rejected= columns; found: \(found)")
            }
            return
        }
        guard !userKeys.isEmpty, !assistantKey.isEmpty else {
            throw IngestError(.invalidOption, "--map \(spec): name both user= and assistant= columns; found: \(found)")
        }
    }

    /// How the fields become a conversation, stored on the source (stable JSON, sorted keys).
    public var mappingJSON: String {
        var object: [String: Any] = ["shape": shape.rawValue]
        if preference { object["pairs"] = ["chosen": chosenColumn, "rejected": rejectedColumn] }
        if shape == .columns {
            object["user"] = userKeys
            if !preference { object["assistant"] = assistantKey }
            if let systemKey { object["system"] = systemKey }
            if !tagKeys.isEmpty { object["tags"] = tagKeys }
        }
        return jsonText(object)
    }

    /// The message for a file whose fields map to nothing.
    public static func noMappingMessage(file: String, keys: [String]) -> String {
        let shown = keys.prefix(20).joined(separator: ", ")
        let example = keys.count >= 2 ? "--map 'user=\(keys[0]),assistant=\(keys[1])'" : "--map 'user=COLUMN,assistant=COLUMN'"
        return "\(file): no field maps to a question and an answer. Columns or keys found: \(keys.isEmpty ? "(none)" : shown)"
            + (keys.count > 20 ? " (and \(keys.count - 20) more)" : "")
            + ". Name them with --map, for example \(example) (add tag.NAME=COLUMN for tags)"
    }

    // MARK: - Mapping rows

    /// Maps CSV fields (header name → value).
    public func map(fields: [String: String]) -> Result<MappedRow, RejectReason> {
        // The original fields are kept as the dictionary (`MappedRow.fields`): the store keeps
        // those that repeat the conversation by reference (`OriginalFields`).
        let mapped = preference
            ? mapPair(prompt: columnsPrompt(lookup: { fields[$0] }, present: nil), chosen: fields[chosenColumn],
                      rejected: fields[rejectedColumn], tags: tags(lookup: { fields[$0] }), original: { "" })
            : map(lookup: { fields[$0] }, original: { "" })
        return mapped.map { row in
            var row = row
            row.fields = fields
            return row
        }
    }

    /// Maps a JSON object. `originalText` is the element's JSON text as it stands in the file
    /// (stored as the record's original fields); when nil the object is serialized.
    public func map(object: [String: Any], originalText: String? = nil) -> Result<MappedRow, RejectReason> {
        let original = { originalText ?? jsonText(object) }
        if preference { return mapPair(object: object, original: original) }
        switch shape {
        case .columns:
            return map(lookup: { key in object[key].flatMap { text($0, joiner: "\n") } }, original: original,
                       tagLookup: { key in object[key].flatMap { text($0, joiner: "; ") } }, present: { object[$0] != nil })
        case .alpaca:
            return mapAlpaca(object, original: original)
        case .sharegpt, .messages:
            return mapTurns(object, original: original)
        }
    }

    /// The question of a columns row: its user columns joined (a user turn alone).
    func columnsPrompt(lookup: (String) -> String?, present: ((String) -> Bool)?) -> Result<[Message], RejectReason> {
        for key in userKeys where !(present.map { $0(key) } ?? (lookup(key) != nil)) {
            return .failure(RejectReason(code: "missing_field", detail: "the row has no '\(key)' field"))
        }
        var parts: [String] = []
        for key in userKeys {
            if let value = lookup(key), !isBlank(value), !parts.contains(value) { parts.append(value) }
        }
        guard !parts.isEmpty else {
            return .failure(RejectReason(code: "empty_prompt", detail: "the question (\(userKeys.joined(separator: "+"))) is empty"))
        }
        return .success([Message(role: .user, content: parts.joined(separator: "\n"))])
    }

    private func map(lookup: (String) -> String?, original: () -> String, tagLookup: ((String) -> String?)? = nil,
                     present: ((String) -> Bool)? = nil) -> Result<MappedRow, RejectReason> {
        guard present.map({ $0(assistantKey) }) ?? (lookup(assistantKey) != nil) else {
            return .failure(RejectReason(code: "missing_field", detail: "the row has no '\(assistantKey)' field"))
        }
        let user: String
        switch columnsPrompt(lookup: lookup, present: present) {
        case .failure(let reason): return .failure(reason)
        case .success(let prompt): user = prompt.last?.content ?? ""
        }
        guard let answer = lookup(assistantKey), !isBlank(answer) else {
            return .failure(RejectReason(code: "empty_answer", detail: "the answer (\(assistantKey)) is empty"))
        }
        var messages: [Message] = []
        if let systemKey, let system = lookup(systemKey), !isBlank(system) { messages.append(Message(role: .system, content: system)) }
        messages.append(Message(role: .user, content: user))
        messages.append(Message(role: .assistant, content: answer))
        return .success(MappedRow(conversation: Conversation(messages: messages), tags: tagLookup.map { tags(lookup: $0) } ?? tags(lookup: lookup), originalJSON: original()))
    }

    /// The tags of a row.
    func tags(lookup: (String) -> String?) -> [String: String] {
        var tags: [String: String] = [:]
        for (tag, key) in tagKeys {
            if let value = lookup(key), !isBlank(value) { tags[tag] = value }
        }
        return tags
    }

    private func mapAlpaca(_ object: [String: Any], original: () -> String) -> Result<MappedRow, RejectReason> {
        guard let output = object["output"].flatMap({ text($0, joiner: "\n") }) else {
            return .failure(RejectReason(code: "missing_field", detail: "the element has no 'output' field"))
        }
        guard !isBlank(output) else { return .failure(RejectReason(code: "empty_answer", detail: "the output is empty")) }
        switch alpacaPrompt(object) {
        case .failure(let reason): return .failure(reason)
        case .success(let prompt):
            let messages = prompt + [Message(role: .assistant, content: output)]
            return .success(MappedRow(conversation: Conversation(messages: messages), tags: [:], originalJSON: original()))
        }
    }

    /// An alpaca element's system, history and question, up to (not including) the answer.
    func alpacaPrompt(_ object: [String: Any]) -> Result<[Message], RejectReason> {
        guard let instruction = object["instruction"].flatMap({ text($0, joiner: "\n") }) else {
            return .failure(RejectReason(code: "missing_field", detail: "the element has no 'instruction' field"))
        }
        let input = object["input"].flatMap { text($0, joiner: "\n") } ?? ""
        let user: String
        switch (isBlank(instruction), isBlank(input)) {
        case (false, false): user = instruction + "\n" + input
        case (false, true): user = instruction
        case (true, false): user = input
        case (true, true): return .failure(RejectReason(code: "empty_prompt", detail: "instruction and input are both empty"))
        }
        var messages: [Message] = []
        if let system = object["system"].flatMap({ text($0, joiner: "\n") }), !isBlank(system) {
            messages.append(Message(role: .system, content: system))
        }
        if let history = object["history"] as? [Any] {
            for (k, pair) in history.enumerated() {
                guard let pair = pair as? [Any], pair.count == 2, let q = text(pair[0], joiner: "\n"), let a = text(pair[1], joiner: "\n") else {
                    return .failure(RejectReason(code: "malformed_row", detail: "history entry \(k + 1) is not a [question, answer] pair"))
                }
                guard !isBlank(q), !isBlank(a) else {
                    return .failure(RejectReason(code: "empty_turn", detail: "history entry \(k + 1) has an empty question or answer"))
                }
                messages += [Message(role: .user, content: q), Message(role: .assistant, content: a)]
            }
        }
        messages.append(Message(role: .user, content: user))
        return .success(messages)
    }

    private func mapTurns(_ object: [String: Any], original: () -> String) -> Result<MappedRow, RejectReason> {
        let messages: [Message]
        switch turns(object) {
        case .failure(let reason): return .failure(reason)
        case .success(let list): messages = list
        }
        guard messages.contains(where: { $0.role == .assistant }) else {
            return .failure(RejectReason(code: "no_assistant_turn", detail: "the conversation has no assistant turn"))
        }
        guard messages.contains(where: { $0.role == .user }) else {
            return .failure(RejectReason(code: "empty_prompt", detail: "the conversation has no user turn"))
        }
        if messages.last?.role == .user {
            return .failure(RejectReason(code: "ends_on_user_turn", detail: "the last turn (\(messages.count)) is from the user and has no answer to learn from"))
        }
        return .success(MappedRow(conversation: Conversation(messages: messages), tags: [:], originalJSON: original()))
    }

    /// The `system` field and the turns of a sharegpt or messages element.
    func turns(_ object: [String: Any]) -> Result<[Message], RejectReason> {
        let sharegpt = shape == .sharegpt
        let listKey = sharegpt ? "conversations" : "messages"
        guard let turns = object[listKey] as? [Any] else {
            return .failure(RejectReason(code: "missing_field", detail: "the element has no '\(listKey)' list"))
        }
        var messages: [Message] = []
        if let system = object["system"].flatMap({ text($0, joiner: "\n") }), !isBlank(system) {
            messages.append(Message(role: .system, content: system))
        }
        switch Self.parseTurns(turns) {
        case .failure(let reason): return .failure(reason)
        case .success(let list): return .success(messages + list)
        }
    }

    /// Turns written as `{from, value}` (ShareGPT) or `{role, content}` (OpenAI), either per turn.
    static func parseTurns(_ turns: [Any]) -> Result<[Message], RejectReason> {
        var messages: [Message] = []
        for (k, element) in turns.enumerated() {
            let sharegpt = (element as? [String: Any])?["from"] != nil
            let (roleKey, contentKey) = sharegpt ? ("from", "value") : ("role", "content")
            guard let turn = element as? [String: Any], let speaker = turn[roleKey] as? String else {
                return .failure(RejectReason(code: "missing_field", detail: "turn \(k + 1) has no 'from' or 'role'"))
            }
            guard let role = Self.role(speaker) else {
                return .failure(RejectReason(code: "unknown_role", detail: "turn \(k + 1) is from '\(speaker)'; known: human, user, gpt, assistant, system, function_call, observation, tool"))
            }
            guard let content = turn[contentKey].flatMap({ text($0, joiner: "\n") }), !isBlank(content) else {
                return .failure(RejectReason(code: "empty_turn", detail: "turn \(k + 1) (\(speaker)) is empty"))
            }
            messages.append(Message(role: role, content: content))
        }
        return .success(messages)
    }

    static func role(_ speaker: String) -> Role? {
        switch speaker.lowercased() {
        case "human", "user": return .user
        case "gpt", "assistant", "chatgpt", "bot", "model": return .assistant
        case "system": return .system
        case "function_call": return .functionCall
        case "observation", "tool", "function": return .observation
        default: return nil
        }
    }
}

/// A JSON value as text: strings as they are, numbers and booleans printed, arrays of those joined
/// with `joiner`, OpenAI content parts by their `text`; nil for null and objects.
func text(_ value: Any, joiner: String) -> String? {
    switch value {
    case let s as String: return s
    case let n as NSNumber: return n.stringValue
    case let list as [Any]:
        let parts = list.compactMap { item -> String? in
            if let part = item as? [String: Any] { return part["text"] as? String }
            return text(item, joiner: joiner)
        }
        return parts.joined(separator: joiner)
    default: return nil
    }
}

func isBlank(_ s: String) -> Bool {
    s.unicodeScalars.allSatisfy { $0.properties.isWhitespace }
}

/// Sorted-key JSON text of a Foundation value (for original fields and mappings).
func jsonText(_ value: Any) -> String {
    guard JSONSerialization.isValidJSONObject(value),
          let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes]) else { return "{}" }
    return String(decoding: data, as: UTF8.self)
}
