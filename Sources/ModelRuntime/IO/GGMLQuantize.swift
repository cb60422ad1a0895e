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
        case .q4_K: for b in stride(from: 0, to: values.count, by: 256) { q4_K(values[b..<(b + 256)], &out) }
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

    /// block_q4_K (144 bytes, 256 values in 8 sub-blocks of 32): x ≈ d·sc_j·q − dmin·m_j with q in
    /// 0...15 and 6-bit sc_j, m_j packed as `GGMLDequantize.scaleMinK4` reads them. Each
    /// sub-block's step and offset come from `fitSubBlock`; the super-block scales d and dmin are
    /// the largest step and offset over 63. Valid Q4_K that llama.cpp reads; not ggml's
    /// quantizer (its importance-weighted search is not reproduced), so not bit-identical to
    /// llama-quantize's.
    /// Step a and offset b of one sub-block, x ≈ a·q − b with q in 0...15 and b ≥ 0: the range
    /// split in 15, then a few rounds of assigning levels and refitting (a, b) by least squares,
    /// keeping the fit with the smallest squared error (as ggml's `make_qkx2_quants` refines).
    static func fitSubBlock(_ x: ArraySlice<Float>) -> (step: Float, offset: Float) {
        var lo: Float = 0, hi = -Float.infinity
        for v in x { lo = min(lo, v); hi = max(hi, v) }
        guard hi > lo else { return (0, -lo) }
        func error(_ a: Float, _ b: Float) -> Float {
            var e: Float = 0
            for v in x {
                let q = Float(clampRound((v + b) / a, 0, 15))
                e += (a * q - b - v) * (a * q - b - v)
            }
            return e
        }
        var best = (step: (hi - lo) / 15, offset: -lo)
        var bestError = error(best.step, best.offset)
        for t in stride(from: Float(-0.4), through: 0.4, by: 0.2) {
            var a = (hi - lo) / (15 + t), b = -lo
            for _ in 0..<3 {
                var sq: Float = 0, sqq: Float = 0, sx: Float = 0, sqx: Float = 0
                for v in x {
                    let q = Float(clampRound((v + b) / a, 0, 15))
                    sq += q; sqq += q * q; sx += v; sqx += q * v
                }
                let n = Float(x.count), det = n * sqq - sq * sq
                guard det > 0 else { break }
                var na = (n * sqx - sq * sx) / det
                var nb = (na * sq - sx) / n
                if nb < 0 { nb = 0; na = sqq > 0 ? sqx / sqq : a }
                guard na > 0 else { break }
                (a, b) = (na, nb)
                let e = error(a, b)
                if e < bestError { (best, bestError) = ((a, b), e) }
            }
        }
        return best
    }

    static func q4_K(_ x: ArraySlice<Float>, _ out: inout [UInt8]) {
        let base = x.startIndex
        var steps = [Float](repeating: 0, count: 8), offsets = [Float](repeating: 0, count: 8)
        for j in 0..<8 {
            (steps[j], offsets[j]) = fitSubBlock(x[(base + 32 * j)..<(base + 32 * j + 32)])
        }
        let d = Float16((steps.max() ?? 0) / 63), dmin = Float16((offsets.max() ?? 0) / 63)
        let dh = Float(d), dminh = Float(dmin)
        var sc = [UInt8](repeating: 0, count: 8), mn = [UInt8](repeating: 0, count: 8)
        for j in 0..<8 {
            sc[j] = dh > 0 ? UInt8(clampRound(steps[j] / dh, 0, 63)) : 0
            mn[j] = dminh > 0 ? UInt8(clampRound(offsets[j] / dminh, 0, 63)) : 0
        }
        append(&out, d.bitPattern)
        append(&out, dmin.bitPattern)
        var packed = [UInt8](repeating: 0, count: 12)
        for j in 0..<4 {
            packed[j] = sc[j]
            packed[j + 4] = mn[j]
        }
        for j in 4..<8 {
            packed[j + 4] = (sc[j] & 0x0F) | (mn[j] & 0x0F) << 4
            packed[j - 4] |= (sc[j] >> 4) << 6
            packed[j] |= (mn[j] >> 4) << 6
        }
        out.append(contentsOf: packed)
        func level(_ j: Int, _ l: Int) -> UInt8 {
            let step = dh * Float(sc[j])
            guard step > 0 else { return 0 }
            return UInt8(clampRound((x[base + 32 * j + l] + dminh * Float(mn[j])) / step, 0, 15))
        }
        for pair in 0..<4 {
            for l in 0..<32 { out.append(level(2 * pair, l) | level(2 * pair + 1, l) << 4) }
        }
    }
}
