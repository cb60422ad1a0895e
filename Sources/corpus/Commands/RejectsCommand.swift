import ArgumentParser
import CorpusDB

struct RejectsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rejects", abstract: "List input rows that did not become records, with the reason and where they are.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption

    @Option(name: .long, help: "Only rejects of this source id (see `corpus sources`).")
    var source: Int64?

    @Option(name: .long, help: "At most this many rejects (default all).")
    var limit: Int?

    func run() throws {
        try Exit.reporting {
            let store = try database.open()
            let rejects = try store.rejects(sourceId: source, limit: limit)
            if output.json {
                Output.printJSON(rejects.map { r in
                    ["id": r.id ?? 0, "source_id": r.sourceId, "row_index": r.rowIndex, "locator": r.locator, "line": r.line,
                     "byte_offset": r.byteOffset, "byte_length": r.byteLength, "reason": r.reason, "detail": r.detail,
                     "excerpt": r.excerpt] as [String: Any]
                })
            } else if rejects.isEmpty {
                print("no rejects")
            } else {
                Output.printTable(header: ["source", "locator", "line", "offset", "reason", "detail"], rows: rejects.map { r in
                    ["\(r.sourceId)", r.locator, "\(r.line)", "\(r.byteOffset)", r.reason, Output.excerpt(r.detail, 70)]
                })
            }
        }
    }
}
