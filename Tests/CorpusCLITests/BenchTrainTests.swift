import Foundation
import Testing
import TestSupport

/// `corpus bench train` on the tiny GGUF model: the figures as JSON, the precisions and base
/// types, and bad values named before anything is loaded.
@Suite("corpus bench train")
struct BenchTrainTests {
    @Test func jsonFigures() throws {
        let dir = try TestSupport.temporaryDirectory("bench-train")
        let model = try TestSupport.write(TinyModel.gguf(), to: "tiny.gguf", in: dir)
        for (compute, baseType, expectedType) in [("f32", nil, "F32"), ("bf16", nil, "BF16"), ("f32", "bf16", "BF16")] as [(String, String?, String)] {
            var arguments = ["bench", "train", "--model", model, "--batch", "2", "--seq", "6", "--steps", "2", "--rank", "2",
                             "--compute", compute, "--json"]
            if let baseType { arguments += ["--base-type", baseType] }
            let result = try TestSupport.run(arguments, currentDirectory: dir)
            #expect(result.status == 0, "\(result.stderr)")
            let json = try #require(try result.json() as? [String: Any])
            #expect(json["compute"] as? String == compute)
            #expect(json["base_type"] as? String == expectedType)
            #expect(json["batch"] as? Int == 2 && json["seq"] as? Int == 6 && json["steps"] as? Int == 2)
            #expect(json["targets"] as? [String] == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
            #expect((json["tokens_per_second"] as? Double ?? 0) > 0)
            #expect((json["peak_rss_bytes"] as? Int ?? 0) > 1 << 20)
            #expect((json["step_seconds"] as? [Double])?.count == 2)
            let loss = try #require(json["loss"] as? Double)
            #expect(loss.isFinite && loss > 0)
            // Warm-up and two timed steps on stderr.
            #expect(result.stderr.components(separatedBy: "\n").filter { $0.hasPrefix("step ") }.count == 3)
        }
    }

    /// A Hugging Face folder whose tokenizer.json holds fewer tokens than config.json's
    /// vocab_size (Qwen2.5's real files: 151,665 tokens, vocab_size 151,936) is benchmarked:
    /// the embedding's extra rows are weights like any other.
    @Test func folderWithFewerTokensThanVocabSize() throws {
        let dir = try TestSupport.temporaryDirectory("bench-train-folder")
        let folder = try TinyModel.folder("model", in: dir, sharded: false)
        let vocabulary = TinyModel.vocabulary.prefix(6).enumerated().map { "\"\($0.element)\": \($0.offset)" }.joined(separator: ", ")
        try TestSupport.write("""
            {"version": "1.0", "added_tokens": [], "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
             "model": {"type": "BPE", "vocab": {\(vocabulary)}, "merges": ["a b"]}}
            """, to: "tokenizer.json", in: folder)
        #expect(TinyModel.configJSON.contains("\"vocab_size\": 10"))
        let result = try TestSupport.run(["bench", "train", "--model", folder.path, "--batch", "1", "--seq", "8", "--steps", "1",
                                          "--rank", "2", "--json"], currentDirectory: dir)
        #expect(result.status == 0, "\(result.stderr)")
        let json = try #require(try result.json() as? [String: Any])
        #expect(json["base_type"] as? String == "F32")
        #expect((json["loss"] as? Double).map { $0.isFinite && $0 > 0 } == true)
    }

    /// `--compute bf16` on a block-quantized base (the Q4_1 test model) keeps fp32 products and
    /// says so; with `--base-type bf16` the matrices are bf16 and nothing is said.
    @Test(.needsTestModel) func bf16OnAQuantizedBaseIsNoted() throws {
        let model = try TestInputs.model()
        let base = ["bench", "train", "--model", model, "--batch", "1", "--seq", "8", "--steps", "1", "--rank", "2", "--compute", "bf16", "--json"]
        let quantized = try TestSupport.run(base)
        #expect(quantized.status == 0, "\(quantized.stderr)")
        #expect(quantized.stderr.contains("note: --compute bf16 changes only products with bf16 matrices; this base's matrices are Q4_1, multiplied in fp32 as stored (add --base-type bf16 for bf16 arithmetic)"), "\(quantized.stderr)")
        let rounded = try TestSupport.run(base + ["--base-type", "bf16"])
        #expect(rounded.status == 0, "\(rounded.stderr)")
        #expect(!rounded.stderr.contains("note: --compute bf16"))
        #expect((try rounded.json() as? [String: Any])?["base_type"] as? String == "BF16")
    }

    @Test func badValuesAreNamed() throws {
        let dir = try TestSupport.temporaryDirectory("bench-train-bad")
        let cases: [([String], String)] = [
            (["--batch", "0"], "--batch 0 is out of range: give 1 to 1000000"),
            (["--seq", "1"], "--seq 1: a sequence needs at least 2 tokens to have a target"),
            (["--compute", "fp8"], "--compute fp8 is not one of f32, bf16"),
            (["--base-type", "q5_1"], "--base-type q5_1 is not one of f32, bf16, f16, q8_0, q4_0"),
            (["--targets", "q,x"], "--targets q,x: x is not one of q, k, v, o, gate, up, down"),
        ]
        for (extra, message) in cases {
            let result = try TestSupport.run(["bench", "train", "--model", dir.appendingPathComponent("none.gguf").path] + extra,
                                             currentDirectory: dir)
            #expect(result.status == 64, "\(extra)")
            #expect(result.stderr.contains(message), "\(result.stderr)")
        }
        // A base type whose blocks do not fit the tiny model's rows of 8 values: exit 3, the tensor named.
        let model = try TestSupport.write(TinyModel.gguf(), to: "tiny.gguf", in: dir)
        let result = try TestSupport.run(["bench", "train", "--model", model, "--base-type", "q8_0"], currentDirectory: dir)
        #expect(result.status == 3)
        #expect(result.stderr.contains("which do not fill whole Q8_0 blocks of 32; keep it in F32"), "\(result.stderr)")
        // A tensor type the kernels do not take (Q5_K): exit 3, the tensor, its type and the supported ones named.
        let q5 = try TestSupport.write(TinyModel.gguf(downType: 13), to: "q5k.gguf", in: dir)
        for arguments in [["bench", "train", "--model", q5], ["generate", "--model", q5, "abc"]] {
            let refused = try TestSupport.run(arguments, currentDirectory: dir)
            #expect(refused.status == 3, "\(arguments)")
            #expect(refused.stderr.contains("tensor blk.0.ffn_down.weight in \(q5) has type Q5_K; supported: F32, F16"), "\(refused.stderr)")
        }
    }
}
