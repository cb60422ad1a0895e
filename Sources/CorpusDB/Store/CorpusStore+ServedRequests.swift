import Foundation
import GRDB

/// One request `corpus serve --log-requests` answered, as it is stored (table `served_requests`,
/// migration 0008). The prompt and answer are already redacted when they reach the store.
public struct ServedRequest: Sendable, Equatable {
    /// "chat" or "completion".
    public var endpoint: String
    /// The served name the client asked for.
    public var modelName: String
    /// The base model's fingerprint.
    public var modelSHA256: String
    /// nil when the base model answered.
    public var adapterSHA256: String?
    public var adapterRun: String?
    public var prompt: String
    public var answer: String
    /// Personal-data spans replaced in prompt and answer.
    public var redactions: Int
    public var promptTokens: Int
    public var completionTokens: Int
    /// stop, length, cancelled, aborted or failed.
    public var outcome: String
    public var stream: Bool
    public var seconds: Double

    public init(endpoint: String, modelName: String, modelSHA256: String, adapterSHA256: String?, adapterRun: String?, prompt: String,
                answer: String, redactions: Int, promptTokens: Int, completionTokens: Int, outcome: String, stream: Bool, seconds: Double) {
        self.endpoint = endpoint
        self.modelName = modelName
        self.modelSHA256 = modelSHA256
        self.adapterSHA256 = adapterSHA256
        self.adapterRun = adapterRun
        self.prompt = prompt
        self.answer = answer
        self.redactions = redactions
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.outcome = outcome
        self.stream = stream
        self.seconds = seconds
    }
}

extension CorpusStore {
    /// Appends one served request; returns its id.
    @discardableResult
    public func recordServedRequest(_ r: ServedRequest) throws -> Int64 {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO served_requests (created_at, endpoint, model_name, model_sha256, adapter_sha256, adapter_run, prompt, answer,
                                             redactions, prompt_tokens, completion_tokens, outcome, stream, seconds, tool_version)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [Timestamp.now(), r.endpoint, r.modelName, r.modelSHA256, r.adapterSHA256, r.adapterRun, r.prompt, r.answer,
                                 r.redactions, r.promptTokens, r.completionTokens, r.outcome, r.stream ? 1 : 0, r.seconds, CorpusVersion.string])
            return db.lastInsertedRowID
        }
    }

    /// The logged requests, oldest first (all, or those one adapter answered).
    public func servedRequests(adapterSHA256: String? = nil) throws -> [ServedRequest] {
        try pool.read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT * FROM served_requests WHERE ? IS NULL OR adapter_sha256 = ? ORDER BY id
                """, arguments: [adapterSHA256, adapterSHA256])
            return rows.map { row in
                ServedRequest(endpoint: row["endpoint"], modelName: row["model_name"], modelSHA256: row["model_sha256"],
                              adapterSHA256: row["adapter_sha256"], adapterRun: row["adapter_run"], prompt: row["prompt"], answer: row["answer"],
                              redactions: row["redactions"], promptTokens: row["prompt_tokens"], completionTokens: row["completion_tokens"],
                              outcome: row["outcome"], stream: (row["stream"] as Int) == 1, seconds: row["seconds"])
            }
        }
    }

    /// How many logged requests an adapter (by the SHA-256 of its weights file) answered.
    public func servedRequestCount(adapterSHA256: String) throws -> Int {
        try pool.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM served_requests WHERE adapter_sha256 = ?", arguments: [adapterSHA256.lowercased()]) ?? 0
        }
    }
}
