import Foundation
@testable import ModelRuntime
@testable import Trainer

/// Reference quantizers (fp32 → bytes) for every ggml type the GGUF reader supports, written for
/// the tests from the block layouts documented in `GGMLDequantize.swift` (ggml's `ggml-common.h`).
///
/// They are deliberately plain: one max-abs (symmetric types) or min-max (types with an offset)
/// scale per block, rounded to fp16 first and then used to round every value, instead of ggml's
/// search for the scale with the least error. Their error is therefore a little larger than
/// llama-quantize's but can be bounded from the format alone (`QuantizationBounds`). F32, F16,
/// BF16, Q8_0 and Q4_0 are the runtime's own `GGMLQuantize` (what `--base-type` writes); Q4_1,
/// Q4_K and Q6_K exist only here.
enum ReferenceQuantizer {
    struct Failure: Error, CustomStringConvertible { let description: String }

    /// `values` quantized as `type`, blocks in order; `values.count` must fill whole blocks.
    static func quantize(_ values: [Float], as type: GGMLType) throws -> [UInt8] {
        guard let layout = type.blockLayout else { throw Failure(description: "no reference quantizer for \(type.name)") }
        guard values.count % layout.elements == 0 else {
            throw Failure(description: "\(values.count) values do not fill whole \(type.name) blocks of \(layout.elements)")
        }
        var out: [UInt8] = []
        out.reserveCapacity(values.count / layout.elements * layout.bytes)
        let blocks = stride(from: 0, to: values.count, by: layout.elements).map { values[$0..<($0 + layout.elements)] }
        switch type {
        // The runtime's own quantizer (`--base-type`) writes these five; the rest are test-only.
        case .f32, .f16, .bf16, .q8_0, .q4_0: GGMLQuantize.append(values, as: type, to: &out)
        case .q4_1: for b in blocks { q4_1(b, &out) }
        case .q4_K: for b in blocks { q4_K(b, &out) }
        case .q6_K: for b in blocks { q6_K(b, &out) }
        default: throw Failure(description: "no reference quantizer for \(type.name)")
        }
        guard out.count == values.count / layout.elements * layout.bytes else {
            throw Failure(description: "\(type.name): wrote \(out.count) bytes for \(values.count) values")
        }
        return out
    }

    /// `bytes` of `type` dequantized by the loader's `GGMLDequantize.run`.
    static func dequantize(_ bytes: [UInt8], as type: GGMLType, count: Int) throws -> [Float] {
        guard let layout = type.blockLayout, count % layout.elements == 0, bytes.count == count / layout.elements * layout.bytes else {
            throw Failure(description: "\(bytes.count) bytes are not \(count) values of \(type.name)")
        }
        var out = [Float](repeating: .nan, count: count)
        guard count > 0 else { return out }
        try bytes.withUnsafeBytes { src in
            try out.withUnsafeMutableBufferPointer { dst in
                guard let from = src.baseAddress, let to = dst.baseAddress else { throw Failure(description: "empty buffer") }
                GGMLDequantize.run(type, source: from, count: count, into: to)
            }
        }
        return out
    }

    // MARK: - Helpers

    /// `v` rounded to the fp16 grid, as an fp32 value.
    static func fp16(_ v: Float) -> Float { Float(Float16(v)) }

    /// The value of largest magnitude, with its sign (the first one on ties).
    static func signedExtreme(_ x: ArraySlice<Float>) -> Float {
        var m: Float = 0
        for v in x where abs(v) > abs(m) { m = v }
        return m
    }

    // MARK: - 32-value blocks

    /// block_q4_1: m = min x, d = (max x − min x)/15, x ≈ d·q + m, q in 0...15.
    static func q4_1(_ x: ArraySlice<Float>, _ out: inout [UInt8]) {
        let lo = x.min() ?? 0, hi = x.max() ?? 0
        let d = Float16((hi - lo) / 15), m = Float16(lo)
        let dh = Float(d), mh = Float(m)
        GGMLQuantize.append(&out, d.bitPattern)
        GGMLQuantize.append(&out, m.bitPattern)
        let q = x.map { UInt8(dh == 0 ? 0 : GGMLQuantize.clampRound(($0 - mh) / dh, 0, 15)) }
        for j in 0..<16 { out.append(q[j] | q[j + 16] << 4) }
    }

    // MARK: - 256-value super-blocks

