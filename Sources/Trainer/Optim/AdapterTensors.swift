import ModelRuntime
/// Walking the tensors of adapters that share one structure (weights, gradients, moments) in a
/// fixed order: layer, then target in `LoRATarget` order, then A before B.
extension LoRAAdapter {
    /// Every tensor's PEFT name with the tensor, in the fixed order.
    public var namedTensors: [(name: String, tensor: Tensor)] {
        var out: [(String, Tensor)] = []
        for (l, layer) in layers.enumerated() {
            for target in layer.keys.sorted() {
                guard let pair = layer[target] else { continue }
                out.append((Self.peftKey(layer: l, target: target, matrix: "A"), pair.a))
                out.append((Self.peftKey(layer: l, target: target, matrix: "B"), pair.b))
            }
        }
        return out
    }

    /// An adapter of the same configuration and shapes with every value zero (gradient
    /// accumulators, optimizer moments).
    public func zeros() -> LoRAAdapter {
        LoRAAdapter(configuration: configuration, layers: layers.map { layer in
            layer.mapValues { LoRAPair(a: Tensor(zeros: $0.a.shape), b: Tensor(zeros: $0.b.shape)) }
        })
    }

    /// Whether `other` has the same layers, targets and tensor shapes.
    public func hasSameShapes(as other: LoRAAdapter) -> Bool {
        guard layers.count == other.layers.count else { return false }
        for (mine, theirs) in zip(layers, other.layers) {
            guard Set(mine.keys) == Set(theirs.keys) else { return false }
            for (target, pair) in mine {
                guard let o = theirs[target], o.a.shape == pair.a.shape, o.b.shape == pair.b.shape else { return false }
            }
        }
        return true
    }

    /// (layer, target) of every pair, in the fixed order.
    public var slots: [(layer: Int, target: LoRATarget)] {
        layers.enumerated().flatMap { l, layer in layer.keys.sorted().map { (l, $0) } }
    }

    /// Runs `body` on the pair at (layer, target), taken out of the dictionary while it runs so its
    /// arrays are uniquely referenced and change in place.
    mutating func modifyPair(layer l: Int, target: LoRATarget, _ body: (inout LoRAPair) -> Void) {
        guard var pair = layers[l].removeValue(forKey: target) else { return }
        body(&pair)
        layers[l][target] = pair
    }
}
