import ArgumentParser
import CorpusDB
import Foundation

/// `--db PATH`, shared by every command that touches the store.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .long, help: "The corpus store (default: $CORPUS_DB, else ./corpus.db).")
    var db: String?

    /// The path in effect: --db, else CORPUS_DB, else ./corpus.db.
    var path: String {
        if let db { return db }
        if let env = ProcessInfo.processInfo.environment["CORPUS_DB"], !env.isEmpty { return env }
        return "corpus.db"
    }

    /// Opens the existing store (exit 4 with a message when it cannot).
    func open() throws -> CorpusStore {
        try CorpusStore(path: path)
    }
}

/// `--json`, for machine-readable output.
struct JSONOption: ParsableArguments {
    @Flag(name: .long, help: "Print machine-readable JSON instead of a table.")
    var json = false
}
