import Foundation
import Testing
@testable import ModelRuntime
@testable import Trainer

/// AdamW, clipping and schedules against PyTorch and transformers (Fixtures/optim-reference.json,
/// made by scripts/make-optim-fixtures.py), and the optimizer checkpoint.
@Suite("Optimizer")
struct OptimizerTests {
    static var fixture: [String: Any] {
        get throws { try TrainerFixtures.json("optim-reference.json") }
    }

    /// The fixture's adapter: 1 layer, q_proj and down_proj, r = 2, hidden 4, intermediate 6.
    static func adapter(_ values: [String: [Float]]) throws -> LoRAAdapter {
        let configuration = LoRAConfiguration(rank: 2, alpha: 4, targets: [.q, .down])
        var layer: [LoRATarget: LoRAPair] = [:]
        for (target, inFeatures) in [(LoRATarget.q, 4), (.down, 6)] {
            func tensor(_ matrix: String, _ shape: [Int]) throws -> Tensor {
                try Tensor(shape: shape, data: try #require(values[LoRAAdapter.peftKey(layer: 0, target: target, matrix: matrix)]))
            }
            layer[target] = LoRAPair(a: try tensor("A", [2, inFeatures]), b: try tensor("B", [4, 2]))
        }
        return LoRAAdapter(configuration: configuration, layers: [layer])
    }

    /// A scalar the fixture writes as text (Python's repr), read exactly.
    static func number(_ any: Any?) throws -> Double {
        let text = try #require(any as? String)
        return try #require(Double(text))
    }

    static func floats(_ any: Any?) throws -> [String: [Float]] {
        let dict = try #require(any as? [String: [Double]])
        return dict.mapValues { $0.map(Float.init) }
    }

    /// Largest |ours − torch| / max(1, |torch|) over all tensors.
    static func difference(_ ours: LoRAAdapter, _ torch: [String: [Float]]) -> Float {
        var worst: Float = 0
        for (name, tensor) in ours.namedTensors {
            guard let reference = torch[name], reference.count == tensor.count else { return .infinity }
            for (a, b) in zip(tensor.data, reference) { worst = max(worst, abs(a - b) / max(1, abs(b))) }
        }
        return worst
    }

    @Test(arguments: [0, 1])
    func adamWMatchesTorch(_ run: Int) throws {
        let runs = try #require(try Self.fixture["adamw"] as? [[String: Any]])
        let r = runs[run]
        let h = try #require(r["hyperparameters"] as? [String: String])
        var params = try Self.adapter(try Self.floats(r["initial"]))
        var optimizer = AdamW(AdamW.Hyperparameters(beta1: try Self.number(h["beta1"]), beta2: try Self.number(h["beta2"]),
                                                    epsilon: try Self.number(h["epsilon"]), weightDecay: try Self.number(h["weight_decay"])),
                              for: params)
        var worst: Float = 0, exact = true
        for step in try #require(r["steps"] as? [[String: Any]]) {
            let gradients = try Self.adapter(try Self.floats(step["gradients"]))
            try optimizer.update(&params, gradients: gradients, learningRate: try Self.number(step["lr"]))
            let expected = try Self.floats(step["parameters"])
            worst = max(worst, Self.difference(params, expected))
            let same = params == (try Self.adapter(expected))
            exact = exact && same
        }
        #expect(optimizer.step == r["final_step"] as? Int)
        #expect(worst <= 1e-6, "parameters: max relative difference to torch.optim.AdamW \(worst)")
        #expect(Self.difference(optimizer.firstMoment, try Self.floats(r["exp_avg"])) <= 1e-6)
        #expect(Self.difference(optimizer.secondMoment, try Self.floats(r["exp_avg_sq"])) <= 1e-6)
        print("AdamW run \(run): max relative difference \(worst), bit-identical to torch: \(exact)")
    }

    @Test func adamWRejectsOtherShapes() throws {
        let runs = try #require(try Self.fixture["adamw"] as? [[String: Any]])
        var params = try Self.adapter(try Self.floats(runs[0]["initial"]))
        var optimizer = AdamW(for: params)
        var other = params
        other.layers[0][.q] = nil
        #expect(throws: TrainerError.self) { try optimizer.update(&params, gradients: other, learningRate: 1e-3) }
        #expect(optimizer.step == 0)
    }

