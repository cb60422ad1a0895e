import ModelRuntime
/// Forward and backward functions of each layer of a Llama block, on plain row-major pointers
/// (llm.c style). Backward functions add their input gradients into the `d…` buffers they are
/// given (`+=`) unless said otherwise; frozen weights get no gradients.
///
/// Dimension letters: T = tokens of the sequence, C = channels, NH = query heads, NKV =
/// key/value heads, HD = head dimension, QKV = (NH + 2·NKV)·HD, FFN = intermediate size,
/// r = LoRA rank. Equations: docs/TRAINING_MATH.md.
enum TrainingKernels {
    // MARK: RMSNorm

    /// y = x · rstd · w with rstd = 1/√(mean(x²) + eps), per row. x, y (T, C); w (C); rstd (T).
    static func rmsNormForward<S: TrainingScalar>(_ x: UnsafePointer<S>, _ w: UnsafePointer<S>, _ y: UnsafeMutablePointer<S>,
                                                  rstd: UnsafeMutablePointer<S>, T: Int, C: Int, eps: S) {
        RowParallel.forEach(rows: T, minimumRows: 32) { rows in
            for t in rows {
                let xr = x + t * C, yr = y + t * C
                var sum: S = 0
                for i in 0..<C { sum += xr[i] * xr[i] }
                let r = 1 / (sum / S(C) + eps).squareRoot()
                rstd[t] = r
                for i in 0..<C { yr[i] = xr[i] * r * w[i] }
            }
        }
    }

    /// dx += rstd·(w⊙dy) − (rstd³/C)·x·Σ(w⊙dy⊙x), per row. The weight w is frozen.
    static func rmsNormBackward<S: TrainingScalar>(_ dy: UnsafePointer<S>, _ x: UnsafePointer<S>, _ w: UnsafePointer<S>,
                                                   rstd: UnsafePointer<S>, _ dx: UnsafeMutablePointer<S>, T: Int, C: Int) {
        RowParallel.forEach(rows: T, minimumRows: 32) { rows in
            for t in rows {
                let xr = x + t * C, dyr = dy + t * C, dxr = dx + t * C
                let r = rstd[t]
                var dot: S = 0
                for i in 0..<C { dot += w[i] * dyr[i] * xr[i] }
                let k = r * r * r * dot / S(C)
                for i in 0..<C { dxr[i] += r * w[i] * dyr[i] - k * xr[i] }
            }
        }
    }

    // MARK: RoPE

    /// Rotates the first `heads` heads of each row of x (T rows of `stride`) in place, Hugging
    /// Face's "rotate half": (a, b) = (x[i], x[i + HD/2]) → (a·cos − b·sin, b·cos + a·sin) at angle
    /// position·invFreq[i], from tables cos, sin (T, HD/2). `inverse` turns the other way, which is
    /// the backward pass (the rotation is orthogonal: its transpose is its inverse).
    static func rope<S: TrainingScalar>(_ x: UnsafeMutablePointer<S>, T: Int, heads: Int, stride: Int, HD: Int,
                                        cos: UnsafePointer<S>, sin: UnsafePointer<S>, inverse: Bool) {
        let half = HD / 2
        RowParallel.forEach(rows: T, minimumRows: 32) { rows in
            for t in rows {
                let c = cos + t * half, s = sin + t * half
                for h in 0..<heads {
                    let base = x + t * stride + h * HD
                    for i in 0..<half {
                        let a = base[i], b = base[i + half]
                        let sn = inverse ? -s[i] : s[i]
                        base[i] = a * c[i] - b * sn
                        base[i + half] = b * c[i] + a * sn
                    }
                }
            }
        }
    }

    // MARK: Causal grouped-query attention

    /// out (T, NH·HD) = softmax(scale·Q_h·K_gᵀ + causal mask)·V_g per query head h, with g = h /
    /// (NH/NKV), Q, K, V read from qkv (T, QKV) after RoPE. scores: scratch (T, T). The naive
    /// reference of `attentionForward` (one head at a time), kept for the tests.
    static func attentionForwardReference<S: TrainingScalar>(_ qkv: UnsafePointer<S>, _ out: UnsafeMutablePointer<S>, scores: UnsafeMutablePointer<S>,
                                                    T: Int, NH: Int, NKV: Int, HD: Int) {
        let QKV = (NH + 2 * NKV) * HD, group = NH / NKV
        let scale = 1 / S(HD).squareRoot()
        for h in 0..<NH {
            let g = h / group
            let q = qkv + h * HD, k = qkv + (NH + g) * HD, v = qkv + (NH + NKV + g) * HD
            S.gemm(transA: false, transB: true, m: T, n: T, k: HD, alpha: scale, q, lda: QKV, k, ldb: QKV, beta: 0, scores, ldc: T)
            causalSoftmax(scores, T: T)
            S.gemm(transA: false, transB: false, m: T, n: HD, k: T, alpha: 1, scores, lda: T, v, ldb: QKV,
                   beta: 0, out + h * HD, ldc: NH * HD)
        }
    }

