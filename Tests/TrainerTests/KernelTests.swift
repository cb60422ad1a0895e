import Foundation
import Testing
import CKernels
@testable import ModelRuntime

/// The compact-weight kernels (Sources/CKernels, through `CompactKernels`) on every instruction-set
/// path this CPU can run, against plain fp64 references written here. Shapes cover every
/// remainder: rows M in 1, 2, 3, 5, 16, 17, 33; N and K not multiples of the vector width, of the
/// register tiles (8 × 48) or of the cache blocks (K 256/512, N 480) where the format allows.
///
/// Tolerances, per output, with S = Σ_k |x[m,k]| · |w[n,k]| (w the exact fp32 weight values):
/// - exact modes (bf16 mode 0, quantized exact): |y − ref| ≤ 1e-5 · S (fp32 summation is ~1e-7);
/// - bf16 mode 1 (x rounded to bf16): |y − ref| ≤ (2⁻⁸ + 1e-5) · S, 2⁻⁸ being bf16's unit roundoff;
/// - int8 mode (Q8_0, Q4_0): |y − ref| ≤ 1.001 · Σ_blocks (max|x in block| / 254) · Σ_block |w|
///   + 1e-5 · S: each x is rounded to a step of max|x| / 127 of its 32-block, so it moves by at
///   most half a step (the 0.1 % covers the fp32 scale and its reciprocal).
/// The suite is serialized because it switches the process-wide kernel level.
@Suite("Compact-weight kernels", .serialized)
struct CompactKernelTests {
    /// Every level this CPU supports, lowest first.
    static let levels = CompactKernels.ISA.allCases.filter { $0.rawValue <= CompactKernels.supportedISA.rawValue }

    /// Runs `body` once per supported level, restoring the default afterwards.
    static func forEachLevel(_ body: (CompactKernels.ISA) throws -> Void) rethrows {
        defer { CompactKernels.setISA(nil) }
        for level in levels {
            #expect(CompactKernels.setISA(level) == level)
            try body(level)
        }
    }

    static func uniform(_ count: Int, _ rng: inout SplitMix64, scale: Float = 1) -> [Float] {
        (0..<count).map { _ in scale * Float(rng.nextDouble() * 2 - 1) }
    }

