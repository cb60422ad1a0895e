import Foundation
import Testing
@testable import ModelRuntime
@testable import Trainer

/// Sequences of different lengths run as one batch give what they give alone; batched generation
/// equals one prompt at a time; Llama 3 RoPE scaling follows Hugging Face's formula.
@Suite("Batches, batched generation and RoPE scaling")
struct BatchTests {
    static func tinyModel(scaling: RopeScaling? = nil) throws -> LlamaModel {
        var c = LoaderTests.config
        c.ropeScaling = scaling
        return try LlamaModel(configuration: c, tensors: LoaderTests.randomTensors())
    }

    @Test func batchOfDifferentLengthsEqualsOneByOne() throws {
        let model = try Self.tinyModel()
        let c = model.configuration
        let sequences = [[5, 17, 42, 7, 99], [3], [250, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], []]
        let caches = sequences.map { KVCache(configuration: c, capacity: $0.count + 4) }
        let batched = try model.forward(batch: zip(sequences, caches).map { ($0, $1) }, allLogits: true)
        #expect(batched.map(\.count) == sequences.map { $0.count * c.vocabSize })
        for (s, ids) in sequences.enumerated() where !ids.isEmpty {
            let alone = try model.logits(ids)
            let worst = zip(alone, batched[s]).map { abs($0 - $1) }.max() ?? .infinity
            #expect(worst < 1e-5, "sequence \(s)")
        }
        // A second step on the caches: one token each, against recomputation.
        let step = try model.forward(batch: [([8], caches[0]), ([9], caches[2])], allLogits: false)
        for (s, token, out) in [(0, 8, step[0]), (2, 9, step[1])] {
            let full = try model.logits(sequences[s] + [token])
            let last = Array(full[(sequences[s].count * c.vocabSize)...])
            #expect((zip(last, out).map { abs($0 - $1) }.max() ?? .infinity) < 1e-5)
        }
        #expect(throws: ModelError.self) { try model.forward(batch: [([1], caches[1]), ([2], caches[1])], allLogits: false) }
    }

    @Test func batchedGenerationEqualsSingle() throws {
        let model = try Self.tinyModel()
        var parameters = GenerationParameters()
        parameters.maxTokens = 12
        parameters.stopTokenIDs = [2]
        let prompts = [[5, 17, 42], [99], [7, 7, 7, 7, 7, 7], []]
        for temperature: Float in [0, 0.8] {
            parameters.temperature = temperature
            parameters.topP = temperature > 0 ? 0.9 : 1
            parameters.seed = 11
            let together = try Generator.generate(model: model, prompts: prompts, parameters: parameters)
            let alone = try prompts.map { try Generator.generate(model: model, prompt: $0, parameters: parameters) }
            #expect(together == alone)
            #expect(together[3].isEmpty)
            #expect(together[0].count == 12 || together[0].last == 2)
        }
    }

    /// Llama 3.1's parameters (θ 500000, head 128, factor 8, low 1, high 4, original 8192); the
    /// expected values come from Hugging Face's `_compute_llama3_parameters` formula evaluated in
    /// Python: short wavelengths kept, long ones divided by 8, the band between interpolated.
    @Test func llama3RopeScaling() throws {
        var c = LoaderTests.config
        c.headDim = 128
        c.ropeTheta = 500_000
        c.ropeScaling = RopeScaling(ropeType: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192)
        let inv = LlamaModel.inverseFrequencies(c, factors: nil)
        let expected: [Int: Double] = [0: 1.0, 20: 0.016560440080994446, 28: 0.0032114459947525913, 29: 0.002166570763503359,
                                       32: 0.0005248461609929547, 35: 9.556212353964683e-05, 50: 4.411534674558404e-06,
                                       63: 3.068925988914511e-07]
        for (i, value) in expected {
            #expect(abs(Double(inv[i]) - value) <= value * 1e-5, "frequency \(i): \(inv[i]) vs \(value)")
        }
        // GGUF's stored divisors give the same frequencies.
        var plain = c
        plain.ropeScaling = nil
        let base = LlamaModel.inverseFrequencies(plain, factors: nil)
        let divisors = zip(base, inv).map { $0 / $1 }
        let fromFactors = LlamaModel.inverseFrequencies(plain, factors: divisors)
        #expect((zip(fromFactors, inv).map { abs($0 - $1) / $1 }.max() ?? 1) < 1e-6)
        // Other scalings are refused with their name.
        var yarn = LoaderTests.config
        yarn.ropeScaling = RopeScaling(ropeType: "yarn", factor: 4)
        #expect(throws: ModelError.unsupported("rope_scaling yarn (factor 4.0) is not supported; plain RoPE and llama3 scaling are")) {
            try LlamaModel(configuration: yarn, tensors: LoaderTests.randomTensors())
        }
    }
}