    /// block_q4_K: 8 sub-blocks of 32, x ≈ d·sc·q − dmin·m with 6-bit sc, m and 4-bit q. Per
    /// sub-block the range is [min(0, min x), max x] (the offset −dmin·m cannot be positive):
    /// scale = range/15, minabs = −min(0, min x); d = max scale/63, dmin = max minabs/63.
    static func q4_K(_ x: ArraySlice<Float>, _ out: inout [UInt8]) {
        let base = x.startIndex
        var scale = [Float](repeating: 0, count: 8), minabs = [Float](repeating: 0, count: 8)
        for j in 0..<8 {
            let sub = x[(base + 32 * j)..<(base + 32 * j + 32)]
            let lo = min(0, sub.min() ?? 0), hi = sub.max() ?? 0
            scale[j] = (hi - lo) / 15
            minabs[j] = -lo
        }
        let d = Float16((scale.max() ?? 0) / 63), dmin = Float16((minabs.max() ?? 0) / 63)
        let dh = Float(d), dminh = Float(dmin)
        let sc = scale.map { UInt8(dh == 0 ? 0 : GGMLQuantize.clampRound($0 / dh, 0, 63)) }
        let mn = minabs.map { UInt8(dminh == 0 ? 0 : GGMLQuantize.clampRound($0 / dminh, 0, 63)) }
        GGMLQuantize.append(&out, d.bitPattern)
        GGMLQuantize.append(&out, dmin.bitPattern)
        // The 12 scale bytes, the inverse of GGMLDequantize.scaleMinK4: sub-blocks 0-3 keep sc and m
        // in the low 6 bits of bytes 0-3 and 4-7; sub-blocks 4-7 put their low 4 bits in bytes 8-11
        // and their top 2 bits in the top bits of bytes 0-3 (sc) and 4-7 (m).
        var packed = [UInt8](repeating: 0, count: 12)
        for j in 0..<4 {
            packed[j] = sc[j] | (sc[j + 4] >> 4) << 6
            packed[j + 4] = mn[j] | (mn[j + 4] >> 4) << 6
            packed[j + 8] = (sc[j + 4] & 0x0F) | (mn[j + 4] & 0x0F) << 4
        }
        out += packed
        var q = [UInt8](repeating: 0, count: 256)
        for j in 0..<8 {
            let s = dh * Float(sc[j]), o = dminh * Float(mn[j])
            for l in 0..<32 {
                q[32 * j + l] = UInt8(s == 0 ? 0 : GGMLQuantize.clampRound((x[base + 32 * j + l] + o) / s, 0, 15))
            }
        }
        // Pairs of sub-blocks share 32 bytes: the even one in the low nibbles, the odd one in the high.
        for pair in 0..<4 {
            for l in 0..<32 { out.append(q[64 * pair + l] | q[64 * pair + 32 + l] << 4) }
        }
    }

    /// block_q6_K: 16 sub-blocks of 16, x ≈ d·sc·(q − 32) with int8 sc and 6-bit q. Per sub-block
    /// the value m of largest magnitude maps to level −32 (scale = m/−32, as Q4_0 does);
    /// d = max|scale|/127.
    static func q6_K(_ x: ArraySlice<Float>, _ out: inout [UInt8]) {
        let base = x.startIndex
        let scale = (0..<16).map { j in signedExtreme(x[(base + 16 * j)..<(base + 16 * j + 16)]) / -32 }
        let d = Float16((scale.map(abs).max() ?? 0) / 127), dh = Float(d)
        let sc = scale.map { Int8(dh == 0 ? 0 : GGMLQuantize.clampRound($0 / dh, -127, 127)) }
        var u = [UInt8](repeating: 0, count: 256)   // q + 32, in 0...63
        for j in 0..<16 {
            let s = dh * Float(sc[j])
            for l in 0..<16 { u[16 * j + l] = UInt8((s == 0 ? 0 : GGMLQuantize.clampRound(x[base + 16 * j + l] / s, -32, 31)) + 32) }
        }
        // Each half of 128 values: ql holds low nibbles (values l and l+64 share byte l, values
        // l+32 and l+96 share byte l+32), qh the top 2 bits of values l, l+32, l+64, l+96 in byte l.
        var ql = [UInt8](repeating: 0, count: 128), qh = [UInt8](repeating: 0, count: 64)
        for half in 0..<2 {
            for l in 0..<32 {
                let v = (0..<4).map { u[128 * half + l + 32 * $0] }
                ql[64 * half + l] = (v[0] & 0x0F) | (v[2] & 0x0F) << 4
                ql[64 * half + l + 32] = (v[1] & 0x0F) | (v[3] & 0x0F) << 4
                qh[32 * half + l] = (v[0] >> 4) | (v[1] >> 4) << 2 | (v[2] >> 4) << 4 | (v[3] >> 4) << 6
            }
        }
        out += ql
        out += qh
        out += sc.map { UInt8(bitPattern: $0) }
        GGMLQuantize.append(&out, d.bitPattern)
    }
}
