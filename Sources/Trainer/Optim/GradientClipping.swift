import ModelRuntime
import Foundation

/// Clipping of gradients by their global L2 norm, as `torch.nn.utils.clip_grad_norm_` with its
/// defaults (norm_type 2, error_if_nonfinite false).
public enum GradientClipping {
    /// The L2 norm of all of the adapter's values taken as one vector: the norm of the per-tensor
    /// norms, as PyTorch stacks them. Sums run in double precision, each norm is rounded to fp32.
    /// - Complexity: O(number of values).
    public static func norm(_ gradients: LoRAAdapter) -> Float {
        var total = 0.0
        for (_, tensor) in gradients.namedTensors {
            var sum = 0.0
            for x in tensor.data { sum += Double(x) * Double(x) }
            let n = Double(Float(sum.squareRoot()))
            total += n * n
        }
        return Float(total.squareRoot())
    }

    /// Scales every gradient by min(maxNorm / (norm + 1e-6), 1) and returns the norm before
    /// scaling, as PyTorch does. A non-finite norm is returned as it is and makes the gradients
    /// non-finite too, as in PyTorch: check the result and skip the step.
    /// - Complexity: O(number of values).
    @discardableResult
    public static func clip(_ gradients: inout LoRAAdapter, maxNorm: Float) -> Float {
        let total = norm(gradients)
        let coefficient = min(maxNorm / (total + 1e-6), 1)
        guard coefficient != 1 else { return total }  // multiplying by 1 changes nothing
        for (l, target) in gradients.slots {
            gradients.modifyPair(layer: l, target: target) { pair in
                for i in pair.a.data.indices { pair.a.data[i] *= coefficient }
                for i in pair.b.data.indices { pair.b.data[i] *= coefficient }
            }
        }
        return total
    }
}
