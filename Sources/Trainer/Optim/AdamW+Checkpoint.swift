import ModelRuntime
import Foundation

/// The optimizer's state as a safetensors file: the moments as fp32 tensors named
/// `exp_avg.<PEFT key>` and `exp_avg_sq.<PEFT key>`, the step and the hyper-parameters as
/// `__metadata__` strings (`adamw.step`, `adamw.beta1`, ...), next to the caller's own strings
/// (data position, run id). Reading a file and writing it again gives the same bytes.
extension AdamW {
    /// Value of `optimizer` in the checkpoint's metadata.
    public static let checkpointFormat = "corpus.adamw.v1"

    /// Writes the state to `url` (atomically: a temporary file beside it, then a rename).
    /// - Parameter metadata: the caller's strings; keys starting with `adamw.` and the key
    ///   `optimizer` are reserved.
    /// - Throws: `TrainerError` for a reserved key or a file that cannot be written.
    public func save(to url: URL, metadata: [String: String] = [:]) throws {
        if let key = metadata.keys.sorted().first(where: { $0 == "optimizer" || $0.hasPrefix("adamw.") }) {
            throw TrainerError.unsupported("optimizer checkpoint metadata key \(key) is reserved; use another name")
        }
        var tensors: [String: Tensor] = [:]
        for (name, tensor) in firstMoment.namedTensors { tensors["exp_avg." + name] = tensor }
        for (name, tensor) in secondMoment.namedTensors { tensors["exp_avg_sq." + name] = tensor }
        var all = metadata
        let h = hyperparameters
        all["optimizer"] = Self.checkpointFormat
        all["adamw.step"] = String(step)
        all["adamw.beta1"] = "\(h.beta1)"
        all["adamw.beta2"] = "\(h.beta2)"
        all["adamw.epsilon"] = "\(h.epsilon)"
        all["adamw.weight_decay"] = "\(h.weightDecay)"
        try SafetensorsFile.write(tensors, metadata: all, to: url.path)
    }

    /// Reads a state written by `save` for an adapter shaped like `adapter`, and the caller's
    /// metadata (without the reserved keys).
    /// - Throws: `TrainerError.invalidFile` naming the file and the tensor or key that is missing,
    ///   unexpected or mis-shaped.
    public static func load(from url: URL, for adapter: LoRAAdapter) throws -> (optimizer: AdamW, metadata: [String: String]) {
        let path = url.path
        let file = try SafetensorsFile(path: path)
        var meta = file.metadata
        guard meta["optimizer"] == checkpointFormat else {
            throw TrainerError.invalidFile(path: path, detail: "not an AdamW checkpoint of corpus (metadata optimizer is \(meta["optimizer"] ?? "missing"), expected \(checkpointFormat))")
        }
        func number(_ key: String) throws -> Double {
            guard let text = meta[key], let value = Double(text), value.isFinite else {
                throw TrainerError.invalidFile(path: path, detail: "metadata \(key) is \(meta[key] ?? "missing"); expected a finite number")
            }
            return value
        }
        guard let stepText = meta["adamw.step"], let step = Int(stepText), step >= 0 else {
            throw TrainerError.invalidFile(path: path, detail: "metadata adamw.step is \(meta["adamw.step"] ?? "missing"); expected a non-negative integer")
        }
        let h = Hyperparameters(beta1: try number("adamw.beta1"), beta2: try number("adamw.beta2"),
                                epsilon: try number("adamw.epsilon"), weightDecay: try number("adamw.weight_decay"))
        var used = Set<String>()
        func moments(_ prefix: String) throws -> LoRAAdapter {
            var out = adapter
            for (l, target) in adapter.slots {
                guard let pair = adapter.layers[l][target] else { continue }
                var loaded: [Tensor] = []
                for (matrix, shape) in [("A", pair.a.shape), ("B", pair.b.shape)] {
                    let name = prefix + LoRAAdapter.peftKey(layer: l, target: target, matrix: matrix)
                    guard let entry = file.entries[name] else {
                        throw TrainerError.invalidFile(path: path, detail: "tensor \(name) is missing; the checkpoint was written for another adapter (rank, targets or layers differ)")
                    }
                    guard entry.dtype == "F32", entry.shape == shape else {
                        throw TrainerError.invalidFile(path: path, detail: "tensor \(name) is \(entry.dtype) \(entry.shape), expected F32 \(shape); the checkpoint was written for another adapter")
                    }
                    loaded.append(try file.tensor(named: name))
                    used.insert(name)
                }
                out.layers[l][target] = LoRAPair(a: loaded[0], b: loaded[1])
            }
            return out
        }
        let m = try moments("exp_avg."), v = try moments("exp_avg_sq.")
        if let extra = file.entries.keys.sorted().first(where: { !used.contains($0) }) {
            throw TrainerError.invalidFile(path: path, detail: "tensor \(extra) does not belong to this adapter; the checkpoint was written for another adapter")
        }
        for key in meta.keys where key == "optimizer" || key.hasPrefix("adamw.") { meta[key] = nil }
        return (try AdamW(h, step: step, firstMoment: m, secondMoment: v), meta)
    }
}
