import Foundation

/// How to pick tokens.
public struct GenerationParameters: Sendable {
    /// Tokens to generate at most.
    public var maxTokens = 256
    /// 0 picks the most likely token (greedy); otherwise logits are divided by it before sampling.
    public var temperature: Float = 0
    /// Sample only among the k most likely tokens (0: all).
    public var topK = 0
    /// Sample only among the most likely tokens whose probabilities add up to p (1: all).
    public var topP: Float = 1
    /// Seed of the sampler, so a sampled answer can be reproduced.
    public var seed: UInt64 = 0
    /// Generation stops after any of these (EOS, end of turn); the stop token is included.
    public var stopTokenIDs: Set<Int> = []

    public init() {}
}

/// Decoding with a KV cache: the prompt runs once, then one token at a time.
public enum Generator {
    /// The tokens generated after `prompt`, by the model with `adapter` (nil: the base model).
    /// - Throws: `ModelError` for an invalid id.
    public static func generate(model: LlamaModel, adapter: LoRAInference? = nil, prompt: [Int], parameters: GenerationParameters) throws -> [Int] {
        try generate(model: model, adapter: adapter, prompts: [prompt], parameters: parameters).first ?? []
    }

    /// The tokens generated after each prompt, all prompts decoded together: the prompts run as
    /// one batch, then every step feeds each unfinished sequence's last token as one row of the
    /// same matrix products. Each sequence samples with its own generator seeded with
    /// `parameters.seed`, so its answer does not depend on what else is in the batch.
    /// `onToken(sequence, token)` sees every token as it is chosen. With `adapter`, every
    /// sequence runs with that LoRA adapter (unmerged: `LoRAInference`). `seeds`, when given,
    /// seed each sequence's sampler instead (one per prompt: GRPO draws several different
    /// answers to one prompt in one batch).
    /// - Throws: `ModelError` for an invalid id.
    public static func generate(model: LlamaModel, adapter: LoRAInference? = nil, prompts: [[Int]], parameters: GenerationParameters,
                                seeds: [UInt64]? = nil, onToken: ((Int, Int) -> Void)? = nil) throws -> [[Int]] {
        var outputs = [[Int]](repeating: [], count: prompts.count)
        let active = prompts.indices.filter { !prompts[$0].isEmpty }
        guard !active.isEmpty, parameters.maxTokens > 0 else { return outputs }
        let caches = prompts.map { KVCache(configuration: model.configuration, capacity: $0.count + parameters.maxTokens) }
        var rngs = prompts.indices.map { s in
            SplitMix64(seed: seeds.flatMap { $0.indices.contains(s) ? $0[s] : nil } ?? parameters.seed)
        }
        var logits = try model.forward(batch: active.map { (prompts[$0], caches[$0], adapter) }, allLogits: false)
        var running = active
        while !running.isEmpty {
            var next: [Int] = []
            for (j, s) in running.enumerated() {
                let token = pick(logits[j], parameters, &rngs[s])
                outputs[s].append(token)
                onToken?(s, token)
                if !parameters.stopTokenIDs.contains(token) && outputs[s].count < parameters.maxTokens { next.append(s) }
            }
            running = next
            guard !running.isEmpty else { break }
            logits = try model.forward(batch: running.map { ([outputs[$0][outputs[$0].count - 1]], caches[$0], adapter) }, allLogits: false)
        }
        return outputs
    }

    /// The next token from one row of logits: the most likely (lowest id on ties) when
    /// `p.temperature` is 0, else a draw from `rng` after temperature, top-k and top-p. What
    /// `generate` does at every step, for a caller that runs its own decoding loop (`corpus serve`).
    public static func pick(_ logits: [Float], _ p: GenerationParameters, _ rng: inout SplitMix64) -> Int {
        guard p.temperature > 0 else { return logits.indices.max { logits[$0] < logits[$1] } ?? 0 }
        var order = logits.indices.sorted { logits[$0] > logits[$1] }
        if p.topK > 0 { order = Array(order.prefix(p.topK)) }
        let top = logits[order[0]]
        var weights = order.map { exp((logits[$0] - top) / p.temperature) }
        let total = weights.reduce(0, +)
        if p.topP < 1 {
            var cumulative: Float = 0
            var keep = 0
            for w in weights { cumulative += w / total; keep += 1; if cumulative >= p.topP { break } }
            order = Array(order.prefix(keep))
            weights = Array(weights.prefix(keep))
        }
        var r = Float(rng.nextDouble()) * weights.reduce(0, +)
        for (i, w) in weights.enumerated() {
            r -= w
            if r <= 0 { return order[i] }
        }
        return order[order.count - 1]
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014, https://doi.org/10.1145/2714064.2660195; the constants
/// of Vigna's splitmix64.c): the project's one small, seedable generator, whose output is fixed by
/// this file, so sampling, data order, initialization and the bootstrap give the same numbers on
/// every machine. `SeedStream` derives named sub-streams from it.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// The SplitMix64 finalizer (a bijection with good avalanche).
    @inline(__always)
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inline(__always)
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    /// A uniform integer in [0, bound) by Lemire's multiply-shift with rejection
    /// (https://arxiv.org/abs/1805.10941); spelled out rather than the standard library's
    /// `next(upperBound:)` so its output is fixed by this file. `bound` 0 returns 0.
    public mutating func next(below bound: UInt64) -> UInt64 {
        guard bound > 0 else { return 0 }
        var product = next().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold { product = next().multipliedFullWidth(by: bound) }
        }
        return product.high
    }

    /// Fisher-Yates with `next() % (i + 1)` (not the standard library's shuffle, whose algorithm
    /// may change between releases).
    public mutating func shuffle<T>(_ a: inout [T]) {
        guard a.count > 1 else { return }
        for i in stride(from: a.count - 1, to: 0, by: -1) {
            let j = Int(next() % UInt64(i + 1))
            a.swapAt(i, j)
        }
    }

    /// Uniform in [0, 1).
    public mutating func nextDouble() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