    @Test func schedulesMatchTransformers() throws {
        let schedules = try #require(try Self.fixture["schedules"] as? [[String: Any]])
        for s in schedules {
            let name = try #require(s["decay"] as? String)
            let decay = try #require(LearningRateSchedule.Decay(rawValue: name))
            let schedule = LearningRateSchedule(peak: try Self.number(s["peak"]), warmupSteps: try #require(s["warmup"] as? Int),
                                                totalSteps: try #require(s["total"] as? Int), decay: decay)
            let rates = try #require(s["rates"] as? [String]).compactMap(Double.init)
            print("schedule \(decay) warmup \(schedule.warmupSteps) total \(schedule.totalSteps): identical to transformers: \(rates.enumerated().allSatisfy { schedule.learningRate(at: $0.offset) == $0.element })")
            for (step, rate) in rates.enumerated() {
                let ours = schedule.learningRate(at: step)
                #expect(ours == rate, "\(decay) step \(step): \(ours) vs \(rate)")
            }
        }
    }

    @Test(arguments: [0, 1])
    func clippingMatchesTorch(_ index: Int) throws {
        let cases = try #require(try Self.fixture["clipping"] as? [[String: Any]])
        let c = cases[index]
        var gradients = try Self.adapter(try Self.floats(c["gradients"]))
        let before = gradients
        let norm = GradientClipping.clip(&gradients, maxNorm: Float(try Self.number(c["max_norm"])))
        let expected = Float(try Self.number(c["norm"]))
        #expect(abs(norm - expected) <= 1e-6 * expected, "norm \(norm) vs torch \(expected)")
        let clipped = Self.difference(gradients, try Self.floats(c["clipped"]))
        #expect(clipped <= 1e-6)
        print("clipping \(index): norm \(norm) vs torch \(expected), max relative gradient difference \(clipped)")
        if Double(norm) < (try Self.number(c["max_norm"])) { #expect(gradients == before) }
    }

    /// Saving, loading and saving again gives the same bytes and the same state; the caller's
    /// metadata comes back; a checkpoint of another adapter is refused.
    @Test func checkpointRoundTrips() throws {
        let runs = try #require(try Self.fixture["adamw"] as? [[String: Any]])
        var params = try Self.adapter(try Self.floats(runs[1]["initial"]))
        var optimizer = AdamW(AdamW.Hyperparameters(beta1: 0.8, beta2: 0.95, epsilon: 1e-6, weightDecay: 0.1), for: params)
        for step in try #require(runs[1]["steps"] as? [[String: Any]]).prefix(3) {
            try optimizer.update(&params, gradients: try Self.adapter(try Self.floats(step["gradients"])), learningRate: 1e-2)
        }
        let dir = PEFTFixtures.temporary("adamw")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = dir.appendingPathComponent("optimizer.safetensors"), second = dir.appendingPathComponent("again.safetensors")
        try optimizer.save(to: first, metadata: ["data.position": "17", "run": "run-3"])
        let (loaded, metadata) = try AdamW.load(from: first, for: params)
        #expect(loaded == optimizer)
        #expect(loaded.step == 3)
        #expect(metadata == ["data.position": "17", "run": "run-3"])
        try loaded.save(to: second, metadata: metadata)
        #expect(try Data(contentsOf: first) == Data(contentsOf: second))

        // Resuming gives the same next step as continuing.
        var continued = optimizer, resumed = loaded, p1 = params, p2 = params
        let g = try Self.adapter(try Self.floats(try #require(runs[1]["steps"] as? [[String: Any]])[3]["gradients"]))
        try continued.update(&p1, gradients: g, learningRate: 5e-3)
        try resumed.update(&p2, gradients: g, learningRate: 5e-3)
        #expect(p1 == p2 && continued == resumed)

        #expect(throws: TrainerError.self) { try optimizer.save(to: first, metadata: ["adamw.step": "9"]) }
        var other = params
        other.layers[0][.down] = nil
        other.configuration.targets = [.q]
        #expect(throws: TrainerError.self) { try AdamW.load(from: first, for: other) }
    }
}
