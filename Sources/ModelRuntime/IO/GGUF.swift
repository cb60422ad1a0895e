import Foundation

/// A metadata value of a GGUF file.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
    case array([GGUFValue])

    /// The value as text, when it is a string.
    public var string: String? { if case let .string(s) = self { return s } else { return nil } }

    /// The value as an integer, when it is one of the integer types.
    public var int: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return Int(exactly: v)
        case let .int64(v): return Int(v)
        default: return nil
        }
    }

    /// The value as a float, when it is a float or an integer.
    public var float: Float? {
        switch self {
        case let .float32(v): return v
        case let .float64(v): return Float(v)
        default: return int.map(Float.init)
        }
    }

    /// The value as a boolean.
    public var bool: Bool? { if case let .bool(b) = self { return b } else { return nil } }

    /// An array of strings (e.g. `tokenizer.ggml.tokens`).
    public var strings: [String]? {
        guard case let .array(items) = self else { return nil }
        var out: [String] = []
        out.reserveCapacity(items.count)
        for item in items { guard let s = item.string else { return nil }; out.append(s) }
        return out
    }

    /// An array of integers (e.g. `tokenizer.ggml.token_type`).
    public var ints: [Int]? {
        guard case let .array(items) = self else { return nil }
        var out: [Int] = []
        out.reserveCapacity(items.count)
        for item in items { guard let v = item.int else { return nil }; out.append(v) }
        return out
    }
}

/// The tensor element types of ggml that GGUF files use (numbering from ggml.h).
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case iq2_XXS = 16, iq2_XS = 17, iq3_XXS = 18, iq1_S = 19, iq4_NL = 20, iq3_S = 21, iq2_S = 22, iq4_XS = 23
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_M = 29, bf16 = 30

    /// The types this loader dequantizes.
    public static let supported: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q4_K, .q6_K]

    /// (elements per block, bytes per block) for the supported types.
    var blockLayout: (elements: Int, bytes: Int)? {
        switch self {
        case .f32: return (1, 4)
        case .f16, .bf16: return (1, 2)
        case .q8_0: return (32, 34)
        case .q4_0: return (32, 18)
        case .q4_1: return (32, 20)
        case .q4_K: return (256, 144)
        case .q6_K: return (256, 210)
        default: return nil
        }
    }

    /// The name ggml uses, e.g. "Q4_K".
    public var name: String { "\(self)".uppercased() }
}

/// One tensor's entry in a GGUF file's table.
public struct GGUFTensorInfo: Sendable, Equatable {
    public var name: String
    /// Dimensions in GGUF order: `ne[0]` (the contiguous one) first.
    public var dimensions: [Int]
    public var type: GGMLType
    /// Offset of the data from the start of the data section.
    public var offset: Int

    /// The shape in PyTorch order (outermost first): the reverse of `dimensions`.
    public var shape: [Int] { dimensions.reversed() }
    /// Number of elements.
    public var elementCount: Int { dimensions.reduce(1, *) }
}

/// A GGUF file (versions 2 and 3): metadata, the tensor table and dequantized tensor data.
/// Spec: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
///
/// The file is memory-mapped; tensors are dequantized to fp32 on request.
public final class GGUFFile: @unchecked Sendable {
    // @unchecked: all stored properties are immutable after init; `data` is a read-only mapping.
    public let path: String
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    public let tensors: [GGUFTensorInfo]
    /// Offset of the tensor data section in the file.
    public let dataOffset: Int
    private let data: Data
    /// The largest `general.alignment` accepted (ggml's default is 32).
    static let maximumAlignment = 1 << 16

    /// Reads the header, metadata and tensor table of the file at `path`.
    /// - Throws: `ModelError.invalidFile` naming the byte offset and what is wrong.
    public convenience init(path: String) throws {
        try self.init(data: try mapFile(path), path: path)
    }

