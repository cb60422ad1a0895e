// train-bench: throughput and peak memory of one LoRA training step (forward + backward into
// the LoRA gradients) on a real model, as docs/TRAINING_MATH.md reports them.
//
//   swift build --product train-bench -c release
//   .build/release/train-bench [--model PATH] [--batch 4] [--seq 256] [--rank 16] [--steps 3]
//                              [--threads 2] [--recompute] [--chunk 64] [--dropout 0]
//                              [--targets q,k,v,o,gate,up,down] [--base-type f32|bf16|f16|q8_0|q4_0]
//                              [--compute f32|bf16]
//
// PATH defaults to the test model that scripts/fetch-test-model.sh caches
// (~/.cache/corpus/models/SmolLM2-135M-Instruct.Q4_1.gguf). Random token ids, every position a
// target, LoRA on all seven projections. OpenBLAS picks its kernels from OPENBLAS_CORETYPE when
// the library loads (this machine's environment pins Haswell; SKYLAKEX's AVX-512 kernels measured
// about 2x faster in sgemm here), so the bench prints the value it ran with. Peak RSS is /proc/self/status VmHWM, reset after loading
// (through /proc/self/clear_refs) so the training figure does not include the loader's copies.
import Foundation
import ModelRuntime
import Trainer

struct BenchOptions {
    var model = FileManager.default.homeDirectoryForCurrentUser
        .appendingPathComponent(".cache/corpus/models/SmolLM2-135M-Instruct.Q4_1.gguf").path
    var batch = 4
    var sequence = 256
    var rank = 16
    var steps = 3
    var threads = 2
    var recompute = false
    var chunk = 64
    var dropout: Float = 0
    var targets = LoRATarget.allCases
    /// The in-memory type of the base matrices (nil: as stored in the file).
    var baseType: GGMLType?
    /// The arithmetic of the frozen products.
    var precision = ComputePrecision.f32

