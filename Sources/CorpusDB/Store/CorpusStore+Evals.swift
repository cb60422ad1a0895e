import Foundation
import GRDB

/// An evaluation as the store keeps it (table `evals`, migration 0007).
public struct StoredEval: Sendable, Equatable {
    public var id: Int64
    public var snapshotId: Int64
    /// "name@version".
    public var snapshot: String
    public var snapshotHash: String
    /// The split evaluated (normally `eval`).
    public var split: String
    /// The base model as the user named it, and the fingerprint of its weights.
    public var modelRef: String
    public var modelSHA256: String
    /// The adapter evaluated beside the base model, if any: its folder and the SHA-256 of its
    /// adapter_model.safetensors.
    public var adapterPath: String?
    public var adapterSHA256: String?
    /// The training run that wrote the adapter, when it is on record.
    public var runId: Int64?
    /// The settings, JSON.
    public var config: String
    /// Metrics per model and the deltas, JSON.
    public var metrics: String
    /// Items evaluated (per model).
    public var items: Int
    public var createdAt: String
    public var toolVersion: String
    public var seconds: Double
}

/// What `corpus eval` hands the store to record (everything but the id and the snapshot label).
public struct NewEval: Sendable {
    public var snapshotId: Int64
    public var split: String
    public var modelRef: String
    public var modelSHA256: String
    public var adapter: (path: String, sha256: String)?
    public var runId: Int64?
    public var config: String
    public var metrics: String
    public var items: Int
    public var seconds: Double

    public init(snapshotId: Int64, split: String, modelRef: String, modelSHA256: String, adapter: (path: String, sha256: String)?,
                runId: Int64?, config: String, metrics: String, items: Int, seconds: Double) {
        self.snapshotId = snapshotId
        self.split = split
        self.modelRef = modelRef
        self.modelSHA256 = modelSHA256
        self.adapter = adapter
        self.runId = runId
        self.config = config
        self.metrics = metrics
        self.items = items
        self.seconds = seconds
    }
}

/// One model's answer to one item of an evaluation (table `eval_items`).
public struct StoredEvalItem: Sendable, Equatable {
    /// `base` or `adapter`.
    public var model: String
    /// The item's place in the evaluation (0-based, the order of the split).
    public var position: Int
    public var recordId: Int64
    public var prediction: String
    /// Mean negative log-likelihood per assistant token (nats), teacher-forced.
    public var loss: Double
    /// Assistant tokens the loss is over.
    public var tokens: Int
    public var rougeL: Double
    public var bleu4: Double
    public var exactMatch: Double
    public var lengthRatio: Double
    /// The weighted total of the `--reward` scores, and each function's score by name (migration
    /// 0010); nil without `--reward`.
    public var reward: Double?
    public var rewards: [String: Double]?
    /// For a preference pair that was compared: Σ log p of the chosen and of the rejected answer
    /// (migration 0010); nil otherwise.
    public var logpChosen: Double?
    public var logpRejected: Double?

    public init(model: String, position: Int, recordId: Int64, prediction: String, loss: Double, tokens: Int,
                rougeL: Double, bleu4: Double, exactMatch: Double, lengthRatio: Double, reward: Double? = nil,
                rewards: [String: Double]? = nil, logpChosen: Double? = nil, logpRejected: Double? = nil) {
        self.model = model
        self.position = position
        self.recordId = recordId
        self.prediction = prediction
        self.loss = loss
        self.tokens = tokens
        self.rougeL = rougeL
        self.bleu4 = bleu4
        self.exactMatch = exactMatch
        self.lengthRatio = lengthRatio
        self.reward = reward
        self.rewards = rewards
        self.logpChosen = logpChosen
        self.logpRejected = logpRejected
    }
}

