import Foundation
import GRDB

/// One registered base model (`models` table): where its weights are, what they hash to, and
/// what they are. Training runs and adapters refer to it by `id`, which is never reused.
public struct RegisteredModel: Codable, Sendable, Equatable {
    public var id: Int64?
    /// Unique; not all digits (those are ids) and without `/` (that is a path).
    public var name: String
    /// Absolute path of the .gguf file or the Hugging Face folder.
    public var path: String
    /// "gguf" or "safetensors".
    public var format: String
    /// Hex SHA-256 of the weight files (`ModelFingerprint`).
    public var fingerprint: String
    /// "llama", "qwen2" or "mistral".
    public var architecture: String
    /// Sum of the element counts of the weight tensors.
    public var parameters: Int64
    /// JSON object: `hidden_size`, `num_hidden_layers`, heads, `vocab_size`, `tensor_types`...
    public var config: String
    /// ISO 8601 UTC.
    public var addedAt: String
    public var toolVersion: String

    public init(id: Int64? = nil, name: String, path: String, format: String, fingerprint: String,
                architecture: String, parameters: Int64, config: String = "{}", addedAt: String, toolVersion: String) {
        self.id = id
        self.name = name
        self.path = path
        self.format = format
        self.fingerprint = fingerprint
        self.architecture = architecture
        self.parameters = parameters
        self.config = config
        self.addedAt = addedAt
        self.toolVersion = toolVersion
    }

    /// Why `name` cannot name a model, or nil when it can. The `models` table enforces the same
    /// rule with a CHECK constraint.
    public static func problem(withName name: String) -> String? {
        if name.isEmpty { return "a model name cannot be empty" }
        if name.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            return "a model name cannot be all digits (those are model ids)"
        }
        if name.contains("/") { return "a model name cannot contain '/' (that makes it a path)" }
        return nil
    }
}

extension RegisteredModel: StoreRecord {
    public static let databaseTableName = "models"
}

/// The model fingerprint: one hex SHA-256 for a model's weight files, recomputable with
/// `sha256sum` (docs/STORE.md, "Model fingerprint").
public enum ModelFingerprint {
    /// Combines per-file hashes: for one file, that file's SHA-256; for several, the SHA-256 of
    /// the lines `"<relative name> <sha256>\n"` sorted by their UTF-8 bytes.
    /// - Parameter files: each weight file's name relative to the model folder and its hex SHA-256.
    public static func combine(_ files: [(name: String, sha256: String)]) -> String {
        if files.count == 1, let only = files.first { return only.sha256 }
        let lines = files.map { Array("\($0.name) \($0.sha256)\n".utf8) }
            .sorted { $0.lexicographicallyPrecedes($1) }
        return ContentHash.sha256Hex(Array(lines.joined()))
    }
}

/// What `CorpusStore.register(_:)` did.
public enum ModelRegistration: Sendable, Equatable {
    /// A new row was added.
    case added(RegisteredModel)
    /// A model of that name and fingerprint was there already; nothing was written.
    case alreadyRegistered(RegisteredModel)

    /// The row in the store, new or existing.
    public var model: RegisteredModel {
        switch self {
        case let .added(m), let .alreadyRegistered(m): return m
        }
    }

    /// True when a row was added.
    public var added: Bool {
        if case .added = self { return true }
        return false
    }
}
