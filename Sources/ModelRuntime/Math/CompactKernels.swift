import CKernels
import Foundation

/// Products with frozen weights kept compact in memory (bf16, or ggml's Q8_0/Q4_0/Q4_1/Q4_K/Q6_K
/// blocks) instead of expanded to fp32: the C kernels of `Sources/CKernels` (ckernels.h), with
/// the output split among threads as `BLAS.smallBatchMatmul` does. Shapes follow a PyTorch
/// linear layer: x is (M, K), the weight W is (N, K) row-major, y = x · Wᵀ is (M, N).
///
/// Precision of each mode is documented in docs/TRAINING_MATH.md ("Compact-weight kernels").
package enum CompactKernels {
    /// Instruction-set levels of the kernels, lowest first.
    package enum ISA: Int32, CaseIterable, Sendable, Comparable, CustomStringConvertible {
        case c = 0, avx2, avx512, vnni, bf16

        package static func < (a: ISA, b: ISA) -> Bool { a.rawValue < b.rawValue }

        package var description: String { String(cString: ck_isa_name(rawValue)) }
    }

    /// How bf16 weights are multiplied.
    package enum BF16Mode: Int32, Sendable {
        /// Weights expanded exactly to fp32, fp32 FMA: an fp32 GEMM up to summation order.
        case exact = 0
        /// Activations rounded to bf16 too (as PyTorch's bf16 autocast does), vdpbf16ps where the
        /// CPU has AVX512_BF16: |error| ≤ 2⁻⁸ · Σ|x||w| per output.
        case bf16 = 1
    }

    /// How quantized weights are multiplied.
    package enum QuantMode: Int32, Sendable {
        /// Weights dequantized exactly, fp32 FMA: equals dequantize + fp32 GEMM up to summation order.
        case exact = 0
        /// Q8_0 and Q4_0: activations quantized to int8 per 32-block, integer dot products (not
        /// exact); other types run exactly.
        case int8 = 1
    }

    /// The level the kernels use now.
    package static var isa: ISA { ISA(rawValue: ck_isa()) ?? .c }

    /// The best level this CPU supports.
    package static var supportedISA: ISA { ISA(rawValue: ck_isa_supported()) ?? .c }

    /// Lowers (or restores, with nil) the level for every kernel of the process, clamped to what
    /// the CPU supports; returns the level now in use. For tests and measurements: not while
    /// another thread runs a kernel. `CORPUS_KERNEL_ISA=c|avx2|avx512|vnni|bf16` sets the default.
    @discardableResult
    package static func setISA(_ level: ISA?) -> ISA {
        ISA(rawValue: ck_set_isa(level?.rawValue ?? -1)) ?? .c
    }

    /// The values rounded to bf16 bits (to nearest, ties to even; NaN stays NaN).
    package static func roundBF16(_ values: [Float]) -> [UInt16] {
        var out = [UInt16](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                if let s = src.baseAddress, let d = dst.baseAddress { ck_round_bf16(s, d, values.count) }
            }
        }
        return out
    }

    /// The fp32 values of bf16 bits (exact).
    package static func floats(bf16 bits: [UInt16]) -> [Float] {
        var out = [Float](repeating: 0, count: bits.count)
        bits.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                if let s = src.baseAddress, let d = dst.baseAddress { ck_bf16_to_f32(s, d, bits.count) }
            }
        }
        return out
    }

    /// Bytes of one row of `k` elements of `type`, or nil when the kernels do not read the type
    /// or `k` is not a whole number of its blocks.
    package static func rowBytes(_ type: GGMLType, k: Int) -> Int? {
        let elements = Int(ck_type_block_elements(Int32(type.rawValue)))
        guard elements > 0, k % elements == 0 else { return nil }
        return k / elements * Int(ck_type_block_bytes(Int32(type.rawValue)))
    }

    /// y[M, N] = x[M, K] · W[N, K]ᵀ with W in bf16. Output columns are split among `threads`.
    /// - Throws: `ModelError.unsupported` when scratch memory could not be allocated.
    package static func gemmBF16(_ x: UnsafePointer<Float>, rows m: Int, k: Int, _ w: UnsafePointer<UInt16>, n: Int,
                                 _ y: UnsafeMutablePointer<Float>, mode: BF16Mode = .exact,
                                 threads: Int = BLAS.threads) throws {
        let ptrs = CompactPointers(x: x, w: UnsafeRawPointer(w), y: y)
        try split(n, threads: threads, work: 2 * m * n * k) { lo, hi in
            ck_gemm_bf16(ptrs.x, Int32(m), Int32(k), ptrs.w.assumingMemoryBound(to: UInt16.self), Int32(lo), Int32(hi),
                         ptrs.y, Int32(n), mode.rawValue)
        }
    }

    /// dx[M, K] = dy[M, N] · W[N, K] with W in bf16: the input gradient of `gemmBF16`
    /// (overwrites dx). Output columns are split among `threads`.
    /// - Throws: `ModelError.unsupported` when scratch memory could not be allocated.
    package static func gemmBF16Transposed(_ dy: UnsafePointer<Float>, rows m: Int, n: Int, _ w: UnsafePointer<UInt16>,
                                           k: Int, _ dx: UnsafeMutablePointer<Float>, mode: BF16Mode = .exact,
                                           threads: Int = BLAS.threads) throws {
        let ptrs = CompactPointers(x: dy, w: UnsafeRawPointer(w), y: dx)
        try split(k, threads: threads, work: 2 * m * n * k) { lo, hi in
            ck_gemm_bf16_t(ptrs.x, Int32(m), Int32(n), ptrs.w.assumingMemoryBound(to: UInt16.self), Int32(k), Int32(lo),
                           Int32(hi), ptrs.y, Int32(k), mode.rawValue)
        }
    }

    /// y[M, N] = x[M, K] · dequant(W)ᵀ with W (N, K) in ggml's layout for `type` (F32, F16,
    /// BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K). Meant for decoding (M ≤ 16): W is read once per call
    /// per 16 rows of x. Output columns are split among `threads`.
    /// - Throws: `ModelError.unsupported` for another type or a K that is not a whole number of
    ///   blocks, or when scratch memory could not be allocated.
    package static func gemmQuantized(_ type: GGMLType, _ x: UnsafePointer<Float>, rows m: Int, k: Int,
                                      _ w: UnsafeRawPointer, n: Int, _ y: UnsafeMutablePointer<Float>,
                                      mode: QuantMode = .exact, threads: Int = BLAS.threads) throws {
        guard rowBytes(type, k: k) != nil else {
            throw ModelError.unsupported("compact kernels: \(type.name) weights with rows of \(k) elements are not supported")
        }
        let ptrs = CompactPointers(x: x, w: w, y: y)
        try split(n, threads: threads, work: 2 * m * n * k) { lo, hi in
            ck_gemm_q(Int32(type.rawValue), ptrs.x, Int32(m), Int32(k), ptrs.w, Int32(lo), Int32(hi), ptrs.y, Int32(n),
                      mode.rawValue)
        }
    }

    /// Rows `rows` of W (N, K) in ggml's layout, dequantized to fp32 into `out` ((rows.count, K)),
    /// bit-identical to `GGMLDequantize`.
    /// - Throws: `ModelError.unsupported` for an unsupported type or K.
    package static func dequantizeRows(_ type: GGMLType, _ w: UnsafeRawPointer, k: Int, rows: Range<Int>,
                                       into out: UnsafeMutablePointer<Float>) throws {
        guard ck_dequantize_rows(Int32(type.rawValue), w, Int32(k), Int32(rows.lowerBound), Int32(rows.upperBound), out) == 0
        else {
            throw ModelError.unsupported("compact kernels: \(type.name) weights with rows of \(k) elements are not supported")
        }
    }

    /// Runs `body(lo, hi)` over [0, count) in up to `threads` parts (one when the work is small),
    /// each a multiple of 16 columns so that threads write separate cache lines.
    private static func split(_ count: Int, threads: Int, work: Int,
                              _ body: @escaping @Sendable (Int, Int) -> Int32) throws {
        let parts = work < 4_000_000 || count < 64 ? 1 : max(1, min(threads, count / 32))
        if parts == 1 {
            guard body(0, count) == 0 else { throw allocationFailure }
            return
        }
        let chunk = ((count + parts - 1) / parts + 15) & ~15
        let failed = FailureFlag()
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            let lo = min(count, p * chunk), hi = min(count, lo + chunk)
            if lo < hi, body(lo, hi) != 0 { failed.set() }
        }
        if failed.value { throw allocationFailure }
    }

    private static let allocationFailure = ModelError.unsupported(
        "compact kernels: scratch memory could not be allocated; free memory or use fewer rows per call")
}

/// Pointers handed to worker threads that read x and w and write disjoint columns of y.
private struct CompactPointers: @unchecked Sendable {
    // @unchecked: x and w are only read; each thread writes its own columns of y, and the caller
    // keeps all three alive until every thread has returned (concurrentPerform is synchronous).
    let x: UnsafePointer<Float>
    let w: UnsafeRawPointer
    let y: UnsafeMutablePointer<Float>
}

/// Set by any worker whose kernel failed.
private final class FailureFlag: @unchecked Sendable { // one write-once Bool guarded by a lock
    private let lock = NSLock()
    private var failed = false
    func set() { lock.withLock { failed = true } }
    var value: Bool { lock.withLock { failed } }
}
