import ModelRuntime
/// Where an empty weight array points (never read: a model's arrays are never empty).
nonisolated(unsafe) private let emptyScalarStorage = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)

/// The frozen base weights, in the fused layout of `LlamaModel` (Q, K, V rows stacked, gate and
/// up rows stacked). For `Float` the matrices are the model's own `StoredTensor`s (shared, no
/// copy, in whatever type they are stored: fp32, bf16, Q8_0...); for `Double` (gradient checks)
/// they are expanded to fp64.
struct TrainingWeights<S: TrainingScalar>: Sendable {
    struct Layer: Sendable {
        var inputNorm: [S]              // (C)
        var qkv: FrozenMatrix<S>        // (QKV, C)
        var qkvBias: [S]?               // (QKV)
        var output: FrozenMatrix<S>     // (C, NH·HD)
        var postNorm: [S]               // (C)
        var gateUp: FrozenMatrix<S>     // (2·FFN, C)
        var down: FrozenMatrix<S>       // (C, FFN)
    }

    /// Pointers into one layer's vectors, valid inside `withLayer`; the matrices are `layer.qkv`...
    struct LayerPointers {
        var inputNorm: UnsafePointer<S>
        var qkvBias: UnsafePointer<S>?
        var postNorm: UnsafePointer<S>
        var layer: Layer
    }

    let configuration: LlamaConfiguration
    let embedding: FrozenMatrix<S>  // (V, C)
    let layers: [Layer]
    let finalNorm: [S]              // (C)
    let lmHead: FrozenMatrix<S>     // (V, C)
    let inverseFrequencies: [S]     // (HD/2)

    init(_ model: LlamaModel) {
        configuration = model.configuration
        let p = model.precision
        embedding = FrozenMatrix(model.embedding, precision: p)
        layers = model.layers.map { l in
            Layer(inputNorm: S.converting(l.inputNorm), qkv: FrozenMatrix(l.qkv, precision: p), qkvBias: l.qkvBias.map { S.converting($0) },
                  output: FrozenMatrix(l.output, precision: p), postNorm: S.converting(l.postNorm),
                  gateUp: FrozenMatrix(l.gateUp, precision: p), down: FrozenMatrix(l.down, precision: p))
        }
        finalNorm = S.converting(model.finalNorm)
        lmHead = model.tiedHead ? embedding : FrozenMatrix(model.lmHead, precision: p)
        inverseFrequencies = S.converting(model.inverseFrequencies)
    }

    func withLayer<R>(_ l: Int, _ body: (LayerPointers) -> R) -> R {
        let w = layers[l]
        return w.inputNorm.withUnsafeBufferPointer { n1 in w.postNorm.withUnsafeBufferPointer { n2 in
            let fallback = UnsafePointer(emptyScalarStorage.assumingMemoryBound(to: S.self))
            func pointer(_ p: UnsafeBufferPointer<S>) -> UnsafePointer<S> { p.baseAddress ?? fallback }
            if let bias = w.qkvBias {
                return bias.withUnsafeBufferPointer { b in
                    body(LayerPointers(inputNorm: pointer(n1), qkvBias: b.baseAddress, postNorm: pointer(n2), layer: w))
                }
            }
            return body(LayerPointers(inputNorm: pointer(n1), qkvBias: nil, postNorm: pointer(n2), layer: w))
        } }
    }
}

/// One frozen matrix W (N, K) and its two products in the training scalar type: for `Float` the
/// stored tensor's own kernels (`StoredTensor.multiply`, dequantizing tiles of compact types),
/// for `Double` a dense fp64 copy through dgemm.
struct FrozenMatrix<S: TrainingScalar>: Sendable {
    let rows: Int
    let columns: Int
    /// The model's tensor when S is Float.
    private let stored: StoredTensor?
    /// The fp64 expansion when S is Double.
    private let dense: [S]
    /// The arithmetic of the Float products (the Double ones are exact).
    private let precision: ComputePrecision

    init(_ tensor: StoredTensor, precision: ComputePrecision) {
        self.precision = precision
        rows = tensor.rows
        columns = tensor.columns
        if S.self == Float.self {
            stored = tensor
            dense = []
        } else {
            stored = nil
            dense = S.converting(tensor.dequantized().data)
        }
    }

    /// y (T, N) = x (T, K) · Wᵀ, plus y itself when `accumulate` (a residual added in place).
    func forward(_ x: UnsafePointer<S>, rows T: Int, into y: UnsafeMutablePointer<S>, accumulate: Bool) {
        if let stored {
            // S is Float here (see init): the pointers are reinterpreted, not converted.
            stored.multiply(UnsafeRawPointer(x).assumingMemoryBound(to: Float.self), rows: T,
                            into: UnsafeMutableRawPointer(y).assumingMemoryBound(to: Float.self), ldy: rows, beta: accumulate ? 1 : 0,
                            precision: precision)
            return
        }
        dense.withUnsafeBufferPointer { w in
            guard let w = w.baseAddress else { return }
            S.gemm(transA: false, transB: true, m: T, n: rows, k: columns, alpha: 1, x, lda: columns, w, ldb: columns,
                   beta: accumulate ? 1 : 0, y, ldc: rows)
        }
    }