    /// Reads the header, metadata and tensor table of a GGUF file's bytes; `path` names it in errors.
    /// - Throws: `ModelError.invalidFile` naming the byte offset and what is wrong.
    public init(data: Data, path: String) throws {
        self.path = path
        self.data = data
        var reader = GGUFReader(data: data, path: path)
        let magic = try reader.u32()
        guard magic == 0x4655_4747 else { // "GGUF" little-endian
            throw ModelError.invalidFile(path: path, detail: "not a GGUF file (the first 4 bytes are not \"GGUF\")")
        }
        version = try reader.u32()
        guard version == 2 || version == 3 else {
            throw ModelError.invalidFile(path: path, detail: "GGUF version \(version) is not supported (2 and 3 are)")
        }
        let tensorCount = try reader.u64()
        let kvCount = try reader.u64()
        guard tensorCount < 1_000_000, kvCount < 1_000_000 else {
            throw ModelError.invalidFile(path: path, detail: "implausible counts in the header (\(tensorCount) tensors, \(kvCount) metadata entries): the file is damaged")
        }
        var metadata: [String: GGUFValue] = [:]
        for _ in 0..<kvCount {
            let key = try reader.string()
            let type = try reader.u32()
            metadata[key] = try reader.value(type: type, key: key)
        }
        var tensors: [GGUFTensorInfo] = []
        for _ in 0..<tensorCount {
            let name = try reader.string()
            let nDims = try reader.u32()
            guard nDims >= 1 && nDims <= 4 else {
                throw ModelError.invalidFile(path: path, detail: "tensor \(name) has \(nDims) dimensions at byte \(reader.offset)")
            }
            var dims: [Int] = []
            for _ in 0..<nDims {
                let d = try reader.u64()
                guard d > 0 && d < (1 << 40) else { throw ModelError.invalidFile(path: path, detail: "tensor \(name) has dimension \(d)") }
                dims.append(Int(d))
            }
            var elements = 1
            for d in dims {
                let (product, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow, product < (1 << 48) else {
                    throw ModelError.invalidFile(path: path, detail: "tensor \(name) has shape \(dims), too many elements for any file; the file is damaged")
                }
                elements = product
            }
            let rawType = try reader.u32()
            guard let type = GGMLType(rawValue: rawType) else {
                throw ModelError.invalidFile(path: path, detail: "tensor \(name) has unknown ggml type \(rawType)")
            }
            let rawOffset = try reader.u64()
            guard let offset = Int(exactly: rawOffset), offset < (1 << 50) else {
                throw ModelError.invalidFile(path: path, detail: "tensor \(name) has data offset \(rawOffset), past any file; the file is damaged")
            }
            tensors.append(GGUFTensorInfo(name: name, dimensions: dims, type: type, offset: offset))
        }
        // ggml requires a power of two; bounding it also keeps the rounding below from overflowing.
        let alignment: Int
        switch metadata["general.alignment"] {
        case nil: alignment = 32
        case let value?:
            guard let a = value.int, a > 0, a <= Self.maximumAlignment, a & (a - 1) == 0 else {
                throw ModelError.invalidFile(path: path, detail: "general.alignment is \(value), not a power of two from 1 to \(Self.maximumAlignment); the file is damaged")
            }
            alignment = a
        }
        dataOffset = (reader.offset + alignment - 1) / alignment * alignment
        self.metadata = metadata
        self.tensors = tensors
    }

    /// The tensor called `name`, dequantized to fp32, in PyTorch shape order.
    /// - Throws: `ModelError` when the tensor is missing, of an unsupported type, or its data
    ///   runs past the end of the file.
    public func tensor(named name: String) throws -> Tensor {
        guard let info = tensors.first(where: { $0.name == name }) else {
            throw ModelError.invalidFile(path: path, detail: "no tensor named \(name)")
        }
        return try tensorData(info)
    }

    /// The tensor of `info` in its stored type (its bytes copied out of the mapping), in PyTorch
    /// shape order.
    /// - Throws: `ModelError` when the type is not supported or the data runs past the file's end.
    public func storedTensor(_ info: GGUFTensorInfo) throws -> StoredTensor {
        let (start, byteCount) = try dataRange(info)
        let bytes = [UInt8](data[(data.startIndex + start)..<(data.startIndex + start + byteCount)])
        return try StoredTensor(shape: info.shape, type: info.type, bytes: bytes, name: info.name)
    }

    /// Where the data of `info` lies in the file: (start, byte count), checked.
    /// - Throws: `ModelError` when the type is not supported, the blocks are partial, or the
    ///   data runs past the file's end.
    private func dataRange(_ info: GGUFTensorInfo) throws -> (start: Int, byteCount: Int) {
        guard let layout = info.type.blockLayout else {
            throw ModelError.unsupported("tensor \(info.name) in \(path) has type \(info.type.name); supported: \(GGMLType.supported.map(\.name).joined(separator: ", ")); quantize the model to one of them (llama.cpp's llama-quantize) or load its Hugging Face folder")
        }
        let count = info.elementCount
        guard count % layout.elements == 0, info.dimensions[0] % layout.elements == 0 else {
            throw ModelError.invalidFile(path: path, detail: "tensor \(info.name): \(count) elements do not fill whole \(info.type.name) blocks")
        }
        let byteCount = count / layout.elements * layout.bytes
        let start = dataOffset + info.offset
        guard start >= dataOffset, start + byteCount <= data.count else {
            throw ModelError.invalidFile(path: path, detail: "tensor \(info.name): its \(byteCount) bytes at offset \(start) run past the end of the file (\(data.count) bytes); the file is truncated")
        }
        return (start, byteCount)
    }

    /// Lets the kernel drop the file pages of `info`'s data (after it was copied or converted).
    func releasePages(_ info: GGUFTensorInfo) {
        guard let layout = info.type.blockLayout else { return }
        let start = dataOffset + info.offset
        let end = min(data.count, start + info.elementCount / layout.elements * layout.bytes)
        if start < end { ModelRuntime.releasePages(of: data, start..<end) }
    }

    /// The tensor of `info`, dequantized to fp32, in PyTorch shape order.
    public func tensorData(_ info: GGUFTensorInfo) throws -> Tensor {
        let (start, _) = try dataRange(info)
        let count = info.elementCount
        var out = [Float](repeating: 0, count: count)
        try data.withUnsafeBytes { raw in
            try out.withUnsafeMutableBufferPointer { dst in
                guard let base = raw.baseAddress, let target = dst.baseAddress else {
                    throw ModelError.invalidFile(path: path, detail: "tensor \(info.name) has no data")
                }
                GGMLDequantize.run(info.type, source: base.advanced(by: start), count: count, into: target)
            }
        }
        return try Tensor(shape: info.shape, data: out)
    }
}

/// Little-endian reads with bounds checks that name the offset.
struct GGUFReader {
    let data: Data
    let path: String
    var offset = 0

