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

/// Chat templates, recognized from the model's own Jinja template by its markers (we do not run
/// Jinja). So far: ChatML (SmolLM2, Qwen).
public enum ChatTemplate: Sendable, Equatable {
    /// `<|im_start|>role\ncontent<|im_end|>\n`, with a system turn inserted when the conversation
    /// has none and the model's template names a default.
    case chatml(defaultSystem: String?)

    /// The template of a model, from its `tokenizer.chat_template` text.
    /// - Throws: `TrainerError.unsupported` when the template is not one we know.
    public static func recognize(_ jinja: String?) throws -> ChatTemplate {
        guard let jinja else {
            throw TrainerError.unsupported("the model has no chat template; name one with --template chatml")
        }
        if jinja.contains("<|im_start|>") {
            // The default system message is the literal that follows "<|im_start|>system\n" when the
            // template inserts one for conversations without a system turn (SmolLM2 does).
            var system: String?
            if let range = jinja.range(of: "<|im_start|>system\n"), let end = jinja[range.upperBound...].range(of: "<|im_end|>") {
                let literal = String(jinja[range.upperBound..<end.lowerBound])
                if !literal.contains("{") { system = literal }
            }
            return .chatml(defaultSystem: system)
        }
        throw TrainerError.unsupported("the model's chat template is not one corpus knows yet (ChatML is); name one with --template")
    }

    /// The conversation as text; with `generationPrompt`, ending with the assistant's header.
    public func render(_ messages: [ChatMessage], generationPrompt: Bool) -> String {
        switch self {
        case let .chatml(defaultSystem):
            var out = ""
            if let defaultSystem, messages.first?.role != "system" {
                out += "<|im_start|>system\n\(defaultSystem)<|im_end|>\n"
            }
            for m in messages { out += "<|im_start|>\(m.role)\n\(m.content)<|im_end|>\n" }
            if generationPrompt { out += "<|im_start|>assistant\n" }
            return out
        }
    }
}