    /// dx (T, K) = dy (T, lddy) · W, overwriting dx: the input gradient of `forward`.
    func backward(_ dy: UnsafePointer<S>, rows T: Int, lddy: Int, into dx: UnsafeMutablePointer<S>) {
        if let stored {
            stored.multiplyTransposed(UnsafeRawPointer(dy).assumingMemoryBound(to: Float.self), rows: T, lddy: lddy,
                                      into: UnsafeMutableRawPointer(dx).assumingMemoryBound(to: Float.self), precision: precision)
            return
        }
        dense.withUnsafeBufferPointer { w in
            guard let w = w.baseAddress else { return }
            S.gemm(transA: false, transB: false, m: T, n: columns, k: rows, alpha: 1, dy, lda: lddy, w, ldb: columns,
                   beta: 0, dx, ldc: columns)
        }
    }

    /// Row `r` (an embedding) into `out` (K values).
    func copyRow(_ r: Int, into out: UnsafeMutablePointer<S>) {
        if let stored {
            stored.copyRow(r, into: UnsafeMutableRawPointer(out).assumingMemoryBound(to: Float.self))
            return
        }
        dense.withUnsafeBufferPointer { w in
            guard let w = w.baseAddress else { return }
            out.update(from: w + r * columns, count: columns)
        }
    }
}

/// LoRA matrices (or their gradients) in the training scalar type, indexed by layer and slot
/// (`LoRATarget.slot`): a[l][slot] (r, in), b[l][slot] (out, r), empty for targets not adapted.
struct LoRAParameters<S: TrainingScalar>: Sendable {
    var rank: Int
    var scale: S
    var dropout: Float
    /// The adapted slots, ascending.
    var slots: [Int]
    var a: [[[S]]]
    var b: [[[S]]]

    /// Converts `adapter` after checking it fits the model.
    /// - Throws: `TrainerError` naming the layer and target whose matrices are missing or mis-shaped.
    init(_ adapter: LoRAAdapter, for c: LlamaConfiguration) throws {
        let cfg = adapter.configuration
        guard cfg.rank >= 1, cfg.dropout >= 0, cfg.dropout < 1 else {
            throw TrainerError.unsupported("LoRA rank \(cfg.rank) and dropout \(cfg.dropout) are not usable; choose r >= 1 and dropout in [0, 1)")
        }
        guard adapter.layers.count == c.numHiddenLayers else {
            throw TrainerError.unsupported("the adapter has \(adapter.layers.count) layers, the model \(c.numHiddenLayers); it was made for another model")
        }
        rank = cfg.rank
        scale = S(cfg.scale)
        dropout = cfg.dropout
        slots = Set(cfg.targets).map(\.slot).sorted()
        let empty = [[S]](repeating: [], count: LoRATarget.allCases.count)
        a = Array(repeating: empty, count: c.numHiddenLayers)
        b = a
        for (l, pairs) in adapter.layers.enumerated() {
            guard Set(pairs.keys) == Set(cfg.targets) else {
                throw TrainerError.unsupported("layer \(l) of the adapter adapts \(pairs.keys.sorted().map(\.moduleName)), its configuration says \(cfg.targets.map(\.moduleName))")
            }
            for (target, pair) in pairs {
                let (out, inFeatures) = target.shape(c)
                guard pair.a.shape == [cfg.rank, inFeatures], pair.a.count == cfg.rank * inFeatures else {
                    throw TrainerError.shapeMismatch(tensor: LoRAAdapter.peftKey(layer: l, target: target, matrix: "A"),
                                                     expected: [cfg.rank, inFeatures], found: pair.a.shape)
                }
                guard pair.b.shape == [out, cfg.rank], pair.b.count == out * cfg.rank else {
                    throw TrainerError.shapeMismatch(tensor: LoRAAdapter.peftKey(layer: l, target: target, matrix: "B"),
                                                     expected: [out, cfg.rank], found: pair.b.shape)
                }
                a[l][target.slot] = S.converting(pair.a.data)
                b[l][target.slot] = S.converting(pair.b.data)
            }
        }
    }

    /// The same shapes, all zeros.
    init(zerosLike other: LoRAParameters<S>) {
        rank = other.rank
        scale = other.scale
        dropout = other.dropout
        slots = other.slots
        a = other.a.map { $0.map { [S](repeating: 0, count: $0.count) } }
        b = other.b.map { $0.map { [S](repeating: 0, count: $0.count) } }
    }

    /// Number of scalars in all matrices.
    var count: Int { a.joined().map(\.count).reduce(0, +) + b.joined().map(\.count).reduce(0, +) }
}

extension LoRAParameters where S == Float {
    /// Adds these values (gradients) into the matching tensors of `adapter`.
    func add(into adapter: inout LoRAAdapter) {
        for l in adapter.layers.indices {
            for target in adapter.configuration.targets {
                guard var pair = adapter.layers[l][target] else { continue }
                let ga = a[l][target.slot], gb = b[l][target.slot]
                if ga.count == pair.a.count { for i in ga.indices { pair.a.data[i] += ga[i] } }
                if gb.count == pair.b.count { for i in gb.indices { pair.b.data[i] += gb[i] } }
                adapter.layers[l][target] = pair
            }
        }
    }
}
