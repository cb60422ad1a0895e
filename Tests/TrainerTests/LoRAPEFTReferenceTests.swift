import Foundation
import Testing
@testable import ModelRuntime
@testable import Trainer

/// Loss and LoRA gradients against PyTorch + transformers + PEFT on tiny random models
/// (Fixtures/lora-*.safetensors, made by scripts/make-lora-fixtures.py).
@Suite("LoRA training against PyTorch + PEFT")
struct LoRAPEFTReferenceTests {
    struct Reference {
        var model: LlamaModel
        var adapter: LoRAAdapter
        var gradients: [String: Tensor]
        var batch: [TrainingSequence]
        var loss: Double
    }

    static func load(_ name: String) throws -> Reference {
        let file = try SafetensorsFile(path: TrainerFixtures.directory.appendingPathComponent("lora-\(name).safetensors").path)
        let config = try #require(try JSONSerialization.jsonObject(with: Data((file.metadata["config"] ?? "").utf8)) as? [String: Any])
        let loraJSON = try #require(try JSONSerialization.jsonObject(with: Data((file.metadata["lora"] ?? "").utf8)) as? [String: Any])
        func int(_ key: String) throws -> Int { try #require(config[key] as? Int) }
        let c = LlamaConfiguration(
            modelType: try #require(config["model_type"] as? String), hiddenSize: try int("hidden_size"),
            intermediateSize: try int("intermediate_size"), numHiddenLayers: try int("num_hidden_layers"),
            numAttentionHeads: try int("num_attention_heads"), numKeyValueHeads: try int("num_key_value_heads"),
            vocabSize: try int("vocab_size"), rmsNormEps: Float(try #require(config["rms_norm_eps"] as? Double)),
            ropeTheta: Float(try #require(config["rope_theta"] as? Double)), maxPositionEmbeddings: try int("max_position_embeddings"),
            tieWordEmbeddings: try #require(config["tie_word_embeddings"] as? Bool), attentionBias: try #require(config["attention_bias"] as? Bool))
        var base: [String: Tensor] = [:]
        for key in file.entries.keys where key.hasPrefix("model.") || key.hasPrefix("lm_head.") { base[key] = try file.tensor(named: key) }
        let model = try LlamaModel(configuration: c, tensors: base)
        let lora = LoRAConfiguration(rank: try #require(loraJSON["r"] as? Int), alpha: Float(try #require(loraJSON["lora_alpha"] as? Double)),
                                     dropout: 0, useRSLoRA: try #require(loraJSON["use_rslora"] as? Bool))
        var layers: [[LoRATarget: LoRAPair]] = []
        var gradients: [String: Tensor] = [:]
        for l in 0..<c.numHiddenLayers {
            var pairs: [LoRATarget: LoRAPair] = [:]
            for target in LoRATarget.allCases {
                let a = LoRAAdapter.peftKey(layer: l, target: target, matrix: "A"), b = LoRAAdapter.peftKey(layer: l, target: target, matrix: "B")
                pairs[target] = LoRAPair(a: try file.tensor(named: a), b: try file.tensor(named: b))
                gradients[a] = try file.tensor(named: "grad." + a)
                gradients[b] = try file.tensor(named: "grad." + b)
            }
            layers.append(pairs)
        }
        var batch: [TrainingSequence] = []
        while file.entries["batch.ids.\(batch.count)"] != nil {
            let ids = try file.tensor(named: "batch.ids.\(batch.count)").data.map { Int32($0) }
            let mask = try file.tensor(named: "batch.mask.\(batch.count)").data.map { $0 != 0 }
            batch.append(TrainingSequence(ids: ids, targetMask: mask))
        }
        let loss = try #require(Double(file.metadata["loss"] ?? ""))
        return Reference(model: model, adapter: LoRAAdapter(configuration: lora, layers: layers), gradients: gradients, batch: batch, loss: loss)
    }

    /// Measured: loss within 1e-7 relative, gradients within ~2e-6 of the largest element of each tensor.
    @Test(arguments: ["llama", "qwen2"], [false, true]) func lossAndGradientsMatchPEFT(model name: String, recompute: Bool) throws {
        let reference = try Self.load(name)
        let normalizer = LoRATrainingSupport.targetCount(reference.batch)
        let trainer = LoRATrainingModel(model: reference.model, options: TrainingOptions(recomputeActivations: recompute, lossChunkRows: 4))
        var gradients = LoRAAdapter(zerosLike: reference.adapter)
        let loss = try trainer.accumulateGradients(batch: reference.batch, adapter: reference.adapter, normalizer: normalizer,
                                                   dropoutSeed: 0, into: &gradients)
        let lossError = abs(loss.value - reference.loss) / reference.loss
        #expect(loss.tokens == normalizer)
        #expect(lossError < 1e-5, "loss \(loss.value), PEFT \(reference.loss)")
        var worst = 0.0
        for (l, pairs) in gradients.layers.enumerated() {
            for (target, pair) in pairs {
                for (matrix, ours) in [("A", pair.a), ("B", pair.b)] {
                    let key = LoRAAdapter.peftKey(layer: l, target: target, matrix: matrix)
                    let theirs = try #require(reference.gradients[key])
                    #expect(ours.shape == theirs.shape)
                    let error = LoRATrainingSupport.relativeError(ours.data, theirs.data)
                    worst = max(worst, error)
                    #expect(error < 1e-4, "\(key): \(error)")
                    #expect(theirs.data.contains { $0 != 0 })
                }
            }
        }
        let eval = try trainer.loss(batch: reference.batch, adapter: reference.adapter, normalizer: normalizer)
        #expect(eval.sum == loss.sum)
        print("PEFT reference \(name)\(recompute ? " (recompute)" : ""): loss \(loss.value) vs \(reference.loss) (relative \(lossError)), worst gradient error \(worst)")
    }

    /// Micro-batches with the whole batch's target count as normalizer add up to the whole batch.
    @Test func accumulationOverMicroBatchesEqualsTheBatch() throws {
        let reference = try Self.load("llama")
        let normalizer = LoRATrainingSupport.targetCount(reference.batch)
        let trainer = LoRATrainingModel(model: reference.model)
        var whole = LoRAAdapter(zerosLike: reference.adapter), parts = whole
        let all = try trainer.accumulateGradients(batch: reference.batch, adapter: reference.adapter, normalizer: normalizer,
                                                  dropoutSeed: 0, into: &whole)
        var sum = 0.0
        for sequence in reference.batch {
            sum += try trainer.accumulateGradients(batch: [sequence], adapter: reference.adapter, normalizer: normalizer,
                                                   dropoutSeed: 0, into: &parts).sum
        }
        #expect(abs(sum - all.sum) < 1e-9 * abs(all.sum))
        for (l, pairs) in whole.layers.enumerated() {
            for (target, pair) in pairs {
                let other = try #require(parts.layers[l][target])
                #expect(LoRATrainingSupport.relativeError(other.a.data, pair.a.data) < 1e-6)
                #expect(LoRATrainingSupport.relativeError(other.b.data, pair.b.data) < 1e-6)
            }
        }
    }
}
