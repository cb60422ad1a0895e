import Foundation
import TestSupport
import Testing
@testable import ModelRuntime
@testable import Trainer

/// Chat templates against the model families' own Jinja templates rendered by jinja2
/// (Fixtures/chat-templates.json, made by scripts/make-template-fixtures.py).
@Suite("Chat templates against Jinja")
struct ChatTemplateTests {
    static func fixture() throws -> (conversations: [[ChatMessage]], templates: [String: [String: Any]]) {
        let json = try TrainerFixtures.json("chat-templates.json")
        let conversations = try #require(json["conversations"] as? [[[String: String]]]).map { turns in
            turns.map { ChatMessage(role: $0["role"] ?? "", content: $0["content"] ?? "") }
        }
        return (conversations, try #require(json["templates"] as? [String: [String: Any]]))
    }

    @Test func recognizedAndRenderedAsJinjaDoes() throws {
        let (conversations, templates) = try Self.fixture()
        #expect(templates.keys.sorted() == ["llama3", "mistral", "qwen2", "smollm2"])
        var rendered = 0
        for (name, spec) in templates {
            let template = try ChatTemplate.recognize(spec["jinja"] as? String)
            #expect(template.name == spec["kind"] as? String, "\(name)")
            for entry in try #require(spec["rendered"] as? [[String: Any]]) {
                let conversation = conversations[try #require(entry["conversation"] as? Int)]
                let generation = try #require(entry["generation_prompt"] as? Bool)
                #expect(template.render(conversation, generationPrompt: generation) == entry["text"] as? String,
                        "\(name) conversation \(entry["conversation"] ?? "") generation \(generation)")
                rendered += 1
            }
        }
        #expect(rendered == 15)
        #expect(try ChatTemplate.recognize(templates["smollm2"]?["jinja"] as? String)
            == .chatml(defaultSystem: "You are a helpful AI assistant named SmolLM, trained by Hugging Face"))
    }

    @Test func alpacaByHand() throws {
        let template = ChatTemplate.alpaca(eos: "</s>")
        let text = template.renderWithSpans([ChatMessage(role: "user", content: "Q1"), ChatMessage(role: "assistant", content: "A1"),
                                             ChatMessage(role: "user", content: "Q2"), ChatMessage(role: "assistant", content: "A2")],
                                            generationPrompt: false)
        let preamble = ChatTemplate.alpacaPreamble
        #expect(text.text == "\(preamble)\n\n### Instruction:\nQ1\n\n### Response:\nA1</s>\n\n### Instruction:\nQ2\n\n### Response:\nA2</s>")
        let spans = text.assistantSpans.map { Array(text.text.utf8)[$0] }.map { String(decoding: $0, as: UTF8.self) }
        #expect(spans == ["A1</s>", "A2</s>"])
        #expect(template.render([ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Q")], generationPrompt: true)
            == "Be brief.\n\n### Instruction:\nQ\n\n### Response:\n")
        #expect(throws: ModelError.self) { try ChatTemplate.named("vicuna", tokenizer: nil) }
        #expect(throws: ModelError.self) { try ChatTemplate.recognize("{{ messages }}") }
    }

    /// The assistant mask covers exactly each answer and its end-of-turn token.
    @Test(.needsTestModel) func assistantMask() throws {
        let path = try TrainerFixtures.smolLM2
        let tokenizer = try BPETokenizer.fromGGUF(GGUFFile(path: path).metadata)
        let (conversations, _) = try Self.fixture()
        let template = ChatTemplate.chatml(defaultSystem: "S")
        for conversation in conversations {
            let (ids, mask) = template.encode(conversation, tokenizer: tokenizer)
            #expect(ids == tokenizer.encode(template.render(conversation, generationPrompt: false)))
            // Consecutive masked tokens decode to the answers, each ending with <|im_end|>.
            var answers: [String] = []
            var current: [Int] = []
            for (id, m) in zip(ids, mask) {
                if m { current.append(id) } else if !current.isEmpty { answers.append(tokenizer.decode(current)); current = [] }
            }
            if !current.isEmpty { answers.append(tokenizer.decode(current)) }
            // A token that straddles the start of an answer counts as the answer's (Hugging Face's
            // rule): "assistant\n" + "\n Answer" gives the token "\n\n".
            let expected = conversation.filter { $0.role == "assistant" }.map { $0.content + "<|im_end|>" }
                .map { $0.hasPrefix("\n") ? "\n" + $0 : $0 }
            #expect(answers == expected)
        }
        let (_, noAnswer) = template.encode([ChatMessage(role: "user", content: "hi")], tokenizer: tokenizer, generationPrompt: true)
        #expect(!noAnswer.contains(true))
    }
}

/// A Hugging Face folder's tokenizer.json, tokenizer_config.json (template, BOS/EOS) and
/// generation_config.json (stop ids) are read together by ModelFiles.
@Suite("Model folder files")
struct ModelFilesTests {
    @Test(.needsTestModel) func folderTokenizerTemplateAndStopIDs() throws {
        let path = try TrainerFixtures.smolLM2
        let gguf = try GGUFFile(path: path)
        let tokens = try #require(gguf.metadata["tokenizer.ggml.tokens"]?.strings)
        let merges = try #require(gguf.metadata["tokenizer.ggml.merges"]?.strings)
        let jinja = try #require(gguf.metadata["tokenizer.chat_template"]?.string)
        let dir = try TestSupport.temporaryDirectory("model-folder")
        func write(_ name: String, _ json: [String: Any]) throws {
            try JSONSerialization.data(withJSONObject: json).write(to: dir.appendingPathComponent(name))
        }
        try write("tokenizer.json", [
            "model": ["type": "BPE", "vocab": Dictionary(uniqueKeysWithValues: tokens.enumerated().map { ($1, $0) }), "merges": merges],
            "pre_tokenizer": ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true],
                                                                    ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true]]],
            "decoder": ["type": "ByteLevel"],
            "added_tokens": [0, 1, 2].map { ["id": $0, "content": tokens[$0], "special": true] },
        ])
        try write("tokenizer_config.json", ["bos_token": ["content": "<|im_start|>"], "eos_token": "<|im_end|>", "chat_template": jinja])
        try write("generation_config.json", ["eos_token_id": [2, 0]])
        let files = try ModelFiles(path: dir.path)
        let tokenizer = try files.tokenizer()
        #expect(tokenizer.preTokenizer == .smollm)
        #expect(tokenizer.bosID == 1)
        #expect(tokenizer.eosID == 2)
        #expect(tokenizer.encode("<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n")
            == [1, 4093, 198, 18645, 250, 48392, 138, 2, 198, 1, 520, 9531, 198])
        #expect(files.chatTemplate == jinja)
        #expect(try ChatTemplate.recognize(files.chatTemplate, tokenizer: tokenizer).name == "chatml")
        #expect(files.stopTokenIDs(tokenizer: tokenizer, configuration: LoaderTests.config) == [0, 2])
        #expect(throws: ModelError.invalidFile(path: dir.appendingPathComponent("nothing").path,
                                                 detail: "no such file or folder; give a .gguf file or a Hugging Face model folder")) {
            try ModelFiles(path: dir.appendingPathComponent("nothing").path)
        }
    }
}
