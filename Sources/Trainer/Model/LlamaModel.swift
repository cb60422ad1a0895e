import Foundation

/// The Llama-family decoder (Llama 2/3, SmolLM2, Mistral, Qwen2 with q/k/v bias) in fp32, with an
/// explicit forward function per layer in the style of llm.c; every matrix product goes through
/// `cblas_sgemm`.
///
/// Dimension letters: T = time (tokens of a sequence), C = channels (hidden size), NH = query
/// heads, NKV = key/value heads, HD = head dimension, QKV = (NH + 2·NKV)·HD, FFN = intermediate
/// size, V = vocabulary, L = layers.
public final class LlamaModel: @unchecked Sendable {
    // @unchecked: the weights are immutable after init; forward passes only read them.
    public let configuration: LlamaConfiguration

    struct Layer {
        var inputNorm: [Float]        // (C)            input_layernorm.weight
        var qkv: [Float]              // (QKV, C)       q_proj, k_proj, v_proj rows stacked: one sgemm
        var qkvBias: [Float]?         // (QKV)          Qwen2 only
        var output: [Float]           // (C, NH·HD)     o_proj.weight
        var postNorm: [Float]         // (C)            post_attention_layernorm.weight
        var gateUp: [Float]           // (2·FFN, C)     gate_proj and up_proj rows stacked
        var down: [Float]             // (C, FFN)       down_proj.weight
    }

    let embedding: [Float]            // (V, C)         model.embed_tokens.weight
    let layers: [Layer]
    let finalNorm: [Float]            // (C)            model.norm.weight
    let lmHead: [Float]               // (V, C)         lm_head.weight, or the embedding when tied
    /// RoPE inverse frequencies, (HD/2).
    let inverseFrequencies: [Float]

    /// Builds the model from Hugging Face-named fp32 tensors.
    /// - Throws: `TrainerError` naming a missing, unexpected or mis-shaped tensor with both shapes.
    public init(configuration c: LlamaConfiguration, tensors: [String: Tensor]) throws {
        configuration = c
        guard c.hiddenSize > 0, c.numAttentionHeads > 0, c.numKeyValueHeads > 0, c.headDim > 0, c.headDim % 2 == 0,
              c.intermediateSize > 0, c.vocabSize > 0, c.numHiddenLayers > 0,
              c.numAttentionHeads % c.numKeyValueHeads == 0 else {
            throw TrainerError.unsupported("configuration not usable: hidden \(c.hiddenSize), heads \(c.numAttentionHeads)/\(c.numKeyValueHeads), head_dim \(c.headDim), intermediate \(c.intermediateSize), vocab \(c.vocabSize), layers \(c.numHiddenLayers); every size must be positive, head_dim even and heads a multiple of key/value heads")
        }
        if let scaling = c.ropeScaling {
            throw TrainerError.unsupported("rope_scaling \(scaling.ropeType) (factor \(scaling.factor)) is not applied by this runtime yet; models without RoPE scaling work")
        }
        var used = Set<String>()
        func take(_ name: String, _ shape: [Int]) throws -> [Float] {
            guard let t = tensors[name] else {
                throw TrainerError.invalidFile(path: name, detail: "missing tensor; expected shape \(shape)")
            }
            guard t.shape == shape else { throw TrainerError.shapeMismatch(tensor: name, expected: shape, found: t.shape) }
            used.insert(name)
            return t.data
        }
        let C = c.hiddenSize, HD = c.headDim, NH = c.numAttentionHeads, NKV = c.numKeyValueHeads, FFN = c.intermediateSize
        embedding = try take("model.embed_tokens.weight", [c.vocabSize, C])
        var layers: [Layer] = []
        for l in 0..<c.numHiddenLayers {
            let p = "model.layers.\(l)."
            let q = try take(p + "self_attn.q_proj.weight", [NH * HD, C])
            let k = try take(p + "self_attn.k_proj.weight", [NKV * HD, C])
            let v = try take(p + "self_attn.v_proj.weight", [NKV * HD, C])
            var bias: [Float]?
            if c.attentionBias {
                bias = try take(p + "self_attn.q_proj.bias", [NH * HD]) + take(p + "self_attn.k_proj.bias", [NKV * HD])
                    + take(p + "self_attn.v_proj.bias", [NKV * HD])
            }
            layers.append(Layer(
                inputNorm: try take(p + "input_layernorm.weight", [C]), qkv: q + k + v, qkvBias: bias,
                output: try take(p + "self_attn.o_proj.weight", [C, NH * HD]),
                postNorm: try take(p + "post_attention_layernorm.weight", [C]),
                gateUp: try take(p + "mlp.gate_proj.weight", [FFN, C]) + take(p + "mlp.up_proj.weight", [FFN, C]),
                down: try take(p + "mlp.down_proj.weight", [C, FFN])))
        }
        self.layers = layers
        finalNorm = try take("model.norm.weight", [C])
        if c.tieWordEmbeddings && tensors["lm_head.weight"] == nil {
            lmHead = embedding
        } else {
            lmHead = try take("lm_head.weight", [c.vocabSize, C])
        }
        let unused = Set(tensors.keys).subtracting(used).sorted()
        guard unused.isEmpty else {
            throw TrainerError.unsupported("unexpected tensors for a \(c.modelType) model: \(unused.prefix(5).joined(separator: ", "))\(unused.count > 5 ? " and \(unused.count - 5) more" : "")")
        }
        inverseFrequencies = (0..<(HD / 2)).map { i in 1 / pow(c.ropeTheta, Float(2 * i) / Float(HD)) }
    }