    /// y = x · wᵀ and S = |x| · |w|ᵀ in fp64: x (M, K), w (N, K).
    static func reference(_ x: [Float], _ w: [Float], m: Int, n: Int, k: Int) -> (y: [Double], mag: [Double]) {
        var y = [Double](repeating: 0, count: m * n), mag = y
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0, a = 0.0
                for t in 0..<k {
                    let p = Double(x[i * k + t]) * Double(w[j * k + t])
                    s += p
                    a += abs(p)
                }
                y[i * n + j] = s
                mag[i * n + j] = a
            }
        }
        return (y, mag)
    }

    /// The worst |y − ref| / S over all outputs (0 where S is 0 and y is exactly 0).
    static func worst(_ y: [Float], _ ref: (y: [Double], mag: [Double])) -> Double {
        var worst = 0.0
        for i in y.indices {
            let err = abs(Double(y[i]) - ref.y[i])
            let rel = ref.mag[i] > 0 ? err / ref.mag[i] : (err == 0 ? 0 : .infinity)
            if !(rel <= worst) { worst = rel }
        }
        return worst
    }

    static let rowCounts = [1, 2, 3, 5, 16, 17, 33]

    // MARK: - ISA and converters

    @Test("levels: the override clamps to the CPU, names, and nil restores the default")
    func levelOverride() {
        defer { CompactKernels.setISA(nil) }
        #expect(CompactKernels.setISA(.c) == .c)
        #expect(CompactKernels.isa == .c)
        #expect(CompactKernels.setISA(.bf16) == CompactKernels.supportedISA)
        #expect(CompactKernels.ISA.allCases.map(\.description) == ["c", "avx2", "avx512", "vnni", "bf16"])
        let restored = CompactKernels.setISA(nil)
        #expect(restored.rawValue <= CompactKernels.supportedISA.rawValue)
        // The environment variable is the default that nil restores.
        let saved = ProcessInfo.processInfo.environment["CORPUS_KERNEL_ISA"]
        defer {
            if let saved { setenv("CORPUS_KERNEL_ISA", saved, 1) } else { unsetenv("CORPUS_KERNEL_ISA") }
        }
        setenv("CORPUS_KERNEL_ISA", "c", 1)
        #expect(CompactKernels.setISA(nil) == .c)
        #expect(ck_uses_avx512() == 0)
        setenv("CORPUS_KERNEL_ISA", "avx2", 1)
        #expect(CompactKernels.setISA(nil) == min(.avx2, CompactKernels.supportedISA))
    }

    /// Round to nearest even on the bits, written plainly: the reference for `roundBF16`.
    static func bf16Reference(_ v: Float) -> UInt16 {
        if v.isNaN { return UInt16(v.bitPattern >> 16) | 0x40 }
        let bits = v.bitPattern, low = bits & 0xFFFF, high = bits >> 16
        if low > 0x8000 || (low == 0x8000 && high & 1 == 1) { return UInt16(truncatingIfNeeded: high + 1) }
        return UInt16(high)
    }

    @Test("bf16 rounding: ties to even, subnormals, overflow to infinity, NaN stays NaN, on every level")
    func bf16Rounding() {
        var rng = SplitMix64(seed: 11)
        var values: [Float] = [0, -0, 1, -1, .infinity, -.infinity, .nan, -.nan, .greatestFiniteMagnitude,
                               -.greatestFiniteMagnitude, .leastNonzeroMagnitude, .leastNormalMagnitude,
                               Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), // ties: down, up
                               Float(bitPattern: 0x3F80_8001), Float(bitPattern: 0x7F7F_FFFF), Float(bitPattern: 0x7FA0_0001)]
        values += (0..<1000).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) }
        let expected = values.map(Self.bf16Reference)
        Self.forEachLevel { level in
            let bits = CompactKernels.roundBF16(values)
            #expect(bits == expected, "level \(level)")
            let back = CompactKernels.floats(bf16: bits)
            for (b, f) in zip(bits, back) {
                #expect(f.bitPattern == UInt32(b) << 16, "level \(level)")
            }
            #expect(CompactKernels.floats(bf16: CompactKernels.roundBF16([.nan]))[0].isNaN)
        }
    }

    // MARK: - bf16 products

    /// (N, K) pairs: tiny, odd, beyond the 48-column tile and 256/512 reduction blocks, beyond the
    /// 480-column block.
    static let bf16Shapes = [(1, 1), (7, 13), (50, 37), (97, 300), (500, 601)]

    @Test("ck_gemm_bf16: y = x·Wᵀ, modes exact and bf16, every level and remainder", arguments: bf16Shapes)
    func gemmBF16(shape: (Int, Int)) throws {
        let (n, k) = shape
        var rng = SplitMix64(seed: UInt64(n * 1000 + k))
        let w16 = CompactKernels.roundBF16(Self.uniform(n * k, &rng, scale: 0.5))
        let wf = CompactKernels.floats(bf16: w16)
        for m in Self.rowCounts where m * n * k <= 33 * 97 * 300 || m == 17 {
            let x = Self.uniform(m * k, &rng)
            let exact = Self.reference(x, wf, m: m, n: n, k: k)
            let xr = CompactKernels.floats(bf16: CompactKernels.roundBF16(x))
            try Self.forEachLevel { level in
                for mode in [CompactKernels.BF16Mode.exact, .bf16] {
                    var y = [Float](repeating: .nan, count: m * n)
                    try CompactKernels.gemmBF16(x, rows: m, k: k, w16, n: n, &y, mode: mode, threads: 2)
                    let err = Self.worst(y, exact)
                    let bound = mode == .exact ? 1e-5 : 1.0 / 256 + 1e-5
                    #expect(err <= bound, "M \(m) N \(n) K \(k) level \(level) mode \(mode): \(err)")
                    if mode == .bf16 {
                        // Mode 1 is the exact product of the rounded x.
                        let rounded = Self.reference(xr, wf, m: m, n: n, k: k)
                        #expect(Self.worst(y, rounded) <= 1e-5, "M \(m) N \(n) K \(k) level \(level): rounded x")
                    }
                }
            }
        }
    }

    @Test("ck_gemm_bf16_t: dx = dy·W, modes exact and bf16, every level and remainder", arguments: bf16Shapes)
    func gemmBF16Transposed(shape: (Int, Int)) throws {
        let (n, k) = shape
        var rng = SplitMix64(seed: UInt64(n * 7 + k))
        let w16 = CompactKernels.roundBF16(Self.uniform(n * k, &rng, scale: 0.5))
        let wf = CompactKernels.floats(bf16: w16)
        // Wᵀ (K, N), so that dx = dy · (Wᵀ)ᵀ fits `reference`.
        var wt = [Float](repeating: 0, count: n * k)
        for i in 0..<n { for j in 0..<k { wt[j * n + i] = wf[i * k + j] } }
        for m in Self.rowCounts where m * n * k <= 33 * 97 * 300 || m == 17 {
            let dy = Self.uniform(m * n, &rng)
            let exact = Self.reference(dy, wt, m: m, n: k, k: n)
            try Self.forEachLevel { level in
                for mode in [CompactKernels.BF16Mode.exact, .bf16] {
                    var dx = [Float](repeating: .nan, count: m * k)
                    try CompactKernels.gemmBF16Transposed(dy, rows: m, n: n, w16, k: k, &dx, mode: mode, threads: 2)
                    let err = Self.worst(dx, exact)
                    let bound = mode == .exact ? 1e-5 : 1.0 / 256 + 1e-5
                    #expect(err <= bound, "M \(m) N \(n) K \(k) level \(level) mode \(mode): \(err)")
                }
            }
        }
    }

    @Test("a column slice [n0, n1) writes only its columns")
    func columnSlice() {
        let m = 5, n = 100, k = 70
        var rng = SplitMix64(seed: 3)
        let x = Self.uniform(m * max(n, k), &rng)
        let w16 = CompactKernels.roundBF16(Self.uniform(n * k, &rng))
        Self.forEachLevel { level in
            for mode: Int32 in [0, 1] {
                var y = [Float](repeating: -7, count: m * n), dx = [Float](repeating: -7, count: m * k)
                #expect(ck_gemm_bf16(x, Int32(m), Int32(k), w16, 17, 66, &y, Int32(n), mode) == 0)
                #expect(ck_gemm_bf16_t(x, Int32(m), Int32(n), w16, Int32(k), 9, 50, &dx, Int32(k), mode) == 0)
                for i in 0..<m {
                    for j in 0..<n where !(17..<66).contains(j) { #expect(y[i * n + j] == -7, "level \(level)") }
                    for j in 0..<k where !(9..<50).contains(j) { #expect(dx[i * k + j] == -7, "level \(level)") }
                    #expect(y[i * n + 17] != -7 && dx[i * k + 49] != -7)
                }
            }
        }
    }

    // MARK: - quantized weights

    /// Random blocks of `type`: random bytes with the fp16 scale fields replaced by finite values
    /// of a modest size (random scales can be huge or NaN).
    static func randomWeights(_ type: GGMLType, rows: Int, k: Int, _ rng: inout SplitMix64) -> [UInt8] {
        let rowBytes = CompactKernels.rowBytes(type, k: k)!
        var bytes = (0..<rows * rowBytes).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        func half(_ offset: Int, _ lo: Double, _ hi: Double) {
            let v = Float16(lo + (hi - lo) * rng.nextDouble()).bitPattern
            bytes[offset] = UInt8(v & 0xFF)
            bytes[offset + 1] = UInt8(v >> 8)
        }
        let blocks = rows * k / (type.blockLayout?.elements ?? 1), size = type.blockLayout?.bytes ?? 1
        for b in 0..<blocks {
            let o = b * size
            switch type {
            case .f32:
                let f = Float(rng.nextDouble() * 2 - 1).bitPattern
                for i in 0..<4 { bytes[o + i] = UInt8(truncatingIfNeeded: f >> (8 * i)) }
            case .f16: half(o, -2, 2)
            case .bf16:
                let v = CompactKernels.roundBF16([Float(rng.nextDouble() * 2 - 1)])[0]
                bytes[o] = UInt8(v & 0xFF)
                bytes[o + 1] = UInt8(v >> 8)
            case .q8_0, .q4_0: half(o, -0.05, 0.05)
            case .q4_1, .q4_K: half(o, -0.05, 0.05); half(o + 2, -0.05, 0.05)
            case .q6_K: half(o + 208, -0.01, 0.01)
            default: break
            }
        }
        return bytes
    }

    static let quantTypes: [GGMLType] = [.q8_0, .q4_0, .q4_1, .q4_K, .q6_K, .bf16, .f16, .f32]

    static func kValues(_ type: GGMLType) -> [Int] {
        switch type.blockLayout?.elements ?? 1 {
        case 256: return [256, 768]
        case 32: return [32, 64, 96, 1056] // odd and even block counts; 1056 > the 1024-element chunk
        default: return [13, 37, 1030]
        }
    }

    static func dequantize(_ type: GGMLType, _ bytes: [UInt8], count: Int) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { raw in
            out.withUnsafeMutableBufferPointer { GGMLDequantize.run(type, source: raw.baseAddress!, count: count, into: $0.baseAddress!) }
        }
        return out
    }

    @Test("ck_dequantize_rows is bit-identical to GGMLDequantize on random blocks, every level", arguments: quantTypes)
    func dequantizeRows(type: GGMLType) throws {
        var rng = SplitMix64(seed: UInt64(type.rawValue) + 100)
        for k in Self.kValues(type) {
            let rows = 9
            let bytes = Self.randomWeights(type, rows: rows, k: k, &rng)
            let expected = Self.dequantize(type, bytes, count: rows * k)
            try Self.forEachLevel { level in
                var out = [Float](repeating: .nan, count: 5 * k)
                try bytes.withUnsafeBytes { raw in
                    try CompactKernels.dequantizeRows(type, raw.baseAddress!, k: k, rows: 3..<8, into: &out)
                }
                let same = zip(out, expected[(3 * k)..<(8 * k)]).allSatisfy { $0.bitPattern == $1.bitPattern }
                #expect(same, "\(type.name) K \(k) level \(level)")
            }
        }
    }

    @Test("ck_gemm_q exact: y = x·dequant(W)ᵀ, every level, row count and remainder", arguments: quantTypes)
    func gemmQuantized(type: GGMLType) throws {
        var rng = SplitMix64(seed: UInt64(type.rawValue) + 7)
        for k in Self.kValues(type) {
            for n in [1, 5, 37] {
                let bytes = Self.randomWeights(type, rows: n, k: k, &rng)
                let wf = Self.dequantize(type, bytes, count: n * k)
                for m in Self.rowCounts where m <= 17 || k < 1000 {
                    let x = Self.uniform(m * k, &rng)
                    let ref = Self.reference(x, wf, m: m, n: n, k: k)
                    try Self.forEachLevel { level in
                        var y = [Float](repeating: .nan, count: m * n)
                        try bytes.withUnsafeBytes { raw in
                            try CompactKernels.gemmQuantized(type, x, rows: m, k: k, raw.baseAddress!, n: n, &y, threads: 2)
                        }
                        let err = Self.worst(y, ref)
                        #expect(err <= 1e-5, "\(type.name) M \(m) N \(n) K \(k) level \(level): \(err)")
                    }
                }
            }
        }
    }

    @Test("ck_gemm_q int8: Q8_0 and Q4_0 with x quantized per block stay within the rounding bound",
          arguments: [GGMLType.q8_0, .q4_0])
    func gemmQuantizedInt8(type: GGMLType) throws {
        var rng = SplitMix64(seed: UInt64(type.rawValue) + 77)
        for k in Self.kValues(type) {
            for n in [1, 5, 37] {
                let bytes = Self.randomWeights(type, rows: n, k: k, &rng)
                let wf = Self.dequantize(type, bytes, count: n * k)
                for m in Self.rowCounts where m <= 17 || k < 1000 {
                    let x = Self.uniform(m * k, &rng)
                    let ref = Self.reference(x, wf, m: m, n: n, k: k)
                    // The rounding bound of each output.
                    var bound = [Double](repeating: 0, count: m * n)
                    for i in 0..<m {
                        for j in 0..<n {
                            var b = 0.0
                            for block in 0..<(k / 32) {
                                let xs = x[(i * k + 32 * block)..<(i * k + 32 * block + 32)]
                                let ws = wf[(j * k + 32 * block)..<(j * k + 32 * block + 32)]
                                b += Double(xs.map(abs).max()!) / 254 * ws.reduce(0.0) { $0 + Double(abs($1)) }
                            }
                            bound[i * n + j] = 1.001 * b + 1e-5 * ref.mag[i * n + j]
                        }
                    }
                    try Self.forEachLevel { level in
                        var y = [Float](repeating: .nan, count: m * n)
                        try bytes.withUnsafeBytes { raw in
                            try CompactKernels.gemmQuantized(type, x, rows: m, k: k, raw.baseAddress!, n: n, &y, mode: .int8,
                                                             threads: 2)
                        }
                        for i in y.indices {
                            let err = abs(Double(y[i]) - ref.y[i])
                            #expect(err <= bound[i], "\(type.name) M \(m) N \(n) K \(k) level \(level): \(err) > \(bound[i])")
                        }
                    }
                }
            }
        }
    }

    @Test("unsupported types and partial blocks are refused")
    func refusals() {
        var y = [Float](repeating: 0, count: 4)
        let x = [Float](repeating: 1, count: 64), w = [UInt8](repeating: 0, count: 1024)
        #expect(throws: ModelError.self) { try CompactKernels.gemmQuantized(.q5_0, x, rows: 1, k: 32, w, n: 1, &y) }
        #expect(throws: ModelError.self) { try CompactKernels.gemmQuantized(.q8_0, x, rows: 1, k: 48, w, n: 1, &y) }
        #expect(throws: ModelError.self) { try CompactKernels.dequantizeRows(.q4_K, w, k: 128, rows: 0..<1, into: &y) }
        #expect(CompactKernels.rowBytes(.q6_K, k: 512) == 420)
    }
}