    /// Row t of p (T, T) becomes the softmax of its first t + 1 entries, zeros after.
    static func causalSoftmax<S: TrainingScalar>(_ p: UnsafeMutablePointer<S>, T: Int) {
        RowParallel.forEach(rows: T, minimumRows: 32) { rows in causalSoftmax(p, T: T, rows: rows) }
    }

    static func causalSoftmax<S: TrainingScalar>(_ p: UnsafeMutablePointer<S>, T: Int, rows: Range<Int>) {
        for t in rows {
            let row = p + t * T
            var m = row[0]
            for u in 1..<(t + 1) where row[u] > m { m = row[u] }
            let sum = S.exponentiate(row, count: t + 1, minus: m)
            let inv = 1 / sum
            for u in 0..<(t + 1) { row[u] *= inv }
            for u in (t + 1)..<T { row[u] = 0 }
        }
    }

    /// Backward of `attentionForwardReference` (kept for the tests): from dout (T, NH·HD) writes dqkv (T, QKV) (overwritten,
    /// not accumulated) for the rotated Q and K and for V. Probabilities are recomputed from qkv.
    /// Per head: dV_g += Pᵀ·dO, dP = dO·V_gᵀ, dS = P ⊙ (dP − rowsum(P ⊙ dP)), dQ_h = scale·dS·K_g,
    /// dK_g += scale·dSᵀ·Q_h. scores, dscores: scratch (T, T) each.
    static func attentionBackwardReference<S: TrainingScalar>(_ dout: UnsafePointer<S>, _ qkv: UnsafePointer<S>, _ dqkv: UnsafeMutablePointer<S>,
                                                     scores: UnsafeMutablePointer<S>, dscores: UnsafeMutablePointer<S>,
                                                     T: Int, NH: Int, NKV: Int, HD: Int) {
        let QKV = (NH + 2 * NKV) * HD, group = NH / NKV
        let scale = 1 / S(HD).squareRoot()
        dqkv.update(repeating: 0, count: T * QKV)
        for h in 0..<NH {
            let g = h / group
            let q = qkv + h * HD, k = qkv + (NH + g) * HD, v = qkv + (NH + NKV + g) * HD
            let dq = dqkv + h * HD, dk = dqkv + (NH + g) * HD, dv = dqkv + (NH + NKV + g) * HD
            let dO = dout + h * HD
            S.gemm(transA: false, transB: true, m: T, n: T, k: HD, alpha: scale, q, lda: QKV, k, ldb: QKV, beta: 0, scores, ldc: T)
            causalSoftmax(scores, T: T)
            S.gemm(transA: true, transB: false, m: T, n: HD, k: T, alpha: 1, scores, lda: T, dO, ldb: NH * HD, beta: 1, dv, ldc: QKV)
            S.gemm(transA: false, transB: true, m: T, n: T, k: HD, alpha: 1, dO, lda: NH * HD, v, ldb: QKV, beta: 0, dscores, ldc: T)
            RowParallel.forEach(rows: T, minimumRows: 32) { rows in
                for t in rows {
                    let p = scores + t * T, dp = dscores + t * T
                    var dot: S = 0
                    for u in 0..<(t + 1) { dot += p[u] * dp[u] }
                    for u in 0..<(t + 1) { dp[u] = p[u] * (dp[u] - dot) }
                    for u in (t + 1)..<T { dp[u] = 0 }
                }
            }
            S.gemm(transA: false, transB: false, m: T, n: HD, k: T, alpha: scale, dscores, lda: T, k, ldb: QKV, beta: 0, dq, ldc: QKV)
            S.gemm(transA: true, transB: false, m: T, n: HD, k: T, alpha: scale, dscores, lda: T, q, ldb: QKV, beta: 1, dk, ldc: QKV)
        }
    }

