import ArgumentParser
import CorpusDB

struct RecordsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "records", abstract: "List records, optionally of one source or with given tags.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption

    @Option(name: .long, help: "Only records of this source id (see `corpus sources`).")
    var source: Int64?

    @Option(name: .long, help: "Only records with this tag, as key=value; repeat to require several.")
    var tag: [String] = []

    @Option(name: .long, help: "At most this many records (default 50 for the table, all for --json).")
    var limit: Int?

    @Option(name: .long, help: "Skip this many records first.")
    var offset: Int = 0

    func validate() throws {
        for t in tag where TagFilter(parsing: t) == nil {
            throw ValidationError("--tag \(t): expected key=value, e.g. --tag department=内科")
        }
        if let limit, limit < 0 { throw ValidationError("--limit must be 0 or more") }
    }

    func run() throws {
        try Exit.reporting {
            let filters = tag.compactMap(TagFilter.init(parsing:))
            let store = try database.open()
            let records = try store.records(sourceId: source, tags: filters, limit: limit ?? (output.json ? nil : 50), offset: offset)
            if output.json {
                Output.printJSON(records.map(Self.json))
            } else if records.isEmpty {
                print("no records match")
            } else {
                Output.printTable(header: ["id", "source", "locator", "offset", "tags", "user", "assistant"], rows: records.map { r in
                    let conversation = try? r.decodedConversation()
                    let user = conversation?.messages.first { $0.role == .user }?.content ?? ""
                    let assistant = conversation?.messages.last { $0.role == .assistant }?.content ?? ""
                    let tags = r.decodedTags().sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
                    return ["\(r.id ?? 0)", "\(r.sourceId)", r.locator, "\(r.byteOffset)", Output.excerpt(tags, 24),
                            Output.excerpt(user, 30), Output.excerpt(assistant, 30)]
                })
            }
        }
    }

    static func json(_ r: Record) -> [String: Any] {
        let messages = (try? r.decodedConversation().messages) ?? []
        return ["id": r.id ?? 0, "source_id": r.sourceId, "row_index": r.rowIndex, "locator": r.locator, "line": r.line,
                "byte_offset": r.byteOffset, "byte_length": r.byteLength,
                "messages": messages.map { ["role": $0.role.rawValue, "content": $0.content] },
                "tags": Output.jsonValue(r.tags), "content_hash": r.contentHash, "flags": Output.jsonValue(r.flags)]
    }
}
