import ArgumentParser
import Foundation
import ModelRuntime
import Trainer

/// `corpus bench train`: LoRA training steps on random token ids (every position a target):
/// forward, backward into the LoRA gradients and an AdamW step, as a training run does them, with
/// tokens per second and the peak resident memory. The figure BENCHMARKS.md compares with
/// PyTorch + PEFT (../shared/bench/torch_lora_speed.py).
struct BenchTrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "LoRA training speed and peak memory on random tokens: forward, backward and an AdamW step per step.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .long, help: "Sequences per step.") var batch = 4
    @Option(name: .long, help: "Tokens per sequence.") var seq = 256
    @Option(name: .long, help: "Timed steps (one more warms up first).") var steps = 3
    @Option(name: .long, help: "LoRA rank (alpha = 2 × rank).") var rank = 16
    @Option(name: .long, help: "Projections to adapt, comma-separated (q,k,v,o,gate,up,down).") var targets = "q,k,v,o,gate,up,down"
    @Flag(name: .long, help: "Recompute each layer's activations in the backward pass instead of keeping them (less memory).")
    var recompute = false
    @OptionGroup var output: JSONOption

    static let sizeRange = 1...1_000_000
    static let stepsRange = 1...10_000

    func validate() throws {
        for (name, value, range) in [("batch", batch, Self.sizeRange), ("seq", seq, Self.sizeRange), ("steps", steps, Self.stepsRange),
                                     ("rank", rank, 1...4096)] where !range.contains(value) {
            throw ValidationError("--\(name) \(value) is out of range: give \(range.lowerBound) to \(range.upperBound)")
        }
        if seq < 2 { throw ValidationError("--seq \(seq): a sequence needs at least 2 tokens to have a target") }
        _ = try loraTargets()
    }

    /// The `--targets` list, in the canonical order.
    func loraTargets() throws -> [LoRATarget] {
        var chosen = Set<LoRATarget>()
        for name in targets.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard let target = LoRATarget(name: name) else {
                throw ValidationError("--targets \(targets): \(name) is not one of q, k, v, o, gate, up, down")
            }
            chosen.insert(target)
        }
        guard !chosen.isEmpty else { throw ValidationError("--targets is empty: name at least one of q, k, v, o, gate, up, down") }
        return LoRATarget.allCases.filter(chosen.contains)
    }

    func run() throws {
        try Exit.reportingModel {
            let path = try modelOptions.resolvedModelPath()
            let precision = try modelOptions.precision()
            let loadStart = Date()
            // Weights only: the benchmark needs no tokenizer (Qwen's tokenizer.json has fewer
            // tokens than its vocab_size, which does not matter here).
            let loaded = try ModelLoader.load(path: path, baseType: try modelOptions.baseGGMLType(), precision: precision)
            let model = try LlamaModel(configuration: loaded.configuration, weights: loaded.weights, precision: precision)
            ModelOptions.noteWhenBF16DoesNothing(model)
            let loadSeconds = Date().timeIntervalSince(loadStart)
            let loadPeak = ProcessMemory.peak
            ProcessMemory.resetPeak()
            let figures = try measure(model)
            let peak = ProcessMemory.peak
            let baseTypes = Set(model.layers.flatMap { [$0.qkv.type, $0.output.type, $0.gateUp.type, $0.down.type] }).map(\.name).sorted()
            if output.json {
                Output.printJSON(["model": path, "compute": precision.rawValue, "base_type": baseTypes.joined(separator: ","),
                                  "batch": batch, "seq": seq, "rank": rank, "targets": try loraTargets().map(\.moduleName), "steps": steps, "recompute": recompute,
                                  "tokens_per_second": figures.tokensPerSecond, "best_tokens_per_second": figures.best,
                                  "step_seconds": figures.seconds, "peak_rss_bytes": peak, "load_peak_rss_bytes": loadPeak,
                                  "load_seconds": loadSeconds, "weight_bytes": model.weightBytes, "loss": figures.loss,
                                  "openblas_coretype": ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? NSNull()])
            } else {
                print(String(format: "%.1f tokens/s (mean of %d steps, best %.1f), peak RSS %.2f GiB while training (%.2f GiB loading), weights %.2f GiB (%@), compute %@",
                             figures.tokensPerSecond, steps, figures.best, Double(peak) / 1_073_741_824, Double(loadPeak) / 1_073_741_824,
                             Double(model.weightBytes) / 1_073_741_824, baseTypes.joined(separator: ","), precision.rawValue))
            }
        }
    }

    /// Times `steps` steps after one warm-up step; progress on stderr.
    private func measure(_ model: LlamaModel) throws -> (tokensPerSecond: Double, best: Double, seconds: [Double], loss: Double) {
        let c = model.configuration
        let lora = LoRAConfiguration(rank: rank, alpha: Float(2 * rank), targets: try loraTargets())
        var adapter = try LoRAAdapter(initializing: lora, for: c, seed: 1)
        var rng = SplitMix64(seed: 2)
        let sequences = (0..<batch).map { _ in
            TrainingSequence(ids: (0..<seq).map { _ in Int32(rng.next(below: UInt64(c.vocabSize))) }, targetMask: [Bool](repeating: true, count: seq))
        }
        let trainer = LoRATrainingModel(model: model, options: TrainingOptions(recomputeActivations: recompute))
        var optimizer = AdamW(for: adapter)
        var seconds: [Double] = []
        var loss = 0.0
        for step in 0...steps {
            let start = Date()
            var gradients = LoRAAdapter(zerosLike: adapter)
            let result = try trainer.accumulateGradients(batch: sequences, adapter: adapter, normalizer: batch * (seq - 1),
                                                         dropoutSeed: UInt64(step), into: &gradients)
            try optimizer.update(&adapter, gradients: gradients, learningRate: 1e-4)
            let elapsed = Date().timeIntervalSince(start)
            loss = result.value
            if step > 0 { seconds.append(elapsed) }
            Output.progress(String(format: "step %d%@: %.2f s, %.1f tokens/s, loss %.4f\n", step, step == 0 ? " (warm-up)" : "",
                                   elapsed, Double(batch * seq) / elapsed, loss))
        }
        let mean = seconds.reduce(0, +) / Double(seconds.count)
        return (Double(batch * seq) / mean, Double(batch * seq) / (seconds.min() ?? mean), seconds, loss)
    }
}

/// The process's peak resident memory (Linux `VmHWM`), and resetting it to the current RSS so a
/// later peak excludes loading.
enum ProcessMemory {
    static var peak: Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return (line.split(separator: " ").compactMap { Int($0) }.first ?? 0) * 1024
        }
        return 0
    }

    static func resetPeak() {
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    }
}
