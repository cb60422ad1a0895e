import CBLAS
import Foundation

/// The arithmetic of products with frozen weights (`--compute`).
public enum ComputePrecision: String, Sendable, CaseIterable {
    /// fp32 arithmetic on the exact fp32 values of the weights: the PEFT-exact path.
    case f32
    /// Activations rounded to bf16 before products with bf16 weights, fp32 accumulation (what
    /// PyTorch's bf16 autocast does; AVX512_BF16 `vdpbf16ps` where the CPU has it). Weights of
    /// other types are multiplied in fp32 as with `.f32`.
    case bf16
}

/// Products with a weight kept in its stored type (`StoredTensor`):
/// - fp32 weights: OpenBLAS (sgemv, our small-batch kernel, sgemm);
/// - bf16 weights: our bf16 kernels (`ck_gemm_bf16`, `ck_gemm_bf16_t`), exact fp32 arithmetic
///   or bf16 activations per `ComputePrecision`;
/// - block formats (Q8_0, Q4_K...) and f16: up to 16 activation rows (decoding) through
///   `ck_gemm_q`, which reads each block once and dequantizes it in registers; more rows
///   (prefill, training) a tile of ~2 MB of rows dequantized at a time and multiplied by sgemm,
///   so the fp32 copy of the whole weight never exists.
/// In fp32 arithmetic the result equals the product with the fp32 expansion up to the order of
/// the sums (the dequantization is exact: `CompactWeightTests`).
///
/// Letters: M = rows of the activations, N = the weight's rows (output features), K = its
/// columns (input features). The weight W is (N, K), a PyTorch linear weight.
extension StoredTensor {
    /// Rows per dequantized tile: about 2 MB of fp32 (the L2 of one core here), at least 16.
    var tileRows: Int { max(16, min(rows, (1 << 19) / max(columns, 1))) }

    /// y (M, ldy) = x (M, K) · Wᵀ, plus `beta` · y when `beta` is 1 (a residual added in place).
    package func multiply(_ x: UnsafePointer<Float>, rows M: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
                          beta: Float = 0, precision: ComputePrecision = .f32) {
        let N = rows, K = columns
        guard M > 0, N > 0 else { return }
        switch type {
        case .f32:
            floats.withUnsafeBufferPointer { w in
                guard let w = w.baseAddress else { return }
                if M > 1 && M <= BLAS.smallBatchRows && beta == 0 && ldy == N {
                    BLAS.smallBatchMatmul(x, rows: M, w, y, n: N, k: K)
                } else {
                    BLAS.matmulTransposedB(x, lda: K, w, ldb: K, y, ldc: ldy, m: M, n: N, k: K, beta: beta)
                }
            }
            return
        case .bf16:
            let done = bytes.withUnsafeBytes { raw -> Bool in
                guard let w = raw.baseAddress?.assumingMemoryBound(to: UInt16.self) else { return false }
                return Self.intoY(y, rows: M, n: N, ldy: ldy, beta: beta) { out in
                    try CompactKernels.gemmBF16(x, rows: M, k: K, w, n: N, out, mode: precision == .bf16 ? .bf16 : .exact)
                }
            }
            if done { return }
        default:
            if M <= BLAS.smallBatchRows {
                let done = bytes.withUnsafeBytes { raw -> Bool in
                    guard let w = raw.baseAddress else { return false }
                    return Self.intoY(y, rows: M, n: N, ldy: ldy, beta: beta) { out in
                        try CompactKernels.gemmQuantized(type, x, rows: M, k: K, w, n: N, out)
                    }
                }
                if done { return }
            }
        }
        // Tiles of dequantized rows through sgemm (and the fallback of the kernels above).
        forEachTile { tile, r0, r1 in
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(M), Int32(r1 - r0), Int32(K), 1,
                        x, Int32(K), tile, Int32(K), beta, y + r0, Int32(ldy))
        }
    }

    /// Calls `body(tile, r0, r1)` for consecutive row ranges of at most `tileRows` rows, with
    /// those rows dequantized to fp32 in `tile` ((r1 − r0, K)).
    private func forEachTile(_ body: (UnsafePointer<Float>, Int, Int) -> Void) {
        let R = tileRows
        let tile = UnsafeMutablePointer<Float>.allocate(capacity: R * columns)
        defer { tile.deallocate() }
        var r0 = 0
        while r0 < rows {
            let r1 = min(rows, r0 + R)
            dequantizeRows(r0, r1, into: tile)
            body(tile, r0, r1)
            r0 = r1
        }
    }

    /// Runs `kernel`, which writes a dense (M, N) result, straight into y when y is dense and
    /// nothing is added, else into a scratch matrix that is then copied or added. False when the
    /// kernel failed (the caller falls back to the tiled path).
    private static func intoY(_ y: UnsafeMutablePointer<Float>, rows M: Int, n N: Int, ldy: Int, beta: Float,
                              _ kernel: (UnsafeMutablePointer<Float>) throws -> Void) -> Bool {
        if beta == 0 && ldy == N { return (try? kernel(y)) != nil }
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: M * N)
        defer { scratch.deallocate() }
        guard (try? kernel(scratch)) != nil else { return false }
        for m in 0..<M {
            let dst = y + m * ldy, src = scratch + m * N
            if beta == 0 {
                dst.update(from: src, count: N)
            } else {
                for j in 0..<N { dst[j] += src[j] }
            }
        }
        return true
    }

    /// dx (M, K) = dy (M, lddy) · W: the input gradient of `multiply`. Overwrites dx.
    package func multiplyTransposed(_ dy: UnsafePointer<Float>, rows M: Int, lddy: Int, into dx: UnsafeMutablePointer<Float>,
                                    precision: ComputePrecision = .f32) {
        let N = rows, K = columns
        guard M > 0 else { return }
        guard N > 0 else { dx.update(repeating: 0, count: M * K); return }
        if type == .f32 {
            floats.withUnsafeBufferPointer { w in
                guard let w = w.baseAddress else { return }
                BLAS.matmul(dy, lda: lddy, w, ldb: K, dx, ldc: K, m: M, n: K, k: N)
            }
            return
        }
        if type == .bf16 && lddy == N {
            let done = bytes.withUnsafeBytes { raw -> Bool in
                guard let w = raw.baseAddress?.assumingMemoryBound(to: UInt16.self) else { return false }
                return (try? CompactKernels.gemmBF16Transposed(dy, rows: M, n: N, w, k: K, dx,
                                                                mode: precision == .bf16 ? .bf16 : .exact)) != nil
            }
            if done { return }
        }
        forEachTile { tile, r0, r1 in
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(M), Int32(K), Int32(r1 - r0), 1,
                        dy + r0, Int32(lddy), tile, Int32(K), r0 == 0 ? 0 : 1, dx, Int32(K))
        }
    }

    /// Row `r` (an embedding) into `out` (K values).
    package func copyRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        dequantizeRows(r, r + 1, into: out)
    }
}
