import Foundation

/// Writes a GGUF file (version 3; spec: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md):
/// the header, the metadata key-values in the order given, the tensor table, then each tensor's
/// data at an offset aligned to `alignment` (32, ggml's default). Tensors are given in their
/// stored bytes (already quantized), so a writer never converts anything itself.
public struct GGUFWriter {
    /// One tensor: its GGUF name, its dimensions in GGUF order (`ne[0]`, the contiguous one,
    /// first: the reverse of PyTorch's shape), its type and its bytes.
    public struct TensorEntry {
        public var name: String
        public var dimensions: [Int]
        public var type: GGMLType
        public var bytes: [UInt8]

        public init(name: String, dimensions: [Int], type: GGMLType, bytes: [UInt8]) {
            self.name = name
            self.dimensions = dimensions
            self.type = type
            self.bytes = bytes
        }
    }

    public var metadata: [(key: String, value: GGUFValue)] = []
    public var tensors: [TensorEntry] = []
    public let alignment = 32

    public init() {}

    /// The file's bytes.
    /// - Throws: `ModelError` for a tensor whose byte count does not match its dimensions and
    ///   type, an array mixing element types, or a key given twice.
    public func bytes() throws -> [UInt8] {
        var seen = Set<String>()
        for (key, _) in metadata where !seen.insert(key).inserted {
            throw ModelError.unsupported("GGUF metadata key \(key) is given twice")
        }
        var out: [UInt8] = []
        Self.put(&out, UInt32(0x4655_4747))                          // "GGUF"
        Self.put(&out, UInt32(3))
        Self.put(&out, UInt64(tensors.count))
        Self.put(&out, UInt64(metadata.count))
        for (key, value) in metadata {
            Self.put(&out, key)
            try Self.put(&out, value, key: key, tagged: true)
        }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            guard let layout = t.type.blockLayout, let inner = t.dimensions.first, inner % layout.elements == 0 else {
                throw ModelError.unsupported("GGUF tensor \(t.name): type \(t.type.name) cannot hold dimensions \(t.dimensions)")
            }
            let expected = t.dimensions.reduce(1, *) / layout.elements * layout.bytes
            guard t.bytes.count == expected else {
                throw ModelError.unsupported("GGUF tensor \(t.name): \(t.bytes.count) bytes for dimensions \(t.dimensions) of \(t.type.name), which take \(expected)")
            }
            Self.put(&out, t.name)
            Self.put(&out, UInt32(t.dimensions.count))
            for d in t.dimensions { Self.put(&out, UInt64(d)) }
            Self.put(&out, t.type.rawValue)
            Self.put(&out, UInt64(offset))
            offsets.append(offset)
            offset += (t.bytes.count + alignment - 1) / alignment * alignment
        }
        while out.count % alignment != 0 { out.append(0) }
        let dataStart = out.count
        for (t, at) in zip(tensors, offsets) {
            while out.count < dataStart + at { out.append(0) }
            out.append(contentsOf: t.bytes)
        }
        while out.count % alignment != 0 { out.append(0) }
        return out
    }

    /// Writes the file at `url` atomically (a temporary beside it, then renamed).
    public func write(to url: URL) throws {
        let data = Data(try bytes())
        try AtomicWrites.data(data, to: url)
    }

    static func put<T: FixedWidthInteger>(_ out: inout [UInt8], _ v: T) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }

    static func put(_ out: inout [UInt8], _ s: String) {
        let utf8 = Array(s.utf8)
        put(&out, UInt64(utf8.count))
        out.append(contentsOf: utf8)
    }

    /// The GGUF type code of a value (ggml's `gguf_type`).
    static func code(_ value: GGUFValue) -> UInt32 {
        switch value {
        case .uint8: return 0
        case .int8: return 1
        case .uint16: return 2
        case .int16: return 3
        case .uint32: return 4
        case .int32: return 5
        case .float32: return 6
        case .bool: return 7
        case .string: return 8
        case .array: return 9
        case .uint64: return 10
        case .int64: return 11
        case .float64: return 12
        }
    }

    static func put(_ out: inout [UInt8], _ value: GGUFValue, key: String, tagged: Bool) throws {
        if tagged { put(&out, code(value)) }
        switch value {
        case let .uint8(v): out.append(v)
        case let .int8(v): put(&out, v)
        case let .uint16(v): put(&out, v)
        case let .int16(v): put(&out, v)
        case let .uint32(v): put(&out, v)
        case let .int32(v): put(&out, v)
        case let .uint64(v): put(&out, v)
        case let .int64(v): put(&out, v)
        case let .float32(v): put(&out, v.bitPattern)
        case let .float64(v): put(&out, v.bitPattern)
        case let .bool(v): out.append(v ? 1 : 0)
        case let .string(s): put(&out, s)
        case let .array(items):
            // An empty array still needs an element type; ggml writers use the one they meant, any
            // is read back as empty.
            let type = items.first.map(code) ?? 4
            guard items.allSatisfy({ code($0) == type }), type != 9 else {
                throw ModelError.unsupported("GGUF metadata \(key): an array must hold values of one type and no arrays")
            }
            put(&out, type)
            put(&out, UInt64(items.count))
            for item in items { try put(&out, item, key: key, tagged: false) }
        }
    }
}
