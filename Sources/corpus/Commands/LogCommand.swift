import ArgumentParser
import CorpusDB

struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log", abstract: "Show the audit log: every command that changed the store.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption

    func run() throws {
        try Exit.reporting {
            let entries = try database.open().auditLog()
            if output.json {
                Output.printJSON(entries.map { e in
                    ["id": e.id ?? 0, "at": e.at, "command": e.command, "arguments": Output.jsonValue(e.arguments),
                     "tool_version": e.toolVersion, "outcome": Output.jsonValue(e.outcome)] as [String: Any]
                })
            } else {
                Output.printTable(header: ["id", "at", "command", "outcome"], rows: entries.map { e in
                    ["\(e.id ?? 0)", e.at, e.command, Output.excerpt(e.outcome, 80)]
                })
            }
        }
    }
}
