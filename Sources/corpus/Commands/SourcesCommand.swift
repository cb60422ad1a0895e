import ArgumentParser
import CorpusDB

struct SourcesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sources", abstract: "List ingested files with their hash, format, encoding and counts.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption

    func run() throws {
        try Exit.reporting {
            let sources = try database.open().allSources()
            if output.json {
                Output.printJSON(sources.map(Self.json))
            } else if sources.isEmpty {
                print("no sources yet; add some with `corpus ingest FILE...`")
            } else {
                Output.printTable(
                    header: ["id", "format", "encoding", "rows", "records", "rejects", "sha256", "path"],
                    rows: sources.map { s in
                        ["\(s.id ?? 0)", s.format, "\(s.encoding) (\(s.encodingConfidence)%)", "\(s.rowsRead)",
                         "\(s.recordsAdded)", "\(s.rowsRejected)", String(s.sha256.prefix(12)), s.path]
                    })
            }
        }
    }

    static func json(_ s: Source) -> [String: Any] {
        ["id": s.id ?? 0, "path": s.path, "sha256": s.sha256, "bytes": s.bytes, "format": s.format,
         "encoding": s.encoding, "encoding_confidence": s.encodingConfidence, "encoding_method": s.encodingMethod,
         "rows": s.rowsRead, "records": s.recordsAdded, "rejects": s.rowsRejected,
         "mapping": Output.jsonValue(s.mapping), "tags": Output.jsonValue(s.tags),
         "options": Output.jsonValue(s.options), "imported_at": s.importedAt, "tool_version": s.toolVersion]
    }
}
