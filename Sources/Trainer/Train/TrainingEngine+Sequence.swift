import ModelRuntime
extension TrainingEngine {
    /// Checks a batch against the vocabulary: every id in range, one mask flag per id.
    /// - Throws: `TrainerError.unsupported` naming the sequence and position.
    func validate(_ batch: [TrainingSequence]) throws {
        let V = c.vocabSize
        for (i, sequence) in batch.enumerated() {
            guard sequence.targetMask.count == sequence.ids.count else {
                throw TrainerError.unsupported("training sequence \(i): \(sequence.ids.count) ids but \(sequence.targetMask.count) target flags; give one flag per id")
            }
            if let weights = sequence.weights {
                guard weights.count == sequence.ids.count else {
                    throw TrainerError.unsupported("training sequence \(i): \(sequence.ids.count) ids but \(weights.count) weights; give one weight per id")
                }
                if let p = weights.firstIndex(where: { !$0.isFinite }) {
                    throw TrainerError.unsupported("training sequence \(i), position \(p): weight \(weights[p]) is not finite")
                }
            }
            if let p = sequence.ids.firstIndex(where: { $0 < 0 || Int($0) >= V }) {
                throw TrainerError.unsupported("training sequence \(i), position \(p): token id \(sequence.ids[p]) is outside the vocabulary (0..<\(V)); was it tokenized for another model?")
            }
        }
    }

    /// Runs the batch one sequence at a time (sequences never see each other) and returns the
    /// summed cross-entropy of the target positions. With gradient buffers in `lora`, also adds
    /// ∂(sum / normalizer)/∂(A, B) into them. `dropoutSeed` nil means evaluation (no dropout).
    /// `workspace` is reused when it fits this batch and replaced otherwise, so that repeated
    /// calls do not allocate (and page in) hundreds of megabytes each time.
    func run(batch: [TrainingSequence], lora: LoRABuffers<S>, normalizer: Int, dropoutSeed: UInt64?) -> (sum: Double, tokens: Int) {
        var workspace: TrainingWorkspace<S>?
        return run(batch: batch, lora: lora, normalizer: normalizer, dropoutSeed: dropoutSeed, workspace: &workspace)
    }

    /// `perSequence(index, sum, tokens)`, when given, receives each sequence's own loss;
    /// `perToken(index, losses)` the cross-entropy of each of its target positions, in order.
    func run(batch: [TrainingSequence], lora: LoRABuffers<S>, normalizer: Int, dropoutSeed: UInt64?,
             workspace: inout TrainingWorkspace<S>?, perSequence: ((Int, Double, Int) -> Void)? = nil,
             perToken: ((Int, [Double]) -> Void)? = nil) -> (sum: Double, tokens: Int) {
        let capacity = batch.map(\.ids.count).max() ?? 0
        guard capacity > 0 else { return (0, 0) }
        let key = TrainingWorkspace<S>.Key(capacity: capacity, rank: lora.rank, groupSlots: lora.groupSlots, training: lora.training,
                                          saveAll: lora.training && !options.recomputeActivations)
        let w: TrainingWorkspace<S>
        if let existing = workspace, existing.key.fits(key) {
            w = existing
        } else {
            workspace = nil
            w = TrainingWorkspace(engine: self, key: key, lora: lora)
            workspace = w
        }
        let C = c.hiddenSize, L = c.numHiddenLayers, saveAll = key.saveAll
        let acts = w.acts, inputs = w.inputs, scratch = w.scratch, xd = w.xd, attention = w.attention, rope = w.rope, head = w.head
        let dcurrent = w.dcurrent, dnext = w.dnext
        var total = 0.0, tokens = 0
        for (index, sequence) in batch.enumerated() {
            let T = sequence.ids.count
            guard T > 0 else { perSequence?(index, 0, 0); continue }
            let dropout = dropoutSeed.map { DropoutKey(seed: $0, sequence: index) }
            for (t, id) in sequence.ids.enumerated() { weights.embedding.copyRow(Int(id), into: inputs[0].base + t * C) }
            for l in 0..<L {
                blockForward(layer: l, inputs[l].base, inputs[l + 1].base, T: T, acts: acts[saveAll ? l : 0], lora: lora,
                             dropout: dropout, rope: rope, xd: xd.base, attention: attention)
            }
            let (sum, count) = head.run(inputs[L].base, sequence: sequence, normalizer: normalizer, dx: dcurrent.base)
            total += sum
            tokens += count
            perSequence?(index, sum, count)
            perToken?(index, head.tokenLosses)
            guard let scratch, count > 0 else { continue }
            var dout = dcurrent, din = dnext
            for l in stride(from: L - 1, through: 0, by: -1) {
                let a = acts[saveAll ? l : 0]
                if !saveAll {
                    blockForward(layer: l, inputs[l].base, inputs[l + 1].base, T: T, acts: a, lora: lora, dropout: dropout, rope: rope,
                                 xd: xd.base, attention: attention)
                }
                blockBackward(layer: l, inputs[l].base, dout: dout.base, din: din.base, T: T, acts: a, lora: lora, dropout: dropout,
                              rope: rope, scratch: scratch, xd: xd.base, attention: attention)
                swap(&dout, &din)
            }
            // The embedding is frozen: the gradient of the block-0 input stops here.
        }
        return (total, tokens)
    }
}

