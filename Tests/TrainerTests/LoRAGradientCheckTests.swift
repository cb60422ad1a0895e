import Foundation
import Testing
@testable import ModelRuntime
@testable import Trainer

/// Every backward function against central finite differences, in Double (the kernels are
/// generic over `TrainingScalar`), on tiny random inputs: f(x) = Σ g ⊙ forward(x) for a random
/// cotangent g, so ∂f/∂x is what the backward computes from dy = g.
@Suite("LoRA training: gradients by finite differences (fp64)")
struct LoRAGradientCheckTests {
    typealias Buffer = ScalarBuffer<Double>
    static let step = 1e-6
    /// Measured (see docs/TRAINING_MATH.md): every check lands between 1e-11 and 1e-8.
    static let tolerance = 1e-7

    static func random(_ count: Int, seed: UInt64, scale: Double = 1, offset: Double = 0) -> Buffer {
        var s = SeedStream.derive(seed, 7)
        return Buffer((0..<count).map { _ in offset + scale * (2 * Double(s.nextUnitFloat()) - 1) })
    }

    /// Central differences of f with respect to every element of x.
    static func numeric(_ x: Buffer, _ f: () -> Double) -> [Double] {
        numeric(ScalarSlice(base: x.base, count: x.count), f)
    }

    static func numeric(_ x: ScalarSlice<Double>, _ f: () -> Double) -> [Double] {
        (0..<x.count).map { i in
            let old = x.base[i]
            x.base[i] = old + step
            let plus = f()
            x.base[i] = old - step
            let minus = f()
            x.base[i] = old
            return (plus - minus) / (2 * step)
        }
    }

    static func dot(_ a: Buffer, _ b: UnsafePointer<Double>) -> Double {
        (0..<a.count).reduce(0) { $0 + a.base[$1] * b[$1] }
    }

    static func check(_ name: String, analytic: [Double], numeric: [Double]) {
        let error = LoRATrainingSupport.relativeError(analytic, numeric)
        print("gradient check \(name): max relative error \(error)")
        #expect(error < tolerance, "\(name): \(error)")
        #expect(numeric.contains { $0 != 0 }, "\(name): the numeric gradient is all zeros; the check would prove nothing")
    }

    @Test func rmsNorm() {
        let T = 3, C = 8
        let x = Self.random(T * C, seed: 1), w = Self.random(C, seed: 2, scale: 0.3, offset: 1), g = Self.random(T * C, seed: 3)
        let y = Buffer(count: T * C), rstd = Buffer(count: T), dx = Buffer(count: T * C)
        let f = { () -> Double in
            TrainingKernels.rmsNormForward(x.base, w.base, y.base, rstd: rstd.base, T: T, C: C, eps: 1e-5)
            return Self.dot(g, y.base)
        }
        _ = f()
        TrainingKernels.rmsNormBackward(g.base, x.base, w.base, rstd: rstd.base, dx.base, T: T, C: C)
        Self.check("RMSNorm dx", analytic: dx.array, numeric: Self.numeric(x, f))
    }

    @Test func rope() {
        let T = 5, heads = 3, HD = 4, stride = 14
        let x = Self.random(T * stride, seed: 4), g = Self.random(T * stride, seed: 5)
        let angles = Self.random(T * HD / 2, seed: 6, scale: 3)
        let cos = Buffer(angles.array.map { Foundation.cos($0) }), sin = Buffer(angles.array.map { Foundation.sin($0) })
        let y = Buffer(count: T * stride)
        let f = { () -> Double in
            y.base.update(from: x.base, count: T * stride)
            TrainingKernels.rope(y.base, T: T, heads: heads, stride: stride, HD: HD, cos: cos.base, sin: sin.base, inverse: false)
            return Self.dot(g, y.base)
        }
        let dx = Buffer(g.array)
        TrainingKernels.rope(dx.base, T: T, heads: heads, stride: stride, HD: HD, cos: cos.base, sin: sin.base, inverse: true)
        Self.check("RoPE dx", analytic: dx.array, numeric: Self.numeric(x, f))
    }