    /// Scratch of the grouped attention: the query heads that share one key/value head, packed
    /// as G·T rows, and their scores.
    final class AttentionScratch<S: TrainingScalar> {
        let scores: ScalarBuffer<S>     // (G·T, T)
        let dscores: ScalarBuffer<S>    // (G·T, T)
        let q: ScalarBuffer<S>          // (G·T, HD)  row t·G + j = Q of head g·G + j at position t
        let o: ScalarBuffer<S>          // (G·T, HD)  the same rows of O, or of dO
        let dq: ScalarBuffer<S>         // (G·T, HD)

        init(capacity T: Int, _ c: LlamaConfiguration, backward: Bool) {
            let G = c.numAttentionHeads / max(c.numKeyValueHeads, 1), HD = c.headDim
            scores = ScalarBuffer(count: G * T * T)
            dscores = ScalarBuffer(count: backward ? G * T * T : 0)
            q = ScalarBuffer(count: G * T * HD)
            o = ScalarBuffer(count: G * T * HD)
            dq = ScalarBuffer(count: backward ? G * T * HD : 0)
        }
    }

    /// Positions per block of the causal attention: block b of queries only meets keys
    /// 0 ..< its end, so the products skip most of the masked upper triangle.
    static let attentionBlock = 64

    /// Copies the G adjacent heads from `first` of each row of x (T rows of stride ld) into
    /// packed (T·G, HD) rows t·G + j, or back when `unpack`. The G heads are contiguous in a row.
    static func packHeads<S: TrainingScalar>(_ x: UnsafeMutablePointer<S>, ld: Int, first: Int, G: Int, HD: Int, T: Int,
                                             _ packed: UnsafeMutablePointer<S>, unpack: Bool) {
        for t in 0..<T {
            let row = x + t * ld + first * HD, p = packed + t * G * HD
            if unpack { row.update(from: p, count: G * HD) } else { p.update(from: row, count: G * HD) }
        }
    }

    /// Rows r of p (stride T) for r in `rows` of a block whose keys end at n: softmax over the
    /// r/G + 1 visible keys, zeros up to n.
    static func blockSoftmax<S: TrainingScalar>(_ p: UnsafeMutablePointer<S>, T: Int, G: Int, rows: Range<Int>, n: Int) {
        RowParallel.forEach(rows: rows.count, minimumRows: 32) { part in
            for r in (rows.lowerBound + part.lowerBound)..<(rows.lowerBound + part.upperBound) {
                let row = p + r * T, visible = r / G + 1
                var m = row[0]
                for u in 1..<visible where row[u] > m { m = row[u] }
                let inv = 1 / S.exponentiate(row, count: visible, minus: m)
                for u in 0..<visible { row[u] *= inv }
                for u in visible..<n { row[u] = 0 }
            }
        }
    }

    /// `attentionForwardReference` with the G = NH/NKV query heads of a key/value head packed
    /// as G·T rows, so each product is one sgemm per key/value head and block of positions
    /// (m = G·block) instead of one per query head, and blocks skip the keys after their last
    /// query.
    static func attentionForward<S: TrainingScalar>(_ qkv: UnsafePointer<S>, _ out: UnsafeMutablePointer<S>, scratch a: AttentionScratch<S>,
                                                    T: Int, NH: Int, NKV: Int, HD: Int, block: Int = attentionBlock) {
        let QKV = (NH + 2 * NKV) * HD, G = NH / NKV
        let scale = 1 / S(HD).squareRoot()
        let source = UnsafeMutablePointer(mutating: qkv), p = a.scores.base
        for g in 0..<NKV {
            let k = qkv + (NH + g) * HD, v = qkv + (NH + NKV + g) * HD
            packHeads(source, ld: QKV, first: g * G, G: G, HD: HD, T: T, a.q.base, unpack: false)
            for t0 in stride(from: 0, to: T, by: max(block, 1)) {
                let t1 = min(T, t0 + max(block, 1)), m = (t1 - t0) * G, r0 = t0 * G
                S.gemm(transA: false, transB: true, m: m, n: t1, k: HD, alpha: scale, a.q.base + r0 * HD, lda: HD, k, ldb: QKV,
                       beta: 0, p + r0 * T, ldc: T)
                blockSoftmax(p, T: T, G: G, rows: r0..<(r0 + m), n: t1)
                S.gemm(transA: false, transB: false, m: m, n: HD, k: t1, alpha: 1, p + r0 * T, lda: T, v, ldb: QKV,
                       beta: 0, a.o.base + r0 * HD, ldc: HD)
            }
            packHeads(out, ld: NH * HD, first: g * G, G: G, HD: HD, T: T, a.o.base, unpack: true)
        }
    }

