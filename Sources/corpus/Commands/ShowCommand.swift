import ArgumentParser
import CorpusDB

struct ShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show one record: its conversation, original fields and provenance.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption

    @Argument(help: "The record id (see `corpus records`).")
    var record: Int64

    func run() throws {
        try Exit.reporting {
            let store = try database.open()
            guard let r = try store.record(id: record) else {
                throw CorpusDBError(.notFound, "record \(record) does not exist in \(store.path); list records with `corpus records`")
            }
            let source = try store.source(id: r.sourceId)
            if output.json {
                var json = RecordsCommand.json(r)
                json["original"] = Output.jsonValue(try r.originalFields())
                if let source { json["source"] = SourcesCommand.json(source) }
                Output.printJSON(json)
                return
            }
            print("record \(r.id ?? 0)  content sha256 \(r.contentHash)")
            if let source {
                print("from   \(source.path)")
                print("       sha256 \(source.sha256), \(source.format), \(source.encoding)")
            }
            print("at     \(r.locator), line \(r.line), byte offset \(r.byteOffset), \(r.byteLength) bytes")
            let tags = r.decodedTags().sorted { $0.key < $1.key }
            if !tags.isEmpty { print("tags   " + tags.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")) }
            if r.flags != "[]" { print("flags  \(r.flags)") }
            print("")
            for message in try r.decodedConversation().messages {
                print("[\(message.role.rawValue)]")
                print(message.content)
                print("")
            }
            print("original fields: \(try r.originalFields())")
        }
    }
}
