import Foundation
import Testing
import TestSupport

/// `corpus adapters export --format gguf` and `corpus merge --format gguf` on the tiny GGUF model
/// and a tiny adapter (q, v and down of its one layer); scripts/check-gguf-export.sh checks the
/// files with llama.cpp itself on the real test model.
@Suite("GGUF export")
struct GGUFExportTests {
    static func fixture() throws -> (dir: URL, model: String, adapter: String) {
        let dir = try TestSupport.temporaryDirectory("gguf-export")
        let model = try TestSupport.write(TinyModel.gguf(), to: "tiny.gguf", in: dir)
        let adapter = try TinyModel.adapter(in: dir)
        return (dir, model, adapter.path)
    }

    static func logprobs(_ arguments: [String]) throws -> [Double] {
        let result = try TestSupport.run(["score", "--json", "--top", "1"] + arguments + ["abcab"])
        #expect(result.status == 0, "\(result.stderr)")
        let values = try #require((try result.json() as? [String: Any])?["logprobs"] as? [Any])
        return values.dropFirst().compactMap { $0 as? Double }
    }

    @Test func anAdapterAsAGGUFLoRAAndAMergedGGUF() throws {
        let f = try Self.fixture()
        let sha = try TestSupport.shell("sha256sum '\(f.adapter)/adapter_model.safetensors' | cut -d' ' -f1")
        let lora = f.dir.appendingPathComponent("tuned.lora.gguf").path
        let exported = try TestSupport.run(["adapters", "export", f.adapter, "--model", f.model, "--out", lora, "--json"])
        #expect(exported.status == 0, "\(exported.stderr)")
        let summary = try #require(try exported.json() as? [String: Any])
        #expect(summary["tensors"] as? Int == 6)
        #expect(summary["architecture"] as? String == "llama")
        #expect(summary["adapter_sha256"] as? String == sha)
        #expect(FileManager.default.fileExists(atPath: lora))
        let withModelfile = try TestSupport.run(["adapters", "export", f.adapter, "--model", f.model, "--out", lora, "--modelfile", "--template", "chatml"])
        #expect(withModelfile.status == 0, "\(withModelfile.stderr)")
        let modelfile = try String(contentsOfFile: f.dir.appendingPathComponent("tuned.lora.Modelfile").path, encoding: .utf8)
        #expect(modelfile.contains("\nFROM \(URL(fileURLWithPath: f.model).standardizedFileURL.path)\nADAPTER \(URL(fileURLWithPath: lora).standardizedFileURL.path)\n"), "\(modelfile)")
        #expect(modelfile.contains("TEMPLATE \"\"\"{{- if .System }}<|im_start|>system"))
        #expect(modelfile.contains("PARAMETER stop \"<|im_end|>\""))
        #expect(modelfile.contains(sha))

        // Merged in f32: the same model as the base with the adapter, within float rounding.
        let expected = try Self.logprobs(["--model", f.model, "--adapter", f.adapter])
        let merged = f.dir.appendingPathComponent("merged.gguf").path
        let written = try TestSupport.run(["merge", "--adapter", f.adapter, "--model", f.model, "--format", "gguf", "--type", "f32", "--out", merged, "--json"])
        #expect(written.status == 0, "\(written.stderr)")
        let report = try #require(try written.json() as? [String: Any])
        #expect(report["merged_tensors"] as? Int == 3)
        #expect(report["tensors"] as? Int == 11)
        let mergedLogprobs = try Self.logprobs(["--model", merged])
        #expect(mergedLogprobs.count == expected.count && !expected.isEmpty)
        #expect(zip(mergedLogprobs, expected).allSatisfy { abs($0 - $1) < 1e-4 }, "\(mergedLogprobs) vs \(expected)")
        #expect(mergedLogprobs != (try Self.logprobs(["--model", f.model])), "the merge changed the model")

        // Q8_0 cannot hold rows of 8 or 16 values (blocks of 32): those matrices are F16, said so.
        let q8 = f.dir.appendingPathComponent("merged-q8.gguf").path
        let quantized = try TestSupport.run(["merge", "--adapter", f.adapter, "--model", f.model, "--format", "gguf", "--type", "q8_0", "--out", q8])
        #expect(quantized.status == 0, "\(quantized.stderr)")
        #expect(quantized.stdout.contains("note: 8 matrices written as F16 because Q8_0 blocks do not divide their rows (blk.0.attn_k.weight, blk.0.attn_output.weight, blk.0.attn_q.weight, …)"), "\(quantized.stdout)")
        #expect(zip(try Self.logprobs(["--model", q8]), expected).allSatisfy { abs($0 - $1) < 2e-2 })
    }