    /// Blocks of 2 and 4 positions exercise the skipped upper triangle (including a short last
    /// block); 64 runs the 6 positions as one block.
    @Test(arguments: [2, 4, 64]) func attention(block: Int) {
        let T = 6, NH = 4, NKV = 2, HD = 4, QKV = (NH + 2 * NKV) * HD
        let qkv = Self.random(T * QKV, seed: 7, scale: 2), g = Self.random(T * NH * HD, seed: 8)
        let out = Buffer(count: T * NH * HD), dqkv = Buffer(count: T * QKV)
        let c = LlamaConfiguration(modelType: "llama", hiddenSize: NH * HD, intermediateSize: 8, numHiddenLayers: 1, numAttentionHeads: NH,
                                   numKeyValueHeads: NKV, vocabSize: 4, rmsNormEps: 1e-5, ropeTheta: 10000, maxPositionEmbeddings: 16,
                                   tieWordEmbeddings: true)
        let scratch = TrainingKernels.AttentionScratch<Double>(capacity: T, c, backward: true)
        let f = { () -> Double in
            TrainingKernels.attentionForward(qkv.base, out.base, scratch: scratch, T: T, NH: NH, NKV: NKV, HD: HD, block: block)
            return Self.dot(g, out.base)
        }
        TrainingKernels.attentionBackward(g.base, qkv.base, dqkv.base, scratch: scratch, T: T, NH: NH, NKV: NKV, HD: HD, block: block)
        Self.check("causal GQA attention dq dk dv (blocks of \(block))", analytic: dqkv.array, numeric: Self.numeric(qkv, f))
        // The grouped kernels equal the naive per-head reference.
        let reference = Buffer(count: T * NH * HD), scores = Buffer(count: T * T), dscores = Buffer(count: T * T), dreference = Buffer(count: T * QKV)
        TrainingKernels.attentionForwardReference(qkv.base, reference.base, scores: scores.base, T: T, NH: NH, NKV: NKV, HD: HD)
        _ = f()
        #expect(LoRATrainingSupport.relativeError(out.array, reference.array) < 1e-13)
        TrainingKernels.attentionBackwardReference(g.base, qkv.base, dreference.base, scores: scores.base, dscores: dscores.base,
                                                   T: T, NH: NH, NKV: NKV, HD: HD)
        #expect(LoRATrainingSupport.relativeError(dqkv.array, dreference.array) < 1e-13)
    }

    @Test func swiglu() {
        let T = 3, FFN = 5
        let gu = Self.random(T * 2 * FFN, seed: 9, scale: 3), g = Self.random(T * FFN, seed: 10)
        let act = Buffer(count: T * FFN), dgu = Buffer(count: T * 2 * FFN)
        let f = { () -> Double in
            TrainingKernels.swigluForward(gu.base, act.base, T: T, FFN: FFN)
            return Self.dot(g, act.base)
        }
        TrainingKernels.swigluBackward(g.base, gu.base, dgu.base, T: T, FFN: FFN)
        Self.check("SwiGLU d gate d up", analytic: dgu.array, numeric: Self.numeric(gu, f))
    }

    @Test(arguments: [Float(0), 0.25]) func lora(dropout p: Float) {
        let T = 4, inF = 6, outF = 5, r = 3, ldy = 7, scale = 1.7
        let x = Self.random(T * inF, seed: 11), a = Self.random(r * inF, seed: 12), b = Self.random(outF * r, seed: 13)
        let g = Self.random(T * ldy, seed: 14)
        let xd = Buffer(count: T * inF), u = Buffer(count: T * r), y = Buffer(count: T * ldy)
        func input() {
            var stream = SeedStream.derive(5, 1)
            TrainingKernels.dropout(x.base, xd.base, count: T * inF, p: p, stream: &stream)
        }
        let f = { () -> Double in
            input()
            y.zero()
            TrainingKernels.loraForward(xd.base, a.base, b.base, u: u.base, y.base, ldy: ldy, T: T, inFeatures: inF, outFeatures: outF,
                                        r: r, scale: scale)
            return Self.dot(g, y.base)
        }
        _ = f()
        let da = Buffer(count: r * inF), db = Buffer(count: outF * r), du = Buffer(count: T * r), dxd = Buffer(count: T * inF)
        TrainingKernels.loraBackward(g.base, ldy: ldy, xd.base, u: u.base, a.base, b.base, da: da.base, db: db.base, du: du.base,
                                     dxd: dxd.base, T: T, inFeatures: inF, outFeatures: outF, r: r, scale: scale)
        var stream = SeedStream.derive(5, 1)
        TrainingKernels.dropout(dxd.base, dxd.base, count: T * inF, p: p, stream: &stream)
        Self.check("LoRA dA (dropout \(p))", analytic: da.array, numeric: Self.numeric(a, f))
        Self.check("LoRA dB (dropout \(p))", analytic: db.array, numeric: Self.numeric(b, f))
        Self.check("LoRA dx (dropout \(p))", analytic: dxd.array, numeric: Self.numeric(x, f))
    }

