import ModelRuntime
import Foundation

/// The scalar type of the training kernels: `Float` for training (sgemm), `Double` for gradient
/// checks by finite differences (dgemm), with the same code for both.
protocol TrainingScalar: BinaryFloatingPoint, Sendable, RowExponentials {
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
        BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a, lda: lda, b, ldb: ldb, beta: beta, c, ldc: ldc)
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
        BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a, lda: lda, b, ldb: ldb, beta: beta, c, ldc: ldc)
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

/// Exponentials of whole rows, vectorized for Float: the softmax of attention rows, of the LM
/// head's rows, and the sigmoid of SwiGLU spend most of their time in exp.
protocol RowExponentials {
    /// p[i] = exp(p[i] − shift) for i < count; returns Σ p[i].
    static func exponentiate(_ p: UnsafeMutablePointer<Self>, count: Int, minus shift: Self) -> Self
}

extension Double: RowExponentials {
    static func exponentiate(_ p: UnsafeMutablePointer<Double>, count: Int, minus shift: Double) -> Double {
        var sum = 0.0
        for i in 0..<count {
            let e = Foundation.exp(p[i] - shift)
            p[i] = e
            sum += e
        }
        return sum
    }
}

extension Float: RowExponentials {
    /// Cody–Waite range reduction x = n·ln2 + r (|r| ≤ ln2/2, ln2 split in two parts) and Cephes'
    /// degree-6 polynomial for e^r (relative error about 1e-7, like expf), scaled by 2^n through the
    /// exponent bits. A plain loop without calls or branches, which the compiler vectorizes.
    /// Inputs below −87 give 0 (softmax arguments are ≤ 0 here).
    static func exponentiate(_ p: UnsafeMutablePointer<Float>, count: Int, minus shift: Float) -> Float {
        var sum: Float = 0
        for i in 0..<count {
            let e = exp(p[i] - shift)
            p[i] = e
            sum += e
        }
        return sum
    }

    @inline(__always)
    static func exp(_ input: Float) -> Float {
        let x = Swift.min(Swift.max(input, -87), 88)
        // n = round(x·log2 e) by the 1.5·2^23 trick: adding it leaves n in the low mantissa bits.
        let shifted = x * 1.442_695_040_888_963_4 + 12_582_912
        let n = shifted - 12_582_912
        var r = x - n * 0.693_359_375
        r = r - n * (-2.121_944_400_546_905_8e-4)
        var y: Float = 1.987_569_150_0e-4
        y = y * r + 1.398_199_950_7e-3
        y = y * r + 8.333_451_907_3e-3
        y = y * r + 4.166_579_589_4e-2
        y = y * r + 1.666_666_545_9e-1
        y = y * r + 5.000_000_120_1e-1
        y = y * r * r + r + 1
        let bits = (shifted.bitPattern &- 0x4B40_0000 &+ 127) &<< 23
        let scaled = y * Float(bitPattern: bits)
        return input < -87 ? 0 : scaled
    }
}
