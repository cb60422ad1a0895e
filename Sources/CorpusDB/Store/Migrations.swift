import Foundation
import GRDB

/// The schema's migrations, embedded from `migrations/*.sql` (see scripts/gen-migrations.sh).
public enum Migrations {
    /// The newest schema version this build knows: the number of the last migration.
    public static var latestVersion: Int { all.count }

    /// Steps in Swift that run right after a migration's SQL, in the same transaction: moves
    /// that SQL alone cannot express.
    static let swiftSteps: [String: @Sendable (Database) throws -> Void] = [
        "0012_packed_verdicts": packLegacyVerdicts,
    ]

    /// A migrator that applies every migration in order, each in its own transaction, with a
    /// foreign-key check before commit (GRDB's default for migrations).
    static func migrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for (identifier, sql) in all {
            migrator.registerMigration(identifier) { db in
                try db.execute(sql: sql)
                try swiftSteps[identifier]?(db)
            }
        }
        return migrator
    }

    /// 0012: packs the one-row-per-verdict table `checks` into `verdicts` (one row per record and
    /// configuration), then drops `checks`. Every verdict moves: a check name the catalogue does
    /// not know stops the migration (nothing is changed) rather than being dropped.
    static func packLegacyVerdicts(_ db: Database) throws {
        let insert = try db.makeStatement(sql: "INSERT INTO verdicts (config_id, record_id, ran, failed, scores, details) VALUES (?, ?, ?, ?, ?, ?)")
        let rows = try Row.fetchCursor(db, sql: """
            SELECT cc.id AS config_id, c.record_id, c.name, c.passed, c.score, c.detail
            FROM checks c JOIN check_configs cc ON cc.hash = c.config_hash ORDER BY cc.id, c.record_id
            """)
        var current: (config: Int64, packed: PackedVerdicts)?
        func flush() throws {
            guard let (config, packed) = current else { return }
            try insert.execute(arguments: [config, packed.recordId, Int64(packed.ran), Int64(packed.failed), packed.scoresBlob, packed.detailsJSON])
        }
        while let row = try rows.next() {
            let config: Int64 = row["config_id"], record: Int64 = row["record_id"]
            if current?.config != config || current?.packed.recordId != record {
                try flush()
                current = (config, PackedVerdicts(recordId: record))
            }
            let name: String = row["name"]
            do {
                try current?.packed.add(name, passed: row["passed"], score: row["score"], detail: row["detail"])
            } catch {
                throw CorpusDBError(.invalid, "migration 0012: the stored verdict \(name) of record \(record) names a check this build does not know; keep this store with the version of corpus that wrote it")
            }
        }
        try flush()
        try db.execute(sql: "DROP TABLE checks")
    }
}
