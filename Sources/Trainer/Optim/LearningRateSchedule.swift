import ModelRuntime
import Foundation

/// Linear warmup from 0 to `peak`, then cosine or linear decay to 0 at `totalSteps`: the
/// schedules of Hugging Face transformers (`get_cosine_schedule_with_warmup` with its default
/// half cycle, `get_linear_schedule_with_warmup`, `get_constant_schedule_with_warmup`), computed
/// in double precision as Python does.
public struct LearningRateSchedule: Sendable, Equatable {
    /// The shape of the schedule after warmup.
    public enum Decay: String, Sendable, Equatable, CaseIterable {
        /// peak · ½(1 + cos(π·progress)).
        case cosine
        /// peak · (total − step) / (total − warmup).
        case linear
        /// peak after warmup.
        case constant
    }

    /// The rate at the end of warmup (the optimizer's `lr` in transformers).
    public var peak: Double
    /// Updates over which the rate rises linearly from 0 (`num_warmup_steps`).
    public var warmupSteps: Int
    /// Updates of the whole run; the rate reaches 0 here (`num_training_steps`).
    public var totalSteps: Int
    /// What follows warmup.
    public var decay: Decay

    /// A schedule. The counts are used as transformers uses them, unchecked: give totalSteps > warmupSteps.
    public init(peak: Double, warmupSteps: Int, totalSteps: Int, decay: Decay = .cosine) {
        self.peak = peak
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.decay = decay
    }

    /// The rate for the update that follows `step` earlier updates (step 0 is the first update,
    /// whose rate is 0 when there is warmup, as with transformers' Trainer).
    public func learningRate(at step: Int) -> Double {
        peak * factor(at: step)
    }

    /// The multiplier of `peak` (transformers' `lr_lambda`).
    public func factor(at step: Int) -> Double {
        if step < warmupSteps { return Double(step) / Double(max(1, warmupSteps)) }
        switch decay {
        case .constant:
            return 1
        case .linear:
            return max(0, Double(totalSteps - step) / Double(max(1, totalSteps - warmupSteps)))
        case .cosine:
            let progress = Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
            return max(0, 0.5 * (1 + cos(Double.pi * 0.5 * 2 * progress)))
        }
    }
}