    init(arguments: [String]) throws {
        var i = 0
        func value() throws -> String {
            i += 1
            guard i < arguments.count else { throw BenchError("\(arguments[i - 1]) needs a value") }
            return arguments[i]
        }
        func int() throws -> Int {
            let text = try value()
            guard let n = Int(text), n > 0 else { throw BenchError("\(arguments[i - 1]) \(text): give a positive integer") }
            return n
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--model": model = try value()
            case "--batch": batch = try int()
            case "--seq": sequence = try int()
            case "--rank": rank = try int()
            case "--steps": steps = try int()
            case "--threads": threads = try int()
            case "--chunk": chunk = try int()
            case "--recompute": recompute = true
            case "--targets":
                let text = try value()
                targets = try text.split(separator: ",").map { name in
                    guard let t = LoRATarget(name: String(name)) else { throw BenchError("--targets \(text): \(name) is not one of q,k,v,o,gate,up,down") }
                    return t
                }
            case "--base-type":
                let text = try value()
                let types: [String: GGMLType] = ["f32": .f32, "bf16": .bf16, "f16": .f16, "q8_0": .q8_0, "q4_0": .q4_0]
                guard let t = types[text.lowercased()] else { throw BenchError("--base-type \(text): give one of f32, bf16, f16, q8_0, q4_0") }
                baseType = t
            case "--compute":
                let text = try value()
                guard let p = ComputePrecision(rawValue: text.lowercased()) else { throw BenchError("--compute \(text): give f32 or bf16") }
                precision = p
            case "--dropout":
                let text = try value()
                guard let p = Float(text), p >= 0, p < 1 else { throw BenchError("--dropout \(text): give a probability in [0, 1)") }
                dropout = p
            case "-h", "--help":
                print("usage: train-bench [--model PATH] [--batch N] [--seq N] [--rank N] [--steps N] [--threads N] [--recompute] [--chunk N] [--dropout P] [--targets q,k,v,o,gate,up,down] [--base-type f32|bf16|f16|q8_0|q4_0] [--compute f32|bf16]")
                exit(0)
            default: throw BenchError("unknown option \(arguments[i]); see --help")
            }
            i += 1
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// VmHWM (peak resident set) and VmRSS of this process, in bytes.
func memory() -> (peak: Int, current: Int) {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
    func field(_ name: String) -> Int {
        for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
            let digits = line.split(separator: " ").compactMap { Int($0) }
            return (digits.first ?? 0) * 1024
        }
        return 0
    }
    return (field("VmHWM"), field("VmRSS"))
}

/// User + system CPU seconds of this process so far (under a loaded machine, tokens per CPU
/// second says more than wall-clock tokens per second).
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

func gib(_ bytes: Int) -> String { String(format: "%.2f GiB", Double(bytes) / Double(1 << 30)) }

func run() throws {
    let o = try BenchOptions(arguments: Array(CommandLine.arguments.dropFirst()))
    BLAS.setThreads(o.threads)
    let loadStart = Date()
    var model: LlamaModel?
    do {
        let loaded = try ModelLoader.load(path: o.model)
        model = try loaded.model(baseType: o.baseType, precision: o.precision)
    }
    guard let model else { throw BenchError("\(o.model): the model did not load") }
    let loadPeak = memory().peak
    // Reset VmHWM to the current RSS (Linux ≥ 4.0) so the next peak is the training's.
    try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    let c = model.configuration
    print("model \(o.model): \(c.modelType), \(c.numHiddenLayers) layers, hidden \(c.hiddenSize), vocab \(c.vocabSize); weights \(gib(model.weightBytes)) in memory; loaded in \(String(format: "%.1f", Date().timeIntervalSince(loadStart))) s, load peak \(gib(loadPeak)), after load \(gib(memory().current))")

    let lora = LoRAConfiguration(rank: o.rank, alpha: Float(2 * o.rank), dropout: o.dropout, targets: o.targets)
    var adapter = try LoRAAdapter(initializing: lora, for: c, seed: 1)
    var stream = SeedStream(seed: 2)
    for l in adapter.layers.indices {   // non-zero B, as after some training
        for target in lora.targets {
            let count = adapter.layers[l][target]?.b.count ?? 0
            adapter.layers[l][target]?.b.data = (0..<count).map { _ in (stream.nextUnitFloat() - 0.5) * 0.02 }
        }
    }
    let batch = (0..<o.batch).map { _ in
        TrainingSequence(ids: (0..<o.sequence).map { _ in Int32(stream.next() % UInt64(c.vocabSize)) },
                         targetMask: [Bool](repeating: true, count: o.sequence))
    }
    let tokens = o.batch * o.sequence
    let normalizer = o.batch * (o.sequence - 1)
    let trainer = LoRATrainingModel(model: model, options: TrainingOptions(recomputeActivations: o.recompute, lossChunkRows: o.chunk))
    var gradients = LoRAAdapter(zerosLike: adapter)
    print("OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "(unset: the library's choice)")")
    print("batch \(o.batch) × \(o.sequence) tokens, LoRA r=\(o.rank) on \(lora.targets.map(\.moduleName).joined(separator: ",")), \(o.threads) BLAS threads, \(o.recompute ? "recompute" : "saved activations"), loss chunk \(o.chunk) rows")
    var times: [Double] = [], cpu: [Double] = []
    for step in 0...o.steps {      // step 0 warms up
        let start = Date(), cpuStart = cpuSeconds()
        let loss = try trainer.accumulateGradients(batch: batch, adapter: adapter, normalizer: normalizer, dropoutSeed: UInt64(step), into: &gradients)
        let seconds = Date().timeIntervalSince(start)
        let cpuUsed = cpuSeconds() - cpuStart
        if step > 0 { times.append(seconds); cpu.append(cpuUsed) }
        print(String(format: "step %d%@: %.2f s (%.2f CPU s), %.1f tokens/s, loss %.4f, peak RSS %@", step, step == 0 ? " (warm-up)" : "",
                     seconds, cpuUsed, Double(tokens) / seconds, loss.value, gib(memory().peak)))
    }
    let best = times.min() ?? 0, mean = times.reduce(0, +) / Double(max(times.count, 1))
    let cpuMean = cpu.reduce(0, +) / Double(max(cpu.count, 1))
    print(String(format: "forward+backward: %.1f tokens/s (mean of %d steps; best %.1f), %.1f tokens per CPU second, training peak RSS %@",
                 Double(tokens) / mean, times.count, Double(tokens) / best, Double(tokens) / cpuMean, gib(memory().peak)))
}

do {
    try run()
} catch {
    FileHandle.standardError.write(Data("train-bench: \(error)\n".utf8))
    exit(1)
}