    /// Logits of every position of one sequence: (T, V) row-major.
    public func logits(_ ids: [Int]) throws -> [Float] {
        let cache = KVCache(configuration: configuration, capacity: ids.count)
        return try forward(ids, cache: cache, allLogits: true)
    }

    /// Runs `ids` after what `cache` already holds, appends their keys and values to it, and
    /// returns the logits of every new position (`allLogits`) or only of the last one: (T or 1, V).
    /// - Throws: `TrainerError` for an id outside the vocabulary or a full cache.
    public func forward(_ ids: [Int], cache: KVCache, allLogits: Bool) throws -> [Float] {
        let c = configuration
        let T = ids.count, C = c.hiddenSize, V = c.vocabSize
        guard T > 0 else { return [] }
        for id in ids where id < 0 || id >= V {
            throw TrainerError.unsupported("token id \(id) is outside the vocabulary (0..<\(V))")
        }
        guard cache.length + T <= cache.capacity else {
            throw TrainerError.unsupported("the sequence would be \(cache.length + T) tokens; this cache holds \(cache.capacity)")
        }
        var x = [Float](repeating: 0, count: T * C)                // (T, C) the residual stream
        for (t, id) in ids.enumerated() {
            for i in 0..<C { x[t * C + i] = embedding[id * C + i] }
        }
        for (l, layer) in layers.enumerated() { forward(layer, &x, T: T, cache: cache, layer: l) }
        cache.length += T
        let rows = allLogits ? T : 1
        let first = T - rows
        var h = [Float](repeating: 0, count: rows * C)             // (rows, C)
        Self.rmsNorm(Array(x[(first * C)...]), finalNorm, &h, T: rows, C: C, eps: c.rmsNormEps)
        var out = [Float](repeating: 0, count: rows * V)           // (rows, V)
        Self.linear(h, lmHead, &out, rows: rows, inFeatures: C, outFeatures: V)
        return out
    }

    /// One decoder block, in place on the residual stream x (T, C) of positions
    /// cache.length ..< cache.length + T.
    func forward(_ layer: Layer, _ x: inout [Float], T: Int, cache: KVCache, layer l: Int) {
        let c = configuration
        let C = c.hiddenSize, NH = c.numAttentionHeads, NKV = c.numKeyValueHeads, HD = c.headDim, FFN = c.intermediateSize
        let QKV = (NH + 2 * NKV) * HD, KV = NKV * HD
        var h = [Float](repeating: 0, count: T * C)                // (T, C)
        Self.rmsNorm(x, layer.inputNorm, &h, T: T, C: C, eps: c.rmsNormEps)
        var qkv = [Float](repeating: 0, count: T * QKV)            // (T, QKV)
        Self.linear(h, layer.qkv, &qkv, rows: T, inFeatures: C, outFeatures: QKV)
        if let bias = layer.qkvBias { for t in 0..<T { for j in 0..<QKV { qkv[t * QKV + j] += bias[j] } } }
        applyRoPE(&qkv, T: T, start: cache.length, heads: NH + NKV, stride: QKV)  // q and k heads come first
        for t in 0..<T {                                           // keys and values into the cache
            let row = (cache.length + t) * KV
            for j in 0..<KV {
                cache.keys[l][row + j] = qkv[t * QKV + NH * HD + j]
                cache.values[l][row + j] = qkv[t * QKV + (NH + NKV) * HD + j]
            }
        }
        var attention = [Float](repeating: 0, count: T * NH * HD)  // (T, NH·HD)
        Self.causalAttention(qkv, keys: cache.keys[l], values: cache.values[l], &attention, T: T, start: cache.length,
                             NH: NH, NKV: NKV, HD: HD)
        var projected = [Float](repeating: 0, count: T * C)        // (T, C)
        Self.linear(attention, layer.output, &projected, rows: T, inFeatures: NH * HD, outFeatures: C)
        for i in 0..<(T * C) { x[i] += projected[i] }

        Self.rmsNorm(x, layer.postNorm, &h, T: T, C: C, eps: c.rmsNormEps)
        var gateUp = [Float](repeating: 0, count: T * 2 * FFN)     // (T, 2·FFN)
        Self.linear(h, layer.gateUp, &gateUp, rows: T, inFeatures: C, outFeatures: 2 * FFN)
        var act = [Float](repeating: 0, count: T * FFN)            // (T, FFN) silu(gate)·up
        for t in 0..<T {
            for j in 0..<FFN {
                let g = gateUp[t * 2 * FFN + j], u = gateUp[t * 2 * FFN + FFN + j]
                act[t * FFN + j] = g / (1 + exp(-g)) * u
            }
        }
        Self.linear(act, layer.down, &projected, rows: T, inFeatures: FFN, outFeatures: C)
        for i in 0..<(T * C) { x[i] += projected[i] }
    }

