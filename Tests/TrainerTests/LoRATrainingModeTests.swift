import Foundation
import Testing
@testable import ModelRuntime
@testable import Trainer

/// Recomputation, dropout, initialization and input checking of LoRA training.
@Suite("LoRA training: modes, dropout, initialization")
struct LoRATrainingModeTests {
    static func setup(dropout: Float) throws -> (LlamaModel, LoRAAdapter, [TrainingSequence], Int) {
        let c = LoRATrainingSupport.configuration(bias: true, tied: false)
        let model = try LoRATrainingSupport.model(c, seed: 41)
        let adapter = try LoRATrainingSupport.adapter(LoRAConfiguration(rank: 4, alpha: 8, dropout: dropout), c, seed: 42)
        let batch = LoRATrainingSupport.batch(lengths: [11, 6, 8], vocabulary: c.vocabSize, seed: 43)
        return (model, adapter, batch, LoRATrainingSupport.targetCount(batch))
    }

    static func gradients(_ model: LlamaModel, _ adapter: LoRAAdapter, _ batch: [TrainingSequence], _ n: Int, recompute: Bool,
                          chunk: Int = 64, seed: UInt64) throws -> (LoRAAdapter, TrainingLoss) {
        let trainer = LoRATrainingModel(model: model, options: TrainingOptions(recomputeActivations: recompute, lossChunkRows: chunk))
        var g = LoRAAdapter(zerosLike: adapter)
        let loss = try trainer.accumulateGradients(batch: batch, adapter: adapter, normalizer: n, dropoutSeed: seed, into: &g)
        return (g, loss)
    }

    @Test func recomputeGivesIdenticalGradients() throws {
        let (model, adapter, batch, n) = try Self.setup(dropout: 0.1)
        let (saved, savedLoss) = try Self.gradients(model, adapter, batch, n, recompute: false, seed: 5)
        let (recomputed, recomputedLoss) = try Self.gradients(model, adapter, batch, n, recompute: true, seed: 5)
        #expect(saved == recomputed)
        #expect(savedLoss == recomputedLoss)
    }

    /// The workspace cached between calls (larger than a later batch needs) changes nothing.
    @Test func reusedWorkspaceGivesIdenticalResults() throws {
        let (model, adapter, batch, n) = try Self.setup(dropout: 0.1)
        let trainer = LoRATrainingModel(model: model)
        var first = LoRAAdapter(zerosLike: adapter), short = first, again = first
        let firstLoss = try trainer.accumulateGradients(batch: batch, adapter: adapter, normalizer: n, dropoutSeed: 3, into: &first)
        let shortBatch = [batch[1]]
        let shortLoss = try trainer.accumulateGradients(batch: shortBatch, adapter: adapter, normalizer: n, dropoutSeed: 3, into: &short)
        let againLoss = try trainer.accumulateGradients(batch: batch, adapter: adapter, normalizer: n, dropoutSeed: 3, into: &again)
        #expect(first == again && firstLoss == againLoss)
        var fresh = LoRAAdapter(zerosLike: adapter)
        let freshLoss = try LoRATrainingModel(model: model).accumulateGradients(batch: shortBatch, adapter: adapter, normalizer: n,
                                                                                dropoutSeed: 3, into: &fresh)
        #expect(short == fresh && shortLoss == freshLoss)
        _ = try trainer.loss(batch: batch, adapter: adapter, normalizer: n)
    }

    /// A few plain gradient steps on A and B lower the loss (the gradient points uphill).
    @Test func gradientStepsLowerTheLoss() throws {
        let (model, start, batch, n) = try Self.setup(dropout: 0)
        let trainer = LoRATrainingModel(model: model)
        var adapter = start
        var losses: [Double] = []
        for _ in 0..<5 {
            var g = LoRAAdapter(zerosLike: adapter)
            losses.append(try trainer.accumulateGradients(batch: batch, adapter: adapter, normalizer: n, dropoutSeed: 0, into: &g).value)
            for l in adapter.layers.indices {
                for target in adapter.configuration.targets {
                    guard var pair = adapter.layers[l][target], let d = g.layers[l][target] else { continue }
                    for i in pair.a.data.indices { pair.a.data[i] -= 0.05 * d.a.data[i] }
                    for i in pair.b.data.indices { pair.b.data[i] -= 0.05 * d.b.data[i] }
                    adapter.layers[l][target] = pair
                }
            }
        }
        #expect(zip(losses, losses.dropFirst()).allSatisfy { $0.0 > $0.1 }, "\(losses)")
    }

