import CorpusSupport
import Foundation
import TestSupport
import Testing
@testable import ModelRuntime
@testable import Trainer

/// Fixtures written by PEFT itself (scripts/make-peft-fixtures.py): a tiny Llama and adapters.
enum PEFTFixtures {
    static let directory = TrainerFixtures.directory.appendingPathComponent("peft")
    static let base = directory.appendingPathComponent("base")
    static func adapter(_ name: String) -> URL { directory.appendingPathComponent(name) }

    static var modelConfiguration: LlamaConfiguration {
        get throws { try LlamaConfiguration(configJSON: base.appendingPathComponent("config.json").path) }
    }

    /// The fixture's reference.json: the input and PEFT's logits.
    static func reference(_ name: String) throws -> (ids: [Int], peft: [Float], merged: [Float], base: [Float]) {
        let data = try Data(contentsOf: adapter(name).appendingPathComponent("reference.json"))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        func floats(_ key: String) throws -> [Float] { try #require(json[key] as? [Double]).map(Float.init) }
        return (try #require(json["input_ids"] as? [Int]), try floats("peft_logits"), try floats("merged_logits"), try floats("base_logits"))
    }

    /// A fresh folder in the tests' temporary folder (not created), removed when the test process exits.
    static func temporary(_ prefix: String) -> URL {
        TestSupport.runDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    }

    /// Copies a fixture adapter to a temporary folder, rewriting its config and tensors.
    static func modifiedCopy(of name: String, config edit: (inout [String: Any]) -> Void = { _ in },
                             tensors editTensors: (inout [String: Tensor]) -> Void = { _ in }) throws -> URL {
        let source = adapter(name)
        let dir = temporary("peft-\(name)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let configData = try Data(contentsOf: source.appendingPathComponent("adapter_config.json"))
        var config = try #require(try JSONSerialization.jsonObject(with: configData) as? [String: Any])
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("adapter_config.json"))
        let file = try SafetensorsFile(path: source.appendingPathComponent("adapter_model.safetensors").path)
        var tensors = try Dictionary(uniqueKeysWithValues: file.entries.keys.map { ($0, try file.tensor(named: $0)) })
        editTensors(&tensors)
        try SafetensorsFile.write(tensors, metadata: ["format": "pt"], to: dir.appendingPathComponent("adapter_model.safetensors").path)
        return dir
    }

    static func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
        guard a.count == b.count else { return .infinity }
        return zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }
}

@Suite("PEFT adapter files")
struct PEFTAdapterTests {
    @Test func readsPEFTAdapterWithAllTargets() throws {
        let model = try PEFTFixtures.modelConfiguration
        let adapter = try LoRAAdapter(readingPEFT: PEFTFixtures.adapter("adapter-all"), configuration: model)
        #expect(adapter.configuration == LoRAConfiguration(rank: 4, alpha: 8, dropout: 0, useRSLoRA: false, targets: LoRATarget.allCases))
        #expect(adapter.layers.count == 2)
        let file = try SafetensorsFile(path: PEFTFixtures.adapter("adapter-all").appendingPathComponent("adapter_model.safetensors").path)
        for (l, layer) in adapter.layers.enumerated() {
            #expect(Set(layer.keys) == Set(LoRATarget.allCases))
            for (target, pair) in layer {
                let size = target.shape(model)
                #expect(pair.a.shape == [4, size.in])
                #expect(pair.b.shape == [size.out, 4])
                #expect(pair.a == (try file.tensor(named: LoRAAdapter.peftKey(layer: l, target: target, matrix: "A"))))
                #expect(pair.b.data.contains { $0 != 0 })
            }
        }
        let info = try LoRAAdapter.readPEFTInfo(directory: PEFTFixtures.adapter("adapter-all"))
        #expect(info == PEFTAdapterInfo(baseModel: "tiny-llama-base", metadata: ["format": "pt"]))
    }

