import ArgumentParser
import CorpusDB

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show the store's schema version and how many sources, records and rejects it holds.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption

    func run() throws {
        try Exit.reporting {
            let store = try database.open()
            let status = try store.status()
            if output.json {
                Output.printJSON(["schema_version": status.schemaVersion, "sources": status.sources,
                                  "records": status.records, "rejects": status.rejects, "path": store.path])
            } else {
                print("store:          \(store.path)")
                print("schema version: \(status.schemaVersion)")
                print("sources:        \(status.sources)")
                print("records:        \(status.records)")
                print("rejects:        \(status.rejects)")
            }
        }
    }
}
