import Foundation

/// Reader of the safetensors format (https://huggingface.co/docs/safetensors): an 8-byte
/// little-endian header length, a JSON header `{name: {dtype, shape, data_offsets: [begin, end]}}`
/// with an optional `__metadata__` string map, then the raw little-endian data.
public final class SafetensorsFile: @unchecked Sendable {
    // @unchecked: immutable after init; `data` is a read-only mapping.
    public struct Entry: Sendable, Equatable {
        public var dtype: String
        public var shape: [Int]
        public var begin: Int
        public var end: Int
    }

    public let path: String
    public let entries: [String: Entry]
    public let metadata: [String: String]
    private let data: Data
    private let dataStart: Int

    /// - Throws: `ModelError.invalidFile` naming the problem and offset.
    public convenience init(path: String) throws {
        try self.init(data: try mapFile(path), path: path)
    }

    /// Reads the header of a safetensors file's bytes; `path` names it in errors.
    /// - Throws: `ModelError.invalidFile` naming the problem and offset.
    public init(data: Data, path: String) throws {
        self.path = path
        self.data = data
        guard data.count >= 8 else { throw ModelError.invalidFile(path: path, detail: "shorter than the 8-byte header length") }
        let length = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard length <= UInt64(data.count - 8) else {
            throw ModelError.invalidFile(path: path, detail: "the header claims \(length) bytes but the file has \(data.count - 8) after the length; the file is truncated")
        }
        dataStart = 8 + Int(length)
        guard let header = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<dataStart)) as? [String: Any] else {
            throw ModelError.invalidFile(path: path, detail: "the header (bytes 8..<\(dataStart)) is not a JSON object")
        }
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = value as? [String: String] ?? [:]
                continue
            }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String, let shape = info["shape"] as? [Int],
                  let offsets = info["data_offsets"] as? [Int], offsets.count == 2, offsets[0] >= 0, offsets[0] <= offsets[1],
                  offsets[1] <= data.count - dataStart, shape.allSatisfy({ $0 >= 0 && $0 < (1 << 40) }),
                  shape.reduce((1, false), { acc, d in
                      let (p, o) = acc.0.multipliedReportingOverflow(by: d)
                      return (p, acc.1 || o || p >= (1 << 48))
                  }).1 == false else {
                throw ModelError.invalidFile(path: path, detail: "tensor \(name): header entry is malformed or its data runs past the end of the file")
            }
            entries[name] = Entry(dtype: dtype, shape: shape, begin: offsets[0], end: offsets[1])
        }
        self.entries = entries
        self.metadata = metadata
    }

    /// The tensor `name` in its stored type (F32, F16 and BF16 are read), its bytes copied.
    /// - Throws: `ModelError` for a missing tensor, another dtype, or a byte count that does not
    ///   match the shape.
    public func storedTensor(named name: String) throws -> StoredTensor {
        let (e, type) = try checkedEntry(name)
        guard e.end > e.begin else {
            throw ModelError.invalidFile(path: path, detail: "tensor \(name) has no elements (shape \(e.shape))")
        }
        let start = data.startIndex + dataStart + e.begin
        do {
            return try StoredTensor(shape: e.shape, type: type, bytes: [UInt8](data[start..<(start + e.end - e.begin)]), name: name)
        } catch let error as ModelError {
            throw ModelError.invalidFile(path: path, detail: "\(error)")
        }
    }

    /// The entry of tensor `name` and its element type, its byte count checked against its shape.
    /// - Throws: `ModelError` for a missing tensor, another dtype, or a byte count that does not
    ///   match the shape.
    private func checkedEntry(_ name: String) throws -> (Entry, GGMLType) {
        guard let e = entries[name] else { throw ModelError.invalidFile(path: path, detail: "no tensor named \(name)") }
        let type: GGMLType
        switch e.dtype {
        case "F32": type = .f32
        case "F16": type = .f16
        case "BF16": type = .bf16
        default: throw ModelError.unsupported("\(path): tensor \(name) has dtype \(e.dtype); supported: F32, F16, BF16")
        }
        guard e.end - e.begin == e.shape.reduce(1, *) * (type == .f32 ? 4 : 2) else {
            throw ModelError.invalidFile(path: path, detail: "tensor \(name): \(e.end - e.begin) bytes for shape \(e.shape) of \(e.dtype)")
        }
        return (e, type)
    }

    /// Lets the kernel drop the file pages of tensor `name` (after it was copied or converted).
    func releasePages(named name: String) {
        guard let e = entries[name] else { return }
        ModelRuntime.releasePages(of: data, (dataStart + e.begin)..<(dataStart + e.end))
    }

    /// The tensor `name` as fp32 (F32, F16 and BF16 are read).
    public func tensor(named name: String) throws -> Tensor {
        let (e, type) = try checkedEntry(name)
        let count = e.shape.reduce(1, *)
        var out = [Float](repeating: 0, count: count)
        try data.withUnsafeBytes { raw in
            try out.withUnsafeMutableBufferPointer { dst in
                guard let base = raw.baseAddress, let target = dst.baseAddress else {
                    if count == 0 { return }
                    throw ModelError.invalidFile(path: path, detail: "tensor \(name) has no data")
                }
                GGMLDequantize.run(type, source: base + dataStart + e.begin, count: count, into: target)
            }
        }
        return try Tensor(shape: e.shape, data: out)
    }

    /// Writes `tensors` (fp32, names sorted) with `metadata` as a safetensors file.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to path: String) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            let count = tensors[name]?.count ?? 0
            header[name] = ["dtype": "F32", "shape": tensors[name]?.shape ?? [], "data_offsets": [offset, offset + 4 * count]]
            offset += 4 * count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var out = Data()
        out.reserveCapacity(8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for name in names {
            tensors[name]?.data.withUnsafeBufferPointer { out.append(UnsafeBufferPointer(start: $0.baseAddress, count: $0.count)) }
        }
        // Written beside the target, flushed and renamed into place, so a reader never sees half a
        // file and a crash leaves the old one.
        try AtomicWrites.file(URL(fileURLWithPath: path)) { temporary in
            do {
                try out.write(to: temporary)
            } catch {
                throw ModelError.invalidFile(path: path, detail: "cannot write (\(error.localizedDescription))")
            }
        }
    }
}

