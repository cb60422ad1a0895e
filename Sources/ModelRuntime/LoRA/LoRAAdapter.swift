/// The projections of a Llama block that LoRA can adapt, named as PEFT's `target_modules`.
public enum LoRATarget: String, CaseIterable, Sendable, Codable, Comparable {
    case q, k, v, o, gate, up, down

    /// PEFT's module name ("q_proj", ..., "down_proj").
    public var moduleName: String { rawValue + "_proj" }

    /// The module path inside a Hugging Face Llama block: "self_attn.q_proj" or "mlp.gate_proj".
    public var modulePath: String {
        switch self {
        case .q, .k, .v, .o: return "self_attn." + moduleName
        case .gate, .up, .down: return "mlp." + moduleName
        }
    }

    /// Parses "q", "q_proj", "gate" or "gate_proj".
    public init?(name: String) {
        let bare = name.hasSuffix("_proj") ? String(name.dropLast(5)) : name
        self.init(rawValue: bare)
    }

    /// (out, in) of this projection's weight for a model configuration.
    public func shape(_ c: LlamaConfiguration) -> (out: Int, in: Int) {
        let C = c.hiddenSize, HD = c.headDim
        switch self {
        case .q: return (c.numAttentionHeads * HD, C)
        case .k, .v: return (c.numKeyValueHeads * HD, C)
        case .o: return (C, c.numAttentionHeads * HD)
        case .gate, .up: return (c.intermediateSize, C)
        case .down: return (C, c.intermediateSize)
        }
    }

    public static func < (a: LoRATarget, b: LoRATarget) -> Bool {
        a.slot < b.slot
    }

    /// Position in PEFT's usual order q, k, v, o, gate, up, down (0 … 6): the order adapters
    /// list their targets in, the slot of a projection in the training code's per-layer tables,
    /// and the sub-stream id of its random numbers.
    package var slot: Int {
        switch self {
        case .q: return 0
        case .k: return 1
        case .v: return 2
        case .o: return 3
        case .gate: return 4
        case .up: return 5
        case .down: return 6
        }
    }
}

/// LoRA hyper-parameters exactly as PEFT's `LoraConfig` defines them.
public struct LoRAConfiguration: Sendable, Equatable, Codable {
    /// r: the rank of A (r, in) and B (out, r).
    public var rank: Int
    /// lora_alpha.
    public var alpha: Float
    /// lora_dropout: probability of zeroing an element of the input of A during training.
    public var dropout: Float
    /// use_rslora: scale alpha/√r instead of alpha/r.
    public var useRSLoRA: Bool
    /// The adapted projections, in `LoRATarget` order.
    public var targets: [LoRATarget]

    public init(rank: Int = 16, alpha: Float = 32, dropout: Float = 0, useRSLoRA: Bool = false,
                targets: [LoRATarget] = LoRATarget.allCases) {
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        self.useRSLoRA = useRSLoRA
        self.targets = targets.sorted()
    }

    /// s in y = Wx + s·B(A·x): alpha/r, or alpha/√r with rsLoRA. Computed in double precision
    /// and rounded once, as PEFT's Python `lora_alpha / math.sqrt(r)` reaches an fp32 kernel
    /// (alpha 3, r 2: 2.1213202, where fp32 arithmetic gives 2.1213205).
    public var scale: Float {
        let r = Double(rank)
        return Float(Double(alpha) / (useRSLoRA ? r.squareRoot() : r))
    }
}

/// One adapted projection: y = Wx + s·B(A·x).
public struct LoRAPair: Sendable, Equatable {
    /// lora_A.weight, shape [r, in].
    public var a: Tensor
    /// lora_B.weight, shape [out, r].
    public var b: Tensor

    public init(a: Tensor, b: Tensor) {
        self.a = a
        self.b = b
    }
}

/// A whole adapter: for every layer, the pairs of the configured targets.
public struct LoRAAdapter: Sendable, Equatable {
    public var configuration: LoRAConfiguration
    /// layers[l][target]; every layer has exactly `configuration.targets`.
    public var layers: [[LoRATarget: LoRAPair]]

    public init(configuration: LoRAConfiguration, layers: [[LoRATarget: LoRAPair]]) {
        self.configuration = configuration
        self.layers = layers
    }

    /// PEFT's tensor name for a pair's matrix, e.g.
    /// "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight".
    public static func peftKey(layer: Int, target: LoRATarget, matrix: String) -> String {
        "base_model.model.model.layers.\(layer).\(target.modulePath).lora_\(matrix).weight"
    }
}
