import CKernels
import Foundation

/// The Llama-family decoder (Llama 2/3, SmolLM2, Mistral, Qwen2 with q/k/v bias), with an
/// explicit forward function per layer in the style of llm.c. The matrices stay in their stored
/// types and every product goes through `StoredTensor.multiply` (OpenBLAS for fp32 weights, our
/// kernels otherwise); activations, norms and the KV cache are fp32.
///
/// Dimension letters: T = time (tokens of a sequence), C = channels (hidden size), NH = query
/// heads, NKV = key/value heads, HD = head dimension, QKV = (NH + 2·NKV)·HD, FFN = intermediate
/// size, V = vocabulary, L = layers.
public final class LlamaModel: @unchecked Sendable {
    // @unchecked: the weights are immutable after init; forward passes only read them.
    public let configuration: LlamaConfiguration

    package struct Layer: Sendable {
        package var inputNorm: [Float]        // (C)            input_layernorm.weight
        package var qkv: StoredTensor         // (QKV, C)       q_proj, k_proj, v_proj rows stacked: one product
        package var qkvBias: [Float]?         // (QKV)          Qwen2 only
        package var output: StoredTensor      // (C, NH·HD)     o_proj.weight
        package var postNorm: [Float]         // (C)            post_attention_layernorm.weight
        package var gateUp: StoredTensor      // (2·FFN, C)     gate_proj and up_proj rows stacked
        package var down: StoredTensor        // (C, FFN)       down_proj.weight
    }

    package let embedding: StoredTensor       // (V, C)         model.embed_tokens.weight
    package let layers: [Layer]
    package let finalNorm: [Float]            // (C)            model.norm.weight
    package let lmHead: StoredTensor          // (V, C)         lm_head.weight, or the embedding when tied
    /// RoPE inverse frequencies, (HD/2).
    package let inverseFrequencies: [Float]

    /// Bytes the weights take in memory (the tied head counted once).
    public var weightBytes: Int {
        let matrices = layers.reduce(0) { $0 + $1.qkv.byteCount + $1.output.byteCount + $1.gateUp.byteCount + $1.down.byteCount }
        let vectors = layers.reduce(0) { $0 + 4 * ($1.inputNorm.count + $1.postNorm.count + ($1.qkvBias?.count ?? 0)) }
        return matrices + vectors + embedding.byteCount + (tiedHead ? 0 : lmHead.byteCount) + 4 * finalNorm.count
    }
    /// True when the head is the embedding matrix itself.
    package let tiedHead: Bool
    /// The arithmetic of the products with the frozen matrices (`--compute`).
    public let precision: ComputePrecision

    /// Builds the model from Hugging Face-named fp32 tensors.
    /// - Throws: `ModelError` naming a missing, unexpected or mis-shaped tensor with both shapes.
    public convenience init(configuration c: LlamaConfiguration, tensors: [String: Tensor]) throws {
        try self.init(configuration: c, weights: tensors.mapValues { StoredTensor($0) })
    }

