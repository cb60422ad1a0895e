import Foundation
import GRDB

/// A training run as the store keeps it (tables `runs`, `adapters`, `run_metrics`).
public struct TrainingRun: Sendable, Equatable {
    public var id: Int64
    public var snapshotId: Int64
    /// "name@version".
    public var snapshot: String
    public var snapshotHash: String
    /// The model as the user named it (path or registered name).
    public var modelRef: String
    /// The fingerprint of the base model's weights (docs/STORE.md).
    public var modelSHA256: String
    /// The training configuration, canonical JSON.
    public var config: String
    public var seed: Int64
    /// running | finished | interrupted | failed | imported, or killed: stored as running, but its
    /// process is gone without recording an outcome (`RunProcess`).
    public var status: String
    public var startedAt: String
    public var finishedAt: String?
    public var toolVersion: String
    /// JSON written when the run ended (see migration 0006), or nil while it runs.
    public var summary: String?
    /// The adapter the run wrote, if it finished.
    public var adapter: TrainedAdapter?
    /// The process that trained it last (nil before migration 0011 and for imported adapters).
    public var process: RunProcess?
}

/// An adapter file set written by a run.
public struct TrainedAdapter: Sendable, Equatable {
    public var id: Int64
    /// The adapter folder (adapter_config.json + adapter_model.safetensors).
    public var path: String
    /// SHA-256 of adapter_model.safetensors.
    public var sha256: String
}

/// One optimizer step of a run.
public struct RunMetric: Sendable, Equatable {
    public var step: Int
    public var loss: Double
    public var evalLoss: Double?
    public var learningRate: Double
    public var tokens: Int
    public var seconds: Double
    /// The objective's other figures of this step by name (DPO's rewards/…); empty for SFT.
    public var extra: [String: Double]

    public init(step: Int, loss: Double, evalLoss: Double?, learningRate: Double, tokens: Int, seconds: Double,
                extra: [String: Double] = [:]) {
        self.step = step
        self.loss = loss
        self.evalLoss = evalLoss
        self.learningRate = learningRate
        self.tokens = tokens
        self.seconds = seconds
        self.extra = extra
    }
}

extension CorpusStore {
    /// Records the start of a run (status `running`) and returns its id.
    public func startRun(snapshot: Snapshot, modelRef: String, modelSHA256: String, config: String, seed: Int64,
                         arguments: [String] = []) throws -> Int64 {
        guard let snapshotId = snapshot.id else { throw CorpusDBError(.invalid, "the snapshot has no id; it was never stored") }
        let process = RunProcess.current
        return try pool.write { db in
            try db.execute(sql: """
                INSERT INTO runs (snapshot_id, model_ref, model_sha256, config, seed, status, started_at, tool_version, pid, host, process_start)
                VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)
                """, arguments: [snapshotId, modelRef, modelSHA256, config, seed, Timestamp.now(), CorpusVersion.string,
                                 process.pid, process.host, process.start])
            let id = db.lastInsertedRowID
            try Self.audit(db, command: "train", arguments: arguments, outcome: ["run": id, "status": "running"])
            return id
        }
    }

    /// Marks a run as running again in this process (`corpus train --resume`).
    /// - Throws: `CorpusDBError(.notFound)` for an unknown run; `.invalid` when the run finished
    ///   (its adapter is written) or another process is still training it.
    public func resumeRun(id: Int64, arguments: [String] = []) throws {
        let process = RunProcess.current
        try pool.write { db in
            guard let run = try Self.runs(db, where: "r.id = ?", arguments: [id]).first else {
                throw CorpusDBError(.notFound, "\(path): no run \(id); `corpus runs list` shows them")
            }
            if run.status == "finished" || run.status == "imported" {
                throw CorpusDBError(.invalid, "run \(id) is \(run.status)\(run.adapter.map { "; its adapter is \($0.path)" } ?? ""); there is nothing to resume (delete the stale checkpoint folder)")
            }
            if run.status == "running", let other = run.process, other != process {
                throw CorpusDBError(.invalid, "run \(id) is being trained by process \(other.pid) on \(other.host); wait for it to end or stop it (Ctrl-C writes a checkpoint) before resuming")
            }
            try db.execute(sql: "UPDATE runs SET status = 'running', finished_at = NULL, pid = ?, host = ?, process_start = ? WHERE id = ?",
                           arguments: [process.pid, process.host, process.start, id])
            try Self.audit(db, command: "train", arguments: arguments, outcome: ["run": id, "status": "resumed"])
        }
    }

