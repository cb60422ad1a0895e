import Foundation

/// A tensor kept in the element type it was stored in: fp32, fp16, bf16, or one of ggml's block
/// formats (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K). A frozen base model lives in memory this way and is
/// never expanded to fp32 as a whole; products dequantize tiles of rows on the fly
/// (`StoredTensor+Products.swift`).
///
/// Shape in PyTorch order, outermost first; the last dimension is the contiguous one, so a
/// linear weight `[out, in]` is `out` rows of `in` values, and for the block formats each row is
/// `in / elementsPerBlock` whole blocks (ggml's layout, so rows can be cut and stacked as bytes).
public struct StoredTensor: Sendable, Equatable {
    /// The size of each dimension, outermost first.
    public let shape: [Int]
    /// The element type.
    public let type: GGMLType
    /// The values when `type` is `.f32` (empty otherwise).
    let floats: [Float]
    /// The bytes when `type` is not `.f32` (empty otherwise): `rows` rows of `rowBytes` each.
    let bytes: [UInt8]

    /// Values in the last dimension.
    public var columns: Int { shape.last ?? 1 }
    /// Rows: every dimension but the last.
    public var rows: Int { shape.dropLast().reduce(1, *) }
    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
    /// Bytes of one row in memory.
    public var rowBytes: Int {
        guard let layout = type.blockLayout else { return 0 }
        return columns / layout.elements * layout.bytes
    }
    /// Bytes held in memory.
    public var byteCount: Int { type == .f32 ? floats.count * 4 : bytes.count }

