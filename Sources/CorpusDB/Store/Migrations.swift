import GRDB

/// The schema's migrations, embedded from `migrations/*.sql` (see scripts/gen-migrations.sh).
public enum Migrations {
    /// The newest schema version this build knows: the number of the last migration.
    public static var latestVersion: Int { all.count }

    /// A migrator that applies every migration in order, each in its own transaction, with a
    /// foreign-key check before commit (GRDB's default for migrations).
    static func migrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for (identifier, sql) in all {
            migrator.registerMigration(identifier) { db in
                try db.execute(sql: sql)
            }
        }
        return migrator
    }
}