    /// Backward of `attentionForward`, grouped and blocked the same way: dqkv (T, QKV) overwritten.
    static func attentionBackward<S: TrainingScalar>(_ dout: UnsafePointer<S>, _ qkv: UnsafePointer<S>, _ dqkv: UnsafeMutablePointer<S>,
                                                     scratch a: AttentionScratch<S>, T: Int, NH: Int, NKV: Int, HD: Int,
                                                     block: Int = attentionBlock) {
        let QKV = (NH + 2 * NKV) * HD, G = NH / NKV
        let scale = 1 / S(HD).squareRoot()
        let source = UnsafeMutablePointer(mutating: qkv), gradient = UnsafeMutablePointer(mutating: dout)
        dqkv.update(repeating: 0, count: T * QKV)
        let p = a.scores.base, dp = a.dscores.base
        for g in 0..<NKV {
            let k = qkv + (NH + g) * HD, v = qkv + (NH + NKV + g) * HD
            let dk = dqkv + (NH + g) * HD, dv = dqkv + (NH + NKV + g) * HD
            packHeads(source, ld: QKV, first: g * G, G: G, HD: HD, T: T, a.q.base, unpack: false)
            packHeads(gradient, ld: NH * HD, first: g * G, G: G, HD: HD, T: T, a.o.base, unpack: false)
            for t0 in stride(from: 0, to: T, by: max(block, 1)) {
                let t1 = min(T, t0 + max(block, 1)), m = (t1 - t0) * G, r0 = t0 * G
                let pb = p + r0 * T, dpb = dp + r0 * T, qb = a.q.base + r0 * HD, dob = a.o.base + r0 * HD
                S.gemm(transA: false, transB: true, m: m, n: t1, k: HD, alpha: scale, qb, lda: HD, k, ldb: QKV, beta: 0, pb, ldc: T)
                blockSoftmax(p, T: T, G: G, rows: r0..<(r0 + m), n: t1)
                S.gemm(transA: true, transB: false, m: t1, n: HD, k: m, alpha: 1, pb, lda: T, dob, ldb: HD, beta: 1, dv, ldc: QKV)
                S.gemm(transA: false, transB: true, m: m, n: t1, k: HD, alpha: 1, dob, lda: HD, v, ldb: QKV, beta: 0, dpb, ldc: T)
                RowParallel.forEach(rows: m, minimumRows: 32) { part in
                    for r in (r0 + part.lowerBound)..<(r0 + part.upperBound) {
                        let visible = r / G + 1, pr = p + r * T, dpr = dp + r * T
                        var dot: S = 0
                        for u in 0..<visible { dot += pr[u] * dpr[u] }
                        for u in 0..<visible { dpr[u] = pr[u] * (dpr[u] - dot) }
                        for u in visible..<t1 { dpr[u] = 0 }
                    }
                }
                S.gemm(transA: false, transB: false, m: m, n: HD, k: t1, alpha: scale, dpb, lda: T, k, ldb: QKV, beta: 0,
                       a.dq.base + r0 * HD, ldc: HD)
                S.gemm(transA: true, transB: false, m: t1, n: HD, k: m, alpha: scale, dpb, lda: T, qb, ldb: HD, beta: 1, dk, ldc: QKV)
            }
            packHeads(dqkv, ld: QKV, first: g * G, G: G, HD: HD, T: T, a.dq.base, unpack: true)
        }
    }

    // MARK: SwiGLU

    /// act (T, FFN) = silu(gate)·up with gate and up side by side in gateUp (T, 2·FFN).
    static func swigluForward<S: TrainingScalar>(_ gateUp: UnsafePointer<S>, _ act: UnsafeMutablePointer<S>, T: Int, FFN: Int) {
        RowParallel.forEach(rows: T) { rows in
            for t in rows {
                let g = gateUp + t * 2 * FFN, u = g + FFN, a = act + t * FFN
                for j in 0..<FFN { a[j] = g[j] / (1 + S.exponential(-g[j])) * u[j] }
            }
        }
    }

