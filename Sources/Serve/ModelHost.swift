import Foundation
import ModelRuntime

/// Where an adapter being served came from, for the response headers and `system_fingerprint`.
public struct AdapterIdentity: Sendable, Equatable {
    /// The adapter folder given with `--adapter NAME=PATH`.
    public var path: String
    /// SHA-256 of its `adapter_model.safetensors` (what `corpus train` records and
    /// `corpus lineage adapter --verify` checks).
    public var sha256: String
    /// The training run that wrote it (`corpus.run_id` in the safetensors metadata), if any.
    public var runID: String?

    public init(path: String, sha256: String, runID: String?) {
        self.path = path
        self.sha256 = sha256
        self.runID = runID
    }
}

/// One name a client can put in a request's `model`: the base model, or the base model with one
/// LoRA adapter (run unmerged beside the shared base weights).
public struct ServedModel: Sendable {
    /// The name clients use (`model` in requests, `id` in GET /v1/models).
    public var name: String
    /// The adapter's matrices; nil for the base model.
    public var lora: LoRAInference?
    /// Where the adapter came from; nil for the base model.
    public var adapter: AdapterIdentity?

    /// The base model, served as `name`.
    public init(name: String) {
        self.name = name
    }

    /// An adapter served as `name`.
    public init(name: String, lora: LoRAInference, adapter: AdapterIdentity) {
        self.name = name
        self.lora = lora
        self.adapter = adapter
    }
}

/// Everything the server answers with: the base model's weights, the served models (the base
/// first, then the adapters), and what they share: the tokenizer, the chat template, the stop
/// tokens and the base model's SHA-256.
public struct ModelHost: Sendable {
    /// The weights every served model shares.
    public let base: LlamaModel
    /// The base model first, then each adapter in the order given.
    public let models: [ServedModel]
    /// The fingerprint of the base model's weight files (for one file, its SHA-256), as
    /// `corpus models add` and lineage record it.
    public var baseSHA256: String
    public var tokenizer: BPETokenizer
    /// The template chat messages are rendered with (the model's own unless `--template`).
    public var template: ChatTemplate
    /// Tokens that end an answer (EOS, end of turn).
    public var stopTokenIDs: Set<Int>

    /// - Throws: `ServeError` when two served models share a name or there is no model.
    public init(base: LlamaModel, models: [ServedModel], baseSHA256: String, tokenizer: BPETokenizer, template: ChatTemplate, stopTokenIDs: Set<Int>) throws {
        guard !models.isEmpty else { throw ServeError.internalError("no model to serve") }
        var seen: Set<String> = []
        for m in models where !seen.insert(m.name).inserted {
            throw ServeError.invalid("two served models are named \(m.name); give each adapter its own name (--adapter NAME=PATH)")
        }
        self.base = base
        self.models = models
        self.baseSHA256 = baseSHA256
        self.tokenizer = tokenizer
        self.template = template
        self.stopTokenIDs = stopTokenIDs
    }

    /// The base model's context window in tokens (prompt plus answer).
    public var contextWindow: Int { base.configuration.maxPositionEmbeddings }

    /// The index of the served model named `name`.
    /// - Throws: `ServeError.unknownModel` (404) listing the names served.
    public func index(of name: String) throws -> Int {
        guard let i = models.firstIndex(where: { $0.name == name }) else {
            throw ServeError.unknownModel(name, served: models.map(\.name))
        }
        return i
    }

    /// `system_fingerprint`: `corpus-` and the first 16 hex digits of the base model's SHA-256,
    /// then `-` and the first 16 of the adapter's when an adapter answered. The full hashes are
    /// in the response headers.
    public func systemFingerprint(_ index: Int) -> String {
        var s = "corpus-" + baseSHA256.prefix(16)
        if let adapter = models[index].adapter { s += "-" + adapter.sha256.prefix(16) }
        return s
    }

    /// The identity headers of every response about model `index`: `x-corpus-model`,
    /// `x-corpus-base-sha256`, and for an adapter `x-corpus-adapter-sha256` and
    /// `x-corpus-adapter-run-id` (when the adapter names its run).
    public func identityHeaders(_ index: Int) -> [(String, String)] {
        var headers = [("x-corpus-model", models[index].name), ("x-corpus-base-sha256", baseSHA256)]
        if let adapter = models[index].adapter {
            headers.append(("x-corpus-adapter-sha256", adapter.sha256))
            if let run = adapter.runID { headers.append(("x-corpus-adapter-run-id", run)) }
        }
        return headers
    }
}
