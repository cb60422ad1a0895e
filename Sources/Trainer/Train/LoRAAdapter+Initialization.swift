import ModelRuntime
extension LoRAAdapter {
    /// A fresh adapter as PEFT initializes one: for every layer and target, `lora_A` [r, in]
    /// drawn from torch's `kaiming_uniform_(a=√5)`, i.e. uniform(−1/√in, 1/√in)
    /// (bound = √(6 / ((1 + a²)·in))), and `lora_B` [out, r] zeros, so the adapted model starts
    /// equal to the base model. Deterministic: A of (layer l, target t) comes from
    /// `SeedStream.derive(seed, l, index of t)`, so the values do not depend on which other
    /// targets are configured.
    /// - Throws: `TrainerError.unsupported` for a rank below 1 or a dropout outside [0, 1).
    public init(initializing configuration: LoRAConfiguration, for model: LlamaConfiguration, seed: UInt64) throws {
        guard configuration.rank >= 1 else {
            throw TrainerError.unsupported("LoRA rank \(configuration.rank) is not usable; choose r >= 1 (16 is usual)")
        }
        guard configuration.dropout >= 0, configuration.dropout < 1 else {
            throw TrainerError.unsupported("LoRA dropout \(configuration.dropout) is not usable; choose a probability in [0, 1)")
        }
        let r = configuration.rank
        var layers: [[LoRATarget: LoRAPair]] = []
        for l in 0..<model.numHiddenLayers {
            var pairs: [LoRATarget: LoRAPair] = [:]
            for target in configuration.targets {
                let (out, inFeatures) = target.shape(model)
                var stream = SeedStream.derive(seed, UInt64(l), UInt64(target.slot))
                let bound = 1 / Float(inFeatures).squareRoot()
                let a = (0..<(r * inFeatures)).map { _ in (2 * stream.nextUnitFloat() - 1) * bound }
                pairs[target] = LoRAPair(a: Tensor(unchecked: [r, inFeatures], a), b: Tensor(zeros: [out, r]))
            }
            layers.append(pairs)
        }
        self.init(configuration: configuration, layers: layers)
    }

    /// An adapter of the same configuration and shapes filled with zeros: a gradient buffer.
    public init(zerosLike other: LoRAAdapter) {
        self.init(configuration: other.configuration, layers: other.layers.map { pairs in
            pairs.mapValues { LoRAPair(a: Tensor(zeros: $0.a.shape), b: Tensor(zeros: $0.b.shape)) }
        })
    }
}

extension Tensor {
    /// A tensor whose element count is known to match its shape by construction.
    init(unchecked shape: [Int], _ data: [Float]) {
        self.init(zeros: [])
        self.shape = shape
        self.data = data
    }
}
