/// Saved activations of one decoder block for one sequence (T ≤ capacity rows).
final class BlockActivations<S: TrainingScalar> {
    let rstd1: ScalarBuffer<S>     // (T)
    let h1: ScalarBuffer<S>        // (T, C)       input_layernorm output
    let qkv: ScalarBuffer<S>       // (T, QKV)     after bias, LoRA and RoPE
    let attention: ScalarBuffer<S> // (T, NH·HD)   attention output, input of o_proj
    let x2: ScalarBuffer<S>        // (T, C)       residual after attention
    let rstd2: ScalarBuffer<S>     // (T)
    let h2: ScalarBuffer<S>        // (T, C)       post_attention_layernorm output
    let gateUp: ScalarBuffer<S>    // (T, 2·FFN)   before the activation
    let act: ScalarBuffer<S>       // (T, FFN)     silu(gate)·up, input of down_proj
    let u: [ScalarBuffer<S>]       // 7 × (T, r)   A·dropout(x) per adapted slot (empty otherwise)

    init(capacity T: Int, _ c: LlamaConfiguration, rank r: Int, slots: [Int]) {
        let C = c.hiddenSize, HD = c.headDim, NH = c.numAttentionHeads, NKV = c.numKeyValueHeads, FFN = c.intermediateSize
        rstd1 = ScalarBuffer(count: T)
        h1 = ScalarBuffer(count: T * C)
        qkv = ScalarBuffer(count: T * (NH + 2 * NKV) * HD)
        attention = ScalarBuffer(count: T * NH * HD)
        x2 = ScalarBuffer(count: T * C)
        rstd2 = ScalarBuffer(count: T)
        h2 = ScalarBuffer(count: T * C)
        gateUp = ScalarBuffer(count: T * 2 * FFN)
        act = ScalarBuffer(count: T * FFN)
        u = (0..<LoRATarget.allCases.count).map { ScalarBuffer(count: slots.contains($0) ? T * r : 0) }
    }
}

/// Scratch space of the backward pass for one sequence, reused across layers.
final class BackwardScratch<S: TrainingScalar> {
    let dx2: ScalarBuffer<S>       // (T, C)
    let dh: ScalarBuffer<S>        // (T, C)
    let dattention: ScalarBuffer<S> // (T, NH·HD)
    let dqkv: ScalarBuffer<S>      // (T, QKV)
    let dgateUp: ScalarBuffer<S>   // (T, 2·FFN)
    let dact: ScalarBuffer<S>      // (T, FFN)
    let dscores: ScalarBuffer<S>   // (T, T)
    let du: ScalarBuffer<S>        // (T, r)
    let dxd: ScalarBuffer<S>       // (T, max in)

    init(capacity T: Int, _ c: LlamaConfiguration, rank r: Int) {
        let C = c.hiddenSize, HD = c.headDim, NH = c.numAttentionHeads, NKV = c.numKeyValueHeads, FFN = c.intermediateSize
        dx2 = ScalarBuffer(count: T * C)
        dh = ScalarBuffer(count: T * C)
        dattention = ScalarBuffer(count: T * NH * HD)
        dqkv = ScalarBuffer(count: T * (NH + 2 * NKV) * HD)
        dgateUp = ScalarBuffer(count: T * 2 * FFN)
        dact = ScalarBuffer(count: T * FFN)
        dscores = ScalarBuffer(count: T * T)
        du = ScalarBuffer(count: T * r)
        dxd = ScalarBuffer(count: T * max(C, NH * HD, FFN))
    }
}

/// LoRA matrices of one training call in stable buffers: values and, when training, gradients.
final class LoRABuffers<S: TrainingScalar> {
    let rank: Int
    let scale: S
    let dropout: Float
    let slots: [Int]
    let a: [[ScalarBuffer<S>]]      // [layer][slot] (r, in)
    let b: [[ScalarBuffer<S>]]      // [layer][slot] (out, r)
    let da: [[ScalarBuffer<S>]]?
    let db: [[ScalarBuffer<S>]]?

    init(_ p: LoRAParameters<S>, gradients: Bool) {
        rank = p.rank
        scale = p.scale
        dropout = p.dropout
        slots = p.slots
        a = p.a.map { $0.map { ScalarBuffer($0) } }
        b = p.b.map { $0.map { ScalarBuffer($0) } }
        da = gradients ? p.a.map { $0.map { ScalarBuffer(count: $0.count) } } : nil
        db = gradients ? p.b.map { $0.map { ScalarBuffer(count: $0.count) } } : nil
    }
}

