import Foundation

/// A minimal GGUF writer (version 3, little-endian), a copy of the one in TrainerTests without
/// the Trainer dependency: tensor types are ggml's numbers (0 F32, 1 F16, 8 Q8_0).
public struct GGUFBuilder {
    public var metadata: [(key: String, type: UInt32, value: [UInt8])] = []
    public var tensors: [(name: String, dims: [Int], type: UInt32, data: [UInt8])] = []

    public init() {}

    public mutating func add(string key: String, _ value: String) { metadata.append((key, 8, Self.string(value))) }
    public mutating func add(uint32 key: String, _ value: UInt32) { metadata.append((key, 4, Self.le(value))) }
    public mutating func add(float32 key: String, _ value: Float) { metadata.append((key, 6, Self.le(value.bitPattern))) }
    public mutating func add(strings key: String, _ values: [String]) {
        metadata.append((key, 9, Self.le(UInt32(8)) + Self.le(UInt64(values.count)) + values.flatMap(Self.string)))
    }

    /// Adds an F32 tensor (`dims` in GGUF order, contiguous dimension first) filled with `fill(i)`.
    public mutating func addF32(_ name: String, _ dims: [Int], fill: (Int) -> Float = { Float($0 % 7) / 4 }) {
        let count = dims.reduce(1, *)
        tensors.append((name, dims, 0, (0..<count).flatMap { Self.le(fill($0).bitPattern) }))
    }

    /// Adds an F16 tensor of zeros and ones.
    public mutating func addF16(_ name: String, _ dims: [Int]) {
        let count = dims.reduce(1, *)
        tensors.append((name, dims, 1, (0..<count).flatMap { Self.le(UInt16($0 % 2 == 0 ? 0x3C00 : 0)) }))
    }

    public static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    public static func string(_ s: String) -> [UInt8] { le(UInt64(s.utf8.count)) + Array(s.utf8) }

    /// The file's bytes: header, metadata, tensor table, then the data aligned to 32 bytes.
    public func bytes() -> [UInt8] {
        var out = Array("GGUF".utf8) + Self.le(UInt32(3)) + Self.le(UInt64(tensors.count)) + Self.le(UInt64(metadata.count))
        for (key, type, value) in metadata { out += Self.string(key) + Self.le(type) + value }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            offsets.append(offset)
            offset += (t.data.count + 31) / 32 * 32
        }
        for (t, o) in zip(tensors, offsets) {
            out += Self.string(t.name) + Self.le(UInt32(t.dims.count)) + t.dims.flatMap { Self.le(UInt64($0)) }
            out += Self.le(t.type) + Self.le(UInt64(o))
        }
        while out.count % 32 != 0 { out.append(0) }
        for t in tensors {
            out += t.data
            while out.count % 32 != 0 { out.append(0) }
        }
        return out
    }
}

/// Tiny Llama models for registry and loader tests.
public enum TinyModel {
    /// hidden 8, FFN 16, 1 layer, 2 heads, 1 KV head (head_dim 4), vocabulary 10.
    public static let vocabulary = ["<unk>", "a", "b", "c", "ab", "abc", "Ġ", "Ġa", "x", "y"]

    /// Tensors with Hugging Face names and PyTorch shapes (outermost first).
    public static let huggingFaceTensors: [(name: String, shape: [Int])] = [
        ("model.embed_tokens.weight", [10, 8]),
        ("model.norm.weight", [8]),
        ("model.layers.0.input_layernorm.weight", [8]),
        ("model.layers.0.self_attn.q_proj.weight", [8, 8]),
        ("model.layers.0.self_attn.k_proj.weight", [4, 8]),
        ("model.layers.0.self_attn.v_proj.weight", [4, 8]),
        ("model.layers.0.self_attn.o_proj.weight", [8, 8]),
        ("model.layers.0.post_attention_layernorm.weight", [8]),
        ("model.layers.0.mlp.gate_proj.weight", [16, 8]),
        ("model.layers.0.mlp.up_proj.weight", [16, 8]),
        ("model.layers.0.mlp.down_proj.weight", [8, 16]),
    ]

    /// 80 + 8 + 8 + 64 + 32 + 32 + 64 + 8 + 128 + 128 + 128, counted by hand.
    public static let parameters = 680