    /// Builds the model from Hugging Face-named tensors in their stored types (converting to a
    /// base type is the loader's job: `LoadedModel.weights(baseType:precision:)`). The projection
    /// and embedding matrices stay in that type; norms and biases become fp32.
    /// - Throws: `ModelError` naming a missing, unexpected or mis-shaped tensor with both shapes.
    public init(configuration c: LlamaConfiguration, weights tensors: [String: StoredTensor],
                precision: ComputePrecision = .f32) throws {
        configuration = c
        self.precision = precision
        guard c.hiddenSize > 0, c.numAttentionHeads > 0, c.numKeyValueHeads > 0, c.headDim > 0, c.headDim % 2 == 0,
              c.intermediateSize > 0, c.vocabSize > 0, c.numHiddenLayers > 0,
              c.numAttentionHeads % c.numKeyValueHeads == 0 else {
            throw ModelError.unsupported("configuration not usable: hidden \(c.hiddenSize), heads \(c.numAttentionHeads)/\(c.numKeyValueHeads), head_dim \(c.headDim), intermediate \(c.intermediateSize), vocab \(c.vocabSize), layers \(c.numHiddenLayers); every size must be positive, head_dim even and heads a multiple of key/value heads")
        }
        // rms_norm_eps and rope_theta arrive as Floats: 1e39 in a config.json is infinite here.
        guard c.rmsNormEps.isFinite, c.rmsNormEps >= 0, c.ropeTheta.isFinite, c.ropeTheta > 0 else {
            throw ModelError.unsupported("configuration not usable: rms_norm_eps \(c.rmsNormEps), rope_theta \(c.ropeTheta); both must be finite, rope_theta above 0")
        }
        if let scaling = c.ropeScaling, scaling.ropeType != "llama3" {
            throw ModelError.unsupported("rope_scaling \(scaling.ropeType) (factor \(scaling.factor)) is not supported; plain RoPE and llama3 scaling are")
        }
        var used = Set<String>()
        func stored(_ name: String, _ shape: [Int]) throws -> StoredTensor {
            guard let t = tensors[name] else {
                throw ModelError.invalidFile(path: name, detail: "missing tensor; expected shape \(shape)")
            }
            guard t.shape == shape else { throw ModelError.shapeMismatch(tensor: name, expected: shape, found: t.shape) }
            used.insert(name)
            return t
        }
        func take(_ name: String, _ shape: [Int]) throws -> [Float] { try stored(name, shape).dequantized().data }
        /// A matrix as stored; parts that are fused into one product share one type (mixed
        /// types, as some GGUF mixes have, become fp32: exact, at the cost of memory).
        func matrix(_ names: [String], _ shapes: [[Int]]) throws -> StoredTensor {
            var parts = try zip(names, shapes).map { try stored($0, $1) }
            if Set(parts.map(\.type)).count > 1 {
                parts = try zip(parts, names).map { try $0.converted(to: .f32, name: $1) }
            }
            return parts.count == 1 ? parts[0] : try StoredTensor.stacking(parts, names: names)
        }
        let C = c.hiddenSize, HD = c.headDim, NH = c.numAttentionHeads, NKV = c.numKeyValueHeads, FFN = c.intermediateSize
        embedding = try matrix(["model.embed_tokens.weight"], [[c.vocabSize, C]])
        var layers: [Layer] = []
        for l in 0..<c.numHiddenLayers {
            let p = "model.layers.\(l)."
            let qkv = try matrix([p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight"],
                                 [[NH * HD, C], [NKV * HD, C], [NKV * HD, C]])
            var bias: [Float]?
            if c.attentionBias {
                bias = try take(p + "self_attn.q_proj.bias", [NH * HD]) + take(p + "self_attn.k_proj.bias", [NKV * HD])
                    + take(p + "self_attn.v_proj.bias", [NKV * HD])
            }
            layers.append(Layer(
                inputNorm: try take(p + "input_layernorm.weight", [C]), qkv: qkv, qkvBias: bias,
                output: try matrix([p + "self_attn.o_proj.weight"], [[C, NH * HD]]),
                postNorm: try take(p + "post_attention_layernorm.weight", [C]),
                gateUp: try matrix([p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"], [[FFN, C], [FFN, C]]),
                down: try matrix([p + "mlp.down_proj.weight"], [[C, FFN]])))
        }
        self.layers = layers
        finalNorm = try take("model.norm.weight", [C])
        if c.tieWordEmbeddings && tensors["lm_head.weight"] == nil {
            lmHead = embedding
            tiedHead = true
        } else {
            lmHead = try matrix(["lm_head.weight"], [[c.vocabSize, C]])
            tiedHead = false
        }
        // GGUF files of Llama 3.1+ carry the scaled frequencies as divisors (llama.cpp's rope_freqs).
        let factors = tensors[Self.ropeFactorsName] == nil ? nil : try take(Self.ropeFactorsName, [HD / 2])
        let unused = Set(tensors.keys).subtracting(used).sorted()
        guard unused.isEmpty else {
            throw ModelError.unsupported("unexpected tensors for a \(c.modelType) model: \(unused.prefix(5).joined(separator: ", "))\(unused.count > 5 ? " and \(unused.count - 5) more" : "")")
        }
        inverseFrequencies = Self.inverseFrequencies(c, factors: factors)
    }

    /// Name under which the GGUF loader hands over `rope_freqs.weight`.
    public static let ropeFactorsName = "rope_freqs.weight"

    /// RoPE inverse frequencies θ^(-2i/HD), with Llama 3's scaling (Hugging Face's
    /// `_compute_llama3_parameters`): long wavelengths divided by `factor`, short ones kept, the
    /// band between interpolated. Or divided by GGUF's stored factors.
    static func inverseFrequencies(_ c: LlamaConfiguration, factors: [Float]?) -> [Float] {
        let HD = c.headDim
        var inv = (0..<(HD / 2)).map { i in 1 / pow(c.ropeTheta, Float(2 * i) / Float(HD)) }
        if let factors {
            for i in inv.indices { inv[i] /= factors[i] }
        } else if let s = c.ropeScaling, s.ropeType == "llama3" {
            let low = s.lowFreqFactor ?? 1, high = s.highFreqFactor ?? 4
            let old = Float(s.originalMaxPositionEmbeddings ?? 8192)
            let lowWavelength = old / low, highWavelength = old / high
            for i in inv.indices {
                let wavelength = 2 * Float.pi / inv[i]
                if wavelength > lowWavelength {
                    inv[i] /= s.factor
                } else if wavelength >= highWavelength {
                    let smooth = (old / wavelength - low) / (high - low)
                    inv[i] = (1 - smooth) * inv[i] / s.factor + smooth * inv[i]
                }
            }
        }
        return inv
    }

    /// Logits of every position of one sequence: (T, V) row-major.
    public func logits(_ ids: [Int], adapter: LoRAInference? = nil) throws -> [Float] {
        let cache = KVCache(configuration: configuration, capacity: ids.count)
        return try forward(batch: [(ids, cache, adapter)], allLogits: true).first ?? []
    }

    /// Runs `ids` after what `cache` already holds, appends their keys and values to it, and
    /// returns the logits of every new position (`allLogits`) or only of the last one: (T or 1, V).
    /// - Throws: `ModelError` for an id outside the vocabulary or a full cache.
    public func forward(_ ids: [Int], cache: KVCache, allLogits: Bool) throws -> [Float] {
        try forward(batch: [(ids, cache)], allLogits: allLogits).first ?? []
    }

    /// Runs several sequences of different lengths together, each after what its own cache
    /// holds: their tokens are stacked into one (N, C) matrix so every linear layer is one sgemm
    /// for the whole batch; attention runs per sequence over its own cache. Returns each
    /// sequence's logits, (T_i or 1, V).
    /// - Throws: `ModelError` for an id outside the vocabulary, a full cache, or a cache given twice.
    public func forward(batch: [(ids: [Int], cache: KVCache)], allLogits: Bool) throws -> [[Float]] {
        try forward(batch: batch.map { ($0.ids, $0.cache, nil) }, allLogits: allLogits)
    }

    /// `forward(batch:allLogits:)` where each sequence may run with its own LoRA adapter (nil:
    /// the base model): the base products are shared by all rows, and each adapted projection
    /// adds s·B(A·x) for the rows of the sequences that use an adapter (`LoRAInference`).
    /// Sequences with the same adapter placed next to each other share those products too.
    /// - Throws: as `forward(batch:allLogits:)`.
    public func forward(batch: [(ids: [Int], cache: KVCache, adapter: LoRAInference?)], allLogits: Bool) throws -> [[Float]] {
        let c = configuration
        let C = c.hiddenSize, V = c.vocabSize
        var rows: [BatchRows] = []
        var N = 0
        for (ids, cache, adapter) in batch {
            for id in ids where id < 0 || id >= V {
                throw ModelError.unsupported("token id \(id) is outside the vocabulary (0..<\(V))")
            }
            guard cache.length + ids.count <= cache.capacity else {
                throw ModelError.unsupported("the sequence would be \(cache.length + ids.count) tokens; this cache holds \(cache.capacity)")
            }
            guard !rows.contains(where: { $0.cache === cache }) else {
                throw ModelError.unsupported("a KV cache appears twice in one batch")
            }
            if let adapter, !rows.contains(where: { $0.adapter === adapter }), let problem = adapter.mismatch(c) {
                throw ModelError.unsupported("the adapter does not fit this model: \(problem)")
            }
            rows.append(BatchRows(first: N, count: ids.count, cache: cache, adapter: adapter))
            N += ids.count
        }
        guard N > 0 else { return batch.map { _ in [] } }
        var x = [Float](repeating: 0, count: N * C)                // (N, C) the residual stream
        var r = 0
        x.withUnsafeMutableBufferPointer { rowsOut in
            guard let base = rowsOut.baseAddress else { return }
            for (ids, _, _) in batch {
                for id in ids {
                    embedding.copyRow(id, into: base + r * C)
                    r += 1
                }
            }
        }
        for (l, layer) in layers.enumerated() { forward(layer, &x, rows: rows, N: N, layer: l) }
        for row in rows { row.cache.length += row.count }
        // The rows whose logits are wanted: all, or each sequence's last.
        let wanted = rows.flatMap { row -> [Int] in
            guard row.count > 0 else { return [] }
            return allLogits ? Array(row.first..<(row.first + row.count)) : [row.first + row.count - 1]
        }
        var selected = [Float](repeating: 0, count: wanted.count * C)
        for (j, r) in wanted.enumerated() { for i in 0..<C { selected[j * C + i] = x[r * C + i] } }
        var h = [Float](repeating: 0, count: wanted.count * C)     // (W, C)
        Self.rmsNorm(selected, finalNorm, &h, T: wanted.count, C: C, eps: c.rmsNormEps)
        var out = [Float](repeating: 0, count: wanted.count * V)   // (W, V)
        linear(h, lmHead, &out, rows: wanted.count, inFeatures: C, outFeatures: V)
        var result: [[Float]] = []
        var j = 0
        for row in rows {
            let n = row.count == 0 ? 0 : (allLogits ? row.count : 1)
            result.append(Array(out[(j * V)..<((j + n) * V)]))
            j += n
        }
        return result
    }

    /// Where one sequence's rows sit in the stacked batch.
    struct BatchRows {
        var first: Int
        var count: Int
        var cache: KVCache
        /// The LoRA adapter this sequence runs with (nil: the base model).
        var adapter: LoRAInference?
    }

    /// One decoder block, in place on the residual stream x (N, C) of a batch whose sequence i
    /// occupies rows[i] and continues at position rows[i].cache.length.
    func forward(_ layer: Layer, _ x: inout [Float], rows: [BatchRows], N: Int, layer l: Int) {
        let c = configuration
        let C = c.hiddenSize, NH = c.numAttentionHeads, NKV = c.numKeyValueHeads, HD = c.headDim, FFN = c.intermediateSize
        let QKV = (NH + 2 * NKV) * HD, KV = NKV * HD
        var h = [Float](repeating: 0, count: N * C)                // (N, C)
        Self.rmsNorm(x, layer.inputNorm, &h, T: N, C: C, eps: c.rmsNormEps)
        var qkv = [Float](repeating: 0, count: N * QKV)            // (N, QKV)
        linear(h, layer.qkv, &qkv, rows: N, inFeatures: C, outFeatures: QKV)
        if let bias = layer.qkvBias { for t in 0..<N { for j in 0..<QKV { qkv[t * QKV + j] += bias[j] } } }
        let adapted = rows.contains { $0.adapter != nil }
        if adapted {
            addLoRA(.q, layer: l, input: h, &qkv, ldy: QKV, offset: 0, rows: rows)
            addLoRA(.k, layer: l, input: h, &qkv, ldy: QKV, offset: NH * HD, rows: rows)
            addLoRA(.v, layer: l, input: h, &qkv, ldy: QKV, offset: (NH + NKV) * HD, rows: rows)
        }
        var attention = [Float](repeating: 0, count: N * NH * HD)  // (N, NH·HD)
        for row in rows where row.count > 0 {
            let cache = row.cache, start = cache.length
            applyRoPE(&qkv, firstRow: row.first, T: row.count, start: start, heads: NH + NKV, stride: QKV)  // q and k heads come first
            for t in 0..<row.count {                               // keys and values into the cache
                let dst = (start + t) * KV, src = (row.first + t) * QKV
                for j in 0..<KV {
                    cache.keys[l][dst + j] = qkv[src + NH * HD + j]
                    cache.values[l][dst + j] = qkv[src + (NH + NKV) * HD + j]
                }
            }
            Self.causalAttention(qkv, firstRow: row.first, keys: cache.keys[l], values: cache.values[l], &attention,
                                 T: row.count, start: start, NH: NH, NKV: NKV, HD: HD)
        }
        var projected = [Float](repeating: 0, count: N * C)        // (N, C)
        linear(attention, layer.output, &projected, rows: N, inFeatures: NH * HD, outFeatures: C)
        if adapted { addLoRA(.o, layer: l, input: attention, &projected, ldy: C, offset: 0, rows: rows) }
        for i in 0..<(N * C) { x[i] += projected[i] }

        Self.rmsNorm(x, layer.postNorm, &h, T: N, C: C, eps: c.rmsNormEps)
        var gateUp = [Float](repeating: 0, count: N * 2 * FFN)     // (N, 2·FFN)
        linear(h, layer.gateUp, &gateUp, rows: N, inFeatures: C, outFeatures: 2 * FFN)
        if adapted {
            addLoRA(.gate, layer: l, input: h, &gateUp, ldy: 2 * FFN, offset: 0, rows: rows)
            addLoRA(.up, layer: l, input: h, &gateUp, ldy: 2 * FFN, offset: FFN, rows: rows)
        }
        var act = [Float](repeating: 0, count: N * FFN)            // (N, FFN) silu(gate)·up
        for t in 0..<N {
            for j in 0..<FFN {
                let g = gateUp[t * 2 * FFN + j], u = gateUp[t * 2 * FFN + FFN + j]
                act[t * FFN + j] = g / (1 + exp(-g)) * u
            }
        }
        linear(act, layer.down, &projected, rows: N, inFeatures: FFN, outFeatures: C)
        if adapted { addLoRA(.down, layer: l, input: act, &projected, ldy: C, offset: 0, rows: rows) }
        for i in 0..<(N * C) { x[i] += projected[i] }
    }

    /// y = x · Wᵀ for W (out, in) in its stored type (`StoredTensor.multiply`: fp32 weights
    /// through sgemv, our small-batch kernel or sgemm; other types a dequantized tile at a time).
    func linear(_ x: [Float], _ w: StoredTensor, _ y: inout [Float], rows: Int, inFeatures: Int, outFeatures: Int) {
        x.withUnsafeBufferPointer { a in y.withUnsafeMutableBufferPointer { o in
            guard let a = a.baseAddress, let o = o.baseAddress else { return }
            w.multiply(a, rows: rows, into: o, ldy: outFeatures, precision: precision)
        } }
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
    func applyRoPE(_ qkv: inout [Float], firstRow: Int, T: Int, start: Int, heads: Int, stride: Int) {
        let HD = configuration.headDim, half = HD / 2
        for t in 0..<T {
            for i in 0..<half {
                let angle = Float(start + t) * inverseFrequencies[i]
                let cosA = cos(angle), sinA = sin(angle)
                for h in 0..<heads {
                    let base = (firstRow + t) * stride + h * HD
                    let a = qkv[base + i], b = qkv[base + i + half]
                    qkv[base + i] = a * cosA - b * sinA
                    qkv[base + i + half] = b * cosA + a * sinA
                }
            }
        }
    }

    /// Grouped-query causal attention: query head h reads key/value head h / (NH / NKV). The T new
    /// queries (positions start ..< start + T) come from qkv (T, QKV); keys and values from the
    /// cache (start + T, NKV·HD). out (T, NH·HD). Both from row `firstRow` of a stacked batch. Scores and weighted values go through sgemm.
    static func causalAttention(_ qkv: [Float], firstRow: Int, keys: [Float], values: [Float], _ out: inout [Float], T: Int, start: Int,
                                NH: Int, NKV: Int, HD: Int) {
        let QKV = (NH + 2 * NKV) * HD, KV = NKV * HD
        let S = start + T                                          // keys visible to the last query
        let group = NH / NKV
        let scale = 1 / Float(HD).squareRoot()
        if T <= 4 {
            // Decoding steps: a few queries, where the hundreds of tiny sgemm calls per token
            // would cost more in call overhead than the arithmetic itself.
            smallCausalAttention(qkv, firstRow: firstRow, keys: keys, values: values, &out, T: T, start: start, NH: NH, NKV: NKV, HD: HD)
            return
        }
        var scores = [Float](repeating: 0, count: T * S)           // (T, S) one head at a time
        qkv.withUnsafeBufferPointer { q in keys.withUnsafeBufferPointer { k in values.withUnsafeBufferPointer { v in
        out.withUnsafeMutableBufferPointer { dst in scores.withUnsafeMutableBufferPointer { s in
            guard let q0 = q.baseAddress, let k = k.baseAddress, let v = v.baseAddress,
                  let dst0 = dst.baseAddress, let s = s.baseAddress else { return }
            let q = q0 + firstRow * QKV, dst = dst0 + firstRow * NH * HD
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

extension LlamaModel {
    /// `causalAttention` for a few queries: one C call per query and head (vectorized dot
    /// products, softmax and weighted sum), no BLAS calls.
    static func smallCausalAttention(_ qkv: [Float], firstRow: Int, keys: [Float], values: [Float], _ out: inout [Float], T: Int,
                                     start: Int, NH: Int, NKV: Int, HD: Int) {
        let QKV = (NH + 2 * NKV) * HD, KV = NKV * HD
        let group = NH / NKV
        let scale = 1 / Float(HD).squareRoot()
        var scores = [Float](repeating: 0, count: start + T)
        qkv.withUnsafeBufferPointer { q in keys.withUnsafeBufferPointer { k in values.withUnsafeBufferPointer { v in
        out.withUnsafeMutableBufferPointer { dst in scores.withUnsafeMutableBufferPointer { s in
            guard let q = q.baseAddress, let k = k.baseAddress, let v = v.baseAddress,
                  let dst = dst.baseAddress, let s = s.baseAddress else { return }
            for t in 0..<T {
                for h in 0..<NH {
                    let kv = (h / group) * HD
                    ck_attend_one(q + (firstRow + t) * QKV + h * HD, k + kv, Int32(KV), v + kv, Int32(KV), Int32(start + t + 1),
                                  Int32(HD), scale, s, dst + (firstRow + t) * NH * HD + h * HD)
                }
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
