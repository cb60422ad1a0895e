import CorpusDB
import Foundation
import ModelRuntime
import Trainer

/// The LLaMA-Factory training YAML `corpus snapshot export --llamafactory` writes beside the
/// export (docs/SNAPSHOTS.md): supervised LoRA fine-tuning on the exported train split with
/// corpus's training settings (its defaults, or those of `--like-run N`), so a team that moves
/// to a GPU cluster starts from what it ran on the CPU, and the adapter comes back with
/// `corpus adapters import`.
enum LlamaFactoryConfig {
    /// LLaMA-Factory's template for each chat template corpus recognizes (names of its
    /// `data/template.py` registry in 0.9.5). ChatML is told apart by its default system message:
    /// SmolLM2's (`smollm2`), Qwen's or a Qwen2 model (`qwen`, Qwen2.5's default system message),
    /// none (`chatml`).
    static func template(_ chat: ChatTemplate, modelType: String?) -> String {
        switch chat {
        case let .chatml(defaultSystem):
            if defaultSystem?.contains("SmolLM") == true { return "smollm2" }
            if defaultSystem?.contains("Qwen") == true || (defaultSystem == nil && modelType == "qwen2") { return "qwen" }
            return "chatml"
        case .llama3: return "llama3"
        case .mistral: return "mistral"
        case .alpaca: return "alpaca"
        }
    }

    /// The YAML text. `model` is a Hugging Face folder (LLaMA-Factory does not train from GGUF),
    /// or nil for a placeholder to fill in.
    static func yaml(snapshot: Snapshot, exportDirectory: String, splits: [String], settings: TrainingSettings, settingsSource: String,
                     model: String?, template: String?, modelRef: String?) throws -> String {
        let lora = try settings.loraConfiguration()
        let name = "\(snapshot.name)_\(snapshot.version)"
        let scheduler = ["cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"][settings.decay] ?? "cosine"
        // corpus batches by tokens; LLaMA-Factory by examples: one example per device and as many
        // accumulated as corpus's --batch-tokens holds at --max-len.
        let accumulation = max(1, settings.batchTokens / max(1, settings.maxLength))
        func q(_ s: String) -> String {
            s.allSatisfy({ $0.isLetter || $0.isNumber || "/._-@".contains($0) }) ? s : "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        var lines = [
            "# LLaMA-Factory: llamafactory-cli train \(name)_lora_sft.yaml",
            "# written by corpus snapshot export for snapshot \(snapshot.label) (hash \(snapshot.hash));",
            "# training settings: \(settingsSource). corpus batches by tokens (\(settings.batchTokens) per step at",
            "# --max-len \(settings.maxLength)); here one example per device, \(accumulation) accumulated.",
            "# Back into corpus, with its lineage:",
            "#   corpus adapters import saves/\(name)-lora --snapshot \(snapshot.label) --model \(modelRef ?? "MODEL") --export \(exportDirectory)",
            "",
            "### model",
            "model_name_or_path: \(model.map(q) ?? "REPLACE_WITH_A_HUGGING_FACE_FOLDER  # corpus models export MODEL --format hf --out DIR")",
            "",
            "### method",
            "stage: sft",
            "do_train: true",
            "finetuning_type: lora",
            "lora_rank: \(lora.rank)",
            "lora_alpha: \(Self.number(Double(lora.alpha)))",
            "lora_dropout: \(Self.number(Double(lora.dropout)))",
            "lora_target: \(lora.targets.map(\.moduleName).joined(separator: ","))",
        ]
        if lora.useRSLoRA { lines.append("use_rslora: true") }
        lines += [
            "",
            "### dataset",
            "dataset_dir: \(q(exportDirectory))",
            "dataset: \(name)_train",
        ]
        if splits.contains("eval") { lines.append("eval_dataset: \(name)_eval") }
        lines += [
            "template: \(template ?? "REPLACE_WITH_THE_TEMPLATE  # qwen, chatml, llama3, mistral, alpaca")",
            "cutoff_len: \(settings.maxLength)",
            "overwrite_cache: true",
            "preprocessing_num_workers: 4",
            "",
            "### output",
            "output_dir: saves/\(name)-lora",
            "logging_steps: 10",
            "save_strategy: epoch",
            "plot_loss: true",
            "overwrite_output_dir: true",
            "report_to: none",
            "",
            "### train",
            "per_device_train_batch_size: 1",
            "gradient_accumulation_steps: \(accumulation)",
            "learning_rate: \(Self.number(settings.learningRate))",
            settings.maxSteps > 0 ? "max_steps: \(settings.maxSteps)" : "num_train_epochs: \(settings.epochs).0",
            "lr_scheduler_type: \(scheduler)",
            "warmup_ratio: \(Self.number(settings.warmupRatio))",
            "weight_decay: \(Self.number(settings.weightDecay))",
            "max_grad_norm: \(Self.number(settings.maxGradNorm))",
            "seed: \(settings.seed)",
            "# bf16: true        # on GPUs with bf16 (on a CPU it needs use_cpu: true as well)",
        ]
        if splits.contains("eval") {
            // eval_dataset alone evaluates nothing: the strategy is what runs it.
            lines += ["", "### eval", "do_eval: true", "per_device_eval_batch_size: 1", "eval_strategy: epoch"]
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A number as YAML reads it back: integers without a fraction (LLaMA-Factory's lora_alpha is
    /// an int), others in Swift's shortest form.
    static func number(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v)
    }
}