    @Test func lossChunkSizeDoesNotChangeTheLoss() throws {
        let (model, adapter, batch, n) = try Self.setup(dropout: 0)
        let (one, oneLoss) = try Self.gradients(model, adapter, batch, n, recompute: false, chunk: 1, seed: 0)
        let (many, manyLoss) = try Self.gradients(model, adapter, batch, n, recompute: false, chunk: 1000, seed: 0)
        #expect(abs(oneLoss.sum - manyLoss.sum) < 1e-6 * abs(oneLoss.sum))  // sgemm rounds differently per shape
        for (l, pairs) in one.layers.enumerated() {
            for (target, pair) in pairs {
                #expect(LoRATrainingSupport.relativeError(pair.a.data, many.layers[l][target]?.a.data ?? []) < 1e-6)
            }
        }
    }

    @Test func dropoutIsDeterministicForASeed() throws {
        let (model, adapter, batch, n) = try Self.setup(dropout: 0.3)
        let (first, firstLoss) = try Self.gradients(model, adapter, batch, n, recompute: false, seed: 9)
        let (again, againLoss) = try Self.gradients(model, adapter, batch, n, recompute: false, seed: 9)
        let (other, otherLoss) = try Self.gradients(model, adapter, batch, n, recompute: false, seed: 10)
        #expect(first == again && firstLoss == againLoss)
        #expect(first != other && firstLoss.sum != otherLoss.sum)
        // Evaluation has no dropout: the loss equals training with dropout 0.
        let trainer = LoRATrainingModel(model: model)
        var noDropout = adapter
        noDropout.configuration.dropout = 0
        let eval = try trainer.loss(batch: batch, adapter: adapter, normalizer: n)
        let (_, plain) = try Self.gradients(model, noDropout, batch, n, recompute: false, seed: 9)
        #expect(eval.sum == plain.sum)
    }

    /// The evaluation's batched loss pass: one engine call gives each sequence exactly the loss it
    /// has alone, and the sums add up to the batch loss.
    @Test func perSequenceLossesEqualSeparateCalls() throws {
        let (model, adapter, batch, n) = try Self.setup(dropout: 0.3)
        let trainer = LoRATrainingModel(model: model)
        let each = try trainer.losses(batch: batch, adapter: adapter)
        #expect(each.count == batch.count)
        for (i, sequence) in batch.enumerated() {
            let alone = try trainer.loss(batch: [sequence], adapter: adapter, normalizer: 1)
            #expect(each[i].sum == alone.sum && each[i].tokens == alone.tokens)
            #expect(alone.tokens > 0)
        }
        let whole = try trainer.loss(batch: batch, adapter: adapter, normalizer: n)
        #expect(each.map(\.tokens).reduce(0, +) == whole.tokens)
        #expect(abs(each.map(\.sum).reduce(0, +) - whole.sum) <= 1e-12 * abs(whole.sum))
    }

    /// The masks keep about 1 − p of the elements and scale the kept ones by 1/(1 − p).
    @Test func dropoutMaskStatistics() {
        let p: Float = 0.3, count = 100_000
        let x = [Float](repeating: 1, count: count)
        var y = [Float](repeating: 0, count: count)
        var stream = SeedStream.derive(1, 2, 3)
        x.withUnsafeBufferPointer { xs in y.withUnsafeMutableBufferPointer { ys in
            if let xb = xs.baseAddress, let yb = ys.baseAddress { TrainingKernels.dropout(xb, yb, count: count, p: p, stream: &stream) }
        } }
        let kept = y.filter { $0 != 0 }
        #expect(abs(Double(kept.count) / Double(count) - 0.7) < 0.01)
        #expect(kept.allSatisfy { abs($0 - 1 / 0.7) < 1e-6 })
    }

