import Foundation

/// Reading Hugging Face `tokenizer.json` (the `tokenizers` library's serialization) for byte-level
/// BPE models, and the special tokens and chat template of `tokenizer_config.json`.
///
/// Supported: model `BPE` without byte fallback; normalizer none or `NFC`; pre-tokenizers
/// `ByteLevel` (GPT-2's regex), `Sequence[Digits(individual), ByteLevel]` (SmolLM), and
/// `Sequence[Split(regex), ByteLevel(use_regex: false)]` with Llama 3's or Qwen2's regex; decoder
/// `ByteLevel`. Anything else is refused with what was found, so no text is silently tokenized
/// differently from Hugging Face.
extension BPETokenizer {
    /// How many ids below the largest may be unused in tokenizer.json before the file is refused.
    static let maximumIDGap = 65_536
    /// The largest tokenizer.json read (48 MiB; real byte-level BPE files are 2-30 MB). A file of
    /// 10^7 merges is at least 60 MB, and parsing one costs about ten times its size.
    public static let maximumTokenizerJSONBytes = 48 << 20

    static func tooLarge(path: String, bytes: Int) -> ModelError {
        ModelError.invalidFile(path: path, detail: "the file holds \(bytes) bytes, more than the \(maximumTokenizerJSONBytes >> 20) MiB of any byte-level BPE tokenizer corpus reads; the file is damaged or not a tokenizer")
    }

    static let llama3Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let gpt2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    /// The tokenizer of `tokenizer.json`; `bos` and `eos` name tokens (from tokenizer_config.json).
    /// - Throws: `ModelError.invalidFile` for malformed JSON, `.unsupported` for a model,
    ///   normalizer or pre-tokenizer that is not byte-level BPE as listed above.
    public static func fromTokenizerJSON(path: String, bos: String? = nil, eos: String? = nil) throws -> BPETokenizer {
        // Checked before reading: parsing costs about ten times the file in memory.
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size > maximumTokenizerJSONBytes {
            throw tooLarge(path: path, bytes: size)
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError.invalidFile(path: path, detail: "cannot read the file")
        }
        return try fromTokenizerJSON(data: data, path: path, bos: bos, eos: eos)
    }

    /// The tokenizer of a `tokenizer.json` text; `path` names it in errors.
    /// - Throws: as `fromTokenizerJSON(path:bos:eos:)`.
    public static func fromTokenizerJSON(data: Data, path: String, bos: String? = nil, eos: String? = nil) throws -> BPETokenizer {
        guard data.count <= maximumTokenizerJSONBytes else { throw tooLarge(path: path, bytes: data.count) }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelError.invalidFile(path: path, detail: "not a JSON object")
        }
        guard let model = json["model"] as? [String: Any], (model["type"] as? String ?? "BPE") == "BPE",
              let vocab = model["vocab"] as? [String: Any] else {
            let type = (json["model"] as? [String: Any])?["type"] as? String ?? "(none)"
            throw ModelError.unsupported("\(path): tokenizer model \(type) is not supported; byte-level BPE is")
        }
        if model["byte_fallback"] as? Bool == true {
            throw ModelError.unsupported("\(path): a BPE with byte_fallback (SentencePiece style, Llama 2 and Mistral) is not supported yet; byte-level BPE is")
        }
        // Tokens by id: the vocabulary, then the added tokens (Qwen2's lie outside `model.vocab`).
        let merged = model["merges"] as? [Any] ?? []
        try checkSizes(tokens: vocab.count, merges: merged.count, path: path)
        var byID: [Int: String] = [:]
        for (token, value) in vocab {
            guard let id = value as? Int, id >= 0 else {
                throw ModelError.invalidFile(path: path, detail: "model.vocab[\(token.debugDescription)] is not a non-negative integer id")
            }
            byID[id] = token
        }
        var special: [Int] = []
        var added: [Int] = []
        for entry in json["added_tokens"] as? [[String: Any]] ?? [] {
            guard let id = entry["id"] as? Int, id >= 0, let content = entry["content"] as? String else {
                throw ModelError.invalidFile(path: path, detail: "an entry of added_tokens has no id or content")
            }
            if let existing = byID[id], existing != content {
                throw ModelError.invalidFile(path: path, detail: "added token \(id) is \(content.debugDescription) but the vocabulary has \(existing.debugDescription)")
            }
            byID[id] = content
            if entry["special"] as? Bool == true { special.append(id) } else { added.append(id) }
        }
        // The table is indexed by id, so its size comes from the largest id: bound it by what the
        // file holds (real vocabularies number their tokens 0..<N, with at most a few gaps), so a
        // hostile id such as 10^15 is an error rather than an allocation the process cannot survive.
        let maxID = byID.keys.max() ?? -1
        guard maxID < byID.count + Self.maximumIDGap else {
            throw ModelError.invalidFile(path: path, detail: "token id \(maxID) is far beyond the \(byID.count) tokens the file defines (ids run 0..<N with at most \(Self.maximumIDGap) unused); the file is damaged")
        }
        let count = maxID + 1
        var tokens = [String](repeating: "", count: count)
        for (id, token) in byID { tokens[id] = token }

        var merges: [String] = []
        for (i, merge) in merged.enumerated() {
            if let text = merge as? String {
                merges.append(text)
            } else if let pair = merge as? [String], pair.count == 2 {
                merges.append(pair[0] + " " + pair[1])
            } else {
                throw ModelError.invalidFile(path: path, detail: "model.merges[\(i)] is neither \"a b\" nor [\"a\", \"b\"]")
            }
        }

