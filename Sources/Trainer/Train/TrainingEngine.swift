import ModelRuntime
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
    let u: [ScalarBuffer<S>]       // 4 groups × (T, width)  A·dropout(x) of the group's adapted slots side by side

    init(capacity T: Int, _ c: LlamaConfiguration, lora: LoRABuffers<S>) {
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
        u = lora.groupSlots.indices.map { ScalarBuffer(count: T * lora.width(group: $0)) }
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
    let du: ScalarBuffer<S>        // (T, 3·r)  dU of one group
    let dxd: ScalarBuffer<S>       // (T, max in)

    init(capacity T: Int, _ c: LlamaConfiguration, rank r: Int) {
        let C = c.hiddenSize, HD = c.headDim, NH = c.numAttentionHeads, NKV = c.numKeyValueHeads, FFN = c.intermediateSize
        dx2 = ScalarBuffer(count: T * C)
        dh = ScalarBuffer(count: T * C)
        dattention = ScalarBuffer(count: T * NH * HD)
        dqkv = ScalarBuffer(count: T * (NH + 2 * NKV) * HD)
        dgateUp = ScalarBuffer(count: T * 2 * FFN)
        dact = ScalarBuffer(count: T * FFN)
        du = ScalarBuffer(count: T * 3 * r)
        dxd = ScalarBuffer(count: T * max(C, NH * HD, FFN))
    }
}

/// LoRA matrices of one training call in stable buffers: values and, when training, gradients.
/// The A matrices of projections that share an input (q, k, v; gate, up) are stacked in one
/// buffer per group, so that without dropout U = x·Aᵀ, dA and dx are one sgemm per group.
final class LoRABuffers<S: TrainingScalar> {
    /// Group of each slot: q, k, v read h1; o reads the attention; gate, up read h2; down reads m.
    static var groupOfSlot: [Int] { [0, 0, 0, 1, 2, 2, 3] }

    let rank: Int
    let scale: S
    let dropout: Float
    let slots: [Int]
    /// The adapted slots of each of the 4 groups, ascending.
    let groupSlots: [[Int]]
    let aGroups: [[ScalarBuffer<S>]]     // [layer][group] (width, in): the group's A matrices stacked
    let daGroups: [[ScalarBuffer<S>]]?
    let b: [[ScalarBuffer<S>]]           // [layer][slot] (out, r)
    let db: [[ScalarBuffer<S>]]?

    init(_ p: LoRAParameters<S>, gradients: Bool) {
        rank = p.rank
        scale = p.scale
        dropout = p.dropout
        slots = p.slots
        let groups = (0..<4).map { g in p.slots.filter { Self.groupOfSlot[$0] == g } }
        groupSlots = groups
        aGroups = p.a.map { layer in groups.map { ScalarBuffer($0.flatMap { layer[$0] }) } }
        daGroups = gradients ? p.a.map { layer in groups.map { ScalarBuffer(count: $0.map { layer[$0].count }.reduce(0, +)) } } : nil
        b = p.b.map { $0.map { ScalarBuffer($0) } }
        db = gradients ? p.b.map { $0.map { ScalarBuffer(count: $0.count) } } : nil
    }

    var training: Bool { daGroups != nil }

    /// Columns of a group's U: rank × its adapted slots.
    func width(group g: Int) -> Int { groupSlots[g].count * rank }

    /// Index of `slot` inside its group.
    func position(_ slot: Int) -> Int { groupSlots[Self.groupOfSlot[slot]].firstIndex(of: slot) ?? 0 }

    /// A (r, in) of a slot, inside its group's buffer.
    func a(_ l: Int, _ slot: Int) -> ScalarSlice<S> {
        let group = aGroups[l][Self.groupOfSlot[slot]]
        let count = group.count / max(groupSlots[Self.groupOfSlot[slot]].count, 1)
        return ScalarSlice(base: group.base + position(slot) * count, count: count)
    }

