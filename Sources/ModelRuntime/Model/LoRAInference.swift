import Foundation

/// A LoRA adapter made ready to run beside a `LlamaModel`'s frozen weights, unmerged: every
/// adapted projection computes y = Wx + s·B(A·x), the base product W·x shared by all rows of a
/// batch and the low-rank term added for the rows that use this adapter. Rows of one batch may
/// each use a different adapter (or none), which is how `corpus serve` decodes requests for the
/// base model and several adapters in one forward pass, and the base weights stay in their
/// stored (compact) type instead of being copied into fp32 per adapter.
///
/// The arithmetic is PEFT's unmerged forward: t = x·Aᵀ (rows, r), then y += s·(t·Bᵀ), in fp32.
public final class LoRAInference: Sendable {
    /// One adapted projection: A (r, in) and B (out, r), row-major fp32.
    struct Pair: Sendable {
        var a: [Float]
        var b: [Float]
        var outFeatures: Int
        var inFeatures: Int
    }

    /// r.
    public let rank: Int
    /// s = alpha/r (alpha/√r with rsLoRA).
    public let scale: Float
    /// The adapted projections.
    public let targets: [LoRATarget]
    /// layers[l][target.slot], nil where the target is not adapted.
    let layers: [[Pair?]]

    /// Bytes the adapter's matrices take.
    public var byteCount: Int {
        layers.reduce(0) { $0 + $1.reduce(0) { $0 + 4 * (($1?.a.count ?? 0) + ($1?.b.count ?? 0)) } }
    }

    /// - Throws: `ModelError` when the adapter has another number of layers than the model, or a
    ///   pair's shapes do not fit the projection it adapts (both shapes named).
    public init(_ adapter: LoRAAdapter, configuration c: LlamaConfiguration) throws {
        guard adapter.layers.count == c.numHiddenLayers else {
            throw ModelError.unsupported("the adapter has \(adapter.layers.count) layers but the model has \(c.numHiddenLayers); the adapter was trained for another model")
        }
        let r = adapter.configuration.rank
        var layers: [[Pair?]] = []
        for (l, layer) in adapter.layers.enumerated() {
            var slots = [Pair?](repeating: nil, count: LoRATarget.allCases.count)
            for (target, pair) in layer {
                let (out, inFeatures) = target.shape(c)
                guard pair.a.shape == [r, inFeatures] else {
                    throw ModelError.shapeMismatch(tensor: LoRAAdapter.peftKey(layer: l, target: target, matrix: "A"), expected: [r, inFeatures], found: pair.a.shape)
                }
                guard pair.b.shape == [out, r] else {
                    throw ModelError.shapeMismatch(tensor: LoRAAdapter.peftKey(layer: l, target: target, matrix: "B"), expected: [out, r], found: pair.b.shape)
                }
                slots[target.slot] = Pair(a: pair.a.data, b: pair.b.data, outFeatures: out, inFeatures: inFeatures)
            }
            layers.append(slots)
        }
        rank = r
        scale = adapter.configuration.scale
        targets = adapter.configuration.targets
        self.layers = layers
    }

    /// Why this adapter cannot run on a model of configuration `c` (layer count or a projection's
    /// shape), or nil when it fits.
    func mismatch(_ c: LlamaConfiguration) -> String? {
        guard layers.count == c.numHiddenLayers else {
            return "it has \(layers.count) layers and the model \(c.numHiddenLayers)"
        }
        for (l, slots) in layers.enumerated() {
            for target in LoRATarget.allCases {
                guard let pair = slots[target.slot] else { continue }
                let (out, inFeatures) = target.shape(c)
                if pair.outFeatures != out || pair.inFeatures != inFeatures {
                    return "layer \(l) \(target.moduleName) is (\(pair.outFeatures), \(pair.inFeatures)) and the model's (\(out), \(inFeatures))"
                }
            }
        }
        return nil
    }
}

extension LlamaModel {
    /// Adds each row group's low-rank term for projection `target` of layer `l`:
    /// y[rows, offset ..< offset+out] += s·((x[rows]·Aᵀ)·Bᵀ), x (N, in) and y (N, ldy). Runs of
    /// consecutive sequences with the same adapter are one pair of products.
    func addLoRA(_ target: LoRATarget, layer l: Int, input x: [Float], _ y: inout [Float], ldy: Int, offset: Int, rows: [BatchRows]) {
        var i = 0
        while i < rows.count {
            guard let adapter = rows[i].adapter else { i += 1; continue }
            var j = i + 1
            while j < rows.count, rows[j].adapter === adapter { j += 1 }
            defer { i = j }
            guard let pair = adapter.layers[l][target.slot] else { continue }
            let first = rows[i].first, n = rows[j - 1].first + rows[j - 1].count - first
            guard n > 0 else { continue }
            let r = adapter.rank
            var t = [Float](repeating: 0, count: n * r)                // (n, r) = x·Aᵀ
            x.withUnsafeBufferPointer { xs in pair.a.withUnsafeBufferPointer { a in pair.b.withUnsafeBufferPointer { b in
            t.withUnsafeMutableBufferPointer { tp in y.withUnsafeMutableBufferPointer { ys in
                guard let xs = xs.baseAddress, let a = a.baseAddress, let b = b.baseAddress,
                      let tp = tp.baseAddress, let ys = ys.baseAddress else { return }
                BLAS.matmulTransposedB(xs + first * pair.inFeatures, lda: pair.inFeatures, a, ldb: pair.inFeatures, tp, ldc: r,
                                       m: n, n: r, k: pair.inFeatures)
                BLAS.matmulTransposedB(tp, lda: r, b, ldb: r, ys + first * ldy + offset, ldc: ldy,
                                       m: n, n: pair.outFeatures, k: r, alpha: adapter.scale, beta: 1)
            } } } } }
        }
    }
}
