import ArgumentParser
import Foundation
import ModelRuntime
import Trainer

/// `corpus bench`: the runtime's speed (`bench run`, the default) and training's (`bench train`).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Measure the model runtime (prompt processing and generation) or LoRA training speed (see BENCHMARKS.md).",
        subcommands: [BenchRunCommand.self, BenchTrainCommand.self], defaultSubcommand: BenchRunCommand.self)
}

struct BenchRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Prompt processing and generation speed, single stream and batched (the default of `corpus bench`).")

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .long, help: "Prompt tokens for the prompt-processing figure.") var prompt = 512
    @Option(name: .long, help: "Tokens to generate for the generation figure.") var generate = 128
    @Option(name: .long, help: "Repetitions; the median is reported.") var repeats = 3
    @Option(name: .long, help: "Sequences generated together for the batched figure (0: skip).") var batch = 16

    /// The accepted ranges; the model's own context window is checked once it is loaded.
    static let tokenRange = 1...131_072
    static let repeatsRange = 1...100
    static let batchRange = 0...256
    /// Prompt tokens of each sequence of the batched figure.
    static let batchPromptTokens = 16

    func validate() throws {
        func check(_ name: String, _ value: Int, _ range: ClosedRange<Int>, _ unit: String) throws {
            guard range.contains(value) else {
                throw ValidationError("--\(name) \(value) is out of range: give \(range.lowerBound) to \(range.upperBound) \(unit)")
            }
        }
        try check("prompt", prompt, Self.tokenRange, "tokens")
        try check("generate", generate, Self.tokenRange, "tokens")
        try check("repeats", repeats, Self.repeatsRange, "repetitions")
        try check("batch", batch, Self.batchRange, "sequences (0 skips the batched figure)")
    }

    /// `--prompt` and `--generate` against the model's context window (known only once loaded).
    func validate(contextWindow window: Int) throws {
        if prompt > window {
            throw ValidationError("--prompt \(prompt) is longer than the model's context window; give 1 to \(window) tokens")
        }
        let room = window - (batch > 0 ? Self.batchPromptTokens : 0) - 1
        if generate > room {
            throw ValidationError("--generate \(generate) does not fit the model's context window of \(window) positions; give 1 to \(max(room, 1)) tokens")
        }
    }

    func run() throws {
        try Exit.reportingModel {
            let loaded = try modelOptions.load()
            try validate(contextWindow: loaded.model.configuration.maxPositionEmbeddings)
            let V = loaded.model.configuration.vocabSize
            // Deterministic pseudo-random token ids, as llama-bench uses random tokens (above the
            // first 100, which are mostly special tokens, when the vocabulary is large enough).
            var rng = SplitMix64(seed: 1)
            let first = V > 100 ? 100 : 0
            let ids = (0..<prompt).map { _ in Int(rng.next() % UInt64(V - first)) + first }
            func median(_ f: () throws -> Double) rethrows -> Double {
                var times: [Double] = []
                for _ in 0..<repeats { times.append(try f()) }
                return times.sorted()[times.count / 2]
            }
            let pp = try median {
                let cache = KVCache(configuration: loaded.model.configuration, capacity: prompt)
                let start = Date()
                _ = try loaded.model.forward(ids, cache: cache, allLogits: false)
                return Date().timeIntervalSince(start)
            }
            let tg = try median {
                let cache = KVCache(configuration: loaded.model.configuration, capacity: generate + 1)
                var token = ids[0]
                let start = Date()
                for _ in 0..<generate {
                    let logits = try loaded.model.forward([token], cache: cache, allLogits: false)
                    token = logits.indices.max { logits[$0] < logits[$1] } ?? 0
                }
                return Date().timeIntervalSince(start)
            }
            print(String(format: "pp%d: %.1f tokens/s (%.3f s)", prompt, Double(prompt) / pp, pp))
            print(String(format: "tg%d: %.1f tokens/s (%.3f s)", generate, Double(generate) / tg, tg))
            guard batch > 0 else { return }
            // Batched: `batch` different 16-token prompts run first (not timed), then `generate`
            // greedy steps in which every sequence adds one token: throughput in generated tokens/s.
            let batched = try median {
                let prompts = (0..<batch).map { b in (0..<Self.batchPromptTokens).map { ids[(b * Self.batchPromptTokens + $0) % ids.count] } }
                let caches = prompts.map { KVCache(configuration: loaded.model.configuration, capacity: $0.count + generate + 1) }
                var logits = try loaded.model.forward(batch: zip(prompts, caches).map { ($0, $1) }, allLogits: false)
                let start = Date()
                for _ in 0..<generate {
                    let next = logits.map { row in row.indices.max { row[$0] < row[$1] } ?? 0 }
                    logits = try loaded.model.forward(batch: zip(next, caches).map { ([$0], $1) }, allLogits: false)
                }
                return Date().timeIntervalSince(start)
            }
            print(String(format: "tg%d x %d sequences: %.1f tokens/s (%.3f s)", generate, batch, Double(generate * batch) / batched, batched))
        }
    }
}