    /// dgateUp (T, 2·FFN), overwritten: d gate = dact·up·σ(g)·(1 + g·(1 − σ(g))), d up = dact·silu(g).
    static func swigluBackward<S: TrainingScalar>(_ dact: UnsafePointer<S>, _ gateUp: UnsafePointer<S>, _ dgateUp: UnsafeMutablePointer<S>,
                                                  T: Int, FFN: Int) {
        RowParallel.forEach(rows: T) { rows in
            for t in rows {
                let g = gateUp + t * 2 * FFN, u = g + FFN, da = dact + t * FFN
                let dg = dgateUp + t * 2 * FFN, du = dg + FFN
                for j in 0..<FFN {
                    let sig = 1 / (1 + S.exponential(-g[j]))
                    dg[j] = da[j] * u[j] * sig * (1 + g[j] * (1 - sig))
                    du[j] = da[j] * g[j] * sig
                }
            }
        }
    }

    // MARK: LoRA

    /// y (T rows of stride ldy) += s·(xd·Aᵀ)·Bᵀ, and u (T, r) = xd·Aᵀ is kept for the backward.
    /// xd is the (dropped-out) input (T, in), A (r, in), B (out, r).
    static func loraForward<S: TrainingScalar>(_ xd: UnsafePointer<S>, _ a: UnsafePointer<S>, _ b: UnsafePointer<S>,
                                               u: UnsafeMutablePointer<S>, _ y: UnsafeMutablePointer<S>, ldy: Int,
                                               T: Int, inFeatures: Int, outFeatures: Int, r: Int, scale: S) {
        S.gemm(transA: false, transB: true, m: T, n: r, k: inFeatures, alpha: 1, xd, lda: inFeatures, a, ldb: inFeatures, beta: 0, u, ldc: r)
        S.gemm(transA: false, transB: true, m: T, n: outFeatures, k: r, alpha: scale, u, lda: r, b, ldb: r, beta: 1, y, ldc: ldy)
    }

    /// Backward of `loraForward` from dy (T rows of stride ldy): dB += s·dyᵀ·u, du = s·dy·B,
    /// dA += duᵀ·xd, and dxd (T, in) = du·A (overwritten; the caller applies the dropout mask
    /// and adds it to the input's gradient). du: scratch (T, r).
    static func loraBackward<S: TrainingScalar>(_ dy: UnsafePointer<S>, ldy: Int, _ xd: UnsafePointer<S>, u: UnsafePointer<S>,
                                                _ a: UnsafePointer<S>, _ b: UnsafePointer<S>,
                                                da: UnsafeMutablePointer<S>, db: UnsafeMutablePointer<S>,
                                                du: UnsafeMutablePointer<S>, dxd: UnsafeMutablePointer<S>,
                                                T: Int, inFeatures: Int, outFeatures: Int, r: Int, scale: S) {
        S.gemm(transA: true, transB: false, m: outFeatures, n: r, k: T, alpha: scale, dy, lda: ldy, u, ldb: r, beta: 1, db, ldc: r)
        S.gemm(transA: false, transB: false, m: T, n: r, k: outFeatures, alpha: scale, dy, lda: ldy, b, ldb: r, beta: 0, du, ldc: r)
        S.gemm(transA: true, transB: false, m: r, n: inFeatures, k: T, alpha: 1, du, lda: r, xd, ldb: inFeatures, beta: 1, da, ldc: inFeatures)
        S.gemm(transA: false, transB: false, m: T, n: inFeatures, k: r, alpha: 1, du, lda: r, a, ldb: inFeatures, beta: 0, dxd, ldc: inFeatures)
    }

    /// Inverted dropout as torch.nn.Dropout in training: each element is kept with probability
    /// 1 − p and then scaled by 1/(1 − p). The mask comes from `stream`, one draw per element in
    /// row-major order, so the same stream gives the same mask in the forward, the recomputation
    /// and the backward. Writes `out` = mask ⊙ x / (1 − p) (x may equal out).
    static func dropout<S: TrainingScalar>(_ x: UnsafePointer<S>, _ out: UnsafeMutablePointer<S>, count: Int, p: Float,
                                           stream: inout SeedStream) {
        let keep = 1 / (1 - S(p))
        for i in 0..<count {
            out[i] = stream.nextUnitFloat() < p ? 0 : x[i] * keep
        }
    }
}
