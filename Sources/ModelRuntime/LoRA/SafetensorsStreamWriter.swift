import Foundation

/// The element types a merged model can be written in.
public enum WeightType: String, Sendable, Equatable, CaseIterable {
    /// IEEE single precision, safetensors "F32".
    case float32 = "F32"
    /// IEEE half precision, safetensors "F16".
    case float16 = "F16"
    /// bfloat16 (fp32's exponent, 7 mantissa bits), safetensors "BF16".
    case bfloat16 = "BF16"

    /// Bytes per element.
    public var width: Int { self == .float32 ? 4 : 2 }

    /// The name transformers uses in config.json (`torch_dtype` / `dtype`).
    public var torchName: String {
        switch self {
        case .float32: return "float32"
        case .float16: return "float16"
        case .bfloat16: return "bfloat16"
        }
    }

    /// `x` rounded to this type and read back as fp32 (round to nearest, ties to even, as
    /// PyTorch's `.to(dtype)`).
    public func rounded(_ x: Float) -> Float {
        switch self {
        case .float32: return x
        case .float16: return Float(Float16(x))
        case .bfloat16: return Float(bitPattern: UInt32(Self.bfloat16Bits(x)) << 16)
        }
    }

    /// The bfloat16 bit pattern nearest to `x` (ties to even; NaN stays a quiet NaN).
    static func bfloat16Bits(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }
}

/// Writes a safetensors file one tensor at a time, converting fp32 values to the chosen type, so a
/// whole model is never held twice in memory. Names are written sorted; the header is padded
/// with spaces to a multiple of 8 bytes as the reference implementation does.
enum SafetensorsStreamWriter {
    /// - Throws: `ModelError.invalidFile` naming `url` when it cannot be written.
    static func write(_ tensors: [String: Tensor], type: WeightType, metadata: [String: String], to url: URL) throws {
        let names = tensors.keys.sorted()
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for name in names {
            let tensor = tensors[name] ?? Tensor(zeros: [0])
            header[name] = ["dtype": type.rawValue, "shape": tensor.shape, "data_offsets": [offset, offset + type.width * tensor.count]]
            offset += type.width * tensor.count
        }
        var json: Data
        do {
            json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys, .withoutEscapingSlashes])
        } catch {
            throw ModelError.invalidFile(path: url.path, detail: "cannot encode the safetensors header (\(error.localizedDescription))")
        }
        while json.count % 8 != 0 { json.append(0x20) }
        guard FileManager.default.createFile(atPath: url.path, contents: nil),
              let handle = FileHandle(forWritingAtPath: url.path) else {
            throw ModelError.invalidFile(path: url.path, detail: "cannot create the file")
        }
        do {
            defer { try? handle.close() }
            var prefix = Data()
            withUnsafeBytes(of: UInt64(json.count).littleEndian) { prefix.append(contentsOf: $0) }
            prefix.append(json)
            try handle.write(contentsOf: prefix)
            for name in names {
                guard let tensor = tensors[name] else { continue }
                try handle.write(contentsOf: encode(tensor.data, as: type))
            }
            try handle.synchronize()
        } catch {
            throw ModelError.invalidFile(path: url.path, detail: "cannot write (\(error.localizedDescription))")
        }
    }

    /// Little-endian bytes of `values` in `type`.
    static func encode(_ values: [Float], as type: WeightType) -> Data {
        switch type {
        case .float32:
            return values.withUnsafeBufferPointer { Data(buffer: $0) }
        case .float16:
            let halves = values.map { Float16($0).bitPattern.littleEndian }
            return halves.withUnsafeBufferPointer { Data(buffer: $0) }
        case .bfloat16:
            let halves = values.map { WeightType.bfloat16Bits($0).littleEndian }
            return halves.withUnsafeBufferPointer { Data(buffer: $0) }
        }
    }
}
