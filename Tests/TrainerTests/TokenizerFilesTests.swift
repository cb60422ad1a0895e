import Foundation
import TestSupport
import Testing
@testable import ModelRuntime

/// `TokenizerFiles.fromGGUF`: the Hugging Face tokenizer files written from a GGUF's metadata
/// read back (with our tokenizer.json reader) as the same tokenizer (scripts/check-hf-export.sh
/// checks transformers itself on the test model).
@Suite("Tokenizer files from GGUF")
struct TokenizerFilesTests {
    static let texts = ["The capital of France is Paris.", "高血压患者应该注意什么？每天服用阿司匹林100mg可以吗",
                        "In 2024, 1234567 people   (and   tabs\there)", "<|im_start|>user\nhi<|im_end|>", "  leading  ", "abc ab c"]

    static func roundTrip(_ path: String) throws -> (gguf: BPETokenizer, json: BPETokenizer, files: [String: Data]) {
        let file = try GGUFFile(path: path)
        let files = try TokenizerFiles.fromGGUF(file.metadata, contextLength: 64)
        let dir = TestSupport.runDirectory.appendingPathComponent("tokenizer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for (name, data) in files { try data.write(to: dir.appendingPathComponent(name)) }
        let config = try TokenizerConfiguration(folder: dir.path)
        let json = try BPETokenizer.fromTokenizerJSON(path: dir.appendingPathComponent("tokenizer.json").path, bos: config.bosToken, eos: config.eosToken)
        return (try BPETokenizer.fromGGUF(file.metadata), json, files)
    }

    @Test func theTinyModelsTokenizerReadsBackTheSame() throws {
        let dir = try TestSupport.temporaryDirectory("tokenizer-files")
        let path = try TestSupport.write(TinyModel.gguf(), to: "tiny.gguf", in: dir)
        let (gguf, json, files) = try Self.roundTrip(path)
        #expect(Set(files.keys) == ["tokenizer.json", "tokenizer_config.json", "generation_config.json"])
        for text in Self.texts { #expect(json.encode(text) == gguf.encode(text), "\(text)") }
        #expect(json.tokens == gguf.tokens)
    }

    @Test(.needsTestModel) func theTestModelsTokenizerReadsBackTheSame() throws {
        let (gguf, json, files) = try Self.roundTrip(try TestInputs.model())
        for text in Self.texts { #expect(json.encode(text) == gguf.encode(text), "\(text)") }
        #expect(json.bosID == gguf.bosID && json.eosID == gguf.eosID)
        let configData = try #require(files["tokenizer_config.json"])
        let config = try #require(try JSONSerialization.jsonObject(with: configData) as? [String: Any])
        #expect(config["eos_token"] as? String == "<|im_end|>")
        #expect((config["chat_template"] as? String)?.contains("<|im_start|>") == true)
        #expect(config["model_max_length"] as? Int == 64)
    }
}
