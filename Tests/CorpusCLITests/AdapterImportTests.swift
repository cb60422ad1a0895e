import Foundation
import Testing
import TestSupport

/// `corpus adapters import|list|show`: an adapter trained elsewhere on an exported snapshot comes
/// back into the store with its lineage; what does not fit is refused and nothing is registered.
@Suite("Adapters trained elsewhere")
struct AdapterImportTests {
    /// `TinyModel.adapter`'s folder path.
    static func adapter(in dir: URL, name: String, qRows: Int = 8, scale: Float = 1.0 / 8) throws -> String {
        try TinyModel.adapter(in: dir, name: name, qRows: qRows, scale: scale).path
    }

    @Test func anAdapterTrainedElsewhereComesBackWithItsLineage() throws {
        let (db, dir) = try TrainTests.snapshotStore()
        let model = try TestSupport.write(TinyModel.gguf(), to: "tiny.gguf", in: dir)
        let export = dir.appendingPathComponent("export").path
        #expect(try TestSupport.run(["snapshot", "export", "demo", "--format", "sharegpt", "--out", export, "--db", db]).status == 0)
        // The export's LLaMA-Factory YAML: corpus's defaults, the folder as the model.
        let folder = dir.appendingPathComponent("hf")
        #expect(try TestSupport.run(["models", "export", model, "--out", folder.path]).status == 0)
        let lf = dir.appendingPathComponent("lf").path
        let yamlRun = try TestSupport.run(["snapshot", "export", "demo", "--format", "alpaca", "--out", lf, "--llamafactory", "--model", folder.path, "--template", "chatml", "--db", db])
        #expect(yamlRun.status == 0, "\(yamlRun.stderr)")
        let yaml = try String(contentsOfFile: lf + "/demo_1_lora_sft.yaml", encoding: .utf8)
        for line in ["model_name_or_path: \(folder.standardizedFileURL.path)", "stage: sft", "finetuning_type: lora", "lora_rank: 16", "lora_alpha: 32",
                     "lora_target: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", "dataset_dir: \(URL(fileURLWithPath: lf).standardizedFileURL.path)",
                     "dataset: demo_1_train", "cutoff_len: 1024", "learning_rate: 0.0002", "num_train_epochs: 3.0", "lr_scheduler_type: cosine",
                     "gradient_accumulation_steps: 4", "template: chatml", "#   corpus adapters import saves/demo_1-lora --snapshot demo@1"] {
            #expect(yaml.contains("\n" + line), "\(line) in \(yaml)")
        }
        let fromGGUF = try TestSupport.run(["snapshot", "export", "demo", "--format", "alpaca", "--out", lf, "--llamafactory", "--model", model, "--db", db])
        #expect(fromGGUF.status == 3)
        #expect(fromGGUF.stderr.contains("LLaMA-Factory trains from a Hugging Face folder, not a GGUF file: `corpus models export"), "\(fromGGUF.stderr)")

        let adapter = try Self.adapter(in: dir, name: "from-gpu")
        let sha = try TestSupport.shell("sha256sum '\(adapter)/adapter_model.safetensors' | cut -d' ' -f1")

        let imported = try TestSupport.run(["adapters", "import", adapter, "--snapshot", "demo@1", "--model", model, "--export", export,
                                            "--note", "LLaMA-Factory on 8 GPUs", "--db", db, "--json"])
        #expect(imported.status == 0, "\(imported.stderr)")
        let summary = try #require(try imported.json() as? [String: Any])
        #expect(summary["run"] as? Int == 1 && summary["adapter"] as? Int == 1)
        #expect(summary["sha256"] as? String == sha)
        #expect(summary["export_checked"] as? Bool == true)

        let list = try #require(try TestSupport.run(["adapters", "list", "--db", db, "--json"]).json() as? [[String: Any]])
        #expect(list.count == 1)
        #expect(list.first?["trained_by"] as? String == "outside corpus")
        #expect(list.first?["status"] as? String == "imported")
        let shown = try #require(try TestSupport.run(["adapters", "show", sha, "--db", db, "--json"]).json() as? [String: Any])
        #expect(shown["intact"] as? Bool == true)
        #expect(shown["note"] as? String == "LLaMA-Factory on 8 GPUs")
        #expect((shown["peft"] as? [String: Any])?["r"] as? Int == 2)

        // Lineage reaches the snapshot and its sources; the records know the adapter used them.
        let lineage = try #require(try TestSupport.run(["lineage", "adapter", "1", "--db", db, "--json"]).json() as? [String: Any])
        #expect((lineage["run"] as? [String: Any])?["status"] as? String == "imported")
        #expect((lineage["snapshot"] as? [String: Any])?["name"] as? String == "demo")
        #expect((lineage["sources"] as? [[String: Any]])?.count == 2)
        let record = try #require(try TestSupport.run(["lineage", "snapshot", "demo", "--db", db, "--json"]).json() as? [String: Any])
        #expect((record["adapters"] as? [[String: Any]])?.first?["sha256"] as? String == sha)

        // The same adapter twice, one that does not fit the model, a snapshot that does not
        // exist, an export whose file changed: refused, nothing more registered.
        let again = try TestSupport.run(["adapters", "import", adapter, "--snapshot", "demo@1", "--model", model, "--db", db])
        #expect(again.status == 3)
        #expect(again.stderr.contains("is already on record as adapter 1 of run 1"), "\(again.stderr)")
        let misfit = try Self.adapter(in: dir, name: "misfit", qRows: 9)
        let wrong = try TestSupport.run(["adapters", "import", misfit, "--snapshot", "demo@1", "--model", model, "--db", db])
        #expect(wrong.status == 3)
        #expect(wrong.stderr.contains("q_proj.lora_B.weight"), "\(wrong.stderr)")
        let other = try Self.adapter(in: dir, name: "other", scale: 0.01)
        let noSnapshot = try TestSupport.run(["adapters", "import", other, "--snapshot", "nope@1", "--model", model, "--db", db])
        #expect(noSnapshot.status == 5)
        try Data("{}\n".utf8).write(to: URL(fileURLWithPath: export).appendingPathComponent("train.jsonl"))
        let changed = try TestSupport.run(["adapters", "import", other, "--snapshot", "demo@1", "--model", model, "--export", export, "--db", db])
        #expect(changed.status == 3)
        #expect(changed.stderr.contains("train.jsonl: changed since the export"), "\(changed.stderr)")
        #expect((try TestSupport.run(["adapters", "list", "--db", db, "--json"]).json() as? [Any])?.count == 1)
    }

    /// An adapter written by PEFT itself (the fixture of scripts/make-peft-fixtures.py, its tiny
    /// Llama base folder) imports as LLaMA-Factory's would: PEFT's own files pass the checks.
    @Test func aPEFTWrittenAdapterImports() throws {
        let (db, _) = try TrainTests.snapshotStore()
        let fixtures = TestSupport.packageRoot.appendingPathComponent("Tests/TrainerTests/Fixtures/peft")
        let imported = try TestSupport.run(["adapters", "import", fixtures.appendingPathComponent("adapter-all").path, "--snapshot", "demo",
                                            "--model", fixtures.appendingPathComponent("base").path, "--db", db, "--json"])
        #expect(imported.status == 0, "\(imported.stderr)")
        let shown = try #require(try TestSupport.run(["adapters", "show", "1", "--db", db, "--json"]).json() as? [String: Any])
        #expect((shown["peft"] as? [String: Any])?["target_modules"] as? [String] == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
        #expect(shown["intact"] as? Bool == true)
    }
}