/// The decoding kernels against BLAS and plain Double arithmetic.
@Suite("Decoding kernels")
struct KernelTests {
    /// Shapes that exercise every remainder: rows not a multiple of 4, K not a multiple of 16,
    /// N below and above the threading cut.
    @Test func smallBatchMatmulEqualsSgemm() throws {
        var rng = SplitMix64(seed: 3)
        for (m, n, k) in [(1, 7, 5), (2, 300, 64), (3, 259, 37), (4, 1024, 576), (5, 4, 16), (16, 1030, 576), (7, 513, 33), (16, 3, 1536)] {
            let x = (0..<(m * k)).map { _ in Float(rng.nextDouble() * 2 - 1) }
            let w = (0..<(n * k)).map { _ in Float(rng.nextDouble() * 2 - 1) }
            var expected = [Float](repeating: 0, count: m * n)
            var got = [Float](repeating: .nan, count: m * n)
            x.withUnsafeBufferPointer { a in w.withUnsafeBufferPointer { b in
                expected.withUnsafeMutableBufferPointer { e in got.withUnsafeMutableBufferPointer { g in
                    guard let a = a.baseAddress, let b = b.baseAddress, let e = e.baseAddress, let g = g.baseAddress else { return }
                    BLAS.matmulTransposedB(a, lda: k, b, ldb: k, e, ldc: n, m: m, n: n, k: k)
                    BLAS.smallBatchMatmul(a, rows: m, b, g, n: n, k: k)
                } }
            } }
            let worst = zip(expected, got).map { abs($0 - $1) }.max() ?? .infinity
            #expect(worst < 1e-4 * Float(k).squareRoot(), "m \(m) n \(n) k \(k): \(worst)")
        }
    }

    @Test func smallAttentionEqualsBLASAttention() throws {
        var rng = SplitMix64(seed: 3)
        for (NH, NKV, HD, start, T) in [(4, 2, 16, 0, 1), (9, 3, 64, 37, 1), (4, 4, 40, 5, 3), (6, 2, 24, 100, 4)] {
            let QKV = (NH + 2 * NKV) * HD, KV = NKV * HD, S = start + T
            let qkv = (0..<(T * QKV)).map { _ in Float(rng.nextDouble() * 2 - 1) }
            let keys = (0..<(S * KV)).map { _ in Float(rng.nextDouble() * 2 - 1) }
            let values = (0..<(S * KV)).map { _ in Float(rng.nextDouble() * 2 - 1) }
            var small = [Float](repeating: .nan, count: T * NH * HD)
            LlamaModel.smallCausalAttention(qkv, firstRow: 0, keys: keys, values: values, &small, T: T, start: start, NH: NH, NKV: NKV, HD: HD)
            // Reference: plain Double arithmetic.
            for t in 0..<T {
                for h in 0..<NH {
                    let kv = (h / (NH / NKV)) * HD
                    let visible = start + t + 1
                    let scores = (0..<visible).map { u in
                        (0..<HD).reduce(0.0) { $0 + Double(qkv[t * QKV + h * HD + $1]) * Double(keys[u * KV + kv + $1]) } / Double(HD).squareRoot()
                    }
                    let top = scores.max() ?? 0
                    let weights = scores.map { Foundation.exp($0 - top) }
                    let total = weights.reduce(0, +)
                    for i in 0..<HD {
                        let expected = (0..<visible).reduce(0.0) { $0 + weights[$1] / total * Double(values[$1 * KV + kv + i]) }
                        #expect(abs(Double(small[t * NH * HD + h * HD + i]) - expected) < 1e-5, "NH \(NH) HD \(HD) start \(start) t \(t) h \(h) i \(i)")
                    }
                }
            }
        }
    }
}
