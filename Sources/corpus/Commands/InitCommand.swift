import ArgumentParser
import CorpusDB
import Foundation

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a corpus store (or bring an existing one up to this build's schema).")

    @OptionGroup var database: DatabaseOptions

    func run() throws {
        try Exit.reporting {
            let existed = FileManager.default.fileExists(atPath: database.path)
            let store = try CorpusStore(path: database.path, create: true)
            try store.logAudit(command: "init", arguments: CommandLine.arguments, toolVersion: CorpusVersion.string,
                               outcome: ["schema_version": try store.schemaVersion(), "existed": existed])
            print(existed ? "corpus store \(store.path) is ready (schema version \(try store.schemaVersion()))"
                          : "created corpus store \(store.path) (schema version \(try store.schemaVersion()))")
        }
    }
}
