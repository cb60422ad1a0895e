import CBLAS
import CKernels
import Foundation

/// Products with a weight kept in its stored type (`StoredTensor`), in fp32 arithmetic: fp32
/// weights go straight to OpenBLAS; other types are dequantized a tile of rows at a time into
/// a buffer that stays in cache and multiplied from there, so the fp32 copy of the whole weight
/// never exists. Dequantization is exact for bf16 and f16 and gives the same values as
/// `dequantized()` for the block formats, so the result equals the product with the fp32
/// expansion up to the order of the sums.
///
/// Letters: M = rows of the activations, N = the weight's rows (output features), K = its
/// columns (input features). The weight W is (N, K), a PyTorch linear weight.
extension StoredTensor {
    /// Rows per dequantized tile: about 2 MB of fp32 (the L2 of one core here), at least 16.
    var tileRows: Int { max(16, min(rows, (1 << 19) / max(columns, 1))) }

    /// y (M, ldy) = x (M, K) · Wᵀ, plus `beta` · y when `beta` is 1 (a residual added in place).
    package func multiply(_ x: UnsafePointer<Float>, rows M: Int, into y: UnsafeMutablePointer<Float>, ldy: Int, beta: Float = 0) {
        let N = rows, K = columns
        guard M > 0, N > 0 else { return }
        if M <= BLAS.smallBatchRows && type != .f32 {
            multiplySmall(x, rows: M, into: y, ldy: ldy, beta: beta)
            return
        }
        if type == .f32 {
            floats.withUnsafeBufferPointer { w in
                guard let w = w.baseAddress else { return }
                if M > 1 && M <= BLAS.smallBatchRows && beta == 0 && ldy == N {
                    BLAS.smallBatchMatmul(x, rows: M, w, y, n: N, k: K)
                } else {
                    BLAS.matmulTransposedB(x, lda: K, w, ldb: K, y, ldc: ldy, m: M, n: N, k: K, beta: beta)
                }
            }
            return
        }
        let R = tileRows
        let tile = UnsafeMutablePointer<Float>.allocate(capacity: R * K)
        defer { tile.deallocate() }
        var r0 = 0
        while r0 < N {
            let r1 = min(N, r0 + R)
            dequantizeRows(r0, r1, into: tile)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(M), Int32(r1 - r0), Int32(K), 1,
                        x, Int32(K), tile, Int32(K), beta, y + r0, Int32(ldy))
            r0 = r1
        }
    }

    /// A few activation rows (decoding): the output rows are split between threads, each
    /// dequantizing its own small tiles and multiplying them with our kernel that reads a tile
    /// once for all M rows.
    private func multiplySmall(_ x: UnsafePointer<Float>, rows M: Int, into y: UnsafeMutablePointer<Float>, ldy: Int, beta: Float) {
        let N = rows, K = columns
        let parts = N >= 256 ? BLAS.threads : 1
        let R = max(8, min(64, (1 << 15) / max(K, 1)))
        let pointers = SmallProductPointers(x: x, y: y)
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let n0 = N * part / parts, n1 = N * (part + 1) / parts
            let tile = UnsafeMutablePointer<Float>.allocate(capacity: R * K)
            let out = UnsafeMutablePointer<Float>.allocate(capacity: M * R)
            defer { tile.deallocate(); out.deallocate() }
            var r0 = n0
            while r0 < n1 {
                let r1 = min(n1, r0 + R)
                dequantizeRows(r0, r1, into: tile)
                ck_matmul_wt(pointers.x, Int32(M), Int32(K), tile, 0, Int32(r1 - r0), out, Int32(r1 - r0))
                for m in 0..<M {
                    let dst = pointers.y + m * ldy + r0, src = out + m * (r1 - r0)
                    if beta == 0 {
                        dst.update(from: src, count: r1 - r0)
                    } else {
                        for j in 0..<(r1 - r0) { dst[j] += src[j] }
                    }
                }
                r0 = r1
            }
        }
    }

    /// dx (M, K) = dy (M, lddy) · W: the input gradient of `multiply`. Overwrites dx.
    package func multiplyTransposed(_ dy: UnsafePointer<Float>, rows M: Int, lddy: Int, into dx: UnsafeMutablePointer<Float>) {
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
        let R = tileRows
        let tile = UnsafeMutablePointer<Float>.allocate(capacity: R * K)
        defer { tile.deallocate() }
        var r0 = 0
        while r0 < N {
            let r1 = min(N, r0 + R)
            dequantizeRows(r0, r1, into: tile)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(M), Int32(K), Int32(r1 - r0), 1,
                        dy + r0, Int32(lddy), tile, Int32(K), r0 == 0 ? 0 : 1, dx, Int32(K))
            r0 = r1
        }
    }

    /// Row `r` (an embedding) into `out` (K values).
    package func copyRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        dequantizeRows(r, r + 1, into: out)
    }
}

/// The activation and output pointers handed to the worker threads of `multiplySmall`; each
/// thread writes its own columns of y.
private struct SmallProductPointers: @unchecked Sendable {
    // @unchecked: x is only read; y is written in disjoint column ranges, one per thread.
    let x: UnsafePointer<Float>
    let y: UnsafeMutablePointer<Float>
}
