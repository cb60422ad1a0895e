import Foundation
import Testing
@testable import ModelRuntime
@testable import Trainer

/// DPO against TRL 1.16's DPOTrainer (sigmoid loss, β 0.1, reference = the base with the PEFT
/// adapter disabled) on a tiny random SmolLM-style model: Fixtures/dpo-smollm.safetensors, made
/// by scripts/make-preference-fixtures.py.
@Suite("DPO against TRL")
struct DPOReferenceTests {
    struct Fixture {
        var model: LlamaModel
        var adapter: LoRAAdapter
        var gradients: [String: Tensor]
        var pairs: [(chosen: TrainingSequence, rejected: TrainingSequence)]
        var policy: [ReferenceLogps]
        var reference: [ReferenceLogps]
        var metadata: [String: String]

        func number(_ key: String) throws -> Double { try #require(Double(metadata[key] ?? "")) }
    }

    /// Prompt + answer as one sequence; positions len(prompt)−1 … len−2 predict the answer (TRL's
    /// completion mask, the final EOS included).
    static func sequence(prompt: [Int32], answer: [Int32]) -> TrainingSequence {
        let ids = prompt + answer
        return TrainingSequence(ids: ids, targetMask: ids.indices.map { $0 >= prompt.count - 1 && $0 <= ids.count - 2 })
    }

