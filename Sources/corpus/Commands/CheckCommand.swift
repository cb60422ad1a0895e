import ArgumentParser
import CorpusDB
import Foundation
import Quality

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Run the quality checks and store one verdict per record and check (nothing is deleted; snapshots select).")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption
    @Option(name: .long, help: "A check configuration file (start from --print-config); defaults otherwise.") var config: String?
    @Option(name: .long, help: "Only records from this source id; repeatable.") var source: [Int64] = []
    @Option(name: .long, help: "Only records with this tag (key=value); repeatable, all must match.") var tag: [String] = []
    @Flag(name: .long, help: "Print the default configuration as a file to edit, and stop.") var printConfig = false

    func validate() throws {
        for t in tag where TagFilter(parsing: t) == nil { throw ValidationError("--tag \(t) must be key=value") }
    }

    func run() throws {
        if printConfig {
            print(try CheckConfiguration().prettyJSON())
            return
        }
        try Exit.reporting {
            let configuration = try config.map { try CheckConfiguration.load(path: $0) } ?? CheckConfiguration()
            let hash = try configuration.hash()
            let store = try database.open()
            let filters = tag.compactMap(TagFilter.init(parsing:))
            var records: [Record] = []
            if source.isEmpty {
                records = try store.records(tags: filters)
            } else {
                for id in source {
                    guard try store.source(id: id) != nil else {
                        throw CorpusDBError(.notFound, "\(store.path): no source \(id); `corpus sources` lists them")
                    }
                    records += try store.records(sourceId: id, tags: filters)
                }
                records.sort { ($0.id ?? 0) < ($1.id ?? 0) }
            }
            let items = try records.map { (id: $0.id ?? 0, conversation: try $0.decodedConversation()) }
            let verdicts = CheckRunner.verdicts(items, configuration: configuration)
            let added = try store.saveVerdicts(verdicts, configHash: hash, configJSON: try configuration.canonicalJSON(),
                                               arguments: CommandLine.arguments)
            let summary = try store.checkSummary(configHash: hash)
            if output.json {
                Output.printJSON(["config_hash": hash, "records": items.count, "verdicts_added": added,
                                  "checks": Dictionary(uniqueKeysWithValues: summary.map { ($0.name, ["checked": $0.checked, "failed": $0.failed]) })])
            } else {
                print("checked \(items.count) records with configuration \(hash.prefix(12)) (\(added) new verdicts)")
                Output.printTable(header: ["check", "checked", "failed"], rows: summary.map { [$0.name, "\($0.checked)", "\($0.failed)"] })
            }
        }
    }
}