    /// A whole decoder block: the gradient of its input and of every LoRA matrix of the layer,
    /// without dropout (the fused per-group products) and with it (per projection).
    @Test(arguments: [(false, Float(0)), (true, Float(0.2))]) func block(qwen2: Bool, dropout: Float) throws {
        let c = LoRATrainingSupport.configuration(bias: qwen2, tied: qwen2)
        let model = try LoRATrainingSupport.model(c, seed: 21)
        let lora = LoRAConfiguration(rank: 2, alpha: 3, dropout: dropout, useRSLoRA: qwen2)
        let adapter = try LoRATrainingSupport.adapter(lora, c, seed: 22)
        let engine = TrainingEngine<Double>(model: model, options: TrainingOptions())
        let parameters = try LoRAParameters<Double>(adapter, for: c)
        let T = 7, C = c.hiddenSize, l = 1
        let x = Self.random(T * C, seed: 23, scale: 2), g = Self.random(T * C, seed: 24)
        let key = DropoutKey(seed: 77, sequence: 0)
        let rope = engine.ropeTables(T: T)
        let xd = Buffer(count: T * 32), out = Buffer(count: T * C)
        let attention = TrainingKernels.AttentionScratch<Double>(capacity: T, c, backward: true)
        func forward(_ buffers: LoRABuffers<Double>, _ acts: BlockActivations<Double>) -> Double {
            engine.blockForward(layer: l, x.base, out.base, T: T, acts: acts, lora: buffers, dropout: key, rope: rope, xd: xd.base,
                                attention: attention)
            return Self.dot(g, out.base)
        }
        let trained = LoRABuffers(parameters, gradients: true)
        let acts = BlockActivations<Double>(capacity: T, c, lora: trained)
        _ = forward(trained, acts)
        let din = Buffer(count: T * C)
        engine.blockBackward(layer: l, x.base, dout: g.base, din: din.base, T: T, acts: acts, lora: trained, dropout: key, rope: rope,
                             scratch: BackwardScratch(capacity: T, c, rank: 2), xd: xd.base, attention: attention)
        let name = (qwen2 ? "Qwen2 block" : "Llama block") + " (dropout \(dropout))"
        Self.check("\(name) dx", analytic: din.array, numeric: Self.numeric(x) { forward(trained, acts) })
        for slot in trained.slots {
            let target = LoRATarget.allCases[slot].moduleName
            let fresh = LoRABuffers(parameters, gradients: false)
            Self.check("\(name) d \(target).lora_A", analytic: trained.da(l, slot)?.array ?? [],
                       numeric: Self.numeric(fresh.a(l, slot)) { forward(fresh, acts) })
            Self.check("\(name) d \(target).lora_B", analytic: trained.db?[l][slot].array ?? [],
                       numeric: Self.numeric(fresh.b[l][slot]) { forward(fresh, acts) })
        }
    }

    /// The whole model: the loss (masked cross-entropy over two sequences of different lengths,
    /// divided by a normalizer) with respect to every LoRA matrix of every layer.
    @Test(arguments: [(false, Float(0)), (true, Float(0.1))]) func loss(qwen2: Bool, dropout: Float) throws {
        let c = LoRATrainingSupport.configuration(bias: qwen2, tied: qwen2)
        let model = try LoRATrainingSupport.model(c, seed: 31)
        let lora = LoRAConfiguration(rank: 2, alpha: 4, dropout: dropout, useRSLoRA: qwen2)
        let adapter = try LoRATrainingSupport.adapter(lora, c, seed: 32)
        let batch = LoRATrainingSupport.batch(lengths: [9, 5], vocabulary: c.vocabSize, seed: 33)
        let normalizer = LoRATrainingSupport.targetCount(batch) + 3
        let engine = TrainingEngine<Double>(model: model, options: TrainingOptions(recomputeActivations: qwen2, lossChunkRows: 3))
        let parameters = try LoRAParameters<Double>(adapter, for: c)
        let trained = LoRABuffers(parameters, gradients: true)
        _ = engine.run(batch: batch, lora: trained, normalizer: normalizer, dropoutSeed: 8)
        let fresh = LoRABuffers(parameters, gradients: false)
        let f = { engine.run(batch: batch, lora: fresh, normalizer: normalizer, dropoutSeed: 8).sum / Double(normalizer) }
        var worst = 0.0
        for l in 0..<c.numHiddenLayers {
            for slot in trained.slots {
                let b = fresh.b[l][slot]
                for (analytic, values) in [(trained.da(l, slot)?.array ?? [], fresh.a(l, slot)),
                                           (trained.db?[l][slot].array ?? [], ScalarSlice(base: b.base, count: b.count))] {
                    let numeric = Self.numeric(values, f)
                    let error = LoRATrainingSupport.relativeError(analytic, numeric)
                    worst = max(worst, error)
                    #expect(error < Self.tolerance, "layer \(l) slot \(slot): \(error)")
                    #expect(numeric.contains { $0 != 0 })
                }
            }
        }
        print("gradient check whole loss (\(qwen2 ? "Qwen2, tied, rsLoRA, recompute" : "Llama, untied"), dropout \(dropout)): max relative error over all LoRA tensors \(worst)")
    }
}
