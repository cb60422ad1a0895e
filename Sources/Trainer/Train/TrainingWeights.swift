import ModelRuntime
/// Where an empty weight array points (never read: a model's arrays are never empty).
nonisolated(unsafe) private let emptyScalarStorage = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)

/// The frozen base weights in the training scalar type (for `Float` the model's own arrays,
/// shared without a copy), in the fused layout of `LlamaModel`: Q, K, V rows stacked, gate and
/// up rows stacked.
struct TrainingWeights<S: TrainingScalar>: Sendable {
    struct Layer: Sendable {
        var inputNorm: [S]        // (C)
        var qkv: [S]              // (QKV, C)
        var qkvBias: [S]?         // (QKV)
        var output: [S]           // (C, NH·HD)
        var postNorm: [S]         // (C)
        var gateUp: [S]           // (2·FFN, C)
        var down: [S]             // (C, FFN)
    }

    /// Pointers into one layer's weights, valid inside `withLayer`.
    struct LayerPointers {
        var inputNorm: UnsafePointer<S>
        var qkv: UnsafePointer<S>
        var qkvBias: UnsafePointer<S>?
        var output: UnsafePointer<S>
        var postNorm: UnsafePointer<S>
        var gateUp: UnsafePointer<S>
        var down: UnsafePointer<S>
    }

    let configuration: LlamaConfiguration
    let embedding: [S]            // (V, C)
    let layers: [Layer]
    let finalNorm: [S]            // (C)
    let lmHead: [S]               // (V, C)
    let inverseFrequencies: [S]   // (HD/2)

    init(_ model: LlamaModel) {
        configuration = model.configuration
        embedding = S.converting(model.embedding)
        layers = model.layers.map { l in
            Layer(inputNorm: S.converting(l.inputNorm), qkv: S.converting(l.qkv), qkvBias: l.qkvBias.map { S.converting($0) },
                  output: S.converting(l.output), postNorm: S.converting(l.postNorm), gateUp: S.converting(l.gateUp),
                  down: S.converting(l.down))
        }
        finalNorm = S.converting(model.finalNorm)
        lmHead = S.converting(model.lmHead)
        inverseFrequencies = S.converting(model.inverseFrequencies)
    }

    func withLayer<R>(_ l: Int, _ body: (LayerPointers) -> R) -> R {
        let w = layers[l]
        return w.inputNorm.withUnsafeBufferPointer { n1 in w.qkv.withUnsafeBufferPointer { qkv in
            w.output.withUnsafeBufferPointer { o in w.postNorm.withUnsafeBufferPointer { n2 in
            w.gateUp.withUnsafeBufferPointer { gu in w.down.withUnsafeBufferPointer { d in
                let fallback = UnsafePointer(emptyScalarStorage.assumingMemoryBound(to: S.self))
                func pointer(_ p: UnsafeBufferPointer<S>) -> UnsafePointer<S> { p.baseAddress ?? fallback }
                if let bias = w.qkvBias {
                    return bias.withUnsafeBufferPointer { b in
                        body(LayerPointers(inputNorm: pointer(n1), qkv: pointer(qkv), qkvBias: b.baseAddress, output: pointer(o),
                                           postNorm: pointer(n2), gateUp: pointer(gu), down: pointer(d)))
                    }
                }
                return body(LayerPointers(inputNorm: pointer(n1), qkv: pointer(qkv), qkvBias: nil, output: pointer(o),
                                          postNorm: pointer(n2), gateUp: pointer(gu), down: pointer(d)))
            } } } } } }
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