    /// The vectorized Float exponential against Foundation's, over the softmax range and the tail.
    @Test func vectorizedExponentialIsAccurate() {
        let values = (0..<2003).map { Float($0) * -0.05 + 10 }      // 10 down to −90: full lanes and a tail
        var p = values
        let sum = p.withUnsafeMutableBufferPointer { b in b.baseAddress.map { Float.exponentiate($0, count: values.count, minus: 0.5) } ?? 0 }
        var worst: Float = 0
        for (x, e) in zip(values, p) {
            let expected = Foundation.exp(x - 0.5)
            if expected > 1e-30 { worst = max(worst, abs(e - expected) / expected) } else { #expect(e < 1e-30) }
        }
        #expect(worst < 4e-7, "worst relative error \(worst)")
        #expect(abs(sum - p.reduce(0, +)) <= 1e-5 * sum)
    }

    @Test func initializationFollowsPEFT() throws {
        let c = LoRATrainingSupport.configuration()
        let lora = LoRAConfiguration(rank: 8, alpha: 16, targets: [.q, .v, .down])
        let adapter = try LoRAAdapter(initializing: lora, for: c, seed: 3)
        #expect(adapter.layers.count == c.numHiddenLayers)
        for pairs in adapter.layers {
            #expect(Set(pairs.keys) == [.q, .v, .down])
            for (target, pair) in pairs {
                let (out, inFeatures) = target.shape(c)
                #expect(pair.a.shape == [8, inFeatures] && pair.b.shape == [out, 8])
                let bound = 1 / Float(inFeatures).squareRoot()
                #expect(pair.a.data.allSatisfy { abs($0) <= bound })
                #expect((pair.a.data.map { abs($0) }.max() ?? 0) > 0.8 * bound)
                #expect(pair.b.data.allSatisfy { $0 == 0 })
            }
        }
        #expect(try LoRAAdapter(initializing: lora, for: c, seed: 3) == adapter)
        #expect(try LoRAAdapter(initializing: lora, for: c, seed: 4) != adapter)
        // A matrix does not depend on which other targets are configured.
        let all = try LoRAAdapter(initializing: LoRAConfiguration(rank: 8, alpha: 16), for: c, seed: 3)
        #expect(all.layers[1][.v] == adapter.layers[1][.v])
        let zeros = LoRAAdapter(zerosLike: all)
        #expect(zeros.layers[0][.gate]?.a.shape == all.layers[0][.gate]?.a.shape)
        #expect(zeros.layers.allSatisfy { $0.values.allSatisfy { $0.a.data.allSatisfy { $0 == 0 } && $0.b.data.allSatisfy { $0 == 0 } } })
        // A fresh adapter leaves the model unchanged: the loss equals the base model's.
        let model = try LoRATrainingSupport.model(c, seed: 5)
        let batch = LoRATrainingSupport.batch(lengths: [7], vocabulary: c.vocabSize, seed: 6)
        let loss = try LoRATrainingModel(model: model).loss(batch: batch, adapter: all, normalizer: 1)
        let logits = try model.logits(batch[0].ids.map { Int($0) })
        var expected = 0.0
        for t in 0..<6 where batch[0].targetMask[t] {
            let row = logits[(t * c.vocabSize)..<((t + 1) * c.vocabSize)].map { Double($0) }
            let m = row.max() ?? 0
            expected += m + log(row.map { exp($0 - m) }.reduce(0, +)) - row[Int(batch[0].ids[t + 1])]
        }
        #expect(abs(loss.sum - expected) < 1e-4 * expected)
    }

    @Test func badInputsAreErrors() throws {
        let (model, adapter, batch, n) = try Self.setup(dropout: 0)
        let trainer = LoRATrainingModel(model: model)
        var g = LoRAAdapter(zerosLike: adapter)
        #expect(throws: TrainerError.self) {
            try trainer.accumulateGradients(batch: [TrainingSequence(ids: [1, 2, 99], targetMask: [true, true, false])], adapter: adapter,
                                            normalizer: 2, dropoutSeed: 0, into: &g)
        }
        #expect(throws: TrainerError.self) {
            try trainer.accumulateGradients(batch: [TrainingSequence(ids: [1, 2], targetMask: [true])], adapter: adapter,
                                            normalizer: 1, dropoutSeed: 0, into: &g)
        }
        #expect(throws: TrainerError.self) { try trainer.loss(batch: batch, adapter: adapter, normalizer: 0) }
        var wrong = adapter
        wrong.layers.removeLast()
        #expect(throws: TrainerError.self) { try trainer.loss(batch: batch, adapter: wrong, normalizer: n) }
        var otherRank = LoRAAdapter(zerosLike: try LoRAAdapter(initializing: LoRAConfiguration(rank: 2), for: model.configuration, seed: 1))
        #expect(throws: TrainerError.self) {
            try trainer.accumulateGradients(batch: batch, adapter: adapter, normalizer: n, dropoutSeed: 0, into: &otherRank)
        }
        let empty = try trainer.loss(batch: [TrainingSequence(ids: [], targetMask: [])], adapter: adapter, normalizer: 1)
        #expect(empty.tokens == 0 && empty.sum == 0)
    }
}