extension CorpusStore {
    /// Records an evaluation and its items in one transaction, with an audit entry; returns its id.
    public func recordEval(_ eval: NewEval, items: [StoredEvalItem], arguments: [String] = []) throws -> Int64 {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO evals (snapshot_id, split, model_ref, model_sha256, adapter_path, adapter_sha256, run_id, config,
                                   metrics, items, created_at, tool_version, seconds)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [eval.snapshotId, eval.split, eval.modelRef, eval.modelSHA256, eval.adapter?.path, eval.adapter?.sha256,
                                 eval.runId, eval.config, eval.metrics, eval.items, Timestamp.now(), CorpusVersion.string, eval.seconds])
            let id = db.lastInsertedRowID
            let insert = try db.makeStatement(sql: """
                INSERT INTO eval_items (eval_id, model, position, record_id, prediction, loss, tokens, rouge_l, bleu4, exact_match, length_ratio,
                                        reward, rewards, logp_chosen, logp_rejected)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for i in items {
                try insert.execute(arguments: [id, i.model, i.position, i.recordId, i.prediction, i.loss, i.tokens, i.rougeL, i.bleu4,
                                               i.exactMatch, i.lengthRatio, i.reward, try i.rewards.map(Self.rewardsJSON),
                                               i.logpChosen, i.logpRejected])
            }
            var outcome: [String: Any] = ["eval": id, "items": eval.items]
            if let adapter = eval.adapter { outcome["adapter_sha256"] = adapter.sha256 }
            try Self.audit(db, command: "eval", arguments: arguments, outcome: outcome)
            return id
        }
    }

    /// Every evaluation, oldest first.
    public func evals() throws -> [StoredEval] {
        try pool.read { db in try Self.evals(db, where: "1", arguments: []) }
    }

    /// The evaluation with this id, or nil.
    public func eval(id: Int64) throws -> StoredEval? {
        try pool.read { db in try Self.evals(db, where: "e.id = ?", arguments: [id]).first }
    }

    /// The evaluations of an adapter, found by the SHA-256 of its weights file, oldest first.
    public func evals(adapterSHA256 sha256: String) throws -> [StoredEval] {
        try pool.read { db in try Self.evals(db, where: "e.adapter_sha256 = ?", arguments: [sha256.lowercased()]) }
    }

    /// The items of an evaluation, by model (base first) and position.
    public func evalItems(evalId: Int64) throws -> [StoredEvalItem] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM eval_items WHERE eval_id = ? ORDER BY model = 'adapter', position",
                             arguments: [evalId]).map { row in
                StoredEvalItem(model: row["model"], position: row["position"], recordId: row["record_id"], prediction: row["prediction"],
                               loss: row["loss"], tokens: row["tokens"], rougeL: row["rouge_l"], bleu4: row["bleu4"],
                               exactMatch: row["exact_match"], lengthRatio: row["length_ratio"], reward: row["reward"],
                               rewards: try (row["rewards"] as String?).map(Self.rewards(json:)),
                               logpChosen: row["logp_chosen"], logpRejected: row["logp_rejected"])
            }
        }
    }

    /// `{name: score}` as the `rewards` column keeps it (sorted keys).
    static func rewardsJSON(_ rewards: [String: Double]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: rewards, options: [.sortedKeys]), as: UTF8.self)
    }

    /// The `rewards` column read back.
    /// - Throws: `CorpusDBError.invalid` when it is not a JSON object of numbers.
    static func rewards(json: String) throws -> [String: Double] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            throw CorpusDBError(.invalid, "eval_items.rewards is not a JSON object: \(json.prefix(80))")
        }
        var out: [String: Double] = [:]
        for (name, value) in object {
            guard let number = value as? NSNumber else {
                throw CorpusDBError(.invalid, "eval_items.rewards: '\(name)' is not a number in \(json.prefix(80))")
            }
            out[name] = number.doubleValue
        }
        return out
    }

    static func evals(_ db: Database, where condition: String, arguments: StatementArguments) throws -> [StoredEval] {
        try Row.fetchAll(db, sql: """
            SELECT e.*, s.name || '@' || s.version AS snapshot, s.hash AS snapshot_hash
            FROM evals e JOIN snapshots s ON s.id = e.snapshot_id
            WHERE \(condition) ORDER BY e.id
            """, arguments: arguments).map { row in
            StoredEval(id: row["id"], snapshotId: row["snapshot_id"], snapshot: row["snapshot"], snapshotHash: row["snapshot_hash"],
                       split: row["split"], modelRef: row["model_ref"], modelSHA256: row["model_sha256"], adapterPath: row["adapter_path"],
                       adapterSHA256: row["adapter_sha256"], runId: row["run_id"], config: row["config"], metrics: row["metrics"],
                       items: row["items"], createdAt: row["created_at"], toolVersion: row["tool_version"], seconds: row["seconds"])
        }
    }
}
