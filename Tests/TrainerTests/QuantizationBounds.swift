import Foundation
@testable import ModelRuntime
@testable import Trainer

/// Per-value bounds on |dequantize(quantize(x)) − x| for `ReferenceQuantizer`, derived from the
/// formats rather than measured.
///
/// Every quantized type rounds its scales to fp16 first, so a scale `s` is stored as `ŝ` with
/// |ŝ − s| ≤ h(s) (half a unit in the last place of fp16). A value then lands on the grid of the
/// stored scales: inside the grid it is off by at most half a step; where the stored scale came
/// out smaller than the exact one, values beyond the grid's end are clamped to it and are off by
/// at most the distance between the two ends. `slack` covers the fp32 arithmetic of quantizing
/// and dequantizing (a few roundings of 2^-24 relative to the block's largest value).
enum QuantizationBounds {
    /// |Float16(v) − v| ≤ h(v): 2^-11 relative for normal values, 2^-25 absolute for subnormal ones.
    static func h(_ v: Float) -> Float { abs(v) * 0x1p-11 + 0x1p-25 }

    static func slack(_ amax: Float) -> Float { amax * 0x1p-18 + 0x1p-40 }

    /// The bound for each value of `x` quantized as `type` (whole blocks).
    static func bounds(_ x: [Float], _ type: GGMLType) -> [Float] {
        let size = type.blockLayout?.elements ?? 1
        var out: [Float] = []
        out.reserveCapacity(x.count)
        for start in stride(from: 0, to: x.count, by: size) {
            let block = x[start..<min(start + size, x.count)]
            switch type {
            case .f32: out += block.map { _ in 0 }
            case .f16: out += block.map { h($0) }
            // bf16 keeps 8 significant bits: half a unit is 2^-8 relative (2^-133 for fp32 subnormals).
            case .bf16: out += block.map { abs($0) * 0x1p-8 + 0x1p-133 }
            case .q8_0: out += q8_0(block)
            case .q4_0: out += q4_0(block)
            case .q4_1: out += q4_1(block)
            case .q4_K: out += q4_K(block)
            case .q6_K: out += q6_K(block)
            default: out += block.map { _ in 0 }
            }
        }
        return out
    }

    static func amax(_ x: ArraySlice<Float>) -> Float { x.map(abs).max() ?? 0 }

    /// Q8_0: d = amax/127 on a symmetric grid −127...127. Inside: ≤ d̂/2 ≤ (d + h(d))/2. When
    /// d̂ < d the largest values are clamped at 127·d̂: ≤ 127·h(d).
    static func q8_0(_ x: ArraySlice<Float>) -> [Float] {
        let d = amax(x) / 127
        let b = max((d + h(d)) / 2, 127 * h(d)) + slack(amax(x))
        return x.map { _ in b }
    }

    /// Q4_0 and Q6_K put the signed extreme m on level −K of a grid −K...K−1 with step s = |m|/K.
    /// On m's side the grid reaches K·ŝ: ≤ max(ŝ/2, K·e). On the other side it stops at
    /// (K−1)·ŝ, so a value v there can be off by |v| − (K−1)·ŝ (up to about one step).
    /// `e` bounds |ŝ − s|.
    static func extremeOnGrid(_ v: Float, extreme m: Float, step s: Float, e: Float, levels K: Float) -> Float {
        let inside = (s + e) / 2
        if v * m >= 0 { return max(inside, K * e) }
        return max(inside, abs(v) - (K - 1) * (s - e))
    }

    static func q4_0(_ x: ArraySlice<Float>) -> [Float] {
        let m = ReferenceQuantizer.signedExtreme(x), s = abs(m) / 8
        return x.map { extremeOnGrid($0, extreme: m, step: s, e: h(s), levels: 8) + slack(amax(x)) }
    }

    /// Q4_1: grid m̂ + d̂·(0...15) for d = (max − min)/15, m = min. Inside: ≤ (d + h(d))/2; the grid's
    /// ends move by at most h(min) (bottom) and h(min) + 15·h(d) (top).
    static func q4_1(_ x: ArraySlice<Float>) -> [Float] {
        let lo = x.min() ?? 0, hi = x.max() ?? 0, d = (hi - lo) / 15
        let b = max((d + h(d)) / 2, h(lo) + 15 * h(d)) + slack(amax(x))
        return x.map { _ in b }
    }

    /// Q4_K, per sub-block j of 32: scale_j = range_j/15 stored as d̂·sc_j with d = S/63 (S the largest
    /// scale), so |d̂·sc_j − scale_j| ≤ es = max(d̂/2, 63·h(S/63)) (rounding sc_j, or clamping it at 63);
    /// likewise the offset within eo for dmin = M/63. Inside: ≤ (scale_j + es)/2; bottom end off by
    /// ≤ eo, top end by ≤ eo + 15·es (this also covers sc_j = 0, where scale_j < es).
    static func q4_K(_ x: ArraySlice<Float>) -> [Float] {
        let base = x.startIndex
        let subs = (0..<8).map { x[(base + 32 * $0)..<(base + 32 * $0 + 32)] }
        let scale = subs.map { ((($0.max() ?? 0) - min(0, $0.min() ?? 0))) / 15 }
        let minabs = subs.map { -min(0, $0.min() ?? 0) }
        let S = scale.max() ?? 0, M = minabs.max() ?? 0
        let es = max((S / 63 + h(S / 63)) / 2, 63 * h(S / 63))
        let eo = max((M / 63 + h(M / 63)) / 2, 63 * h(M / 63))
        return (0..<8).flatMap { j in
            let b = max((scale[j] + es) / 2, eo + 15 * es) + slack(amax(x))
            return subs[j].map { _ in b }
        }
    }

    /// Q6_K, per sub-block j of 16: extreme m_j on level −32 of −32...31, step scale_j = |m_j|/32
    /// stored as d̂·sc_j with d = S/127, so |step − scale_j| ≤ es = max(d̂/2, 127·h(S/127)).
    static func q6_K(_ x: ArraySlice<Float>) -> [Float] {
        let base = x.startIndex
        let subs = (0..<16).map { x[(base + 16 * $0)..<(base + 16 * $0 + 16)] }
        let extreme = subs.map(ReferenceQuantizer.signedExtreme)
        let S = extreme.map { abs($0) / 32 }.max() ?? 0
        let es = max((S / 127 + h(S / 127)) / 2, 127 * h(S / 127))
        return (0..<16).flatMap { j in
            subs[j].map { extremeOnGrid($0, extreme: extreme[j], step: abs(extreme[j]) / 32, e: es, levels: 32) + slack(amax(x)) }
        }
    }
}
