import CorpusDB
import Foundation
import ModelRuntime

/// How a base model is identified for lineage: the SHA-256 of each weight file, combined into one
/// fingerprint (docs/STORE.md).
enum ModelIdentity {
    /// The fingerprint of a model for lineage: the registered one when `--model` names a registered
    /// model, else the SHA-256 of its weight files computed as `corpus models add` does.
    static func fingerprint(of path: String, reference: String, store: CorpusStore) throws -> String {
        if let registered = try? store.model(named: reference), registered.path == path { return registered.fingerprint }
        let summary = try ModelInspector.inspect(path: path)
        return ModelFingerprint.combine(try weightHashes(summary))
    }

    /// Every weight file of the model with its SHA-256, in the summary's order.
    static func weightHashes(_ summary: ModelSummary) throws -> [(name: String, sha256: String)] {
        try summary.weightFiles.map { ($0.name, try sha256($0)) }
    }

    /// Streams one weight file through SHA-256, saying so on stderr (large models take a while).
    /// - Throws: `ModelError.invalidFile` when the file cannot be read.
    static func sha256(_ file: ModelSummary.WeightFile) throws -> String {
        let size = (try? FileManager.default.attributesOfItem(atPath: file.path)[.size] as? NSNumber)?.doubleValue ?? 0
        Output.error(String(format: "hashing %@ (%.1f MB)", file.name, size / 1e6))
        do {
            return try ContentHash.sha256Hex(fileAt: file.path)
        } catch {
            throw ModelError.invalidFile(path: file.path, detail: "cannot read the file to hash it (\(error.localizedDescription))")
        }
    }
}