/// Every buffer of one `run`: activations (all layers, or one when recomputing or evaluating),
/// block inputs, backward scratch, RoPE tables and the loss head's chunk buffers.
final class TrainingWorkspace<S: TrainingScalar> {
    struct Key: Equatable {
        var capacity: Int
        var rank: Int
        var groupSlots: [[Int]]
        var training: Bool
        var saveAll: Bool

        /// Buffers made for `self` serve `other`: same layout, at least as many rows.
        func fits(_ other: Key) -> Bool {
            capacity >= other.capacity && rank == other.rank && groupSlots == other.groupSlots && training == other.training
                && saveAll == other.saveAll
        }
    }

    let key: Key
    let acts: [BlockActivations<S>]
    let inputs: [ScalarBuffer<S>]       // (L+1) × (T, C): block inputs, then the last block's output
    let scratch: BackwardScratch<S>?
    let xd: ScalarBuffer<S>             // (T, max in): a dropped-out LoRA input
    let attention: TrainingKernels.AttentionScratch<S>
    let rope: (cos: ScalarBuffer<S>, sin: ScalarBuffer<S>)
    let head: LossHead<S>
    let dcurrent: ScalarBuffer<S>       // (T, C)
    let dnext: ScalarBuffer<S>          // (T, C)

    init(engine: TrainingEngine<S>, key: Key, lora: LoRABuffers<S>) {
        let c = engine.c, T = key.capacity, C = c.hiddenSize, L = c.numHiddenLayers
        self.key = key
        acts = (0..<(key.saveAll ? L : 1)).map { _ in BlockActivations<S>(capacity: T, c, lora: lora) }
        inputs = (0...L).map { _ in ScalarBuffer<S>(count: T * C) }
        scratch = key.training ? BackwardScratch<S>(capacity: T, c, rank: key.rank) : nil
        xd = ScalarBuffer<S>(count: T * max(C, c.numAttentionHeads * c.headDim, c.intermediateSize))
        attention = TrainingKernels.AttentionScratch(capacity: T, c, backward: key.training)
        rope = engine.ropeTables(T: T)
        head = LossHead<S>(engine: engine, capacity: T, chunkRows: max(1, engine.options.lossChunkRows), training: key.training)
        dcurrent = ScalarBuffer<S>(count: T * C)
        dnext = ScalarBuffer<S>(count: T * C)
    }
}

/// Final RMSNorm, LM head and cross-entropy over the target positions, in chunks of rows so the
/// (tokens × V) logits never exist whole; positions that are not targets never reach the head.
final class LossHead<S: TrainingScalar> {
    unowned let engine: TrainingEngine<S>
    let chunkRows: Int
    let training: Bool
    let h: ScalarBuffer<S>          // (T, C)  normed final hidden states
    let rstd: ScalarBuffer<S>       // (T)
    let dh: ScalarBuffer<S>         // (T, C)
    let rows: ScalarBuffer<S>       // (R, C)  gathered rows of one chunk
    let logits: ScalarBuffer<S>     // (R, V)  logits, then their gradient
    let drows: ScalarBuffer<S>      // (R, C)
    let losses: ScalarBuffer<S>     // (R)     cross-entropy of each row of a chunk
    /// The cross-entropy of every target position of the last sequence run, in order.
    var tokenLosses: [Double] = []