    init(data: Data, path: String) {
        self.data = data
        self.path = path
    }

    mutating func load<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let size = MemoryLayout<T>.size
        guard offset + size <= data.count else {
            throw ModelError.invalidFile(path: path, detail: "unexpected end of file at byte \(offset); the file is truncated")
        }
        let value = data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
        offset += size
        return T(littleEndian: value)
    }

    mutating func u32() throws -> UInt32 { try load(UInt32.self) }
    mutating func u64() throws -> UInt64 { try load(UInt64.self) }

    mutating func string() throws -> String {
        let length = try u64()
        guard length < (1 << 30), offset + Int(length) <= data.count else {
            throw ModelError.invalidFile(path: path, detail: "string of \(length) bytes at byte \(offset) runs past the end of the file")
        }
        let start = offset
        offset += Int(length)
        return String(decoding: data[data.startIndex + start ..< data.startIndex + start + Int(length)], as: UTF8.self)
    }

    /// How deep arrays of arrays may nest (real files use one level; the limit bounds recursion).
    static let maximumArrayDepth = 8

    /// The fewest bytes a metadata value of `type` occupies (1 for an unknown type, which the
    /// reader then refuses).
    static func minimumSize(of type: UInt32) -> UInt64 {
        switch type {
        case 0, 1, 7: return 1
        case 2, 3: return 2
        case 4, 5, 6: return 4
        case 8, 10, 11, 12: return 8   // a string is at least its 8-byte length
        case 9: return 12              // element type and count
        default: return 1
        }
    }

    /// One metadata value of `type`; `depth` counts the arrays it sits in.
    mutating func value(type: UInt32, key: String, depth: Int = 0) throws -> GGUFValue {
        switch type {
        case 0: return .uint8(try load(UInt8.self))
        case 1: return .int8(try load(Int8.self))
        case 2: return .uint16(try load(UInt16.self))
        case 3: return .int16(try load(Int16.self))
        case 4: return .uint32(try load(UInt32.self))
        case 5: return .int32(try load(Int32.self))
        case 6: return .float32(Float(bitPattern: try load(UInt32.self)))
        case 7: return .bool(try load(UInt8.self) != 0)
        case 8: return .string(try string())
        case 9:
            guard depth < Self.maximumArrayDepth else {
                throw ModelError.invalidFile(path: path, detail: "metadata \(key): arrays nested more than \(Self.maximumArrayDepth) deep at byte \(offset); the file is damaged")
            }
            let elementType = try u32()
            let count = try u64()
            // Every element takes at least `minimumSize` bytes, so the count must fit in what is
            // left of the file: checked before any memory is reserved for it.
            let remaining = UInt64(data.count - offset)
            guard count < (1 << 28), count * Self.minimumSize(of: elementType) <= remaining else {
                throw ModelError.invalidFile(path: path, detail: "metadata \(key): array of \(count) elements at byte \(offset) does not fit in the \(remaining) bytes left; the file is damaged")
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(count))
            for _ in 0..<count { items.append(try value(type: elementType, key: key, depth: depth + 1)) }
            return .array(items)
        case 10: return .uint64(try load(UInt64.self))
        case 11: return .int64(try load(Int64.self))
        case 12: return .float64(Double(bitPattern: try load(UInt64.self)))
        default:
            throw ModelError.invalidFile(path: path, detail: "metadata \(key) has unknown value type \(type) at byte \(offset)")
        }
    }
}

/// Tells the kernel it may drop the mapped pages wholly inside `range` of `data` (a read-only
/// file mapping: they are read again from the file if touched later), so a loader that has
/// copied or converted a tensor does not keep its file pages resident as well.
func releasePages(of data: Data, _ range: Range<Int>) {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    guard page > 0 else { return }
    data.withUnsafeBytes { raw in
        guard let base = raw.baseAddress else { return }
        let address = Int(bitPattern: base)
        let start = (address + range.lowerBound + page - 1) / page * page
        let end = (address + range.upperBound) / page * page
        guard end > start, let pointer = UnsafeMutableRawPointer(bitPattern: start) else { return }
        _ = madvise(pointer, end - start, MADV_DONTNEED)
    }
}

/// Memory-maps a model file read-only.
/// - Throws: `ModelError.invalidFile` naming the file when it cannot be read.
func mapFile(_ path: String) throws -> Data {
    do {
        return try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
    } catch {
        throw ModelError.invalidFile(path: path, detail: "cannot read the file (\(error.localizedDescription))")
    }
}
