import CBLAS
import Foundation

/// The scalar type of the training kernels: `Float` for training (sgemm), `Double` for gradient
/// checks by finite differences (dgemm), with the same code for both.
protocol TrainingScalar: BinaryFloatingPoint, Sendable {
    /// C[M,N] = alpha · op(A) · op(B) + beta · C, row-major; op transposes when asked.
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Self,
                     _ a: UnsafePointer<Self>, lda: Int, _ b: UnsafePointer<Self>, ldb: Int,
                     beta: Self, _ c: UnsafeMutablePointer<Self>, ldc: Int)
    static func exponential(_ x: Self) -> Self
    static func logarithm(_ x: Self) -> Self
    static func cosine(_ x: Self) -> Self
    static func sine(_ x: Self) -> Self
    /// fp32 weights in this type (for Float: the same storage, no copy).
    static func converting(_ values: [Float]) -> [Self]
}

extension Float: TrainingScalar {
    @inline(__always)
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                     _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
                     beta: Float, _ c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
    @inline(__always) static func exponential(_ x: Float) -> Float { Foundation.exp(x) }
    @inline(__always) static func logarithm(_ x: Float) -> Float { Foundation.log(x) }
    @inline(__always) static func cosine(_ x: Float) -> Float { Foundation.cos(x) }
    @inline(__always) static func sine(_ x: Float) -> Float { Foundation.sin(x) }
    static func converting(_ values: [Float]) -> [Float] { values }
}

extension Double: TrainingScalar {
    @inline(__always)
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double,
                     _ a: UnsafePointer<Double>, lda: Int, _ b: UnsafePointer<Double>, ldb: Int,
                     beta: Double, _ c: UnsafeMutablePointer<Double>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
    @inline(__always) static func exponential(_ x: Double) -> Double { Foundation.exp(x) }
    @inline(__always) static func logarithm(_ x: Double) -> Double { Foundation.log(x) }
    @inline(__always) static func cosine(_ x: Double) -> Double { Foundation.cos(x) }
    @inline(__always) static func sine(_ x: Double) -> Double { Foundation.sin(x) }
    static func converting(_ values: [Float]) -> [Double] { values.map { Double($0) } }
}

/// A fixed-size buffer of scalars with a stable address, freed when the last reference goes.
/// Activations and scratch space live in these so the kernels can work on plain pointers
/// without nested `withUnsafe…` closures.
final class ScalarBuffer<T: TrainingScalar>: @unchecked Sendable {
    // @unchecked: owned by one training call at a time; never shared between threads.
    let base: UnsafeMutablePointer<T>
    let count: Int

    init(count: Int) {
        self.count = max(count, 0)
        base = UnsafeMutablePointer<T>.allocate(capacity: max(count, 1))
        base.initialize(repeating: 0, count: max(count, 1))
    }

    convenience init(_ values: [T]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let s = src.baseAddress { base.update(from: s, count: values.count) }
        }
    }

    deinit { base.deallocate() }

    func zero() { base.update(repeating: 0, count: count) }

    var array: [T] { Array(UnsafeBufferPointer(start: base, count: count)) }
}

/// A view of part of a `ScalarBuffer` (one LoRA matrix inside its group's buffer).
struct ScalarSlice<T: TrainingScalar> {
    let base: UnsafeMutablePointer<T>
    let count: Int

    var array: [T] { Array(UnsafeBufferPointer(start: base, count: count)) }
}