/// What selects a dropout mask: the batch's seed, the sequence's index in the batch, then
/// (inside the engine) the layer and the slot.
struct DropoutKey {
    var seed: UInt64
    var sequence: Int
}

/// The generic engine behind `LoRATrainingModel`: forward with saved activations, backward into
/// LoRA gradients, chunked cross-entropy. `Float` trains; `Double` checks gradients.
final class TrainingEngine<S: TrainingScalar>: @unchecked Sendable {
    // @unchecked: immutable after init; each call allocates its own buffers.
    let weights: TrainingWeights<S>
    let options: TrainingOptions
    var c: LlamaConfiguration { weights.configuration }

    init(model: LlamaModel, options: TrainingOptions) {
        weights = TrainingWeights(model)
        self.options = options
    }

    /// RoPE tables cos, sin (T, HD/2) for positions 0..<T.
    func ropeTables(T: Int) -> (cos: ScalarBuffer<S>, sin: ScalarBuffer<S>) {
        let half = c.headDim / 2
        let cosT = ScalarBuffer<S>(count: T * half), sinT = ScalarBuffer<S>(count: T * half)
        for t in 0..<T {
            for i in 0..<half {
                // Hugging Face forms the angle in fp32: position · inv_freq.
                let angle = S(Float(t) * Float(weights.inverseFrequencies[i]))
                cosT.base[t * half + i] = S.cosine(angle)
                sinT.base[t * half + i] = S.sine(angle)
            }
        }
        return (cosT, sinT)
    }

    /// (out, in) of a slot's projection.
    func shape(slot: Int) -> (out: Int, in: Int) { LoRATarget.allCases[slot].shape(c) }

    /// Offset of a slot's output inside its fused output row: q, k, v inside QKV; gate, up inside 2·FFN.
    func outputOffset(slot: Int) -> Int {
        let HD = c.headDim, NH = c.numAttentionHeads, NKV = c.numKeyValueHeads
        switch slot {
        case 1: return NH * HD
        case 2: return (NH + NKV) * HD
        case 5: return c.intermediateSize
        default: return 0
        }
    }

    // MARK: One block

    /// The dropped-out LoRA input of `slot`: x itself without dropout, else `scratch` filled from
    /// the slot's stream.
    func loraInput(_ x: UnsafePointer<S>, slot: Int, layer l: Int, T: Int, lora: LoRABuffers<S>, dropout: DropoutKey?,
                   scratch: UnsafeMutablePointer<S>) -> UnsafePointer<S> {
        guard let key = dropout, lora.dropout > 0 else { return x }
        var stream = SeedStream.derive(key.seed, UInt64(key.sequence), UInt64(l), UInt64(slot))
        TrainingKernels.dropout(x, scratch, count: T * shape(slot: slot).in, p: lora.dropout, stream: &stream)
        return UnsafePointer(scratch)
    }

    /// y += LoRA_slot(x) for the adapted slots among `slots`, saving u.
    func loraForward(_ x: UnsafePointer<S>, slots: [Int], y: UnsafeMutablePointer<S>, ldy: Int, layer l: Int, T: Int,
                     lora: LoRABuffers<S>, acts: BlockActivations<S>, dropout: DropoutKey?, scratch: UnsafeMutablePointer<S>) {
        for slot in slots where lora.slots.contains(slot) {
            let (out, inFeatures) = shape(slot: slot)
            let xd = loraInput(x, slot: slot, layer: l, T: T, lora: lora, dropout: dropout, scratch: scratch)
            TrainingKernels.loraForward(xd, lora.a[l][slot].base, lora.b[l][slot].base, u: acts.u[slot].base,
                                        y + outputOffset(slot: slot), ldy: ldy, T: T, inFeatures: inFeatures, outFeatures: out,
                                        r: lora.rank, scale: lora.scale)
        }
    }