        let nfc: Bool
        switch json["normalizer"] {
        case nil, is NSNull: nfc = false
        case let n as [String: Any] where n["type"] as? String == "NFC": nfc = true
        case let n as [String: Any]:
            throw ModelError.unsupported("\(path): normalizer \(n["type"] as? String ?? "?") is not supported; none or NFC is")
        default: throw ModelError.invalidFile(path: path, detail: "normalizer is not an object")
        }
        let pre = try preTokenizer(json["pre_tokenizer"], path: path)
        if let decoder = json["decoder"] as? [String: Any], decoder["type"] as? String != "ByteLevel" {
            throw ModelError.unsupported("\(path): decoder \(decoder["type"] as? String ?? "?") is not supported; ByteLevel is")
        }
        let ids = Dictionary(tokens.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let unknown = (model["unk_token"] as? String).flatMap { ids[$0] }
        return try BPETokenizer(tokens: tokens, merges: merges, specialTokenIDs: special, preTokenizer: pre,
                                bos: bos.flatMap { ids[$0] }, eos: eos.flatMap { ids[$0] }, unknown: unknown,
                                addedTokenIDs: added, normalizeNFC: nfc, ignoreMerges: model["ignore_merges"] as? Bool ?? false)
    }

    static func preTokenizer(_ value: Any?, path: String) throws -> PreTokenizer {
        func describe(_ v: Any?) -> String {
            guard let v, JSONSerialization.isValidJSONObject(v as Any),
                  let data = try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys]) else { return "\(v ?? "null")" }
            return String(decoding: data, as: UTF8.self)
        }
        let unsupported = ModelError.unsupported(
            "\(path): pre_tokenizer \(describe(value)) is not supported; supported: ByteLevel (GPT-2), Digits + ByteLevel (SmolLM), Split with Llama 3's or Qwen2's regex + ByteLevel")
        guard let object = value as? [String: Any], let type = object["type"] as? String else { throw unsupported }
        func isByteLevel(_ o: [String: Any], regex: Bool) -> Bool {
            o["type"] as? String == "ByteLevel" && (o["use_regex"] as? Bool ?? true) == regex && (o["add_prefix_space"] as? Bool ?? false) == false
        }
        if isByteLevel(object, regex: true) { return .gpt2 }
        guard type == "Sequence", let parts = object["pretokenizers"] as? [[String: Any]], parts.count == 2 else { throw unsupported }
        if parts[0]["type"] as? String == "Digits", parts[0]["individual_digits"] as? Bool == true, isByteLevel(parts[1], regex: true) {
            return .smollm
        }
        if parts[0]["type"] as? String == "Split", isByteLevel(parts[1], regex: false),
           (parts[0]["behavior"] as? String)?.lowercased() == "isolated", parts[0]["invert"] as? Bool != true,
           let regex = (parts[0]["pattern"] as? [String: Any])?["Regex"] as? String {
            if regex == llama3Regex { return .llama3 }
            if regex == qwen2Regex { return .qwen2 }
            if regex == gpt2Regex { return .gpt2 }
        }
        throw unsupported
    }
}

/// What `tokenizer_config.json` and `generation_config.json` add to a Hugging Face folder's
/// tokenizer: the BOS and EOS tokens, the chat template, and the generation stop ids.
public struct TokenizerConfiguration: Sendable, Equatable {
    public var bosToken: String?
    public var eosToken: String?
    public var chatTemplate: String?
    /// `eos_token_id` of generation_config.json (a number or a list).
    public var generationEOSIDs: [Int] = []

    public init(bosToken: String? = nil, eosToken: String? = nil, chatTemplate: String? = nil, generationEOSIDs: [Int] = []) {
        self.bosToken = bosToken
        self.eosToken = eosToken
        self.chatTemplate = chatTemplate
        self.generationEOSIDs = generationEOSIDs
    }

    /// Reads the two files of `folder` (both optional).
    /// - Throws: `ModelError.invalidFile` when a file exists but is not a JSON object.
    public init(folder: String) throws {
        let base = URL(fileURLWithPath: folder)
        func object(_ name: String) throws -> [String: Any]? {
            let path = base.appendingPathComponent(name).path
            guard let data = FileManager.default.contents(atPath: path) else { return nil }
            guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw ModelError.invalidFile(path: path, detail: "not a JSON object")
            }
            return json
        }
        func token(_ value: Any?) -> String? {
            if let s = value as? String { return s }
            return (value as? [String: Any])?["content"] as? String
        }
        if let config = try object("tokenizer_config.json") {
            bosToken = token(config["bos_token"])
            eosToken = token(config["eos_token"])
            if let template = config["chat_template"] as? String {
                chatTemplate = template
            } else if let named = config["chat_template"] as? [[String: Any]] {
                chatTemplate = (named.first { $0["name"] as? String == "default" } ?? named.first)?["template"] as? String
            }
        }
        // Newer checkpoints keep the template in its own file.
        if chatTemplate == nil, let data = FileManager.default.contents(atPath: base.appendingPathComponent("chat_template.jinja").path) {
            chatTemplate = String(decoding: data, as: UTF8.self)
        }
        if let generation = try object("generation_config.json") {
            if let one = generation["eos_token_id"] as? Int { generationEOSIDs = [one] }
            if let many = generation["eos_token_id"] as? [Int] { generationEOSIDs = many }
        }
    }
}
