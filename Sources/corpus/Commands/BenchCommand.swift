import ArgumentParser
import Foundation
import ModelRuntime
import Trainer

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Measure the model runtime: prompt processing and generation speed (see BENCHMARKS.md).")

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .long, help: "Prompt tokens for the prompt-processing figure.") var prompt = 512
    @Option(name: .long, help: "Tokens to generate for the generation figure.") var generate = 128
    @Option(name: .long, help: "Repetitions; the median is reported.") var repeats = 3
    @Option(name: .long, help: "Sequences generated together for the batched figure (0: skip).") var batch = 16

    func run() throws {
        try Exit.reportingModel {
            let loaded = try modelOptions.load()
            let V = loaded.model.configuration.vocabSize
            // Deterministic pseudo-random token ids, as llama-bench uses random tokens.
            var rng = SplitMix64(seed: 1)
            let ids = (0..<prompt).map { _ in Int(rng.next() % UInt64(V - 100)) + 100 }
            func median(_ f: () throws -> Double) rethrows -> Double {
                var times: [Double] = []
                for _ in 0..<max(repeats, 1) { times.append(try f()) }
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
                let prompts = (0..<batch).map { b in (0..<16).map { ids[(b * 16 + $0) % ids.count] } }
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