    /// One block: out (T, C) = block(x (T, C)), activations into `acts`. `xd` scratch (T, max in),
    /// `scores` scratch (T, T).
    func blockForward(layer l: Int, _ x: UnsafePointer<S>, _ out: UnsafeMutablePointer<S>, T: Int, acts: BlockActivations<S>,
                      lora: LoRABuffers<S>, dropout: DropoutKey?, rope: (cos: ScalarBuffer<S>, sin: ScalarBuffer<S>),
                      xd: UnsafeMutablePointer<S>, scores: UnsafeMutablePointer<S>) {
        let C = c.hiddenSize, HD = c.headDim, NH = c.numAttentionHeads, NKV = c.numKeyValueHeads, FFN = c.intermediateSize
        let QKV = (NH + 2 * NKV) * HD, eps = S(c.rmsNormEps)
        weights.withLayer(l) { w in
            TrainingKernels.rmsNormForward(x, w.inputNorm, acts.h1.base, rstd: acts.rstd1.base, T: T, C: C, eps: eps)
            S.gemm(transA: false, transB: true, m: T, n: QKV, k: C, alpha: 1, acts.h1.base, lda: C, w.qkv, ldb: C,
                   beta: 0, acts.qkv.base, ldc: QKV)
            if let bias = w.qkvBias {
                for t in 0..<T { let row = acts.qkv.base + t * QKV; for j in 0..<QKV { row[j] += bias[j] } }
            }
            loraForward(acts.h1.base, slots: [0, 1, 2], y: acts.qkv.base, ldy: QKV, layer: l, T: T, lora: lora, acts: acts,
                        dropout: dropout, scratch: xd)
            TrainingKernels.rope(acts.qkv.base, T: T, heads: NH + NKV, stride: QKV, HD: HD, cos: rope.cos.base, sin: rope.sin.base,
                                 inverse: false)
            TrainingKernels.attentionForward(acts.qkv.base, acts.attention.base, scores: scores, T: T, NH: NH, NKV: NKV, HD: HD)
            acts.x2.base.update(from: x, count: T * C)
            S.gemm(transA: false, transB: true, m: T, n: C, k: NH * HD, alpha: 1, acts.attention.base, lda: NH * HD, w.output,
                   ldb: NH * HD, beta: 1, acts.x2.base, ldc: C)
            loraForward(acts.attention.base, slots: [3], y: acts.x2.base, ldy: C, layer: l, T: T, lora: lora, acts: acts,
                        dropout: dropout, scratch: xd)

            TrainingKernels.rmsNormForward(acts.x2.base, w.postNorm, acts.h2.base, rstd: acts.rstd2.base, T: T, C: C, eps: eps)
            S.gemm(transA: false, transB: true, m: T, n: 2 * FFN, k: C, alpha: 1, acts.h2.base, lda: C, w.gateUp, ldb: C,
                   beta: 0, acts.gateUp.base, ldc: 2 * FFN)
            loraForward(acts.h2.base, slots: [4, 5], y: acts.gateUp.base, ldy: 2 * FFN, layer: l, T: T, lora: lora, acts: acts,
                        dropout: dropout, scratch: xd)
            TrainingKernels.swigluForward(acts.gateUp.base, acts.act.base, T: T, FFN: FFN)
            out.update(from: acts.x2.base, count: T * C)
            S.gemm(transA: false, transB: true, m: T, n: C, k: FFN, alpha: 1, acts.act.base, lda: FFN, w.down, ldb: FFN,
                   beta: 1, out, ldc: C)
            loraForward(acts.act.base, slots: [6], y: out, ldy: C, layer: l, T: T, lora: lora, acts: acts,
                        dropout: dropout, scratch: xd)
        }
    }

    /// dx (T, in) += LoRA backward of `slot` from dy (T rows of stride ldy), gradients into lora.da/db.
    func loraBackward(slot: Int, dy: UnsafePointer<S>, ldy: Int, x: UnsafePointer<S>, dx: UnsafeMutablePointer<S>, layer l: Int, T: Int,
                      lora: LoRABuffers<S>, acts: BlockActivations<S>, dropout: DropoutKey?, scratch: BackwardScratch<S>,
                      xd xdScratch: UnsafeMutablePointer<S>) {
        guard lora.slots.contains(slot), let da = lora.da, let db = lora.db else { return }
        let (out, inFeatures) = shape(slot: slot)
        let xd = loraInput(x, slot: slot, layer: l, T: T, lora: lora, dropout: dropout, scratch: xdScratch)
        let dxd = scratch.dxd.base
        TrainingKernels.loraBackward(dy + outputOffset(slot: slot), ldy: ldy, xd, u: acts.u[slot].base, lora.a[l][slot].base,
                                     lora.b[l][slot].base, da: da[l][slot].base, db: db[l][slot].base, du: scratch.du.base, dxd: dxd,
                                     T: T, inFeatures: inFeatures, outFeatures: out, r: lora.rank, scale: lora.scale)
        let n = T * inFeatures
        if let key = dropout, lora.dropout > 0 {
            // The same mask again: d x = mask ⊙ d xd / (1 − p).
            var stream = SeedStream.derive(key.seed, UInt64(key.sequence), UInt64(l), UInt64(slot))
            TrainingKernels.dropout(dxd, dxd, count: n, p: lora.dropout, stream: &stream)
        }
        for i in 0..<n { dx[i] += dxd[i] }
    }

