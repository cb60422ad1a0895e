/// One turn of a chat, as the trainer sees it (the store's conversations are converted to this by
/// the command-line tool; Trainer does not depend on the store).
public struct ChatMessage: Sendable, Equatable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// Chat templates, written out in Swift and recognized from the model's own Jinja template by its
/// markers (we do not run Jinja). Each renders exactly what the model family's Hugging Face
/// template renders (checked against Jinja in Tests/TrainerTests/Fixtures/chat-templates.json).
public enum ChatTemplate: Sendable, Equatable {
    /// `<|im_start|>role\ncontent<|im_end|>\n` (SmolLM2, Qwen), with a system turn inserted when
    /// the conversation has none and the model's template names a default.
    case chatml(defaultSystem: String?)
    /// Llama 3: `<|begin_of_text|>` then `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>`
    /// with the content trimmed, as Meta's template does.
    case llama3(bos: String)
    /// Mistral instruct: `<s>[INST] user [/INST]assistant</s>`; a system message is put before the
    /// first user message, separated by a blank line (Mistral's v0.2+ templates do so).
    case mistral(bos: String, eos: String)
    /// Stanford Alpaca's prompt: a preamble (the system message if there is one), then
    /// `### Instruction:\n…\n\n### Response:\n…` + EOS for each exchange.
    case alpaca(eos: String)

    /// Names accepted by `--template`.
    public static let names = ["chatml", "llama3", "mistral", "alpaca"]

    public var name: String {
        switch self {
        case .chatml: return "chatml"
        case .llama3: return "llama3"
        case .mistral: return "mistral"
        case .alpaca: return "alpaca"
        }
    }

    /// The stock preamble of Alpaca when the conversation has no system message.
    public static let alpacaPreamble = "Below is an instruction that describes a task. Write a response that appropriately completes the request."

    /// The template a user names with `--template`, taking BOS/EOS texts from the tokenizer.
    /// - Throws: `ModelError.unsupported` for an unknown name.
    public static func named(_ name: String, tokenizer: BPETokenizer?) throws -> ChatTemplate {
        let bos = tokenizer?.bosID.flatMap { tokenizer?.piece($0) }
        let eos = tokenizer?.eosID.flatMap { tokenizer?.piece($0) }
        switch name {
        case "chatml": return .chatml(defaultSystem: nil)
        case "llama3": return .llama3(bos: bos ?? "<|begin_of_text|>")
        case "mistral": return .mistral(bos: bos ?? "<s>", eos: eos ?? "</s>")
        case "alpaca": return .alpaca(eos: eos ?? "")
        default: throw ModelError.unsupported("unknown chat template \(name); known: \(names.joined(separator: ", "))")
        }
    }

    /// The template of a model, from its Jinja `chat_template` text.
    /// - Throws: `ModelError.unsupported` when the template is not one we know.
    public static func recognize(_ jinja: String?, tokenizer: BPETokenizer? = nil) throws -> ChatTemplate {
        guard let jinja else {
            throw ModelError.unsupported("the model has no chat template; name one with --template (\(names.joined(separator: ", ")))")
        }
        if jinja.contains("<|im_start|>") {
            // The default system message is a literal that follows "<|im_start|>system\n" when the
            // template inserts one for conversations without a system turn (SmolLM2, Qwen do). The
            // newline is a real one or a Jinja string escape.
            var system: String?
            for header in ["<|im_start|>system\n", "<|im_start|>system\\n"] where system == nil {
                var rest = jinja[...]
                while system == nil, let range = rest.range(of: header) {
                    if let end = jinja[range.upperBound...].range(of: "<|im_end|>") {
                        let literal = String(jinja[range.upperBound..<end.lowerBound])
                        if !literal.contains("{") && !literal.contains("'") && !literal.isEmpty {
                            system = literal.replacingOccurrences(of: "\\n", with: "\n")
                        }
                    }
                    rest = jinja[range.upperBound...]
                }
            }
            return .chatml(defaultSystem: system)
        }
        if jinja.contains("<|start_header_id|>") && jinja.contains("<|eot_id|>") {
            if jinja.contains("Cutting Knowledge Date") || jinja.contains("tools_in_user_message") {
                throw ModelError.unsupported("the model's template is Llama 3.1's or later (dated system preamble, tools), which corpus does not write yet; name --template llama3 to use Llama 3's")
            }
            return try named("llama3", tokenizer: tokenizer)
        }
        if jinja.contains("[INST]") && jinja.contains("[/INST]") { return try named("mistral", tokenizer: tokenizer) }
        if jinja.contains("### Instruction:") && jinja.contains("### Response:") { return try named("alpaca", tokenizer: tokenizer) }
        throw ModelError.unsupported("the model's chat template is not one corpus knows (\(names.joined(separator: ", "))); name one with --template")
    }