    init(engine: TrainingEngine<S>, capacity T: Int, chunkRows: Int, training: Bool) {
        let c = engine.c
        self.engine = engine
        self.chunkRows = chunkRows
        self.training = training
        h = ScalarBuffer(count: T * c.hiddenSize)
        rstd = ScalarBuffer(count: T)
        dh = ScalarBuffer(count: training ? T * c.hiddenSize : 0)
        rows = ScalarBuffer(count: chunkRows * c.hiddenSize)
        logits = ScalarBuffer(count: chunkRows * c.vocabSize)
        drows = ScalarBuffer(count: training ? chunkRows * c.hiddenSize : 0)
        losses = ScalarBuffer(count: chunkRows)
    }

    /// loss = Σ_t∈targets (logsumexp(z_t) − z_t[ids[t+1]]); when training, dx (T, C) = ∂(Σ_t w_t·loss_t /
    /// normalizer)/∂x of the last block's output x (T, C) (overwritten), w = the sequence's
    /// weights (1 when it has none).
    func run(_ x: UnsafePointer<S>, sequence: TrainingSequence, normalizer: Int, dx: UnsafeMutablePointer<S>) -> (Double, Int) {
        let c = engine.c, w = engine.weights
        let C = c.hiddenSize, V = c.vocabSize, T = sequence.ids.count
        let positions = (0..<max(T - 1, 0)).filter { sequence.targetMask[$0] }
        tokenLosses = []
        guard !positions.isEmpty else { return (0, 0) }
        tokenLosses.reserveCapacity(positions.count)
        TrainingKernels.rmsNormForward(x, w.finalNorm.withUnsafeBufferPointer { $0.baseAddress ?? x }, h.base, rstd: rstd.base,
                                       T: T, C: C, eps: S(c.rmsNormEps))
        if training { dh.zero() }
        let inverse = 1 / S(max(normalizer, 1))
        var total = 0.0
        let head = w.lmHead
        do {
            var start = 0
            while start < positions.count {
                let n = min(chunkRows, positions.count - start)
                for j in 0..<n { (rows.base + j * C).update(from: h.base + positions[start + j] * C, count: C) }
                head.forward(rows.base, rows: n, into: logits.base, accumulate: false)
                let chunkLosses = losses.base, logitsBase = logits.base, training = training, weights = sequence.weights
                let logitScale = S(engine.options.logitScale)
                RowParallel.forEach(rows: n, minimumRows: 4) { range in
                    for j in range {
                        // With a logit scale (1/temperature) the loss is on z·scale, and so is its gradient.
                        let scale = (weights.map { inverse * S(Double($0[positions[start + j]])) } ?? inverse) * logitScale
                        let z = logitsBase + j * V
                        if logitScale != 1 { for i in 0..<V { z[i] *= logitScale } }
                        let target = Int(sequence.ids[positions[start + j] + 1])
                        let zt = z[target]
                        var m = z[0]
                        for i in 1..<V where z[i] > m { m = z[i] }
                        // One exponential per logit, kept: when training it becomes (softmax − onehot) / normalizer.
                        let sum = S.exponentiate(z, count: V, minus: m)
                        if training {
                            let k = scale / sum
                            for i in 0..<V { z[i] *= k }
                            z[target] -= scale
                        }
                        chunkLosses[j] = m + S.logarithm(sum) - zt
                    }
                }
                for j in 0..<n {
                    total += Double(losses.base[j])
                    tokenLosses.append(Double(losses.base[j]))
                }
                if training {
                    head.backward(logits.base, rows: n, lddy: V, into: drows.base)
                    for j in 0..<n { (dh.base + positions[start + j] * C).update(from: drows.base + j * C, count: C) }
                }
                start += n
            }
        }
        if training {
            dx.update(repeating: 0, count: T * C)
            w.finalNorm.withUnsafeBufferPointer { norm in
                guard let norm = norm.baseAddress else { return }
                TrainingKernels.rmsNormBackward(dh.base, x, norm, rstd: rstd.base, dx, T: T, C: C)
            }
        }
        return (total, positions.count)
    }
}
