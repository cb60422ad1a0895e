import Foundation

extension LoRAMerge {
    /// The types a merged GGUF's matrices can be written in (our quantizers, `GGMLQuantize`).
    public static let ggufTypes: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_K]

    /// What `writeMergedGGUF` wrote.
    public struct GGUFMergeReport: Sendable {
        public var file: String
        public var type: GGMLType
        public var tensors: Int
        /// The matrices W + s·B·A replaced, GGUF names.
        public var mergedTensors: [String]
        /// Matrices written in another type than `type` (a row length its blocks do not divide), by name.
        public var otherType: [String: GGMLType]
        public var bytes: Int
    }

    /// Merges `adapter` into the GGUF model at `path` and writes a GGUF model llama.cpp and Ollama
    /// load: the base's metadata (architecture, tokenizer, chat template, special tokens) copied,
    /// `general.file_type` set to `type`, `metadata` added (lineage under `corpus.*`); every
    /// matrix in `type` (one whose rows its blocks do not divide in `fallback(_:rowLength:)`'s
    /// type), 1-D tensors (norms) in F32; the adapted projections as W + s·B·A computed
    /// in fp32 in llama.cpp's row order (B of Q and K permuted for the `llama` architecture, as
    /// `LoRAAdapter.gguf(for:)` does). A matrix already stored in `type` is copied byte for byte
    /// when the adapter does not touch it.
    /// - Throws: `ModelError` for a type we cannot write, an adapter that does not fit the base,
    ///   or a base we cannot read.
    @discardableResult
    public static func writeMergedGGUF(adapter: LoRAAdapter, base path: String, type: GGMLType, to url: URL,
                                       metadata extra: [(key: String, value: GGUFValue)]) throws -> GGUFMergeReport {
        guard ggufTypes.contains(type) else {
            throw ModelError.unsupported("a merged GGUF is written as \(ggufTypes.map(\.name).joined(separator: ", ")), not \(type.name)")
        }
        let file = try GGUFFile(path: path)
        let c = try file.llamaConfiguration()
        _ = try LoRAInference(adapter, configuration: c)     // checks the layers and every shape
        let arch = file.metadata["general.architecture"]?.string ?? LoRAAdapter.ggufArchitecture(c)
        let s = adapter.configuration.scale, r = adapter.configuration.rank
        var writer = GGUFWriter()
        let skipped: Set<String> = ["general.alignment", "general.file_type"]
        writer.metadata = file.metadata.keys.sorted().filter { !skipped.contains($0) && !extra.map(\.key).contains($0) }.map { ($0, file.metadata[$0]!) }
        writer.metadata.append(("general.file_type", .uint32(Self.fileType(type))))
        writer.metadata += extra
        var merged: [String] = []
        var otherType: [String: GGMLType] = [:]
        for info in file.tensors {
            var target: (layer: Int, target: LoRATarget)?
            if let hf = GGUFFile.huggingFaceName(info.name), hf.hasPrefix("model.layers."), hf.hasSuffix(".weight") {
                let parts = hf.split(separator: ".")
                if let l = Int(parts[2]), let t = LoRATarget(name: String(parts[4])), adapter.layers.indices.contains(l), adapter.layers[l][t] != nil {
                    target = (l, t)
                }
            }
            let outType = Self.outputType(type, dimensions: info.dimensions)
            if outType != (info.dimensions.count == 2 ? type : .f32) { otherType[info.name] = outType }
            if target == nil && info.type == outType {
                writer.tensors.append(.init(name: info.name, dimensions: info.dimensions, type: info.type, bytes: try file.storedTensor(info).storedBytes))
                continue
            }
            var values = try file.tensorData(info).data
            if let (l, t) = target, let pair = adapter.layers[l][t] {
                let rows = pair.b.shape[0], columns = pair.a.shape[1]
                var b = pair.b.data
                if arch == "llama" && (t == .q || t == .k) {
                    b = try LoRAAdapter.permuteRows(b, rows: rows, columns: r, heads: t == .q ? c.numAttentionHeads : c.numKeyValueHeads, name: info.name)
                }
                var delta = [Float](repeating: 0, count: rows * columns)
                b.withUnsafeBufferPointer { bp in pair.a.data.withUnsafeBufferPointer { ap in delta.withUnsafeMutableBufferPointer { dp in
                    guard let bp = bp.baseAddress, let ap = ap.baseAddress, let dp = dp.baseAddress else { return }
                    BLAS.matmul(bp, lda: r, ap, ldb: columns, dp, ldc: columns, m: rows, n: columns, k: r)
                } } }
                for i in 0..<values.count { values[i] += delta[i] * s }
                merged.append(info.name)
            }
            writer.tensors.append(Self.encoded(values, name: info.name, dimensions: info.dimensions, type: outType))
            file.releasePages(info)
        }
        return try Self.write(writer, to: url, type: type, merged: merged, otherType: otherType)
    }

    /// The type a tensor of GGUF `dimensions` is written in when the file's matrices are `type`:
    /// `type` for a matrix (or `fallback`'s when its blocks do not divide the rows), F32 for the
    /// 1-D tensors (norms, RoPE factors).
    static func outputType(_ type: GGMLType, dimensions: [Int]) -> GGMLType {
        dimensions.count == 2 ? fallback(type, rowLength: dimensions[0]) : .f32
    }

    /// One tensor entry: `values` (fp32, row-major) rounded to `type`.
    static func encoded(_ values: [Float], name: String, dimensions: [Int], type: GGMLType) -> GGUFWriter.TensorEntry {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * 2)
        GGMLQuantize.append(values, as: type, to: &bytes)
        return .init(name: name, dimensions: dimensions, type: type, bytes: bytes)
    }

    /// Writes the merged file and says what it holds.
    static func write(_ writer: GGUFWriter, to url: URL, type: GGMLType, merged: [String], otherType: [String: GGMLType]) throws -> GGUFMergeReport {
        try writer.write(to: url)
        let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
        return GGUFMergeReport(file: url.path, type: type, tensors: writer.tensors.count, mergedTensors: merged.sorted(), otherType: otherType, bytes: size)
    }

    /// The type a matrix with rows of `rowLength` values is written in when `type` cannot hold
    /// them (its blocks do not divide the row): Q8_0 for a k-quant when blocks of 32 fit (as
    /// llama-quantize falls back to a 32-block type), else F16.
    static func fallback(_ type: GGMLType, rowLength: Int) -> GGMLType {
        guard let layout = type.blockLayout, rowLength % layout.elements != 0 else { return type }
        return layout.elements > 32 && rowLength % 32 == 0 ? .q8_0 : .f16
    }

    /// llama.cpp's `general.file_type` (LLAMA_FTYPE_ALL_F32, MOSTLY_F16, MOSTLY_Q4_0, MOSTLY_Q8_0,
    /// MOSTLY_Q4_K_M, MOSTLY_BF16).
    static func fileType(_ type: GGMLType) -> UInt32 {
        switch type {
        case .f16: return 1
        case .q4_0: return 2
        case .q8_0: return 7
        case .q4_K: return 15        // LLAMA_FTYPE_MOSTLY_Q4_K_M (the nearest llama.cpp names)
        case .bf16: return 32
        default: return 0
        }
    }
}
