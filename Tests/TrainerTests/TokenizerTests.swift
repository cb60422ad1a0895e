import Foundation
import TestSupport
import Testing
@testable import ModelRuntime
@testable import Trainer

@Suite("Byte-level BPE tokenizer against Hugging Face", .serialized)
struct TokenizerTests {
    static func tokenizer() throws -> BPETokenizer {
        try BPETokenizer.fromGGUF(GGUFFile(path: try TrainerFixtures.smolLM2).metadata)
    }

    @Test(.needsTestModel, .needsShared("reference/tokens.json")) func referenceStrings() throws {
        let tokenizer = try Self.tokenizer()
        let data = try TrainerFixtures.sharedReference("tokens.json")
        let cases = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        #expect(!cases.isEmpty)
        for entry in cases {
            let text = try #require(entry["text"] as? String)
            let expected = try #require(entry["ids"] as? [Int])
            let ids = tokenizer.encode(text)
            #expect(ids == expected, "\(text)")
            #expect(tokenizer.decode(ids) == text)
        }
    }

    @Test(.needsTestModel, .needsShared("reference/logits.json")) func generationPrompt() throws {
        let tokenizer = try Self.tokenizer()
        let data = try TrainerFixtures.sharedReference("logits.json")
        let reference = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let generation = try #require(reference["generation"] as? [String: Any])
        let prompt = try #require(generation["prompt"] as? String)
        #expect(tokenizer.encode(prompt) == generation["prompt_ids"] as? [Int])
        let greedy = try #require(generation["greedy_ids"] as? [Int])
        #expect(tokenizer.decode(greedy) == generation["greedy_text"] as? String)
        #expect(tokenizer.decode(greedy, skipSpecial: true) == "The capital of France is Paris.")
    }

    @Test func splittingRules() {
        #expect(PreTokenization.split("don't  stop\n\nnow 12 ab", kind: .gpt2) == ["don", "'t", " ", " stop", "\n", "\n", "now", " 12", " ab"])
        #expect(PreTokenization.split("a 12", kind: .smollm) == ["a", " ", "1", "2"])
        #expect(PreTokenization.split("x  \n", kind: .gpt2) == ["x", "  \n"])
    }
}

/// Hard cases (CJK extension B, emoji with modifiers and ZWJ, digit runs, whitespace runs,
/// contractions in any case, mixed scripts, decomposed accents, control bytes) for four
/// pre-tokenizers, against Hugging Face `tokenizers` (Tests/TrainerTests/Fixtures/tokenizer-cases.json,
/// made by scripts/make-tokenizer-fixtures.py over SmolLM2's vocabulary).
@Suite("Tokenizer hard cases against Hugging Face tokenizers", .serialized)
struct TokenizerHardCaseTests {
    struct Variant {
        var name: String
        var kind: BPETokenizer.PreTokenizer
        var spec: [String: Any]
        var ids: [[Int]]
        var pieces: [[String]]
        var decoded: [String]
    }

