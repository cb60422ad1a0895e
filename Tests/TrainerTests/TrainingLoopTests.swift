import Foundation
import TestSupport
import Testing
@testable import ModelRuntime
@testable import Trainer

/// The training loop on a tiny random model: it learns, it is deterministic, a resumed run ends
/// bit-identical to the uninterrupted one, and micro-batching does not change the result.
@Suite("Training loop")
struct TrainingLoopTests {
    /// A learnable task: whatever the question, the answer is the same few tokens.
    static func examples(_ count: Int, seed: UInt64) -> [TrainingExample] {
        var s = SeedStream(seed: seed)
        return (0..<count).map { i in
            let n = 6 + Int(s.next() % 10)
            let question = (0..<n).map { _ in 2 + Int(s.next() % 40) }
            let ids = [1] + question + [45] + [7, 8, 9, 10] + [46]
            let answerStart = question.count + 2
            let mask = ids.indices.map { $0 + 1 >= answerStart && $0 + 1 < ids.count }
            return TrainingExample(recordId: Int64(i + 1), ids: ids, targetMask: mask)
        }
    }

    static func settings() -> TrainingSettings {
        var s = TrainingSettings()
        s.rank = 4
        s.alpha = 8
        s.learningRate = 3e-2
        s.epochs = 4
        s.batchTokens = 96
        s.microBatchTokens = 40
        s.evalEvery = 5
        s.seed = 11
        return s
    }

    static func flat(_ a: LoRAAdapter) -> [Float] {
        a.namedTensors.flatMap { $0.tensor.data }
    }

    @Test func learnsDeterministically() throws {
        let c = LoRATrainingSupport.configuration()
        let model = try LoRATrainingSupport.model(c, seed: 5)
        let train = Self.examples(40, seed: 1), eval = Self.examples(10, seed: 2)
        func run() throws -> (LoRATrainer, [Double]) {
            let t = try LoRATrainer(model: model, settings: Self.settings(), train: train, eval: eval)
            var losses: [Double] = []
            while let r = try t.takeStep(evaluate: false) { losses.append(r.loss) }
            return (t, losses)
        }
        let (a, lossesA) = try run()
        let before = try LoRATrainer(model: model, settings: Self.settings(), train: train, eval: eval).evaluate() ?? 0
        let after = try #require(a.lastEvalLoss)
        print("tiny model: eval loss \(before) → \(after) in \(a.step) steps")
        #expect(a.finished)
        #expect(a.step == a.totalSteps)
        #expect(after < before * 0.8)
        #expect(lossesA.allSatisfy { $0.isFinite })
        // Bit-identical on a second run with the same inputs and seed.
        let (b, lossesB) = try run()
        #expect(Self.flat(b.adapter) == Self.flat(a.adapter))
        #expect(lossesB == lossesA)
        // Another seed: another adapter.
        var other = Self.settings()
        other.seed = 12
        let c2 = try LoRATrainer(model: model, settings: other, train: train, eval: eval)
        let fresh = try LoRATrainer(model: model, settings: Self.settings(), train: train, eval: eval)
        #expect(Self.flat(c2.adapter) != Self.flat(fresh.adapter))
    }

    @Test func resumedRunEndsBitIdentical() throws {
        let c = LoRATrainingSupport.configuration()
        let model = try LoRATrainingSupport.model(c, seed: 6)
        let train = Self.examples(30, seed: 3), eval = Self.examples(6, seed: 4)
        var settings = Self.settings()
        settings.dropout = 0.1       // the dropout masks must also come back the same
        let whole = try LoRATrainer(model: model, settings: settings, train: train, eval: eval)
        while try whole.takeStep(evaluate: false) != nil {}

        let first = try LoRATrainer(model: model, settings: settings, train: train, eval: eval)
        for _ in 0..<(whole.totalSteps / 2) { _ = try first.takeStep(evaluate: false) }
        let dir = TestSupport.runDirectory.appendingPathComponent("corpus-resume-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try first.writeCheckpoint(to: dir, baseModel: "tiny", metadata: ["corpus.run_id": "1"])
        // An interrupted step changes nothing.
        var asked = 0
        #expect(try first.takeStep(evaluate: false, interrupted: { asked += 1; return asked > 1 }) == nil)

        let second = try LoRATrainer(model: model, settings: settings, train: train, eval: eval)
        try second.resume(from: dir)
        #expect(second.step == whole.totalSteps / 2)
        while try second.takeStep(evaluate: false) != nil {}
        #expect(second.step == whole.step)
        #expect(Self.flat(second.adapter) == Self.flat(whole.adapter))
        #expect(second.optimizer == whole.optimizer)
        #expect(second.lastEvalLoss == whole.lastEvalLoss)

        // Another setting refuses the checkpoint, naming the file.
        var changed = settings
        changed.learningRate = 1e-3
        let wrong = try LoRATrainer(model: model, settings: changed, train: train, eval: eval)
        #expect(throws: TrainerError.self) { try wrong.resume(from: dir) }
    }

    /// Micro-batches normalized by the step's assistant tokens give the big batch's update.
    @Test func microBatchesEqualOneBatch() throws {
        let c = LoRATrainingSupport.configuration()
        let model = try LoRATrainingSupport.model(c, seed: 7)
        let train = Self.examples(24, seed: 5)
        var small = Self.settings(), big = Self.settings()
        small.microBatchTokens = 16       // one example per pass
        big.microBatchTokens = 4096       // the whole step in one pass
        let a = try LoRATrainer(model: model, settings: small, train: train, eval: [])
        let b = try LoRATrainer(model: model, settings: big, train: train, eval: [])
        for _ in 0..<3 {
            let ra = try #require(try a.takeStep(evaluate: false)), rb = try #require(try b.takeStep(evaluate: false))
            #expect(abs(ra.loss - rb.loss) <= 1e-6 * max(1, abs(rb.loss)))
        }
        let x = Self.flat(a.adapter), y = Self.flat(b.adapter)
        let worst = zip(x, y).map { abs($0 - $1) / max(1e-3, abs($1)) }.max() ?? 0
        print("micro-batches vs one batch after 3 steps: worst relative difference \(worst)")
        #expect(worst < 1e-3)
    }
}
