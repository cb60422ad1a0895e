import CBLAS
import CKernels
import Foundation

/// Matrix products through OpenBLAS's fp32 `cblas_sgemm` (row-major throughout).
public enum BLAS {
    /// Sets OpenBLAS's thread count (default: the machine's cores). Call before heavy work; never
    /// run our own parallel loops at the same time as a BLAS call, or the cores are oversubscribed.
    public static func setThreads(_ n: Int) {
        openblas_set_num_threads(Int32(max(1, n)))
    }

    /// Up to this many rows (decoding steps), `smallBatchMatmul` is used instead of sgemm
    /// (`CORPUS_SMALL_BATCH_ROWS` overrides it for measurements; 0 sends everything to BLAS).
    static let smallBatchRows = Int(ProcessInfo.processInfo.environment["CORPUS_SMALL_BATCH_ROWS"] ?? "") ?? 16

    /// Threads for our own kernels: the machine's cores.
    package static let threads = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// y[M,N] = x[M,K] · W[N,K]ᵀ with the weights streamed once; output rows split among threads.
    static func smallBatchMatmul(_ x: UnsafePointer<Float>, rows m: Int, _ w: UnsafePointer<Float>,
                                 _ y: UnsafeMutablePointer<Float>, n: Int, k: Int) {
        let parts = n >= 512 ? threads : 1
        let pointers = KernelPointers(x: x, w: w, y: y)
        if parts == 1 {
            ck_matmul_wt(x, Int32(m), Int32(k), w, 0, Int32(n), y, Int32(n))
            return
        }
        let chunk = (n + parts - 1) / parts
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            let start = p * chunk, end = min(n, start + chunk)
            if start < end {
                ck_matmul_wt(pointers.x, Int32(m), Int32(k), pointers.w, Int32(start), Int32(end), pointers.y, Int32(n))
            }
        }
    }

    /// C[M,N] = alpha · A[M,K] · B[N,K]ᵀ + beta · C, with leading dimensions (row strides) given.
    /// This is `y = x · Wᵀ` for a linear layer whose weight W is `[out, in]` as in PyTorch.
    @inline(__always)
    static func matmulTransposedB(_ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
                                  _ c: UnsafeMutablePointer<Float>, ldc: Int, m: Int, n: Int, k: Int,
                                  alpha: Float = 1, beta: Float = 0) {
        if m == 1 {
            // One row (a decoding step): the matrix-vector product y = W·x, which OpenBLAS runs
            // as a streaming gemv rather than a packed gemm.
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), alpha, b, Int32(ldb), a, 1, beta, c, 1)
            return
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// C[M,N] = alpha · A[M,K] · B[K,N] + beta · C.
    @inline(__always)
    static func matmul(_ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
                       _ c: UnsafeMutablePointer<Float>, ldc: Int, m: Int, n: Int, k: Int,
                       alpha: Float = 1, beta: Float = 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

extension BLAS {
    /// C[M,N] = alpha · op(A) · op(B) + beta · C in fp32, row-major; op transposes when asked.
    /// The trainer's products go through here, so OpenBLAS is imported by this module only.
    package static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                             _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
                             beta: Float, _ c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// The same product in fp64 (the trainer's gradient checks by finite differences).
    package static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double,
                             _ a: UnsafePointer<Double>, lda: Int, _ b: UnsafePointer<Double>, ldb: Int,
                             beta: Double, _ c: UnsafeMutablePointer<Double>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

/// Pointers handed to worker threads that read x and w and write disjoint parts of y.
struct KernelPointers: @unchecked Sendable {
    let x: UnsafePointer<Float>
    let w: UnsafePointer<Float>
    let y: UnsafeMutablePointer<Float>
}
