/// A dense fp32 tensor in row-major order.
///
/// Shapes follow PyTorch / Hugging Face conventions: a linear layer's weight is `[out, in]`.
/// This is deliberately a plain value type: every layer has an explicit forward and backward
/// function that reads and writes these buffers (llm.c style), there is no autograd graph.
public struct Tensor: Sendable, Equatable {
    /// The size of each dimension, outermost first.
    public var shape: [Int]
    /// `shape.reduce(1, *)` values, row-major.
    public var data: [Float]

    /// A tensor of zeros.
    public init(zeros shape: [Int]) {
        self.shape = shape
        self.data = [Float](repeating: 0, count: shape.reduce(1, *))
    }

    /// Wraps existing data; `data.count` must equal the product of `shape`.
    /// - Throws: `ModelError` when the element count does not match the shape.
    public init(shape: [Int], data: [Float]) throws {
        let count = shape.reduce(1, *)
        guard count == data.count else {
            throw ModelError.shapeMismatch(
                tensor: "(unnamed)", expected: shape, found: [data.count])
        }
        self.shape = shape
        self.data = data
    }

    /// Number of elements.
    public var count: Int { data.count }
}