    @Test func readsRSLoRAAdapterWithSomeTargets() throws {
        let adapter = try LoRAAdapter(readingPEFT: PEFTFixtures.adapter("adapter-rslora"), configuration: try PEFTFixtures.modelConfiguration)
        #expect(adapter.configuration == LoRAConfiguration(rank: 2, alpha: 3, dropout: 0.05, useRSLoRA: true, targets: [.q, .v, .down]))
        #expect(adapter.configuration.scale == Float(3 / 2.0.squareRoot()))
        #expect(adapter.layers.allSatisfy { Set($0.keys) == [.q, .v, .down] })
    }

    /// PEFT saved the same adapter cast to bfloat16: every value is the fp32 one rounded to BF16.
    @Test func readsBFloat16Adapter() throws {
        let model = try PEFTFixtures.modelConfiguration
        let fp32 = try LoRAAdapter(readingPEFT: PEFTFixtures.adapter("adapter-all"), configuration: model)
        let bf16 = try LoRAAdapter(readingPEFT: PEFTFixtures.adapter("adapter-all-bf16"), configuration: model)
        let dtype = try SafetensorsFile(path: PEFTFixtures.adapter("adapter-all-bf16").appendingPathComponent("adapter_model.safetensors").path)
            .entries.values.map(\.dtype)
        #expect(Set(dtype) == ["BF16"])
        for ((_, full), (_, half)) in zip(fp32.namedTensors, bf16.namedTensors) {
            #expect(full.data.map(WeightType.bfloat16.rounded) == half.data)
        }
    }