    /// The base model and the PEFT adapter of a TRL fixture file, and the gradients stored under
    /// `prefix` + the adapter's keys.
    static func modelAndAdapter(_ file: SafetensorsFile, path: String, gradientPrefix prefix: String = "grad.")
        throws -> (model: LlamaModel, adapter: LoRAAdapter, gradients: [String: Tensor])
    {
        let c = try LlamaConfiguration(configJSON: Data((file.metadata["config_json"] ?? "").utf8), path: path + " (config_json)")
        let loraJSON = try #require(try JSONSerialization.jsonObject(with: Data((file.metadata["lora"] ?? "").utf8)) as? [String: Any])
        var base: [String: Tensor] = [:]
        for key in file.entries.keys where key.hasPrefix("model.") || key.hasPrefix("lm_head.") { base[key] = try file.tensor(named: key) }
        let model = try LlamaModel(configuration: c, tensors: base)
        let lora = LoRAConfiguration(rank: try #require(loraJSON["r"] as? Int), alpha: Float(try #require(loraJSON["lora_alpha"] as? Double)),
                                     dropout: 0, useRSLoRA: try #require(loraJSON["use_rslora"] as? Bool))
        var layers: [[LoRATarget: LoRAPair]] = [], gradients: [String: Tensor] = [:]
        for l in 0..<c.numHiddenLayers {
            var pairs: [LoRATarget: LoRAPair] = [:]
            for target in LoRATarget.allCases {
                let a = LoRAAdapter.peftKey(layer: l, target: target, matrix: "A"), b = LoRAAdapter.peftKey(layer: l, target: target, matrix: "B")
                pairs[target] = LoRAPair(a: try file.tensor(named: a), b: try file.tensor(named: b))
                for key in [a, b] { gradients[key] = try file.tensor(named: prefix + key) }
            }
            layers.append(pairs)
        }
        return (model, LoRAAdapter(configuration: lora, layers: layers), gradients)
    }

    /// The worst error of our gradients against `expected` (relative to each tensor's largest
    /// element), each tensor also checked to be below `tolerance` and non-zero in the reference.
    static func worstGradientError(_ gradients: LoRAAdapter, _ expected: [String: Tensor], tolerance: Double) throws -> Double {
        var worst = 0.0
        for (l, layer) in gradients.layers.enumerated() {
            for (target, pair) in layer {
                for (matrix, ours) in [("A", pair.a), ("B", pair.b)] {
                    let key = LoRAAdapter.peftKey(layer: l, target: target, matrix: matrix)
                    let theirs = try #require(expected[key])
                    #expect(theirs.data.contains { $0 != 0 })
                    let error = LoRATrainingSupport.relativeError(ours.data, theirs.data)
                    worst = max(worst, error)
                    #expect(error < tolerance, "\(key): \(error)")
                }
            }
        }
        return worst
    }

    static func load() throws -> Fixture {
        let path = TrainerFixtures.directory.appendingPathComponent("dpo-smollm.safetensors").path
        let file = try SafetensorsFile(path: path)
        let (model, adapter, gradients) = try modelAndAdapter(file, path: path)
        func ids(_ name: String) throws -> [Int32] { try file.tensor(named: name).data.map { Int32($0) } }
        func values(_ name: String) throws -> [Double] { try file.tensor(named: name).data.map(Double.init) }
        var pairs: [(chosen: TrainingSequence, rejected: TrainingSequence)] = []
        while file.entries["dpo.prompt.\(pairs.count)"] != nil {
            let i = pairs.count, prompt = try ids("dpo.prompt.\(i)")
            pairs.append((sequence(prompt: prompt, answer: try ids("dpo.chosen.\(i)")), sequence(prompt: prompt, answer: try ids("dpo.rejected.\(i)"))))
        }
        let pc = try values("dpo.policy_chosen_logps"), pr = try values("dpo.policy_rejected_logps")
        let rc = try values("dpo.reference_chosen_logps"), rr = try values("dpo.reference_rejected_logps")
        return Fixture(model: model, adapter: adapter, gradients: gradients, pairs: pairs,
                       policy: zip(pc, pr).map { ReferenceLogps(chosen: $0, rejected: $1) },
                       reference: zip(rc, rr).map { ReferenceLogps(chosen: $0, rejected: $1) }, metadata: file.metadata)
    }

    /// The adapter switched off: the same matrices with B = 0 add exactly nothing.
    static func switchedOff(_ adapter: LoRAAdapter) throws -> LoRAAdapter {
        var off = adapter
        for l in off.layers.indices {
            for (target, pair) in off.layers[l] {
                off.layers[l][target] = LoRAPair(a: pair.a, b: try Tensor(shape: pair.b.shape, data: [Float](repeating: 0, count: pair.b.data.count)))
            }
        }
        return off
    }

    /// Measured when written: loss within 4e-8 relative, gradients within 3.2e-6 of each tensor's
    /// largest element.
    @Test func lossMetricsAndGradientsMatchTRL() throws {
        let f = try Self.load()
        let trainer = LoRATrainingModel(model: f.model, options: TrainingOptions(lossChunkRows: 4))
        let beta = try f.number("beta")
        #expect(beta == 0.1 && f.metadata["loss_type"] == "sigmoid" && f.pairs.count == 3)

        // The reference: the base model (the adapter switched off), as TRL's PEFT path takes it.
        let sums = try trainer.losses(batch: f.pairs.flatMap { [$0.chosen, $0.rejected] }, adapter: try Self.switchedOff(f.adapter))
        let reference = f.pairs.indices.map { ReferenceLogps(chosen: -sums[2 * $0].sum, rejected: -sums[2 * $0 + 1].sum) }
        for (ours, theirs) in zip(reference, f.reference) {
            #expect(abs(ours.chosen - theirs.chosen) < 1e-4 && abs(ours.rejected - theirs.rejected) < 1e-4, "\(ours) vs TRL \(theirs)")
        }

        var gradients = LoRAAdapter(zerosLike: f.adapter)
        let step = try trainer.accumulateDPOGradients(pairs: f.pairs, reference: reference, adapter: f.adapter, beta: beta,
                                                      pairsInStep: f.pairs.count, dropoutSeed: 0, into: &gradients)
        for (ours, theirs) in zip(step.policy, f.policy) {
            #expect(abs(ours.chosen - theirs.chosen) < 1e-4 && abs(ours.rejected - theirs.rejected) < 1e-4, "\(ours) vs TRL \(theirs)")
        }
        let metrics = DPO.metrics(step.results, policyChosen: step.policy.map(\.chosen), policyRejected: step.policy.map(\.rejected))
        let expected = ["loss": "loss", "rewards/chosen": "rewards_chosen", "rewards/rejected": "rewards_rejected",
                        "rewards/accuracies": "rewards_accuracies", "rewards/margins": "rewards_margins",
                        "logps/chosen": "logps_chosen", "logps/rejected": "logps_rejected"]
        for (ours, theirs) in expected {
            let value = try #require(metrics[ours]), reference = try f.number(theirs)
            #expect(abs(value - reference) < 1e-4 * max(1, abs(reference)), "\(ours): \(value), TRL \(reference)")
        }
        #expect(abs(try #require(metrics["rewards/accuracies"]) - 2.0 / 3.0) < 1e-15)

        let worst = try Self.worstGradientError(gradients, f.gradients, tolerance: 1e-4)
        print("DPO vs TRL: loss \(metrics["loss"] ?? .nan) vs \(try f.number("loss")), worst gradient error \(worst)")
    }

    /// With a fresh adapter the policy is the reference: z = 0 and the first step's loss is ln 2
    /// exactly; then training moves the rewards apart on the pairs it sees.
    @Test func freshAdapterStartsAtLn2AndLearns() throws {
        let f = try Self.load()
        func example(_ s: TrainingSequence, _ id: Int64) -> TrainingExample {
            TrainingExample(recordId: id, ids: s.ids.map(Int.init), targetMask: s.targetMask)
        }
        let pairs = f.pairs.enumerated().map { PreferenceExample(recordId: Int64($0.offset), chosen: example($0.element.chosen, Int64($0.offset)),
                                                                  rejected: example($0.element.rejected, Int64($0.offset))) }
        var settings = TrainingSettings()
        settings.method = "dpo"
        settings.beta = 0.1
        settings.rank = 4
        settings.alpha = 8
        settings.learningRate = 5e-2
        settings.warmupRatio = 0
        settings.decay = "constant"
        settings.epochs = 30
        settings.batchTokens = 10_000
        settings.evalEvery = 0
        let trainer = try LoRATrainer(model: f.model, settings: settings, pairs: pairs, evalPairs: pairs)
        #expect(trainer.totalSteps == 30)
        #expect(try trainer.evaluate() == log(2.0))
        let first = try #require(try trainer.takeStep(evaluate: false))
        #expect(first.loss == log(2.0))
        #expect(first.metrics["rewards/margins"] == 0 && first.metrics["rewards/accuracies"] == 0)
        var last = first
        while let r = try trainer.takeStep(evaluate: false) { last = r }
        #expect(last.loss < 0.5, "DPO loss after 30 steps: \(last.loss)")
        let eval = try #require(last.metrics["eval/rewards/accuracies"])
        #expect(eval == 1, "the trained adapter prefers every chosen answer: \(last.metrics)")
        #expect(try #require(last.evalLoss) < 0.5)
    }
}
