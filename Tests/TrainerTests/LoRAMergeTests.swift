import Foundation
import TestSupport
import Testing
@testable import ModelRuntime
@testable import Trainer

/// Merging against PEFT's own `merge_and_unload` on the fixture (scripts/make-peft-fixtures.py).
@Suite("LoRA merge")
struct LoRAMergeTests {
    static let adapters = ["adapter-all", "adapter-rslora"]

    /// W + s·B·A equals PEFT's merged weights within 1e-6, and every other weight is untouched.
    @Test(arguments: adapters)
    func mergedWeightsEqualPEFTs(_ name: String) throws {
        let base = try ModelLoader.load(path: PEFTFixtures.base.path)
        let adapter = try LoRAAdapter(readingPEFT: PEFTFixtures.adapter(name), configuration: base.configuration)
        let merged = try LoRAMerge.merge(adapter, into: base.tensors, configuration: base.configuration)
        let peft = try SafetensorsFile(path: PEFTFixtures.adapter(name).appendingPathComponent("merged.safetensors").path)
        #expect(peft.entries.count == adapter.layers.count * adapter.configuration.targets.count)
        var worst: Float = 0
        for key in peft.entries.keys {
            let ours = try #require(merged[key])
            let theirs = try peft.tensor(named: key)
            #expect(ours.shape == theirs.shape)
            #expect(ours != base.tensors[key], "\(key) changed")
            worst = max(worst, PEFTFixtures.maxDifference(ours.data, theirs.data))
        }
        #expect(worst <= 1e-6, "max |ours - PEFT| = \(worst)")
        print("merge \(name): max |ours - PEFT merge_and_unload| = \(worst)")
        for (key, tensor) in base.tensors where peft.entries[key] == nil {
            #expect(merged[key] == tensor, "\(key) must not change")
        }
    }