    @Test func whatCannotBeExportedIsSaid() throws {
        let f = try Self.fixture()
        let folder = try TinyModel.folder("hf", in: f.dir, sharded: false)
        let fromFolder = try TestSupport.run(["merge", "--adapter", f.adapter, "--model", folder.path, "--format", "gguf", "--out", f.dir.appendingPathComponent("x.gguf").path])
        #expect(fromFolder.status == 3, "a folder without a tokenizer cannot give the GGUF its vocabulary")
        #expect(fromFolder.stderr.contains("tokenizer.json"), "\(fromFolder.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.dir.appendingPathComponent("x.gguf").path))
        let badType = try TestSupport.run(["merge", "--adapter", f.adapter, "--model", f.model, "--format", "gguf", "--type", "q5_k", "--out", "x.gguf"])
        #expect(badType.status == 64)
        let noRun = try TestSupport.run(["adapters", "export", "7", "--model", f.model, "--out", f.dir.appendingPathComponent("y.gguf").path,
                                         "--db", f.dir.appendingPathComponent("none.db").path])
        #expect(noRun.status == 3)
        #expect(noRun.stderr.contains("7: not an adapter folder"), "\(noRun.stderr)")
    }

    /// `corpus models export` turns the GGUF into a complete Hugging Face folder: the same model
    /// and tokenizer when corpus loads the folder (scripts/check-hf-export.sh: transformers too).
    @Test func aGGUFBaseAsAHuggingFaceFolder() throws {
        let f = try Self.fixture()
        let out = f.dir.appendingPathComponent("hf").path
        let exported = try TestSupport.run(["models", "export", f.model, "--out", out, "--json"])
        #expect(exported.status == 0, "\(exported.stderr)")
        let files = (try exported.json() as? [String: Any])?["files"] as? [String]
        #expect(files == ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
        for text in ["abcab", "ab c a"] {
            let a = try TestSupport.run(["tokenize", "--model", f.model, "--json", text]).stdout
            let b = try TestSupport.run(["tokenize", "--model", out, "--json", text]).stdout
            #expect(a == b && !a.isEmpty, "\(text)")
        }
        #expect(try Self.logprobs(["--model", out]) == (try Self.logprobs(["--model", f.model])))
        let again = try TestSupport.run(["models", "export", f.model, "--out", out])
        #expect(again.status == 3, "a folder that holds files is refused")

        // And back: the folder merged into a GGUF file (metadata built from config.json and
        // tokenizer.json) is the base with the adapter, as from the GGUF base.
        let merged = f.dir.appendingPathComponent("from-folder.gguf").path
        let written = try TestSupport.run(["merge", "--adapter", f.adapter, "--model", out, "--format", "gguf", "--type", "f32", "--out", merged, "--json"])
        #expect(written.status == 0, "\(written.stderr)")
        #expect((try written.json() as? [String: Any])?["merged_tensors"] as? Int == 3)
        let expected = try Self.logprobs(["--model", f.model, "--adapter", f.adapter])
        #expect(zip(try Self.logprobs(["--model", merged]), expected).allSatisfy { abs($0 - $1) < 1e-4 })
        #expect(try TestSupport.run(["tokenize", "--model", merged, "--json", "abc ab"]).stdout == (try TestSupport.run(["tokenize", "--model", f.model, "--json", "abc ab"]).stdout))
    }
}