    static func fixture() throws -> (cases: [String], variants: [Variant]) {
        let json = try TrainerFixtures.json("tokenizer-cases.json")
        let cases = try #require(json["cases"] as? [String])
        let variants = try #require(json["variants"] as? [String: [String: Any]])
        let kinds: [String: BPETokenizer.PreTokenizer] = ["smollm": .smollm, "gpt2": .gpt2, "llama3": .llama3, "qwen2": .qwen2]
        return (cases, try variants.keys.sorted().map { name in
            let v = try #require(variants[name])
            return Variant(name: name, kind: try #require(kinds[name]), spec: v, ids: try #require(v["ids"] as? [[Int]]),
                           pieces: try #require(v["pieces"] as? [[String]]), decoded: try #require(v["decoded"] as? [String]))
        })
    }

    /// The splitting rules alone (no vocabulary needed): every piece equals Hugging Face's.
    @Test func piecesEqualHuggingFace() throws {
        let (cases, variants) = try Self.fixture()
        #expect(cases.count == 26)
        #expect(variants.map(\.name) == ["gpt2", "llama3", "qwen2", "smollm"])
        for variant in variants {
            for (text, expected) in zip(cases, variant.pieces) {
                let normalized = variant.kind == .qwen2 ? text.precomposedStringWithCanonicalMapping : text
                let pieces = PreTokenization.split(normalized, kind: variant.kind)
                    .map { String($0.utf8.map { BPETokenizer.byteCharacters[Int($0)] }) }
                #expect(pieces == expected, "\(variant.name): \(text.debugDescription)")
            }
        }
    }

    /// A tokenizer.json assembled from the GGUF's vocabulary and each variant's Hugging Face
    /// normalizer / pre-tokenizer / decoder / added tokens gives Hugging Face's ids, and so does the
    /// GGUF itself with `tokenizer.ggml.pre` naming the same pre-tokenizer.
    @Test(.needsTestModel) func idsEqualHuggingFaceFromTokenizerJSONAndGGUF() throws {
        let path = try TrainerFixtures.smolLM2
        let gguf = try GGUFFile(path: path)
        let tokens = try #require(gguf.metadata["tokenizer.ggml.tokens"]?.strings)
        let merges = try #require(gguf.metadata["tokenizer.ggml.merges"]?.strings)
        let (cases, variants) = try Self.fixture()
        let dir = try TestSupport.temporaryDirectory("tokenizer-json")
        let ggufName: [String: String] = ["smollm": "smollm", "gpt2": "gpt2", "llama3": "llama-bpe", "qwen2": "qwen2"]
        for variant in variants {
            var model: [String: Any] = ["type": "BPE", "vocab": Dictionary(uniqueKeysWithValues: tokens.enumerated().map { ($1, $0) }),
                                        "merges": merges.map { $0.split(separator: " ", maxSplits: 1).map(String.init) },
                                        "ignore_merges": variant.spec["ignore_merges"] as? Bool ?? false, "byte_fallback": false]
            model["unk_token"] = variant.spec["unk_token"]
            let json: [String: Any] = ["version": "1.0", "model": model, "normalizer": variant.spec["normalizer"] ?? NSNull(),
                                       "pre_tokenizer": variant.spec["pre_tokenizer"] ?? NSNull(), "decoder": variant.spec["decoder"] ?? NSNull(),
                                       "added_tokens": variant.spec["added_tokens"] ?? []]
            let file = dir.appendingPathComponent("\(variant.name).json").path
            try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: file))
            let fromJSON = try BPETokenizer.fromTokenizerJSON(path: file, eos: "<|im_end|>")
            #expect(fromJSON.preTokenizer == variant.kind)
            #expect(fromJSON.eosID == 2)
            var metadata = gguf.metadata
            metadata["tokenizer.ggml.pre"] = .string(try #require(ggufName[variant.name]))
            let fromGGUF = try BPETokenizer.fromGGUF(metadata)
            for (i, text) in cases.enumerated() {
                #expect(fromJSON.encode(text) == variant.ids[i], "tokenizer.json \(variant.name): \(text.debugDescription)")
                #expect(fromGGUF.encode(text) == variant.ids[i], "GGUF \(variant.name): \(text.debugDescription)")
                #expect(fromJSON.decode(variant.ids[i]) == variant.decoded[i], "decode \(variant.name): \(text.debugDescription)")
            }
        }
    }

    @Test func unsupportedTokenizerJSONIsNamed() throws {
        let dir = try TestSupport.temporaryDirectory("tokenizer-json-bad")
        let file = dir.appendingPathComponent("tokenizer.json").path
        func write(_ json: [String: Any]) throws { try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: file)) }
        try write(["model": ["type": "Unigram", "vocab": [:] as [String: Any]]])
        #expect(throws: ModelError.unsupported("\(file): tokenizer model Unigram is not supported; byte-level BPE is")) {
            try BPETokenizer.fromTokenizerJSON(path: file)
        }
        try write(["model": ["type": "BPE", "vocab": ["a": 0], "merges": [] as [Any], "byte_fallback": true]])
        #expect(throws: ModelError.self) { try BPETokenizer.fromTokenizerJSON(path: file) }
        try write(["model": ["type": "BPE", "vocab": ["a": 0], "merges": [] as [Any]],
                   "pre_tokenizer": ["type": "Whitespace"]])
        do {
            _ = try BPETokenizer.fromTokenizerJSON(path: file)
            Issue.record("a Whitespace pre-tokenizer was accepted")
        } catch let error as ModelError {
            #expect(error.description.contains("pre_tokenizer {\"type\":\"Whitespace\"} is not supported"))
        }
        try Data("[1, 2]".utf8).write(to: URL(fileURLWithPath: file))
        #expect(throws: ModelError.invalidFile(path: file, detail: "not a JSON object")) { try BPETokenizer.fromTokenizerJSON(path: file) }
    }
}