extension LlamaConfiguration {
    /// Reads a Hugging Face `config.json`.
    /// - Throws: `ModelError` naming a missing key or an unsupported `model_type`.
    public init(configJSON path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError.invalidFile(path: path, detail: "not readable")
        }
        try self.init(configJSON: data, path: path)
    }

    /// Reads the text of a Hugging Face `config.json`; `path` names it in errors. RoPE settings
    /// are read in both spellings: `rope_theta` and `rope_scaling` at the top level (what the
    /// Hub's Llama and Qwen configs say), or one `rope_parameters` object holding `rope_theta`,
    /// `rope_type` and the scaling keys (what transformers 5 writes when it saves a model).
    /// - Throws: `ModelError` naming a missing key or an unsupported `model_type`.
    public init(configJSON data: Data, path: String) throws {
        guard let j = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ModelError.invalidFile(path: path, detail: "not a readable JSON object")
        }
        func int(_ key: String) throws -> Int {
            guard let v = j[key] as? Int else { throw ModelError.invalidFile(path: path, detail: "\(key) is missing or not an integer") }
            return v
        }
        let type = j["model_type"] as? String ?? "llama"
        guard ["llama", "qwen2", "mistral"].contains(type) else {
            throw ModelError.unsupported("\(path): model_type \(type) is not supported; supported: llama, qwen2, mistral")
        }
        var scaling: RopeScaling?
        let rope = (j["rope_scaling"] as? [String: Any]) ?? (j["rope_parameters"] as? [String: Any])
        let theta = (j["rope_theta"] as? NSNumber) ?? ((j["rope_parameters"] as? [String: Any])?["rope_theta"] as? NSNumber)
        if let s = rope, let kind = (s["rope_type"] ?? s["type"]) as? String, kind != "default" {
            scaling = RopeScaling(ropeType: kind, factor: (s["factor"] as? NSNumber)?.floatValue ?? 1,
                                  lowFreqFactor: (s["low_freq_factor"] as? NSNumber)?.floatValue,
                                  highFreqFactor: (s["high_freq_factor"] as? NSNumber)?.floatValue,
                                  originalMaxPositionEmbeddings: s["original_max_position_embeddings"] as? Int)
        }
        let eos: [Int] = (j["eos_token_id"] as? [Int]) ?? ((j["eos_token_id"] as? Int).map { [$0] } ?? [])
        let heads = try int("num_attention_heads")
        self.init(modelType: type, hiddenSize: try int("hidden_size"), intermediateSize: try int("intermediate_size"),
                  numHiddenLayers: try int("num_hidden_layers"), numAttentionHeads: heads,
                  numKeyValueHeads: j["num_key_value_heads"] as? Int ?? heads, headDim: j["head_dim"] as? Int,
                  vocabSize: try int("vocab_size"), rmsNormEps: (j["rms_norm_eps"] as? NSNumber)?.floatValue ?? 1e-6,
                  ropeTheta: theta?.floatValue ?? 10_000, ropeScaling: scaling,
                  maxPositionEmbeddings: j["max_position_embeddings"] as? Int ?? 2048,
                  tieWordEmbeddings: j["tie_word_embeddings"] as? Bool ?? false,
                  attentionBias: j["attention_bias"] as? Bool ?? (type == "qwen2"),
                  bosTokenId: j["bos_token_id"] as? Int, eosTokenIds: eos)
    }
}