    /// y = x · Wᵀ for W (out, in).
    static func linear(_ x: [Float], _ w: [Float], _ y: inout [Float], rows: Int, inFeatures: Int, outFeatures: Int) {
        x.withUnsafeBufferPointer { a in w.withUnsafeBufferPointer { b in y.withUnsafeMutableBufferPointer { o in
            guard let a = a.baseAddress, let b = b.baseAddress, let o = o.baseAddress else { return }
            BLAS.matmulTransposedB(a, lda: inFeatures, b, ldb: inFeatures, o, ldc: outFeatures, m: rows, n: outFeatures, k: inFeatures)
        } } }
    }

    /// RMSNorm over each row of x (T, C): y = x / sqrt(mean(x²) + eps) · w.
    static func rmsNorm(_ x: [Float], _ w: [Float], _ y: inout [Float], T: Int, C: Int, eps: Float) {
        for t in 0..<T {
            var sum: Float = 0
            for i in 0..<C { sum += x[t * C + i] * x[t * C + i] }
            let scale = 1 / (sum / Float(C) + eps).squareRoot()
            for i in 0..<C { y[t * C + i] = x[t * C + i] * scale * w[i] }
        }
    }

    /// Rotary embedding, "rotate half" on Hugging Face layout: within each head, element i pairs
    /// with i + HD/2 and turns by angle position · inverseFrequencies[i]. Applied to the first
    /// `heads` heads of every row (the query and key heads of the fused QKV row).
    func applyRoPE(_ qkv: inout [Float], T: Int, start: Int, heads: Int, stride: Int) {
        let HD = configuration.headDim, half = HD / 2
        for t in 0..<T {
            for i in 0..<half {
                let angle = Float(start + t) * inverseFrequencies[i]
                let cosA = cos(angle), sinA = sin(angle)
                for h in 0..<heads {
                    let base = t * stride + h * HD
                    let a = qkv[base + i], b = qkv[base + i + half]
                    qkv[base + i] = a * cosA - b * sinA
                    qkv[base + i + half] = b * cosA + a * sinA
                }
            }
        }
    }

    /// Grouped-query causal attention: query head h reads key/value head h / (NH / NKV). The T new
    /// queries (positions start ..< start + T) come from qkv (T, QKV); keys and values from the
    /// cache (start + T, NKV·HD). out (T, NH·HD). Scores and weighted values go through sgemm.
    static func causalAttention(_ qkv: [Float], keys: [Float], values: [Float], _ out: inout [Float], T: Int, start: Int,
                                NH: Int, NKV: Int, HD: Int) {
        let QKV = (NH + 2 * NKV) * HD, KV = NKV * HD
        let S = start + T                                          // keys visible to the last query
        let group = NH / NKV
        let scale = 1 / Float(HD).squareRoot()
        var scores = [Float](repeating: 0, count: T * S)           // (T, S) one head at a time
        qkv.withUnsafeBufferPointer { q in keys.withUnsafeBufferPointer { k in values.withUnsafeBufferPointer { v in
        out.withUnsafeMutableBufferPointer { dst in scores.withUnsafeMutableBufferPointer { s in
            guard let q = q.baseAddress, let k = k.baseAddress, let v = v.baseAddress,
                  let dst = dst.baseAddress, let s = s.baseAddress else { return }
            for h in 0..<NH {
                let kvh = h / group
                BLAS.matmulTransposedB(q + h * HD, lda: QKV, k + kvh * HD, ldb: KV, s, ldc: S, m: T, n: S, k: HD, alpha: scale)
                for t in 0..<T {
                    let row = s + t * S
                    let visible = start + t + 1
                    var maxScore = -Float.infinity
                    for u in 0..<visible { maxScore = max(maxScore, row[u]) }
                    var sum: Float = 0
                    for u in 0..<visible { row[u] = exp(row[u] - maxScore); sum += row[u] }
                    for u in 0..<visible { row[u] /= sum }
                    for u in visible..<S { row[u] = 0 }
                }
                BLAS.matmul(s, lda: S, v + kvh * HD, ldb: KV, dst + h * HD, ldc: NH * HD, m: T, n: HD, k: S)
            }
        } } } } }
    }
}

/// Keys and values of the positions already run, per layer, for incremental decoding.
public final class KVCache {
    public let capacity: Int
    /// Positions filled.
    public internal(set) var length = 0
    var keys: [[Float]]                                            // L × (capacity, NKV·HD), after RoPE
    var values: [[Float]]                                          // L × (capacity, NKV·HD)

    public init(configuration c: LlamaConfiguration, capacity: Int) {
        self.capacity = capacity
        let size = capacity * c.numKeyValueHeads * c.headDim
        keys = Array(repeating: [Float](repeating: 0, count: size), count: c.numHiddenLayers)
        values = keys
    }
}
