import CorpusSupport
import Foundation
import Trainer

/// The TensorBoard event files of a training run (`corpus train --logdir`, default
/// OUT/tensorboard): one scalar per figure and step, flushed after every step so
/// `tensorboard --logdir` shows the run as it goes. Tags: `train/loss`, `train/learning_rate`,
/// `train/grad_norm`, `train/tokens_per_second`, `eval/loss`, and the objective's own figures
/// under their TRL names (`train/rewards/chosen`, `eval/rewards/accuracies`, `train/kl`...).
/// The store keeps the same figures (`corpus runs show`); a log that cannot be written is a
/// warning, never the end of a training run.
final class TrainingLog {
    private var writer: TensorBoardEventWriter?
    let directory: URL

    init(directory: URL) {
        self.directory = directory
        do {
            writer = try TensorBoardEventWriter(directory: directory)
        } catch {
            Output.error("warning: no TensorBoard log (\(error)); training goes on, its figures are in the store (`corpus runs show`)")
        }
    }

    /// Scalars of one step (names as given: "eval/…" stays, everything else gets "train/").
    func record(step: Int, _ values: [String: Double]) {
        guard let w = writer else { return }
        do {
            for (name, value) in values.sorted(by: { $0.key < $1.key }) where value.isFinite {
                try w.scalar(name.hasPrefix("eval/") ? name : "train/" + name, value, step: step)
            }
            try w.flush()
        } catch {
            Output.error("warning: the TensorBoard log stopped (\(error)); training goes on, its figures are in the store")
            writer = nil
        }
    }

    /// Everything a step reported.
    func record(_ report: StepReport) {
        var values = report.metrics
        values["loss"] = report.loss
        values["learning_rate"] = report.learningRate
        values["grad_norm"] = Double(report.gradientNorm)
        values["tokens_per_second"] = report.tokensPerSecond
        if let e = report.evalLoss { values["eval/loss"] = e }
        record(step: report.step, values)
    }

    func close() {
        try? writer?.close()
        writer = nil
    }
}