    /// Stores steps of a run's loss curve (a resumed run rewrites the steps it repeats).
    public func recordMetrics(runId: Int64, _ metrics: [RunMetric]) throws {
        guard !metrics.isEmpty else { return }
        try pool.write { db in
            let insert = try db.makeStatement(sql: """
                INSERT OR REPLACE INTO run_metrics (run_id, step, loss, eval_loss, learning_rate, tokens, seconds, metrics)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for m in metrics {
                let extra: String? = m.extra.isEmpty ? nil
                    : (try? JSONSerialization.data(withJSONObject: m.extra, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) }
                try insert.execute(arguments: [runId, m.step, m.loss, m.evalLoss, m.learningRate, m.tokens, m.seconds, extra])
            }
        }
    }

    /// Ends a run: its status, summary JSON and, when it wrote one, its adapter.
    public func finishRun(id: Int64, status: String, summary: String, adapter: (path: String, sha256: String)?,
                          arguments: [String] = []) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE runs SET status = ?, finished_at = ?, summary = ? WHERE id = ?",
                           arguments: [status, Timestamp.now(), summary, id])
            var outcome: [String: Any] = ["run": id, "status": status]
            if let adapter {
                try db.execute(sql: "INSERT INTO adapters (run_id, path, sha256, created_at) VALUES (?, ?, ?, ?)",
                               arguments: [id, adapter.path, adapter.sha256, Timestamp.now()])
                outcome["adapter"] = adapter.path
                outcome["adapter_sha256"] = adapter.sha256
            }
            try Self.audit(db, command: "train", arguments: arguments, outcome: outcome)
        }
    }

    /// Registers an adapter trained outside corpus (`corpus adapters import`): a run with status
    /// `imported` on `snapshot` (its `config` says how it was trained, as far as known) and the
    /// adapter, in one transaction, audited. From then on lineage, eval, serve and forget find it
    /// as they find ours.
    /// - Throws: `CorpusDBError(.invalid)` when an adapter with this SHA-256 is already on record
    ///   (naming it), or the snapshot was never stored.
    public func importAdapter(snapshot: Snapshot, modelRef: String, modelSHA256: String, config: String, summary: String,
                              adapter: (path: String, sha256: String), arguments: [String] = []) throws -> (run: Int64, adapter: Int64) {
        guard let snapshotId = snapshot.id else { throw CorpusDBError(.invalid, "the snapshot has no id; it was never stored") }
        return try pool.write { db in
            if let row = try Row.fetchOne(db, sql: "SELECT id, run_id, path FROM adapters WHERE sha256 = ?", arguments: [adapter.sha256]) {
                let id: Int64 = row["id"], run: Int64 = row["run_id"], path: String = row["path"]
                throw CorpusDBError(.invalid, "\(adapter.path): this adapter (sha256 \(adapter.sha256.prefix(12))…) is already on record as adapter \(id) of run \(run) (\(path)); nothing was registered")
            }
            let now = Timestamp.now()
            try db.execute(sql: """
                INSERT INTO runs (snapshot_id, model_ref, model_sha256, config, seed, status, started_at, finished_at, tool_version, summary)
                VALUES (?, ?, ?, ?, 0, 'imported', ?, ?, ?, ?)
                """, arguments: [snapshotId, modelRef, modelSHA256, config, now, now, CorpusVersion.string, summary])
            let run = db.lastInsertedRowID
            try db.execute(sql: "INSERT INTO adapters (run_id, path, sha256, created_at) VALUES (?, ?, ?, ?)",
                           arguments: [run, adapter.path, adapter.sha256, now])
            let id = db.lastInsertedRowID
            try Self.audit(db, command: "adapters import", arguments: arguments,
                           outcome: ["run": run, "adapter": id, "path": adapter.path, "adapter_sha256": adapter.sha256, "snapshot": snapshot.label])
            return (run, id)
        }
    }

    /// Every run, oldest first.
    public func runs() throws -> [TrainingRun] {
        try pool.read { db in try Self.runs(db, where: "1", arguments: []) }
    }

    /// The run with this id, or nil.
    public func run(id: Int64) throws -> TrainingRun? {
        try pool.read { db in try Self.runs(db, where: "r.id = ?", arguments: [id]).first }
    }

    /// The run that wrote an adapter, found by the adapter's id, its folder (as stored or
    /// resolved to an absolute path) or the SHA-256 of its weights file.
    public func run(adapter reference: String) throws -> TrainingRun? {
        let absolute = URL(fileURLWithPath: reference).standardizedFileURL.path
        return try pool.read { db in
            try Self.runs(db, where: "r.id IN (SELECT run_id FROM adapters WHERE CAST(id AS TEXT) = ? OR path = ? OR path = ? OR sha256 = ?)",
                          arguments: [reference, reference, absolute, reference.lowercased()]).last
        }
    }

    /// A run's loss curve, by step.
    public func metrics(runId: Int64) throws -> [RunMetric] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM run_metrics WHERE run_id = ? ORDER BY step", arguments: [runId]).map {
                let text: String? = $0["metrics"]
                let extra = text.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Double] } ?? [:]
                return RunMetric(step: $0["step"], loss: $0["loss"], evalLoss: $0["eval_loss"], learningRate: $0["learning_rate"],
                                 tokens: $0["tokens"], seconds: $0["seconds"], extra: extra)
            }
        }
    }

    static func runs(_ db: Database, where condition: String, arguments: StatementArguments) throws -> [TrainingRun] {
        try Row.fetchAll(db, sql: """
            SELECT r.*, s.name || '@' || s.version AS snapshot, s.hash AS snapshot_hash,
                   a.id AS adapter_id, a.path AS adapter_path, a.sha256 AS adapter_sha256
            FROM runs r JOIN snapshots s ON s.id = r.snapshot_id
            LEFT JOIN adapters a ON a.id = (SELECT MAX(id) FROM adapters WHERE run_id = r.id)
            WHERE \(condition) ORDER BY r.id
            """, arguments: arguments).map { row in
            let adapterId: Int64? = row["adapter_id"]
            let pid: Int64? = row["pid"]
            let process = pid.map { RunProcess(pid: Int32(truncatingIfNeeded: $0), host: row["host"] ?? "", start: row["process_start"]) }
            return TrainingRun(
                id: row["id"], snapshotId: row["snapshot_id"], snapshot: row["snapshot"], snapshotHash: row["snapshot_hash"],
                modelRef: row["model_ref"], modelSHA256: row["model_sha256"], config: row["config"], seed: row["seed"],
                status: RunProcess.effectiveStatus(row["status"], process: process), startedAt: row["started_at"], finishedAt: row["finished_at"], toolVersion: row["tool_version"],
                summary: row["summary"],
                adapter: adapterId.map { TrainedAdapter(id: $0, path: row["adapter_path"], sha256: row["adapter_sha256"]) },
                process: process)
        }
    }
}