    /// Backward of one block: din (T, C) = ∂loss/∂x from dout = ∂loss/∂out; LoRA gradients added.
    /// `acts` must hold this block's forward for this x (saved or just recomputed).
    func blockBackward(layer l: Int, _ x: UnsafePointer<S>, dout: UnsafePointer<S>, din: UnsafeMutablePointer<S>, T: Int,
                       acts: BlockActivations<S>, lora: LoRABuffers<S>, dropout: DropoutKey?,
                       rope: (cos: ScalarBuffer<S>, sin: ScalarBuffer<S>), scratch s: BackwardScratch<S>,
                       xd: UnsafeMutablePointer<S>, scores: UnsafeMutablePointer<S>) {
        let C = c.hiddenSize, HD = c.headDim, NH = c.numAttentionHeads, NKV = c.numKeyValueHeads, FFN = c.intermediateSize
        let QKV = (NH + 2 * NKV) * HD
        weights.withLayer(l) { w in
            // MLP: out = x2 + down(act) + LoRA_down(act).
            s.dx2.base.update(from: dout, count: T * C)
            S.gemm(transA: false, transB: false, m: T, n: FFN, k: C, alpha: 1, dout, lda: C, w.down, ldb: FFN,
                   beta: 0, s.dact.base, ldc: FFN)
            loraBackward(slot: 6, dy: dout, ldy: C, x: acts.act.base, dx: s.dact.base, layer: l, T: T, lora: lora, acts: acts,
                         dropout: dropout, scratch: s, xd: xd)
            TrainingKernels.swigluBackward(s.dact.base, acts.gateUp.base, s.dgateUp.base, T: T, FFN: FFN)
            S.gemm(transA: false, transB: false, m: T, n: C, k: 2 * FFN, alpha: 1, s.dgateUp.base, lda: 2 * FFN, w.gateUp, ldb: C,
                   beta: 0, s.dh.base, ldc: C)
            for slot in [4, 5] {
                loraBackward(slot: slot, dy: s.dgateUp.base, ldy: 2 * FFN, x: acts.h2.base, dx: s.dh.base, layer: l, T: T, lora: lora,
                             acts: acts, dropout: dropout, scratch: s, xd: xd)
            }
            TrainingKernels.rmsNormBackward(s.dh.base, acts.x2.base, w.postNorm, rstd: acts.rstd2.base, s.dx2.base, T: T, C: C)

            // Attention: x2 = x + o(attention) + LoRA_o(attention).
            S.gemm(transA: false, transB: false, m: T, n: NH * HD, k: C, alpha: 1, s.dx2.base, lda: C, w.output, ldb: NH * HD,
                   beta: 0, s.dattention.base, ldc: NH * HD)
            loraBackward(slot: 3, dy: s.dx2.base, ldy: C, x: acts.attention.base, dx: s.dattention.base, layer: l, T: T, lora: lora,
                         acts: acts, dropout: dropout, scratch: s, xd: xd)
            TrainingKernels.attentionBackward(s.dattention.base, acts.qkv.base, s.dqkv.base, scores: scores, dscores: s.dscores.base,
                                              T: T, NH: NH, NKV: NKV, HD: HD)
            TrainingKernels.rope(s.dqkv.base, T: T, heads: NH + NKV, stride: QKV, HD: HD, cos: rope.cos.base, sin: rope.sin.base,
                                 inverse: true)
            S.gemm(transA: false, transB: false, m: T, n: C, k: QKV, alpha: 1, s.dqkv.base, lda: QKV, w.qkv, ldb: C,
                   beta: 0, s.dh.base, ldc: C)
            for slot in [0, 1, 2] {
                loraBackward(slot: slot, dy: s.dqkv.base, ldy: QKV, x: acts.h1.base, dx: s.dh.base, layer: l, T: T, lora: lora,
                             acts: acts, dropout: dropout, scratch: s, xd: xd)
            }
            din.update(from: s.dx2.base, count: T * C)
            TrainingKernels.rmsNormBackward(s.dh.base, x, w.inputNorm, rstd: acts.rstd1.base, din, T: T, C: C)
        }
    }
}