    /// The tiny model as a GGUF file with a byte-level BPE tokenizer ("abc" → [5]); `seed`
    /// changes the weights (and so the fingerprint) but nothing else. `downType`, when given,
    /// relabels blk.0.ffn_down.weight with that ggml type number (its bytes unchanged): a
    /// tensor type the runtime may not take.
    public static func gguf(seed: Int = 0, downType: UInt32? = nil) -> [UInt8] {
        var b = GGUFBuilder()
        b.add(string: "general.architecture", "llama")
        b.add(uint32: "llama.embedding_length", 8)
        b.add(uint32: "llama.feed_forward_length", 16)
        b.add(uint32: "llama.block_count", 1)
        b.add(uint32: "llama.attention.head_count", 2)
        b.add(uint32: "llama.attention.head_count_kv", 1)
        b.add(uint32: "llama.context_length", 64)
        b.add(float32: "llama.rope.freq_base", 10_000)
        b.add(string: "tokenizer.ggml.model", "gpt2")
        b.add(string: "tokenizer.ggml.pre", "gpt2")
        b.add(strings: "tokenizer.ggml.tokens", vocabulary)
        b.add(strings: "tokenizer.ggml.merges", ["a b", "ab c", "Ġ a"])
        let fill: (Int) -> Float = { Float(($0 + seed) % 7) / 4 }
        b.addF32("token_embd.weight", [8, 10], fill: fill)
        b.addF16("output_norm.weight", [8])
        b.addF32("blk.0.attn_norm.weight", [8], fill: fill)
        b.addF32("blk.0.attn_q.weight", [8, 8], fill: fill)
        b.addF32("blk.0.attn_k.weight", [8, 4], fill: fill)
        b.addF32("blk.0.attn_v.weight", [8, 4], fill: fill)
        b.addF32("blk.0.attn_output.weight", [8, 8], fill: fill)
        b.addF32("blk.0.ffn_norm.weight", [8], fill: fill)
        b.addF32("blk.0.ffn_gate.weight", [8, 16], fill: fill)
        b.addF32("blk.0.ffn_up.weight", [8, 16], fill: fill)
        b.addF32("blk.0.ffn_down.weight", [16, 8], fill: fill)
        if let downType, let last = b.tensors.indices.last { b.tensors[last].type = downType }
        return b.bytes()
    }

    /// config.json of the tiny model.
    public static let configJSON = """
        {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8, "intermediate_size": 16,
         "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 10,
         "max_position_embeddings": 64, "rope_theta": 10000.0, "rms_norm_eps": 1e-05, "tie_word_embeddings": true}
        """

    /// A safetensors file (F32) holding `tensors`, in the order given.
    public static func safetensors(_ tensors: [(name: String, shape: [Int])], scale: Float = 1.0 / 8) -> [UInt8] {
        var entries: [String] = []
        var data: [UInt8] = []
        for t in tensors {
            let count = t.shape.reduce(1, *)
            let begin = data.count
            for i in 0..<count { data += GGUFBuilder.le((Float(i % 5) * scale).bitPattern) }
            entries.append("\"\(t.name)\":{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(begin),\(data.count)]}")
        }
        var header = Array("{\(entries.joined(separator: ","))}".utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        return GGUFBuilder.le(UInt64(header.count)) + header + data
    }

    /// A PEFT LoRA adapter folder for `gguf()`'s model: q_proj, v_proj and down_proj of its one
    /// layer, rank 2, alpha 16, the values of `safetensors(_:scale:)`. `qRows` other than 8 makes
    /// it not fit the model. Returns the folder.
    @discardableResult
    public static func adapter(in directory: URL, name: String = "adapter", qRows: Int = 8, scale: Float = 1.0 / 8) throws -> URL {
        let folder = directory.appendingPathComponent(name)
        try TestSupport.write(#"{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 2, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj", "down_proj"], "bias": "none", "base_model_name_or_path": "tiny"}"#,
                              to: "adapter_config.json", in: folder)
        let prefix = "base_model.model.model.layers.0."
        try TestSupport.write(safetensors([
            (prefix + "self_attn.q_proj.lora_A.weight", [2, 8]), (prefix + "self_attn.q_proj.lora_B.weight", [qRows, 2]),
            (prefix + "self_attn.v_proj.lora_A.weight", [2, 8]), (prefix + "self_attn.v_proj.lora_B.weight", [4, 2]),
            (prefix + "mlp.down_proj.lora_A.weight", [2, 16]), (prefix + "mlp.down_proj.lora_B.weight", [8, 2]),
        ], scale: scale), to: "adapter_model.safetensors", in: folder)
        return folder
    }

    /// A Hugging Face folder: config.json and either model.safetensors or two shards with
    /// model.safetensors.index.json. Returns the folder.
    @discardableResult
    public static func folder(_ name: String, in directory: URL, sharded: Bool) throws -> URL {
        let folder = directory.appendingPathComponent(name)
        try TestSupport.write(configJSON, to: "config.json", in: folder)
        if sharded {
            let first = Array(huggingFaceTensors.prefix(5)), second = Array(huggingFaceTensors.dropFirst(5))
            try TestSupport.write(safetensors(first), to: "model-00001-of-00002.safetensors", in: folder)
            try TestSupport.write(safetensors(second), to: "model-00002-of-00002.safetensors", in: folder)
            let map = first.map { "\"\($0.name)\": \"model-00001-of-00002.safetensors\"" }
                + second.map { "\"\($0.name)\": \"model-00002-of-00002.safetensors\"" }
            try TestSupport.write("{\"metadata\": {}, \"weight_map\": {\(map.joined(separator: ", "))}}", to: "model.safetensors.index.json", in: folder)
        } else {
            try TestSupport.write(safetensors(huggingFaceTensors), to: "model.safetensors", in: folder)
        }
        return folder
    }
}

extension TestSupport {
    /// Runs a shell command line and returns its standard output without the final newline
    /// (for checking our hashes against `sha256sum`).
    public static func shell(_ command: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        var text = String(decoding: data, as: UTF8.self)
        while text.hasSuffix("\n") { text.removeLast() }
        return text
    }
}
