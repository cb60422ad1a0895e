import Foundation

extension LoRAMerge {
    /// llama.cpp's name of a Hugging Face tensor (the inverse of `GGUFFile.huggingFaceName`).
    static func ggufName(_ hf: String) -> String? {
        switch hf {
        case "model.embed_tokens.weight": return "token_embd.weight"
        case "model.norm.weight": return "output_norm.weight"
        case "lm_head.weight": return "output.weight"
        default: break
        }
        let parts = hf.split(separator: ".")
        guard parts.count >= 5, parts[0] == "model", parts[1] == "layers", let l = Int(parts[2]) else { return nil }
        let module = parts[3..<(parts.count - 1)].joined(separator: ".")
        let names = ["self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                     "self_attn.o_proj": "attn_output", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
                     "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"]
        guard let name = names[module] else { return nil }
        return "blk.\(l).\(name).\(parts[parts.count - 1])"
    }

    /// The GGUF metadata llama.cpp needs for a model of configuration `c` with the tokenizer of
    /// the Hugging Face folder `folder` (what llama.cpp's `convert_hf_to_gguf.py` writes for
    /// Llama and Qwen2): the architecture's sizes, RoPE, and the byte-level BPE tokenizer (tokens
    /// by id padded to the vocabulary size, types, merges in rank order, the pre-tokenizer's
    /// name, special-token ids, whether BOS is added) and the chat template.
    /// - Throws: `ModelError` when the folder's tokenizer is not one corpus reads.
    static func ggufMetadata(_ c: LlamaConfiguration, folder: String, name: String) throws -> [(key: String, value: GGUFValue)] {
        let files = try ModelFiles(path: folder)
        let tokenizer = try files.tokenizer()
        let arch = LoRAAdapter.ggufArchitecture(c)
        // GGUF keeps these sizes as uint32; config.json may say anything (max_position_embeddings
        // is checked by nothing else), so a value that does not fit is an error, not a trap.
        func u32(_ value: Int, _ key: String) throws -> GGUFValue {
            guard let v = UInt32(exactly: value) else {
                throw ModelError.invalidFile(path: URL(fileURLWithPath: folder).appendingPathComponent("config.json").path,
                                             detail: "\(key) is \(value), which a GGUF file cannot hold (0 to \(UInt32.max)); correct config.json")
            }
            return .uint32(v)
        }
        var out: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string(arch)), ("general.name", .string(name)),
            ("\(arch).context_length", try u32(c.maxPositionEmbeddings, "max_position_embeddings")),
            ("\(arch).embedding_length", try u32(c.hiddenSize, "hidden_size")),
            ("\(arch).block_count", try u32(c.numHiddenLayers, "num_hidden_layers")),
            ("\(arch).feed_forward_length", try u32(c.intermediateSize, "intermediate_size")),
            ("\(arch).attention.head_count", try u32(c.numAttentionHeads, "num_attention_heads")),
            ("\(arch).attention.head_count_kv", try u32(c.numKeyValueHeads, "num_key_value_heads")),
            ("\(arch).attention.key_length", try u32(c.headDim, "head_dim")),
            ("\(arch).attention.value_length", try u32(c.headDim, "head_dim")),
            ("\(arch).attention.layer_norm_rms_epsilon", .float32(c.rmsNormEps)),
            ("\(arch).rope.freq_base", .float32(c.ropeTheta)),
            ("\(arch).rope.dimension_count", try u32(c.headDim, "head_dim")),
            ("\(arch).vocab_size", try u32(c.vocabSize, "vocab_size")),
        ]
        // Tokens by id; ids the tokenizer leaves unused (and those up to the embedding's rows) are
        // named [PAD<id>] of type unused, as llama.cpp's converter names them.
        var tokens = tokenizer.tokens
        if tokens.count < c.vocabSize { tokens += [String](repeating: "", count: c.vocabSize - tokens.count) }
        var types = [GGUFValue](repeating: .int32(1), count: tokens.count)
        for i in tokens.indices where tokens[i].isEmpty {
            tokens[i] = "[PAD\(i)]"
            types[i] = .int32(5)
        }
        for id in tokenizer.specialIDs where id < types.count { types[id] = .int32(3) }
        for special in tokenizer.specials where !tokenizer.specialIDs.contains(special.id) && special.id < types.count { types[special.id] = .int32(4) }
        let merges = tokenizer.merges.sorted { $0.value.rank < $1.value.rank }.map { key, _ in
            tokenizer.tokens[Int(key >> 32)] + " " + tokenizer.tokens[Int(key & 0xFFFF_FFFF)]
        }
        let pre: String
        switch tokenizer.preTokenizer {
        case .gpt2: pre = "gpt2"
        case .smollm: pre = "smollm"
        case .llama3: pre = "llama-bpe"
        case .qwen2: pre = "qwen2"
        }
        out += [
            ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string(pre)),
            ("tokenizer.ggml.tokens", .array(tokens.map { .string($0) })),
            ("tokenizer.ggml.token_type", .array(types)),
            ("tokenizer.ggml.merges", .array(merges.map { .string($0) })),
        ]
        if let bos = tokenizer.bosID ?? c.bosTokenId { out.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(bos)))) }
        if let eos = tokenizer.eosID ?? c.eosTokenIds.first { out.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(eos)))) }
        // BOS is added when the folder's tokenizer adds it (Llama 3's post-processor).
        out.append(("tokenizer.ggml.add_bos_token", .bool(Self.postProcessorAddsBOS(folder: folder))))
        if let template = files.chatTemplate { out.append(("tokenizer.chat_template", .string(template))) }
        return out
    }

    /// True when tokenizer.json's post-processor puts a special token before every text
    /// (`TemplateProcessing`, alone or in a `Sequence`): Llama 3's BOS.
    static func postProcessorAddsBOS(folder: String) -> Bool {
        let path = URL(fileURLWithPath: folder).appendingPathComponent("tokenizer.json").path
        guard let data = FileManager.default.contents(atPath: path),
              let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let post = json["post_processor"] as? [String: Any] else { return false }
        func adds(_ p: [String: Any]) -> Bool {
            if p["type"] as? String == "Sequence" { return (p["processors"] as? [[String: Any]] ?? []).contains(where: adds) }
            guard p["type"] as? String == "TemplateProcessing", let single = p["single"] as? [[String: Any]] else { return false }
            return single.first?["SpecialToken"] != nil
        }
        return adds(post)
    }

    /// Merges `adapter` into the Hugging Face folder at `folder` and writes one GGUF file, as
    /// `writeMergedGGUF(adapter:base:type:to:metadata:)` does from a GGUF base: the metadata built
    /// by `ggufMetadata`, the tensors under llama.cpp's names (Q and K rows in its order for the
    /// `llama` architecture), Llama 3's RoPE scaling as llama.cpp's `rope_freqs.weight`.
    /// - Throws: `ModelError` for a type we cannot write, an adapter that does not fit, or a
    ///   folder whose model or tokenizer corpus does not read.
    @discardableResult
    public static func writeMergedGGUF(adapter: LoRAAdapter, folder: String, type: GGMLType, to url: URL,
                                       metadata extra: [(key: String, value: GGUFValue)]) throws -> GGUFMergeReport {
        guard ggufTypes.contains(type) else {
            throw ModelError.unsupported("a merged GGUF is written as \(ggufTypes.map(\.name).joined(separator: ", ")), not \(type.name)")
        }
        let loaded = try ModelLoader.load(path: folder)
        let c = loaded.configuration
        let merged = try merge(adapter, into: loaded.weights, configuration: c)
        let changed = Set(adapter.layers.enumerated().flatMap { l, layer in layer.keys.map { "model.layers.\(l).\($0.modulePath).weight" } })
        let arch = LoRAAdapter.ggufArchitecture(c)
        var writer = GGUFWriter()
        writer.metadata = try ggufMetadata(c, folder: folder, name: URL(fileURLWithPath: folder).standardizedFileURL.lastPathComponent)
        writer.metadata.append(("general.file_type", .uint32(fileType(type))))
        writer.metadata += extra
        var otherType: [String: GGMLType] = [:]
        var mergedNames: [String] = []
        // Llama 3 scaling: llama.cpp divides the frequencies by the factors it reads from a tensor.
        if let scaling = c.ropeScaling, scaling.ropeType == "llama3" {
            let scaled = LlamaModel.inverseFrequencies(c, factors: nil)
            let factors = (0..<(c.headDim / 2)).map { i in 1 / pow(c.ropeTheta, Float(2 * i) / Float(c.headDim)) / scaled[i] }
            writer.tensors.append(encoded(factors, name: "rope_freqs.weight", dimensions: [c.headDim / 2], type: .f32))
        }
        let order = merged.keys.sorted { a, b in
            let (ka, kb) = (ggufName(a) ?? a, ggufName(b) ?? b)
            return (ka.hasPrefix("blk.") ? 1 : 0, ka) < (kb.hasPrefix("blk.") ? 1 : 0, kb)
        }
        for hf in order where hf != LlamaModel.ropeFactorsName {
            guard let name = ggufName(hf), let tensor = merged[hf] else {
                throw ModelError.unsupported("\(folder): tensor \(hf) has no llama.cpp name")
            }
            var values = tensor.dequantized().data
            let rows = tensor.shape[0], columns = tensor.count / max(rows, 1)
            if arch == "llama" && (hf.contains(".self_attn.q_proj.") || hf.contains(".self_attn.k_proj.")) {
                values = try LoRAAdapter.permuteRows(values, rows: rows, columns: columns,
                                                     heads: hf.contains(".q_proj.") ? c.numAttentionHeads : c.numKeyValueHeads, name: hf)
            }
            let dimensions = Array(tensor.shape.reversed())
            let outType = outputType(type, dimensions: dimensions)
            if outType != (dimensions.count == 2 ? type : .f32) { otherType[name] = outType }
            writer.tensors.append(encoded(values, name: name, dimensions: dimensions, type: outType))
            if changed.contains(hf) { mergedNames.append(name) }
        }
        return try write(writer, to: url, type: type, merged: mergedNames, otherType: otherType)
    }
}