    /// dA (r, in) of a slot, when training.
    func da(_ l: Int, _ slot: Int) -> ScalarSlice<S>? {
        guard let group = daGroups?[l][Self.groupOfSlot[slot]] else { return nil }
        let count = group.count / max(groupSlots[Self.groupOfSlot[slot]].count, 1)
        return ScalarSlice(base: group.base + position(slot) * count, count: count)
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

    /// Whether this call drops out LoRA inputs.
    func dropsOut(_ lora: LoRABuffers<S>, _ dropout: DropoutKey?) -> Bool { dropout != nil && lora.dropout > 0 }

    /// y += s·U_slot·B_slotᵀ for the adapted slots of `group`, with U_slot = D(x)·A_slotᵀ saved
    /// side by side in acts.u[group]. Without dropout the group's U is one sgemm.
    func loraForward(group g: Int, _ x: UnsafePointer<S>, y: UnsafeMutablePointer<S>, ldy: Int, layer l: Int, T: Int,
                     lora: LoRABuffers<S>, acts: BlockActivations<S>, dropout: DropoutKey?, scratch: UnsafeMutablePointer<S>) {
        let slots = lora.groupSlots[g]
        guard let first = slots.first else { return }
        let inFeatures = shape(slot: first).in, W = lora.width(group: g), r = lora.rank
        let u = acts.u[g].base
        if dropsOut(lora, dropout) {
            for (k, slot) in slots.enumerated() {
                let xd = loraInput(x, slot: slot, layer: l, T: T, lora: lora, dropout: dropout, scratch: scratch)
                S.gemm(transA: false, transB: true, m: T, n: r, k: inFeatures, alpha: 1, xd, lda: inFeatures, lora.a(l, slot).base,
                       ldb: inFeatures, beta: 0, u + k * r, ldc: W)
            }
        } else {
            S.gemm(transA: false, transB: true, m: T, n: W, k: inFeatures, alpha: 1, x, lda: inFeatures, lora.aGroups[l][g].base,
                   ldb: inFeatures, beta: 0, u, ldc: W)
        }
        for (k, slot) in slots.enumerated() {
            S.gemm(transA: false, transB: true, m: T, n: shape(slot: slot).out, k: r, alpha: lora.scale, u + k * r, lda: W,
                   lora.b[l][slot].base, ldb: r, beta: 1, y + outputOffset(slot: slot), ldc: ldy)
        }
    }

    /// One block: out (T, C) = block(x (T, C)), activations into `acts`. `xd` scratch (T, max in),
    /// `attention` its scratch.
    func blockForward(layer l: Int, _ x: UnsafePointer<S>, _ out: UnsafeMutablePointer<S>, T: Int, acts: BlockActivations<S>,
                      lora: LoRABuffers<S>, dropout: DropoutKey?, rope: (cos: ScalarBuffer<S>, sin: ScalarBuffer<S>),
                      xd: UnsafeMutablePointer<S>, attention: TrainingKernels.AttentionScratch<S>) {
        let C = c.hiddenSize, HD = c.headDim, NH = c.numAttentionHeads, NKV = c.numKeyValueHeads, FFN = c.intermediateSize
        let QKV = (NH + 2 * NKV) * HD, eps = S(c.rmsNormEps)
        weights.withLayer(l) { w in
            TrainingKernels.rmsNormForward(x, w.inputNorm, acts.h1.base, rstd: acts.rstd1.base, T: T, C: C, eps: eps)
            w.layer.qkv.forward(acts.h1.base, rows: T, into: acts.qkv.base, accumulate: false)
            if let bias = w.qkvBias {
                for t in 0..<T { let row = acts.qkv.base + t * QKV; for j in 0..<QKV { row[j] += bias[j] } }
            }
            loraForward(group: 0, acts.h1.base, y: acts.qkv.base, ldy: QKV, layer: l, T: T, lora: lora, acts: acts,
                        dropout: dropout, scratch: xd)
            TrainingKernels.rope(acts.qkv.base, T: T, heads: NH + NKV, stride: QKV, HD: HD, cos: rope.cos.base, sin: rope.sin.base,
                                 inverse: false)
            TrainingKernels.attentionForward(acts.qkv.base, acts.attention.base, scratch: attention, T: T, NH: NH, NKV: NKV, HD: HD)
            acts.x2.base.update(from: x, count: T * C)
            w.layer.output.forward(acts.attention.base, rows: T, into: acts.x2.base, accumulate: true)
            loraForward(group: 1, acts.attention.base, y: acts.x2.base, ldy: C, layer: l, T: T, lora: lora, acts: acts,
                        dropout: dropout, scratch: xd)

            TrainingKernels.rmsNormForward(acts.x2.base, w.postNorm, acts.h2.base, rstd: acts.rstd2.base, T: T, C: C, eps: eps)
            w.layer.gateUp.forward(acts.h2.base, rows: T, into: acts.gateUp.base, accumulate: false)
            loraForward(group: 2, acts.h2.base, y: acts.gateUp.base, ldy: 2 * FFN, layer: l, T: T, lora: lora, acts: acts,
                        dropout: dropout, scratch: xd)
            TrainingKernels.swigluForward(acts.gateUp.base, acts.act.base, T: T, FFN: FFN)
            out.update(from: acts.x2.base, count: T * C)
            w.layer.down.forward(acts.act.base, rows: T, into: out, accumulate: true)
            loraForward(group: 3, acts.act.base, y: out, ldy: C, layer: l, T: T, lora: lora, acts: acts,
                        dropout: dropout, scratch: xd)
        }
    }

    /// Backward of `loraForward(group:)` from dy (the fused output rows, stride ldy): per slot
    /// dB += s·dYᵀ·U and dU = s·dY·B; then dA += dUᵀ·D(x) and dx (T, in) += D(dU·A), one sgemm
    /// each for the whole group when there is no dropout.
    func loraBackward(group g: Int, dy: UnsafePointer<S>, ldy: Int, x: UnsafePointer<S>, dx: UnsafeMutablePointer<S>, layer l: Int,
                      T: Int, lora: LoRABuffers<S>, acts: BlockActivations<S>, dropout: DropoutKey?, scratch: BackwardScratch<S>,
                      xd xdScratch: UnsafeMutablePointer<S>) {
        let slots = lora.groupSlots[g]
        guard let first = slots.first, let db = lora.db, let daGroup = lora.daGroups?[l][g] else { return }
        let inFeatures = shape(slot: first).in, W = lora.width(group: g), r = lora.rank
        let u = acts.u[g].base, du = scratch.du.base
        for (k, slot) in slots.enumerated() {
            let out = shape(slot: slot).out, dys = dy + outputOffset(slot: slot)
            S.gemm(transA: true, transB: false, m: out, n: r, k: T, alpha: lora.scale, dys, lda: ldy, u + k * r, ldb: W,
                   beta: 1, db[l][slot].base, ldc: r)
            S.gemm(transA: false, transB: false, m: T, n: r, k: out, alpha: lora.scale, dys, lda: ldy, lora.b[l][slot].base, ldb: r,
                   beta: 0, du + k * r, ldc: W)
        }
        guard dropsOut(lora, dropout), let key = dropout else {
            S.gemm(transA: true, transB: false, m: W, n: inFeatures, k: T, alpha: 1, du, lda: W, x, ldb: inFeatures,
                   beta: 1, daGroup.base, ldc: inFeatures)
            S.gemm(transA: false, transB: false, m: T, n: inFeatures, k: W, alpha: 1, du, lda: W, lora.aGroups[l][g].base,
                   ldb: inFeatures, beta: 1, dx, ldc: inFeatures)
            return
        }
        let dxd = scratch.dxd.base, n = T * inFeatures
        for (k, slot) in slots.enumerated() {
            guard let da = lora.da(l, slot) else { continue }
            let xd = loraInput(x, slot: slot, layer: l, T: T, lora: lora, dropout: dropout, scratch: xdScratch)
            S.gemm(transA: true, transB: false, m: r, n: inFeatures, k: T, alpha: 1, du + k * r, lda: W, xd, ldb: inFeatures,
                   beta: 1, da.base, ldc: inFeatures)
            S.gemm(transA: false, transB: false, m: T, n: inFeatures, k: r, alpha: 1, du + k * r, lda: W, lora.a(l, slot).base,
                   ldb: inFeatures, beta: 0, dxd, ldc: inFeatures)
            // The same mask again: d x = mask ⊙ d xd / (1 − p).
            var stream = SeedStream.derive(key.seed, UInt64(key.sequence), UInt64(l), UInt64(slot))
            TrainingKernels.dropout(dxd, dxd, count: n, p: lora.dropout, stream: &stream)
            for i in 0..<n { dx[i] += dxd[i] }
        }
    }

    /// Backward of one block: din (T, C) = ∂loss/∂x from dout = ∂loss/∂out; LoRA gradients added.
    /// `acts` must hold this block's forward for this x (saved or just recomputed).
    func blockBackward(layer l: Int, _ x: UnsafePointer<S>, dout: UnsafePointer<S>, din: UnsafeMutablePointer<S>, T: Int,
                       acts: BlockActivations<S>, lora: LoRABuffers<S>, dropout: DropoutKey?,
                       rope: (cos: ScalarBuffer<S>, sin: ScalarBuffer<S>), scratch s: BackwardScratch<S>,
                       xd: UnsafeMutablePointer<S>, attention: TrainingKernels.AttentionScratch<S>) {
        let C = c.hiddenSize, HD = c.headDim, NH = c.numAttentionHeads, NKV = c.numKeyValueHeads, FFN = c.intermediateSize
        let QKV = (NH + 2 * NKV) * HD
        weights.withLayer(l) { w in
            // MLP: out = x2 + down(act) + LoRA_down(act).
            s.dx2.base.update(from: dout, count: T * C)
            w.layer.down.backward(dout, rows: T, lddy: C, into: s.dact.base)
            loraBackward(group: 3, dy: dout, ldy: C, x: acts.act.base, dx: s.dact.base, layer: l, T: T, lora: lora, acts: acts,
                         dropout: dropout, scratch: s, xd: xd)
            TrainingKernels.swigluBackward(s.dact.base, acts.gateUp.base, s.dgateUp.base, T: T, FFN: FFN)
            w.layer.gateUp.backward(s.dgateUp.base, rows: T, lddy: 2 * FFN, into: s.dh.base)
            loraBackward(group: 2, dy: s.dgateUp.base, ldy: 2 * FFN, x: acts.h2.base, dx: s.dh.base, layer: l, T: T, lora: lora,
                         acts: acts, dropout: dropout, scratch: s, xd: xd)
            TrainingKernels.rmsNormBackward(s.dh.base, acts.x2.base, w.postNorm, rstd: acts.rstd2.base, s.dx2.base, T: T, C: C)

            // Attention: x2 = x + o(attention) + LoRA_o(attention).
            w.layer.output.backward(s.dx2.base, rows: T, lddy: C, into: s.dattention.base)
            loraBackward(group: 1, dy: s.dx2.base, ldy: C, x: acts.attention.base, dx: s.dattention.base, layer: l, T: T, lora: lora,
                         acts: acts, dropout: dropout, scratch: s, xd: xd)
            TrainingKernels.attentionBackward(s.dattention.base, acts.qkv.base, s.dqkv.base, scratch: attention, T: T, NH: NH, NKV: NKV, HD: HD)
            TrainingKernels.rope(s.dqkv.base, T: T, heads: NH + NKV, stride: QKV, HD: HD, cos: rope.cos.base, sin: rope.sin.base,
                                 inverse: true)
            w.layer.qkv.backward(s.dqkv.base, rows: T, lddy: QKV, into: s.dh.base)
            loraBackward(group: 0, dy: s.dqkv.base, ldy: QKV, x: acts.h1.base, dx: s.dh.base, layer: l, T: T, lora: lora,
                         acts: acts, dropout: dropout, scratch: s, xd: xd)
            din.update(from: s.dx2.base, count: T * C)
            TrainingKernels.rmsNormBackward(s.dh.base, x, w.inputNorm, rstd: acts.rstd1.base, din, T: T, C: C)
        }
    }
}