    /// The data as a file holds it in the stored type (little-endian; fp32 as its bit patterns).
    public var storedBytes: [UInt8] {
        guard type == .f32 else { return bytes }
        var out: [UInt8] = []
        out.reserveCapacity(floats.count * 4)
        for v in floats { withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
        return out
    }

    /// An fp32 tensor, kept as it is.
    public init(_ tensor: Tensor) {
        shape = tensor.shape
        type = .f32
        floats = tensor.data
        bytes = []
    }

    /// A tensor of `type` from its raw little-endian bytes (ggml's block layout for the block
    /// formats). `name` only serves the error message.
    /// - Throws: `ModelError` when the type is not supported, the rows do not hold whole blocks,
    ///   or the byte count does not match the shape.
    public init(shape: [Int], type: GGMLType, bytes: [UInt8], name: String) throws {
        guard let layout = type.blockLayout else {
            throw ModelError.unsupported("tensor \(name) has type \(type.name); supported: \(GGMLType.supported.map(\.name).joined(separator: ", ")); quantize the model to one of them (llama.cpp's llama-quantize) or load its Hugging Face folder")
        }
        guard !shape.isEmpty, shape.allSatisfy({ $0 > 0 }) else {
            throw ModelError.invalidFile(path: name, detail: "shape \(shape) has no elements")
        }
        let columns = shape[shape.count - 1]
        guard columns % layout.elements == 0 else {
            throw ModelError.invalidFile(path: name, detail: "rows of \(columns) values do not fill whole \(type.name) blocks of \(layout.elements)")
        }
        let expected = shape.dropLast().reduce(1, *) * (columns / layout.elements * layout.bytes)
        guard bytes.count == expected else {
            throw ModelError.invalidFile(path: name, detail: "\(bytes.count) bytes for shape \(shape) of \(type.name), expected \(expected)")
        }
        self.shape = shape
        if type == .f32 {
            self.type = .f32
            floats = bytes.withUnsafeBytes { raw in
                (0..<(bytes.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            }
            self.bytes = []
        } else {
            self.type = type
            floats = []
            self.bytes = bytes
        }
    }

    private init(shape: [Int], type: GGMLType, floats: [Float], bytes: [UInt8]) {
        self.shape = shape
        self.type = type
        self.floats = floats
        self.bytes = bytes
    }

    /// Rows `r0 ..< r1` dequantized to fp32 into `out` ((r1 - r0) × columns values).
    func dequantizeRows(_ r0: Int, _ r1: Int, into out: UnsafeMutablePointer<Float>) {
        let n = (r1 - r0) * columns
        guard n > 0 else { return }
        if type == .f32 {
            floats.withUnsafeBufferPointer { src in
                guard let base = src.baseAddress else { return }
                out.update(from: base + r0 * columns, count: n)
            }
            return
        }
        bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            // The C kernel (bit-identical to GGMLDequantize, and fast in debug builds too); the
            // Swift one for a row length the kernel does not take.
            if (try? CompactKernels.dequantizeRows(type, base, k: columns, rows: r0..<r1, into: out)) == nil {
                GGMLDequantize.run(type, source: base + r0 * rowBytes, count: n, into: out)
            }
        }
    }

    /// All values as fp32.
    public func dequantized() -> Tensor {
        if type == .f32 { return Tensor(validShape: shape, data: floats) }
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { dst in
            guard let base = dst.baseAddress else { return }
            dequantizeRows(0, rows, into: base)
        }
        return Tensor(validShape: shape, data: out)
    }

    /// One row as fp32 (an embedding lookup).
    func row(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        dequantizeRows(r, r + 1, into: out)
    }

    /// The tensors' rows one after another (Q, K and V stacked into one product): they must share
    /// the type and the row length.
    /// - Throws: `ModelError.unsupported` naming the types or lengths that differ.
    static func stacking(_ parts: [StoredTensor], names: [String]) throws -> StoredTensor {
        guard let first = parts.first else { throw ModelError.unsupported("nothing to stack") }
        for (part, name) in zip(parts, names) where part.type != first.type || part.columns != first.columns || part.shape.count != 2 {
            throw ModelError.unsupported("\(name) is \(part.type.name) \(part.shape) but \(names[0]) is \(first.type.name) \(first.shape); the fused product needs one type and row length (convert the model with --base-type)")
        }
        let rows = parts.reduce(0) { $0 + $1.rows }
        if first.type == .f32 {
            return StoredTensor(shape: [rows, first.columns], type: .f32, floats: parts.flatMap(\.floats), bytes: [])
        }
        return StoredTensor(shape: [rows, first.columns], type: first.type, floats: [], bytes: parts.flatMap(\.bytes))
    }

    /// The same values in `target` (rounded or quantized; fp32 exactly dequantized). Rows are
    /// converted one at a time, so the fp32 copy of the whole tensor never exists.
    /// - Throws: `ModelError.unsupported` for a type there is no quantizer for, or rows that do
    ///   not fill whole blocks of it.
    public func converted(to target: GGMLType, name: String) throws -> StoredTensor {
        if target == type { return self }
        guard let layout = target.blockLayout, GGMLQuantize.types.contains(target) else {
            throw ModelError.unsupported("cannot convert \(name) to \(target.name); choose one of \(GGMLQuantize.types.map(\.name).joined(separator: ", "))")
        }
        guard columns % layout.elements == 0 else {
            throw ModelError.unsupported("\(name) has rows of \(columns) values, which do not fill whole \(target.name) blocks of \(layout.elements); keep it in \(type.name)")
        }
        if target == .f32 { return StoredTensor(dequantized()) }
        var row = [Float](repeating: 0, count: columns)
        var out: [UInt8] = []
        out.reserveCapacity(rows * columns / layout.elements * layout.bytes)
        for r in 0..<rows {
            row.withUnsafeMutableBufferPointer { dst in
                guard let base = dst.baseAddress else { return }
                dequantizeRows(r, r + 1, into: base)
            }
            GGMLQuantize.append(row, as: target, to: &out)
        }
        return StoredTensor(shape: shape, type: target, floats: [], bytes: out)
    }

    /// Rows reordered: row `i` of the result is row `order[i]` of this tensor (undoing
    /// llama.cpp's Q/K permutation works on whole rows, so on the stored bytes of any type).
    func reorderingRows(_ order: [Int]) -> StoredTensor {
        if type == .f32 {
            var out = [Float](repeating: 0, count: floats.count)
            for (i, r) in order.enumerated() {
                for c in 0..<columns { out[i * columns + c] = floats[r * columns + c] }
            }
            return StoredTensor(shape: shape, type: type, floats: out, bytes: [])
        }
        let width = rowBytes
        var out = [UInt8](repeating: 0, count: bytes.count)
        for (i, r) in order.enumerated() {
            for b in 0..<width { out[i * width + b] = bytes[r * width + b] }
        }
        return StoredTensor(shape: shape, type: type, floats: [], bytes: out)
    }
}

extension Tensor {
    /// Wraps data whose count is known to match the shape.
    init(validShape shape: [Int], data: [Float]) {
        self.init(zeros: [])
        self.shape = shape
        self.data = data
    }
}