    /// A rendered conversation: the text, and the UTF-8 byte ranges of what the assistant says
    /// (each answer with its end-of-turn token), which is what training learns from.
    public struct Rendered: Sendable, Equatable {
        public var text = ""
        public var assistantSpans: [Range<Int>] = []

        mutating func add(_ piece: String) { text += piece }

        mutating func addAssistant(_ piece: String) {
            let start = text.utf8.count
            text += piece
            assistantSpans.append(start..<text.utf8.count)
        }
    }

    /// The conversation as text; with `generationPrompt`, ending with the assistant's header.
    public func render(_ messages: [ChatMessage], generationPrompt: Bool) -> String {
        renderWithSpans(messages, generationPrompt: generationPrompt).text
    }

    public func renderWithSpans(_ messages: [ChatMessage], generationPrompt: Bool) -> Rendered {
        var out = Rendered()
        switch self {
        case let .chatml(defaultSystem):
            if let defaultSystem, messages.first?.role != "system" {
                out.add("<|im_start|>system\n\(defaultSystem)<|im_end|>\n")
            }
            for m in messages {
                out.add("<|im_start|>\(m.role)\n")
                if m.role == "assistant" { out.addAssistant("\(m.content)<|im_end|>") } else { out.add("\(m.content)<|im_end|>") }
                out.add("\n")
            }
            if generationPrompt { out.add("<|im_start|>assistant\n") }
        case let .llama3(bos):
            out.add(bos)
            for m in messages {
                out.add("<|start_header_id|>\(m.role)<|end_header_id|>\n\n")
                let content = Self.jinjaTrim(m.content) + "<|eot_id|>"
                if m.role == "assistant" { out.addAssistant(content) } else { out.add(content) }
            }
            if generationPrompt { out.add("<|start_header_id|>assistant<|end_header_id|>\n\n") }
        case let .mistral(bos, eos):
            out.add(bos)
            var system: String?
            for m in messages {
                switch m.role {
                case "system": system = m.content
                case "assistant": out.addAssistant(m.content + eos)
                default:
                    let content = system.map { "\($0)\n\n\(m.content)" } ?? m.content
                    system = nil
                    out.add("[INST] \(content) [/INST]")
                }
            }
        case let .alpaca(eos):
            // The last user message already ends with the response header, so the generation
            // prompt adds nothing.
            out.add((messages.first { $0.role == "system" }?.content ?? Self.alpacaPreamble) + "\n\n")
            let turns = messages.filter { $0.role != "system" }
            for (i, m) in turns.enumerated() {
                if m.role == "assistant" {
                    out.addAssistant(m.content + eos)
                    if i + 1 < turns.count { out.add("\n\n") }
                } else {
                    out.add("### Instruction:\n\(m.content)\n\n### Response:\n")
                }
            }
        }
        return out
    }

    /// Jinja's `trim`: Python's `str.strip()`, which removes Unicode whitespace at both ends.
    static func jinjaTrim(_ s: String) -> String {
        let scalars = Array(s.unicodeScalars)
        var a = 0, b = scalars.count
        while a < b && scalars[a].properties.isWhitespace { a += 1 }
        while b > a && scalars[b - 1].properties.isWhitespace { b -= 1 }
        return PreTokenization.text(scalars[a..<b])
    }

    /// Token ids of the conversation and, for each, whether it is an assistant token (part of an
    /// answer or its end-of-turn token), which is where the training loss is taken. A token that
    /// overlaps an answer counts as the answer's (as Hugging Face's assistant-token mask does).
    public func encode(_ messages: [ChatMessage], tokenizer: BPETokenizer, generationPrompt: Bool = false) -> (ids: [Int], assistantMask: [Bool]) {
        let rendered = renderWithSpans(messages, generationPrompt: generationPrompt)
        let (ids, offsets) = tokenizer.encodeWithOffsets(rendered.text)
        var mask = [Bool](repeating: false, count: ids.count)
        var s = 0
        for (i, range) in offsets.enumerated() {
            while s < rendered.assistantSpans.count && rendered.assistantSpans[s].upperBound <= range.lowerBound { s += 1 }
            if s < rendered.assistantSpans.count && rendered.assistantSpans[s].overlaps(range) { mask[i] = true }
        }
        return (ids, mask)
    }
}
