import Foundation

/// The tokenizer files of a Hugging Face folder, written from a GGUF file's `tokenizer.*`
/// metadata, so a model that arrived as GGUF can be loaded by transformers (`AutoTokenizer`) and
/// trained elsewhere: `tokenizer.json` (the `tokenizers` library's serialization: byte-level BPE
/// with the vocabulary, the merges in rank order, the added tokens, the pre-tokenizer the GGUF
/// names), `tokenizer_config.json` (special tokens, the chat template, the context length) and
/// `generation_config.json` (BOS and EOS ids).
///
/// Supported as `BPETokenizer.fromGGUF` reads them: `tokenizer.ggml.model = gpt2` with the
/// pre-tokenizers smollm, gpt2, llama-bpe (Llama 3) and qwen2. Each is written as the model's
/// own Hugging Face tokenizer.json spells it, so the ids are the same as ours.
public enum TokenizerFiles {
    /// The three files' bytes (JSON, keys sorted), by file name.
    /// - Throws: `ModelError.unsupported` for a tokenizer `BPETokenizer.fromGGUF` does not read.
    public static func fromGGUF(_ metadata: [String: GGUFValue], contextLength: Int?) throws -> [String: Data] {
        // Reading it first refuses what we could not write faithfully, with the same messages.
        _ = try BPETokenizer.fromGGUF(metadata)
        guard let tokens = metadata["tokenizer.ggml.tokens"]?.strings, let merges = metadata["tokenizer.ggml.merges"]?.strings else {
            throw ModelError.unsupported("the GGUF has no tokenizer.ggml.tokens or tokenizer.ggml.merges")
        }
        let types = metadata["tokenizer.ggml.token_type"]?.ints ?? []
        let preName = metadata["tokenizer.ggml.pre"]?.string ?? "gpt2"
        let pre = BPETokenizer.PreTokenizer(ggufName: preName) ?? .gpt2
        func id(_ key: String) -> Int? { metadata["tokenizer.ggml.\(key)"]?.int }
        func token(_ key: String) -> String? { id(key).flatMap { $0 >= 0 && $0 < tokens.count ? tokens[$0] : nil } }

        // Control (3) and user-defined (4) tokens are the added tokens; control ones are special.
        var added: [[String: Any]] = []
        for (i, type) in types.enumerated() where type == 3 || type == 4 {
            added.append(["id": i, "content": tokens[i], "single_word": false, "lstrip": false, "rstrip": false,
                          "normalized": type == 4, "special": type == 3])
        }
        var vocab: [String: Int] = [:]
        for (i, t) in tokens.enumerated() where vocab[t] == nil { vocab[t] = i }

        func byteLevel(regex: Bool, trim: Bool) -> [String: Any] {
            ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": trim, "use_regex": regex]
        }
        func split(_ pattern: String) -> [String: Any] {
            ["type": "Split", "pattern": ["Regex": pattern], "behavior": "Isolated", "invert": false]
        }
        let preTokenizer: [String: Any]
        switch pre {
        case .gpt2: preTokenizer = byteLevel(regex: true, trim: true)
        case .smollm:
            preTokenizer = ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevel(regex: true, trim: true)]]
        case .llama3:
            preTokenizer = ["type": "Sequence", "pretokenizers": [split(BPETokenizer.llama3Regex), byteLevel(regex: false, trim: true)]]
        case .qwen2:
            preTokenizer = ["type": "Sequence", "pretokenizers": [split(BPETokenizer.qwen2Regex), byteLevel(regex: false, trim: false)]]
        }
        // BOS is added by the post-processor when the GGUF says so (Llama 3), as its tokenizer.json does.
        let addBOS = metadata["tokenizer.ggml.add_bos_token"]?.bool ?? false
        var postProcessor: [String: Any] = byteLevel(regex: false, trim: false)
        if addBOS, let bos = token("bos_token_id"), let bosID = id("bos_token_id") {
            postProcessor = [
                "type": "TemplateProcessing",
                "single": [["SpecialToken": ["id": bos, "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
                "pair": [["SpecialToken": ["id": bos, "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]],
                         ["SpecialToken": ["id": bos, "type_id": 1]], ["Sequence": ["id": "B", "type_id": 1]]],
                "special_tokens": [bos: ["id": bos, "ids": [bosID], "tokens": [bos]]],
            ]
        }
        let tokenizer: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added,
            "normalizer": pre == .qwen2 ? ["type": "NFC"] as Any : NSNull(),
            "pre_tokenizer": preTokenizer, "post_processor": postProcessor,
            "decoder": byteLevel(regex: true, trim: true),
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": token("unknown_token_id") as Any? ?? NSNull(),
                      "continuing_subword_prefix": NSNull(), "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false,
                      "ignore_merges": pre == .llama3, "vocab": vocab, "merges": merges] as [String: Any],
        ]

        var config: [String: Any] = ["tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": false,
                                     "add_bos_token": addBOS, "add_eos_token": false]
        if let bos = token("bos_token_id") { config["bos_token"] = bos }
        if let eos = token("eos_token_id") { config["eos_token"] = eos }
        if let unk = token("unknown_token_id") { config["unk_token"] = unk }
        if let pad = token("padding_token_id") { config["pad_token"] = pad }
        if let template = metadata["tokenizer.chat_template"]?.string { config["chat_template"] = template }
        if let contextLength { config["model_max_length"] = contextLength }

        var generation: [String: Any] = ["_from_model_config": true]
        if let bos = id("bos_token_id") { generation["bos_token_id"] = bos }
        if let eos = id("eos_token_id") { generation["eos_token_id"] = eos }
        if let pad = id("padding_token_id") { generation["pad_token_id"] = pad }

        func json(_ object: [String: Any]) throws -> Data {
            try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]) + Data("\n".utf8)
        }
        return ["tokenizer.json": try json(tokenizer), "tokenizer_config.json": try json(config), "generation_config.json": try json(generation)]
    }
}
