/// RoPE scaling as Hugging Face's `rope_scaling` describes it. Only `llama3` changes the
/// frequencies here; `default`/absent means plain RoPE.
public struct RopeScaling: Codable, Sendable, Equatable {
    public var ropeType: String                       // "rope_type" (or legacy "type")
    public var factor: Float                          // "factor"
    public var lowFreqFactor: Float?                  // "low_freq_factor"
    public var highFreqFactor: Float?                 // "high_freq_factor"
    public var originalMaxPositionEmbeddings: Int?    // "original_max_position_embeddings"

    public init(ropeType: String, factor: Float, lowFreqFactor: Float? = nil,
                highFreqFactor: Float? = nil, originalMaxPositionEmbeddings: Int? = nil) {
        self.ropeType = ropeType
        self.factor = factor
        self.lowFreqFactor = lowFreqFactor
        self.highFreqFactor = highFreqFactor
        self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
    }
}

/// The hyper-parameters of a Llama-family decoder (Llama 2/3, Qwen2/2.5, Mistral, SmolLM2),
/// with Hugging Face `config.json` names. Built from `config.json` (decoding lives in
/// `LlamaConfiguration+JSON.swift`) or from GGUF metadata (the GGUF loader).
public struct LlamaConfiguration: Sendable, Equatable {
    /// "llama", "qwen2" or "mistral" (`model_type` in config.json, `general.architecture` in GGUF).
    public var modelType: String
    public var hiddenSize: Int              // hidden_size            (C)
    public var intermediateSize: Int        // intermediate_size      (FFN)
    public var numHiddenLayers: Int         // num_hidden_layers      (L)
    public var numAttentionHeads: Int       // num_attention_heads    (NH)
    public var numKeyValueHeads: Int        // num_key_value_heads    (NKV)
    public var headDim: Int                 // head_dim, default hidden_size / num_attention_heads (HD)
    public var vocabSize: Int               // vocab_size             (V)
    public var rmsNormEps: Float            // rms_norm_eps
    public var ropeTheta: Float             // rope_theta
    public var ropeScaling: RopeScaling?    // rope_scaling
    public var maxPositionEmbeddings: Int   // max_position_embeddings
    public var tieWordEmbeddings: Bool      // tie_word_embeddings
    /// q/k/v projections carry a bias (Qwen2); `attention_bias` in config.json, implied by qwen2.
    public var attentionBias: Bool
    public var bosTokenId: Int?             // bos_token_id
    public var eosTokenIds: [Int]           // eos_token_id (int or list)

    public init(modelType: String, hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int,
                numAttentionHeads: Int, numKeyValueHeads: Int, headDim: Int? = nil, vocabSize: Int,
                rmsNormEps: Float, ropeTheta: Float, ropeScaling: RopeScaling? = nil,
                maxPositionEmbeddings: Int, tieWordEmbeddings: Bool, attentionBias: Bool = false,
                bosTokenId: Int? = nil, eosTokenIds: [Int] = []) {
        self.modelType = modelType
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads
        self.headDim = headDim ?? (hiddenSize / max(numAttentionHeads, 1))
        self.vocabSize = vocabSize
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.tieWordEmbeddings = tieWordEmbeddings
        self.attentionBias = attentionBias
        self.bosTokenId = bosTokenId
        self.eosTokenIds = eosTokenIds
    }
}