    /// Our writer's output reads back identically, has exactly PEFT's tensor names, shapes and
    /// dtype, PEFT's configuration keys, and our lineage strings in `__metadata__`.
    @Test func writeThenReadRoundTrips() throws {
        let model = try PEFTFixtures.modelConfiguration
        for name in ["adapter-all", "adapter-rslora"] {
            let peft = PEFTFixtures.adapter(name)
            let adapter = try LoRAAdapter(readingPEFT: peft, configuration: model)
            let dir = PEFTFixtures.temporary("written-\(name)")
            defer { try? FileManager.default.removeItem(at: dir) }
            try adapter.write(to: dir, baseModel: "HuggingFaceTB/SmolLM2-135M-Instruct",
                              metadata: ["corpus.snapshot": "med-v1@3f2a", "corpus.run": "run-42"])
            #expect(try LoRAAdapter(readingPEFT: dir, configuration: model) == adapter)
            #expect(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path)) == ["adapter_config.json", "adapter_model.safetensors"])

            let ours = try SafetensorsFile(path: dir.appendingPathComponent("adapter_model.safetensors").path)
            let theirs = try SafetensorsFile(path: peft.appendingPathComponent("adapter_model.safetensors").path)
            #expect(Set(ours.entries.keys) == Set(theirs.entries.keys))
            for (key, entry) in theirs.entries {
                #expect(ours.entries[key]?.shape == entry.shape)
                #expect(ours.entries[key]?.dtype == "F32")
                #expect(try ours.tensor(named: key) == theirs.tensor(named: key))
            }
            #expect(ours.metadata == ["format": "pt", "corpus.snapshot": "med-v1@3f2a", "corpus.run": "run-42"])

            let config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("adapter_config.json"))) as? [String: Any])
            let peftConfig = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: peft.appendingPathComponent("adapter_config.json"))) as? [String: Any])
            #expect(Set(config.keys).isSubset(of: Set(peftConfig.keys)))
            #expect((config["lora_dropout"] as? NSNumber)?.doubleValue == (peftConfig["lora_dropout"] as? NSNumber)?.doubleValue)
            for key in ["peft_type", "task_type", "r", "lora_alpha", "bias", "use_rslora", "fan_in_fan_out",
                        "inference_mode", "use_dora", "modules_to_save", "layers_to_transform"] {
                #expect("\(config[key] ?? "absent")" == "\(peftConfig[key] ?? "absent")", "\(name): \(key)")
            }
            #expect(config["target_modules"] as? [String] == (peftConfig["target_modules"] as? [String])?.sorted())
            #expect(config["base_model_name_or_path"] as? String == "HuggingFaceTB/SmolLM2-135M-Instruct")
            // Byte for byte PEFT's file, less the keys newer PEFT versions added (all at defaults).
            var trimmed = peftConfig.filter { config[$0.key] != nil }
            trimmed["target_modules"] = (peftConfig["target_modules"] as? [String])?.sorted()
            trimmed["base_model_name_or_path"] = "HuggingFaceTB/SmolLM2-135M-Instruct"
            #expect(try PythonJSON.encode(trimmed, newline: false) == Data(contentsOf: dir.appendingPathComponent("adapter_config.json")))
        }
    }

    @Test func acceptsPEFTKeyVariants() throws {
        let model = try PEFTFixtures.modelConfiguration
        let expected = try LoRAAdapter(readingPEFT: PEFTFixtures.adapter("adapter-rslora"), configuration: model)
        let withDefault = try PEFTFixtures.modifiedCopy(of: "adapter-rslora", tensors: { tensors in
            tensors = Dictionary(uniqueKeysWithValues: tensors.map { ($0.key.replacingOccurrences(of: ".weight", with: ".default.weight"), $0.value) })
        })
        #expect(try LoRAAdapter(readingPEFT: withDefault, configuration: model) == expected)
        let withoutPrefix = try PEFTFixtures.modifiedCopy(of: "adapter-rslora", tensors: { tensors in
            tensors = Dictionary(uniqueKeysWithValues: tensors.map { (String($0.key.dropFirst("base_model.model.".count)), $0.value) })
        })
        #expect(try LoRAAdapter(readingPEFT: withoutPrefix, configuration: model) == expected)
        #expect(LoRAAdapter.parsePEFTKey("base_model.model.model.layers.01.self_attn.q_proj.lora_A.weight") == nil)
        #expect(LoRAAdapter.parsePEFTKey("base_model.model.model.layers.1.mlp.q_proj.lora_A.weight") == nil)
        #expect(LoRAAdapter.parsePEFTKey("base_model.model.model.layers.1.self_attn.q_proj.lora_A.other.weight") == nil)
    }

    /// Each way a folder can be wrong, and the words the error must contain.
    @Test(arguments: [
        ("unknown tensor", "base_model.model.lm_head.lora_A.weight is not a lora_A or lora_B weight"),
        ("missing B", "layers.1.mlp.down_proj.lora_B.weight is missing"),
        ("duplicate", "are the same weight under two names"),
        ("untargeted", "adapts k_proj, which target_modules"),
        ("bias", "bias is \"all\""),
        ("fan_in_fan_out", "fan_in_fan_out is true"),
        ("dora", "use_dora is true"),
        ("modules_to_save", "modules_to_save is set"),
        ("pattern", "target_modules is the pattern"),
        ("unknown target", "target_modules lists \"embed_tokens\""),
        ("rank", "r is 0"),
        ("shape", "expected [2, 16]"),
        ("layer", "is for layer 2 but the model has 2 layers"),
        ("non-finite", "element 3 is nan"),
    ])
    func rejects(_ flaw: String, _ message: String) throws {
        let b = "base_model.model.model.layers."
        let dir: URL
        switch flaw {
        case "unknown tensor":
            dir = try PEFTFixtures.modifiedCopy(of: "adapter-rslora", tensors: { $0["base_model.model.lm_head.lora_A.weight"] = Tensor(zeros: [2, 16]) })
        case "missing B":
            dir = try PEFTFixtures.modifiedCopy(of: "adapter-rslora", tensors: { $0[b + "1.mlp.down_proj.lora_B.weight"] = nil })
        case "duplicate":
            dir = try PEFTFixtures.modifiedCopy(of: "adapter-rslora", tensors: { $0[b + "0.self_attn.q_proj.lora_A.default.weight"] = $0[b + "0.self_attn.q_proj.lora_A.weight"] })
        case "untargeted":
            dir = try PEFTFixtures.modifiedCopy(of: "adapter-rslora", tensors: { $0[b + "0.self_attn.k_proj.lora_A.weight"] = Tensor(zeros: [2, 16]) })
        case "bias": dir = try PEFTFixtures.modifiedCopy(of: "adapter-rslora", config: { $0["bias"] = "all" })
        case "fan_in_fan_out": dir = try PEFTFixtures.modifiedCopy(of: "adapter-rslora", config: { $0["fan_in_fan_out"] = true })
        case "dora": dir = try PEFTFixtures.modifiedCopy(of: "adapter-rslora", config: { $0["use_dora"] = true })
        case "modules_to_save": dir = try PEFTFixtures.modifiedCopy(of: "adapter-rslora", config: { $0["modules_to_save"] = ["lm_head"] })
        case "pattern": dir = try PEFTFixtures.modifiedCopy(of: "adapter-rslora", config: { $0["target_modules"] = ".*proj" })
        case "unknown target": dir = try PEFTFixtures.modifiedCopy(of: "adapter-rslora", config: { $0["target_modules"] = ["q_proj", "embed_tokens"] })
        case "rank": dir = try PEFTFixtures.modifiedCopy(of: "adapter-rslora", config: { $0["r"] = 0 })
        case "shape":
            dir = try PEFTFixtures.modifiedCopy(of: "adapter-rslora", tensors: { $0[b + "0.self_attn.q_proj.lora_A.weight"] = Tensor(zeros: [3, 16]) })
        case "layer":
            dir = try PEFTFixtures.modifiedCopy(of: "adapter-rslora", tensors: { $0[b + "2.self_attn.q_proj.lora_A.weight"] = Tensor(zeros: [2, 16]) })
        default:
            dir = try PEFTFixtures.modifiedCopy(of: "adapter-rslora", tensors: { t in
                var a = t[b + "0.mlp.down_proj.lora_A.weight"] ?? Tensor(zeros: [0])
                a.data[3] = .nan
                t[b + "0.mlp.down_proj.lora_A.weight"] = a
            })
        }
        defer { try? FileManager.default.removeItem(at: dir) }
        let error = #expect(throws: ModelError.self) {
            try LoRAAdapter(readingPEFT: dir, configuration: try PEFTFixtures.modelConfiguration)
        }
        let text = error.map { "\($0)" } ?? ""
        #expect(text.contains(message), "\(flaw): \(text)")
        #expect(text.contains(dir.lastPathComponent), "the message names the file: \(text)")
    }

    @Test func rejectsAdapterOfAnotherModel() throws {
        var other = try PEFTFixtures.modelConfiguration
        other.hiddenSize = 32
        other.headDim = 8
        let error = #expect(throws: ModelError.self) {
            try LoRAAdapter(readingPEFT: PEFTFixtures.adapter("adapter-all"), configuration: other)
        }
        #expect("\(error.map { "\($0)" } ?? "")".contains("the adapter was trained for another model"))
    }

    @Test func rejectsPickleOnlyFolder() throws {
        let dir = PEFTFixtures.temporary("pickle")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(at: PEFTFixtures.adapter("adapter-all").appendingPathComponent("adapter_config.json"),
                                         to: dir.appendingPathComponent("adapter_config.json"))
        try Data([0x80, 0x02]).write(to: dir.appendingPathComponent("adapter_model.bin"))
        let error = #expect(throws: ModelError.self) { try LoRAAdapter(readingPEFT: dir, configuration: try PEFTFixtures.modelConfiguration) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("safe_serialization=True"))
    }

    /// Nothing is left behind when a write fails; a second write replaces the adapter's files and
    /// keeps the folder's other files.
    @Test func writesAtomically() throws {
        let model = try PEFTFixtures.modelConfiguration
        var adapter = try LoRAAdapter(readingPEFT: PEFTFixtures.adapter("adapter-rslora"), configuration: model)
        let parent = PEFTFixtures.temporary("atomic")
        try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: parent) }
        let target = parent.appendingPathComponent("adapter")

        var broken = adapter
        broken.layers[1][.v]?.b.data[0] = .infinity
        #expect(throws: ModelError.self) { try broken.write(to: target, baseModel: "base") }
        #expect(throws: ModelError.self) { try adapter.write(to: target, baseModel: "base", metadata: ["format": "np"]) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path).isEmpty)

        try adapter.write(to: target, baseModel: "base", metadata: ["corpus.run": "1"])
        try Data("notes".utf8).write(to: target.appendingPathComponent("README.md"))
        adapter.layers[0][.q]?.a.data[0] += 1
        try adapter.write(to: target, baseModel: "base", metadata: ["corpus.run": "2"])
        #expect(try LoRAAdapter(readingPEFT: target, configuration: model) == adapter)
        #expect(try LoRAAdapter.readPEFTInfo(directory: target).metadata["corpus.run"] == "2")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: target.path)) == ["README.md", "adapter_config.json", "adapter_model.safetensors"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path) == ["adapter"])

        let file = parent.appendingPathComponent("a-file")
        try Data().write(to: file)
        #expect(throws: ModelError.self) { try adapter.write(to: file, baseModel: "base") }
    }

    /// Python's json.dumps(indent=2, sort_keys=True) text, byte for byte: PEFT's and
    /// transformers' files re-encoded are unchanged.
    @Test(arguments: ["adapter-all/adapter_config.json", "adapter-rslora/adapter_config.json", "base/config.json", "base/generation_config.json"])
    func pythonJSONMatchesPython(_ file: String) throws {
        let data = try Data(contentsOf: PEFTFixtures.directory.appendingPathComponent(file))
        let text = String(decoding: try PythonJSON.encode(try JSONSerialization.jsonObject(with: data), newline: file.hasPrefix("base")), as: UTF8.self)
        #expect(text == String(decoding: data, as: UTF8.self))
        #expect(String(decoding: try PythonJSON.encode(["k": "é\u{1F600}\"\n", "f": Float(0.1), "e": [Any](), "i": 3]), as: UTF8.self)
                == "{\n  \"e\": [],\n  \"f\": 0.1,\n  \"i\": 3,\n  \"k\": \"\\u00e9\\ud83d\\ude00\\\"\\n\"\n}\n")
    }

    /// A writer that fails halfway leaves neither a new folder nor temporaries, and an existing
    /// folder's files unchanged.
    @Test func atomicFolderLeavesNothingOnError() throws {
        let parent = PEFTFixtures.temporary("atomic-folder")
        try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: parent) }
        let files = [
            AtomicFolder.File(name: "a.txt") { try Data("new".utf8).write(to: $0) },
            AtomicFolder.File(name: "b.txt") { _ in throw ModelError.unsupported("disk full") },
        ]
        let fresh = parent.appendingPathComponent("fresh")
        #expect(throws: ModelError.unsupported("disk full")) { try AtomicWrites.folder(files, into: fresh, requireEmpty: true) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path).isEmpty)

        let existing = parent.appendingPathComponent("existing")
        try FileManager.default.createDirectory(at: existing, withIntermediateDirectories: true)
        try Data("old".utf8).write(to: existing.appendingPathComponent("a.txt"))
        #expect(throws: ModelError.unsupported("disk full")) { try AtomicWrites.folder(files, into: existing, requireEmpty: false) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: existing.path) == ["a.txt"])
        #expect(try Data(contentsOf: existing.appendingPathComponent("a.txt")) == Data("old".utf8))
    }

    @Test func configJSONWritesShortestNumbers() throws {
        let adapter = LoRAAdapter(configuration: LoRAConfiguration(rank: 8, alpha: 16, dropout: 0.05, targets: [.q, .v]),
                                  layers: [])
        let text = String(decoding: try adapter.peftConfigJSON(baseModel: "/models/SmolLM2"), as: UTF8.self)
        #expect(text.contains("\n  \"lora_alpha\": 16,\n"))
        #expect(text.contains("\n  \"lora_dropout\": 0.05,\n"))
        #expect(text.contains("\n  \"alpha_pattern\": {},\n"))
        #expect(!text.contains("0.0500000"))
        #expect(text.contains("\"/models/SmolLM2\""))
        #expect(text.contains("\"k_proj\"") == false)
    }
}
