/// fp32 → ggml element types, for keeping a base model compact (`--base-type`): bf16 and f16
/// by rounding to nearest even, Q8_0 and Q4_0 with one max-abs scale per block of 32 (ggml's
/// block layouts, `ggml-common.h`; the inverse of `GGMLDequantize`).
enum GGMLQuantize {
    /// The types a tensor can be converted to.
    static let types: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0]

    /// Appends `values` as `type`; `values.count` fills whole blocks (the caller checked).
    static func append(_ values: [Float], as type: GGMLType, to out: inout [UInt8]) {
        switch type {
        case .f32: for v in values { append(&out, v.bitPattern) }
        case .f16: for v in values { append(&out, Float16(v).bitPattern) }
        case .bf16: for v in values { append(&out, bf16(v)) }
        case .q8_0: for b in stride(from: 0, to: values.count, by: 32) { q8_0(values[b..<(b + 32)], &out) }
        case .q4_0: for b in stride(from: 0, to: values.count, by: 32) { q4_0(values[b..<(b + 32)], &out) }
        default: break // not in `types`: the caller checked
        }
    }

    /// The top 16 bits of fp32, rounded to nearest, ties to even (NaN stays a quiet NaN).
    @inline(__always)
    static func bf16(_ v: Float) -> UInt16 {
        if v.isNaN { return 0x7FC0 }
        let bits = v.bitPattern
        return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }

    @inline(__always)
    static func append<T: FixedWidthInteger>(_ out: inout [UInt8], _ v: T) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }

    /// `v` rounded to the nearest integer in `lo...hi` (NaN gives `lo`).
    @inline(__always)
    static func clampRound(_ v: Float, _ lo: Int, _ hi: Int) -> Int {
        if !(v > Float(lo)) { return lo }
        if !(v < Float(hi)) { return hi }
        return Int(v.rounded())
    }

    /// block_q8_0 (34 bytes): d = max|x|/127 as fp16, q = round(x/d) in −127...127.
    static func q8_0(_ x: ArraySlice<Float>, _ out: inout [UInt8]) {
        var amax: Float = 0
        for v in x { amax = max(amax, abs(v)) }
        let d = Float16(amax / 127), dh = Float(d)
        append(&out, d.bitPattern)
        for v in x { out.append(UInt8(bitPattern: Int8(dh == 0 ? 0 : clampRound(v / dh, -127, 127)))) }
    }

    /// block_q4_0 (18 bytes): the value m of largest magnitude maps to level −8, d = m/−8 as
    /// fp16, x ≈ d·(q − 8) with q in 0...15; values j and j+16 share byte j (low, high nibble).
    static func q4_0(_ x: ArraySlice<Float>, _ out: inout [UInt8]) {
        var m: Float = 0
        for v in x where abs(v) > abs(m) { m = v }
        let d = Float16(m / -8), dh = Float(d)
        append(&out, d.bitPattern)
        let base = x.startIndex
        for j in 0..<16 {
            let lo = UInt8(dh == 0 ? 8 : clampRound(x[base + j] / dh, -8, 7) + 8)
            let hi = UInt8(dh == 0 ? 8 : clampRound(x[base + j + 16] / dh, -8, 7) + 8)
            out.append(lo | hi << 4)
        }
    }
}
