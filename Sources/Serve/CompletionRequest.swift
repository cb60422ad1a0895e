import Foundation
import ModelRuntime

/// A request to `/v1/chat/completions` or `/v1/completions`, checked and tokenized: what the
/// scheduler needs, plus what the response needs (stop strings, streaming).
public struct CompletionRequest: Sendable {
    public enum Kind: Sendable { case chat, text }

    public var kind: Kind
    /// Index into `ModelHost.models` of the `model` asked for.
    public var modelIndex: Int
    public var prompt: [Int]
    public var parameters: GenerationParameters
    public var stops: [String]
    public var stream: Bool
    /// `stream_options.include_usage`: a last chunk carries `usage`.
    public var includeUsage: Bool

    /// Parses and checks a request body against what `host` serves.
    /// - Parameters:
    ///   - maxTokensLimit: the largest `max_tokens` accepted (`--max-tokens-limit`).
    /// - Throws: `ServeError` (400 for malformed JSON, a wrong field or a context overflow, with
    ///   the field in `param`; 404 for an unknown model).
    public static func parse(_ body: Data, kind: Kind, host: ModelHost, maxTokensLimit: Int) throws -> CompletionRequest {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: body)
        } catch {
            throw ServeError.malformedJSON(body.isEmpty ? "the body is empty" : "it is not valid JSON")
        }
        guard let fields = object as? [String: Any] else { throw ServeError.malformedJSON("the body is JSON but not an object") }
        try refuseUnsupported(fields, kind: kind)
        try checkIntegers(fields)
        let decoded: Body
        do {
            decoded = try JSONDecoder().decode(Body.self, from: body)
        } catch let error as DecodingError {
            throw Self.describe(error)
        }
        let modelIndex = try host.index(of: decoded.model)

        let prompt: [Int]
        switch kind {
        case .chat:
            guard let messages = decoded.messages else { throw ServeError.invalid("Missing required parameter: 'messages'.", param: "messages", code: "missing_required_parameter") }
            guard !messages.isEmpty else { throw ServeError.invalid("'messages' is empty; give at least one message.", param: "messages") }
            let chat = try messages.enumerated().map { i, m in try m.chatMessage(index: i) }
            prompt = host.tokenizer.encode(host.template.render(chat, generationPrompt: true))
        case .text:
            guard let given = decoded.prompt else { throw ServeError.invalid("Missing required parameter: 'prompt'.", param: "prompt", code: "missing_required_parameter") }
            prompt = try given.ids(tokenizer: host.tokenizer, vocabulary: host.base.configuration.vocabSize)
        }
        guard !prompt.isEmpty else { throw ServeError.invalid("The prompt is empty (no token); give some text.", param: kind == .chat ? "messages" : "prompt") }

        var p = GenerationParameters()
        let window = host.contextWindow
        let promptParam = kind == .chat ? "messages" : "prompt"
        let asked = decoded.max_completion_tokens ?? decoded.max_tokens
        let tokensParam = decoded.max_completion_tokens != nil ? "max_completion_tokens" : "max_tokens"
        if let asked {
            guard asked >= 1 else { throw ServeError.invalid("\(tokensParam) is \(asked); it must be at least 1.", param: tokensParam) }
            guard asked <= maxTokensLimit else {
                throw ServeError.invalid("\(tokensParam) is \(asked), more than this server allows (\(maxTokensLimit), --max-tokens-limit).", param: tokensParam)
            }
            guard prompt.count + asked <= window else {
                throw ServeError.contextOverflow(window: window, prompt: prompt.count, completion: asked, param: promptParam)
            }
            p.maxTokens = asked
        } else {
            // OpenAI's defaults: as much as fits for chat, 16 for the legacy completions endpoint.
            guard prompt.count < window else { throw ServeError.contextOverflow(window: window, prompt: prompt.count, completion: 1, param: promptParam) }
            p.maxTokens = min(kind == .chat ? maxTokensLimit : 16, window - prompt.count)
        }
        let temperature = decoded.temperature ?? 1
        guard temperature.isFinite, (0...2).contains(temperature) else {
            throw ServeError.invalid("temperature is \(temperature); it must be between 0 and 2 (0 for greedy answers).", param: "temperature")
        }
        let topP = decoded.top_p ?? 1
        guard topP > 0, topP <= 1 else { throw ServeError.invalid("top_p is \(topP); it must be in (0, 1].", param: "top_p") }
        p.temperature = Float(temperature)
        p.topP = Float(topP)
        p.seed = decoded.seed.map { UInt64(bitPattern: $0) } ?? 0
        p.stopTokenIDs = host.stopTokenIDs
        let stops = decoded.stop?.strings ?? []
        guard stops.count <= 4 else { throw ServeError.invalid("stop has \(stops.count) strings; at most 4 are allowed.", param: "stop") }
        guard !stops.contains("") else { throw ServeError.invalid("stop contains an empty string; every stop string needs at least one character.", param: "stop") }
        return CompletionRequest(kind: kind, modelIndex: modelIndex, prompt: prompt, parameters: p, stops: stops,
                                 stream: decoded.stream ?? false, includeUsage: decoded.stream_options?.include_usage ?? false)
    }

    /// Fields OpenAI defines that this server does not implement: refused when given a value
    /// other than their default, rather than silently ignored.
    static func refuseUnsupported(_ fields: [String: Any], kind: Kind) throws {
        func isDefault(_ value: Any, _ expected: Double) -> Bool {
            if value is NSNull { return true }
            if let b = value as? Bool { return (b ? 1 : 0) == expected }
            return (value as? NSNumber)?.doubleValue == expected
        }
        if let n = fields["n"], !isDefault(n, 1) { throw ServeError.invalid("n must be 1: this server returns one choice per request; send several requests instead.", param: "n") }
        if let b = fields["best_of"], !isDefault(b, 1) { throw ServeError.invalid("best_of must be 1 on this server.", param: "best_of") }
        for key in ["presence_penalty", "frequency_penalty"] {
            if let v = fields[key], !isDefault(v, 0) { throw ServeError.invalid("\(key) is not supported by this server; leave it out or set it to 0.", param: key) }
        }
        for key in ["tools", "functions", "tool_choice", "function_call", "logit_bias", "suffix", "response_format", "audio", "modalities", "prediction"] {
            if let v = fields[key], !(v is NSNull) {
                if key == "response_format", let f = v as? [String: Any], f["type"] as? String == "text" { continue }
                if key == "logit_bias", let b = v as? [String: Any], b.isEmpty { continue }
                throw ServeError.invalid("\(key) is not supported by this server (plain text answers only); leave it out.", param: key)
            }
        }
        if let v = fields["logprobs"], !isDefault(v, 0) {
            throw ServeError.invalid("logprobs are not returned by this server yet; leave logprobs out (or false).", param: "logprobs")
        }
        if let v = fields["echo"], !isDefault(v, 0) { throw ServeError.invalid("echo is not supported by this server; leave it out.", param: "echo") }
    }

    /// The integer fields, checked before decoding so that a fraction or an out-of-range number
    /// is named (Foundation's decoder reports those without the field).
    static func checkIntegers(_ fields: [String: Any]) throws {
        for key in ["max_tokens", "max_completion_tokens", "seed"] {
            guard let value = fields[key], !(value is NSNull) else { continue }
            // Strings and booleans are left to the decoder, which names the field for them.
            guard let number = value as? NSNumber else { continue }
            let d = number.doubleValue
            guard d.isFinite, d == d.rounded(), Int64(number.stringValue) != nil || abs(d) < 9e18 else {
                throw ServeError.invalid("Invalid value for '\(key)': \(number.stringValue) is not an integer between -2^63 and 2^63 - 1.", param: key, code: "invalid_value")
            }
        }
    }

    static func describe(_ error: DecodingError) -> ServeError {
        func path(_ context: DecodingError.Context) -> String? {
            let keys = context.codingPath.map { key in key.intValue.map { "[\($0)]" } ?? "." + key.stringValue }.joined()
            let trimmed = keys.hasPrefix(".") ? String(keys.dropFirst()) : keys
            return trimmed.isEmpty ? nil : trimmed
        }
        switch error {
        case let .keyNotFound(key, context):
            let name = (path(context).map { $0 + "." } ?? "") + key.stringValue
            return ServeError.invalid("Missing required parameter: '\(name)'.", param: name, code: "missing_required_parameter")
        case let .typeMismatch(type, context):
            let name = path(context) ?? "body"
            return ServeError.invalid("Invalid type for '\(name)': expected \(Self.typeName(type)).", param: name, code: "invalid_type")
        case let .valueNotFound(type, context):
            let name = path(context) ?? "body"
            return ServeError.invalid("Invalid value for '\(name)': expected \(Self.typeName(type)), got null.", param: name, code: "invalid_type")
        case let .dataCorrupted(context):
            let name = path(context)
            return ServeError.invalid("Invalid value\(name.map { " for '\($0)'" } ?? ""): \(context.debugDescription)", param: name, code: "invalid_value")
        @unknown default:
            return ServeError.invalid("The request body does not match the API: \(error)")
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is Int64.Type: return "an integer"
        case is Double.Type: return "a number"
        case is Bool.Type: return "a boolean"
        case is [Any].Type: return "an array"
        default: return "\(type)"
        }
    }

    /// The fields read, with OpenAI's names.
    struct Body: Decodable {
        var model: String
        var messages: [Message]?
        var prompt: Prompt?
        var temperature: Double?
        var top_p: Double?
        var max_tokens: Int?
        var max_completion_tokens: Int?
        var stop: Stop?
        var seed: Int64?
        var stream: Bool?
        var stream_options: StreamOptions?
    }

    struct StreamOptions: Decodable {
        var include_usage: Bool?
    }

    struct Message: Decodable {
        var role: String
        var content: Content?

        func chatMessage(index: Int) throws -> ChatMessage {
            let roles = ["system", "developer", "user", "assistant"]
            guard roles.contains(role) else {
                throw ServeError.invalid("messages[\(index)].role is '\(role)'; this server takes system, developer, user and assistant messages (no tool messages).", param: "messages[\(index)].role")
            }
            guard let content else {
                // OpenAI lets only an assistant message (one that called tools) go without content.
                guard role == "assistant" else {
                    throw ServeError.invalid("Missing required parameter: 'messages[\(index)].content'.", param: "messages[\(index)].content", code: "missing_required_parameter")
                }
                return ChatMessage(role: role, content: "")
            }
            let text = try content.text(index: index)
            // The chat templates know system, user and assistant; a developer message is a system one.
            return ChatMessage(role: role == "developer" ? "system" : role, content: text)
        }
    }

    /// A message's `content`: a string, or an array of parts of which only text parts are read.
    enum Content: Decodable {
        case text(String)
        case parts([Part])

        struct Part: Decodable {
            var type: String
            var text: String?
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .text(s) } else { self = .parts(try c.decode([Part].self)) }
        }

        func text(index: Int) throws -> String {
            switch self {
            case let .text(s): return s
            case let .parts(parts):
                return try parts.enumerated().map { j, part in
                    guard part.type == "text", let text = part.text else {
                        throw ServeError.invalid("messages[\(index)].content[\(j)] is of type '\(part.type)'; this server reads text parts only.", param: "messages[\(index)].content[\(j)]")
                    }
                    return text
                }.joined()
            }
        }
    }

    /// `stop`: one string or an array of strings.
    enum Stop: Decodable {
        case one(String)
        case many([String])

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .one(s) } else { self = .many(try c.decode([String].self)) }
        }

        var strings: [String] {
            switch self {
            case let .one(s): return [s]
            case let .many(a): return a
            }
        }
    }

    /// `prompt` of /v1/completions: a string, token ids, or an array holding one of either.
    enum Prompt: Decodable {
        case text(String)
        case ids([Int])
        case batch([Prompt])

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .text(s) } else if let ids = try? c.decode([Int].self) { self = .ids(ids) } else {
                self = .batch(try c.decode([Prompt].self))
            }
        }

        func ids(tokenizer: BPETokenizer, vocabulary: Int) throws -> [Int] {
            switch self {
            case let .text(s): return tokenizer.encode(s)
            case let .ids(ids):
                if let bad = ids.first(where: { $0 < 0 || $0 >= vocabulary }) {
                    throw ServeError.invalid("prompt holds token id \(bad), outside the model's vocabulary (0..<\(vocabulary)).", param: "prompt")
                }
                return ids
            case let .batch(prompts):
                guard prompts.count == 1, let only = prompts.first, !(only.isBatch) else {
                    throw ServeError.invalid("prompt holds \(prompts.count) prompts; this server answers one prompt per request (send one request each).", param: "prompt")
                }
                return try only.ids(tokenizer: tokenizer, vocabulary: vocabulary)
            }
        }

        var isBatch: Bool { if case .batch = self { return true } else { return false } }
    }
}
