import Foundation
import TestSupport
import Testing
@testable import ModelRuntime
@testable import Trainer

/// The training forward on the real test model (SmolLM2-135M: 9 query heads over 3 key/value
/// heads, tied embeddings, 49,152 tokens) against the inference forward already checked against
/// transformers (ForwardTests).
@Suite("LoRA training on the test model", .serialized, .needsTestModel)
struct LoRARealModelTests {
    @Test func freshAdapterLossEqualsTheInferenceForward() throws {
        let path = try TrainerFixtures.smolLM2
        let loaded = try ModelLoader.load(path: path)
        let model = try LlamaModel(configuration: loaded.configuration, tensors: loaded.tensors)
        let c = model.configuration
        var stream = SeedStream(seed: 11)
        let ids = (0..<24).map { _ in Int32(stream.next() % UInt64(c.vocabSize)) }
        let mask = (0..<24).map { $0 >= 8 }
        let batch = [TrainingSequence(ids: ids, targetMask: mask)]
        let adapter = try LoRAAdapter(initializing: LoRAConfiguration(rank: 4, alpha: 8), for: c, seed: 1)
        let trainer = LoRATrainingModel(model: model, options: TrainingOptions(lossChunkRows: 5))
        var gradients = LoRAAdapter(zerosLike: adapter)
        let loss = try trainer.accumulateGradients(batch: batch, adapter: adapter, normalizer: 15, dropoutSeed: 0, into: &gradients)

        let logits = try model.logits(ids.map { Int($0) })
        var expected = 0.0
        for t in 8..<23 {
            let row = logits[(t * c.vocabSize)..<((t + 1) * c.vocabSize)].map { Double($0) }
            let m = row.max() ?? 0
            expected += m + log(row.map { exp($0 - m) }.reduce(0, +)) - row[Int(ids[t + 1])]
        }
        #expect(loss.tokens == 15)
        #expect(abs(loss.sum - expected) < 1e-4 * expected, "training \(loss.sum), inference \(expected)")
        // With B = 0 only B has a gradient (dA = s·(dY·B)ᵀ·x = 0); every B gradient is finite and some are non-zero.
        for pairs in gradients.layers {
            for pair in pairs.values {
                #expect(pair.a.data.allSatisfy { $0 == 0 })
                #expect(pair.b.data.allSatisfy { $0.isFinite })
            }
        }
        #expect(gradients.layers[0][.q]?.b.data.contains { $0 != 0 } == true)
        print("SmolLM2 fresh adapter: training loss \(loss.sum), inference \(expected)")
    }
}