    /// The merged folder loads with our loader and gives PEFT's logits (of the adapter applied
    /// unmerged and of its merged model) for the fixture's input.
    @Test(arguments: adapters)
    func mergedFolderGivesPEFTLogits(_ name: String) throws {
        let reference = try PEFTFixtures.reference(name)
        let adapter = try LoRAAdapter(readingPEFT: PEFTFixtures.adapter(name), configuration: try PEFTFixtures.modelConfiguration)
        let out = PEFTFixtures.temporary("merged-\(name)")
        defer { try? FileManager.default.removeItem(at: out) }
        let report = try LoRAMerge.writeMergedModel(adapter: adapter, model: PEFTFixtures.base.path, to: out,
                                                    metadata: ["corpus.run": "run-7"])
        #expect(report.weightType == .float32)
        #expect(report.copiedFiles == ["generation_config.json"])
        #expect(report.notes.contains { $0.contains("no tokenizer files") })
        #expect(report.mergedTensors.count == adapter.layers.count * adapter.configuration.targets.count)
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: out.path)) == ["config.json", "generation_config.json", "model.safetensors"])

        let file = try SafetensorsFile(path: out.appendingPathComponent("model.safetensors").path)
        #expect(file.metadata == ["format": "pt", "corpus.run": "run-7"])
        #expect(file.entries["lm_head.weight"] == nil, "tied embeddings stay tied")
        let loaded = try ModelLoader.load(path: out.path)
        #expect(loaded.configuration == (try PEFTFixtures.modelConfiguration))
        let model = try LlamaModel(configuration: loaded.configuration, tensors: loaded.tensors)
        let logits = try model.logits(reference.ids)
        let toMerged = PEFTFixtures.maxDifference(logits, reference.merged)
        let toPEFT = PEFTFixtures.maxDifference(logits, reference.peft)
        #expect(toMerged <= 2e-5, "max |logit - PEFT merged logit| = \(toMerged)")
        #expect(toPEFT <= 2e-5, "max |logit - PEFT adapter logit| = \(toPEFT)")
        print("merged folder \(name): max |logit - PEFT merged| = \(toMerged), max |logit - PEFT adapter| = \(toPEFT)")
        // The adapter matters: the base model's logits are far from these.
        #expect(PEFTFixtures.maxDifference(logits, reference.base) > 1e-2)

        let config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as? [String: Any])
        #expect(config["dtype"] as? String == "float32")
        #expect(config["architectures"] as? [String] == ["LlamaForCausalLM"])
    }

    /// Our base forward agrees with transformers on the fixture (so the merged comparison above
    /// tests the merge, not the forward).
    @Test func baseLogitsMatchTransformers() throws {
        let reference = try PEFTFixtures.reference("adapter-all")
        let base = try ModelLoader.load(path: PEFTFixtures.base.path)
        let logits = try LlamaModel(configuration: base.configuration, tensors: base.tensors).logits(reference.ids)
        let difference = PEFTFixtures.maxDifference(logits, reference.base)
        #expect(difference <= 2e-5)
        print("base logits: max |ours - transformers| = \(difference)")
    }

    /// The tokenizer files are copied, BF16 output is reported with how much of the update rounding
    /// lost, and an occupied folder is refused.
    @Test func copiesTokenizerAndReportsRounding() throws {
        let work = PEFTFixtures.temporary("merge-bf16")
        defer { try? FileManager.default.removeItem(at: work) }
        let base = work.appendingPathComponent("base")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: PEFTFixtures.base, to: base)
        for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"] {
            try Data("{}".utf8).write(to: base.appendingPathComponent(name))
        }
        let adapter = try LoRAAdapter(readingPEFT: PEFTFixtures.adapter("adapter-all"), configuration: try PEFTFixtures.modelConfiguration)
        let out = work.appendingPathComponent("merged")
        let report = try LoRAMerge.writeMergedModel(adapter: adapter, model: base.path, to: out, weightType: .bfloat16)
        #expect(report.copiedFiles == ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"])
        #expect(report.notes.count == 1)
        #expect(report.notes.first?.contains("written as BF16") == true)
        let file = try SafetensorsFile(path: out.appendingPathComponent("model.safetensors").path)
        #expect(Set(file.entries.values.map(\.dtype)) == ["BF16"])
        let fp32 = try LoRAMerge.merge(adapter, into: try ModelLoader.load(path: base.path).tensors, configuration: try PEFTFixtures.modelConfiguration)
        for (key, tensor) in fp32 {
            #expect(try file.tensor(named: key).data == tensor.data.map(WeightType.bfloat16.rounded), "\(key)")
        }
        let config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as? [String: Any])
        #expect(config["dtype"] as? String == "bfloat16")

        let error = #expect(throws: ModelError.self) {
            try LoRAMerge.writeMergedModel(adapter: adapter, model: base.path, to: out)
        }
        #expect("\(error.map { "\($0)" } ?? "")".contains("already holds"))
    }

    /// A model loaded from a GGUF file (or built in memory) gets a config.json written from its
    /// configuration, which our loader reads back to the same configuration.
    @Test func loadedModelWithoutFolder() throws {
        let base = try ModelLoader.load(path: PEFTFixtures.base.path)
        let adapter = try LoRAAdapter(readingPEFT: PEFTFixtures.adapter("adapter-rslora"), configuration: base.configuration)
        let out = PEFTFixtures.temporary("merged-loaded")
        defer { try? FileManager.default.removeItem(at: out) }
        let report = try LoRAMerge.writeMergedModel(adapter: adapter, model: base, sourceFolder: nil, to: out)
        #expect(report.copiedFiles.isEmpty)
        let loaded = try ModelLoader.load(path: out.path)
        #expect(loaded.configuration == base.configuration)
        #expect(loaded.tensors == (try LoRAMerge.merge(adapter, into: base.tensors, configuration: base.configuration)))
    }

    /// A GGUF base (the fixture written as an F32 GGUF, Q/K rows permuted as llama.cpp stores them)
    /// merges to the same weights as the folder, with config.json built from its metadata.
    @Test func mergesFromGGUF() throws {
        let base = try ModelLoader.load(path: PEFTFixtures.base.path)
        let adapter = try LoRAAdapter(readingPEFT: PEFTFixtures.adapter("adapter-all"), configuration: base.configuration)
        let work = PEFTFixtures.temporary("merge-gguf")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let gguf = work.appendingPathComponent("tiny.gguf")
        try TinyModelFiles.writeGGUF(base.tensors, configuration: base.configuration, weightType: .f32, to: gguf.path)
        let out = work.appendingPathComponent("merged")
        let report = try LoRAMerge.writeMergedModel(adapter: adapter, model: gguf.path, to: out)
        #expect(report.weightType == .float32)
        #expect(report.notes.count == 1 && report.notes[0].contains("GGUF"))
        let loaded = try ModelLoader.load(path: out.path)
        #expect(loaded.tensors == (try LoRAMerge.merge(adapter, into: base.tensors, configuration: base.configuration)))
        #expect(loaded.configuration.hiddenSize == base.configuration.hiddenSize)
        #expect(loaded.configuration.numKeyValueHeads == base.configuration.numKeyValueHeads)
        #expect(loaded.configuration.rmsNormEps == base.configuration.rmsNormEps)
        #expect(loaded.configuration.tieWordEmbeddings)
        let reference = try PEFTFixtures.reference("adapter-all")
        let logits = try LlamaModel(configuration: loaded.configuration, tensors: loaded.tensors).logits(reference.ids)
        #expect(PEFTFixtures.maxDifference(logits, reference.peft) <= 2e-5)
    }

    @Test func weightTypeRounding() {
        #expect(WeightType.bfloat16.rounded(1 + 1.0 / 256) == 1)             // tie: to even
        #expect(WeightType.bfloat16.rounded(1 + 3.0 / 256) == 1 + 4.0 / 256) // tie: to even, upward
        #expect(WeightType.bfloat16.rounded(1 + 1.5 / 256) == 1 + 2.0 / 256)
        #expect(WeightType.bfloat16.rounded(.infinity) == .infinity)
        #expect(WeightType.bfloat16.rounded(.nan).isNaN)
        #expect(WeightType.float16.rounded(65520) == .infinity)
        #expect(WeightType.float16.rounded(1 + 1.0 / 2048) == 1)
    }

    /// The folder a PEFT-check writer below writes to, from the environment; empty when unset.
    static func peftCheckDirectory(_ variable: String) -> String { ProcessInfo.processInfo.environment[variable] ?? "" }

    /// Writes our adapter and merged model for `scripts/make-peft-fixtures.py --check DIR` when
    /// CORPUS_PEFT_CHECK_DIR is set (a manual check with real PEFT; see docs/ADAPTERS.md). Not a
    /// test: a writer that needs the library, so it shows as skipped unless asked for.
    @Test(.enabled(if: !LoRAMergeTests.peftCheckDirectory("CORPUS_PEFT_CHECK_DIR").isEmpty,
                   "writes files for the manual PEFT check only when CORPUS_PEFT_CHECK_DIR is set (scripts/peft-check.sh; docs/ADAPTERS.md)"))
    func writeForPEFTCheck() throws {
        let dir = Self.peftCheckDirectory("CORPUS_PEFT_CHECK_DIR")
        let root = URL(fileURLWithPath: dir)
        try? FileManager.default.removeItem(at: root)
        let adapter = try LoRAAdapter(readingPEFT: PEFTFixtures.adapter(ProcessInfo.processInfo.environment["CORPUS_PEFT_CHECK_ADAPTER"] ?? "adapter-rslora"),
                                      configuration: try PEFTFixtures.modelConfiguration)
        try adapter.write(to: root.appendingPathComponent("adapter"), baseModel: PEFTFixtures.base.path,
                          metadata: ["corpus.snapshot": "check", "corpus.run": "check"])
        let type = WeightType(rawValue: ProcessInfo.processInfo.environment["CORPUS_PEFT_CHECK_DTYPE"] ?? "F32") ?? .float32
        try LoRAMerge.writeMergedModel(adapter: adapter, model: PEFTFixtures.base.path, to: root.appendingPathComponent("merged"), weightType: type)
    }

    /// With CORPUS_PEFT_CHECK_REAL_DIR set and the SmolLM2 test model present, writes for
    /// `scripts/make-peft-fixtures.py --check`: the GGUF model as a Hugging Face folder (base/),
    /// a random rank-8 adapter on all seven targets (adapter/), the merged folder (merged/) and
    /// our logits of the merged model (logits.json). A manual check on a real model.
    @Test(.enabled(if: !LoRAMergeTests.peftCheckDirectory("CORPUS_PEFT_CHECK_REAL_DIR").isEmpty,
                   "writes files for the manual PEFT check only when CORPUS_PEFT_CHECK_REAL_DIR is set (scripts/peft-check.sh --real; docs/ADAPTERS.md)"),
          .needsTestModel)
    func writeRealModelForPEFTCheck() throws {
        let dir = Self.peftCheckDirectory("CORPUS_PEFT_CHECK_REAL_DIR"), gguf = try TrainerFixtures.smolLM2
        let root = URL(fileURLWithPath: dir)
        try? FileManager.default.removeItem(at: root)
        let loaded = try ModelLoader.load(path: gguf)
        let c = loaded.configuration
        var rng = SplitMix64(seed: 11)
        func random(_ shape: [Int], _ scale: Float) throws -> Tensor {
            try Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in Float(rng.nextDouble() * 2 - 1) * scale })
        }
        let configuration = LoRAConfiguration(rank: 8, alpha: 16)
        var layers: [[LoRATarget: LoRAPair]] = []
        for _ in 0..<c.numHiddenLayers {
            var layer: [LoRATarget: LoRAPair] = [:]
            for target in configuration.targets {
                let size = target.shape(c)
                layer[target] = LoRAPair(a: try random([8, size.in], 0.05), b: try random([size.out, 8], 0.05))
            }
            layers.append(layer)
        }
        let adapter = LoRAAdapter(configuration: configuration, layers: layers)
        try LoRAMerge.writeMergedModel(adapter: adapter.zeros(), model: loaded, sourceFolder: nil, to: root.appendingPathComponent("base"))
        try adapter.write(to: root.appendingPathComponent("adapter"), baseModel: root.appendingPathComponent("base").path)
        let report = try LoRAMerge.writeMergedModel(adapter: adapter, model: gguf, to: root.appendingPathComponent("merged"))
        print(report.notes)
        let merged = try ModelLoader.load(path: root.appendingPathComponent("merged").path)
        let ids = [1, 504, 3458, 282, 260, 1823, 30, 198, 2]
        let logits = try LlamaModel(configuration: merged.configuration, tensors: merged.tensors).logits(ids)
        let json: [String: Any] = ["input_ids": ids, "logits": logits.map { "\($0)" }]
        try JSONSerialization.data(withJSONObject: json).write(to: root.appendingPathComponent("logits.json"))
    }
}
