import ArgumentParser
import CorpusDB
import Foundation
import Quality
import ModelRuntime
import Trainer

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Run the quality checks and store one verdict per record and check (nothing is deleted; snapshots select).",
        discussion: "Every record of the store is context (a new file is compared with the whole corpus); --source and --tag choose which records get verdicts. docs/QUALITY.md explains every check.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption
    @Option(name: .long, help: "A check configuration file (start from --print-config); defaults otherwise.") var config: String?
    @Option(name: .long, help: "Only judge records from this source id; repeatable.") var source: [Int64] = []
    @Option(name: .long, help: "Only judge records with this tag (key=value); repeatable, all must match.") var tag: [String] = []
    @Option(name: .long, help: "A model (file, folder or registered name) whose tokenizer measures lengths in tokens (prompt_tokens, answer_tokens).") var model: String?
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
            var tokens: CheckRunner.TokenCounter?
            if let model {
                let tokenizer = try ModelFiles(path: try ModelOptions.resolve(model, database: database)).tokenizer()
                tokens = { tokenizer.encode($0).count }
            }
            for id in source where try store.source(id: id) == nil {
                throw CorpusDBError(.notFound, "\(store.path): no source \(id); `corpus sources` lists them")
            }
            let timing = PhaseTimer()
            var judged: Set<Int64>?
            if !source.isEmpty || !tag.isEmpty {
                let filters = tag.compactMap(TagFilter.init(parsing:))
                var chosen: [Record] = []
                if source.isEmpty {
                    chosen = try store.records(tags: filters)
                } else {
                    for id in source { chosen += try store.records(sourceId: id, tags: filters) }
                }
                judged = Set(chosen.compactMap(\.id))
            }
            var items: [CheckInput] = []
            try store.forEachConversation { id, json in
                items.append(CheckInput(id: id, conversation: try CanonicalJSON.decode(json)))
            }
            timing.mark("read \(items.count) conversations")
            // Signatures stored by earlier runs are reused: only new records are signed.
            let signatureKey = configuration.nearDuplicates.signatureKey
            var stored: [Int64: [UInt32]] = [:]
            if configuration.runs("near_duplicate") {
                for (id, blob) in try store.minHashSignatures(key: signatureKey) {
                    if let s = MinHasher.signature(blob: blob, permutations: configuration.nearDuplicates.permutations) { stored[id] = s }
                }
            }
            timing.mark("read \(stored.count) stored signatures")
            let outcome = CheckRunner.run(items, configuration: configuration, judged: judged, tokens: tokens, signatures: stored)
            let checkedCount = items.count
            items = []              // the conversations are not needed to store the findings
            timing.mark("checks (\(outcome.verdictCount) verdicts)")
            try store.saveMinHashSignatures(outcome.newSignatures.map { ($0.recordId, MinHasher.blob($0.signature)) }, key: signatureKey)
            let added = try store.savePackedVerdicts(outcome.packed, configHash: hash, configJSON: try configuration.canonicalJSON(),
                                               groups: outcome.groups, boilerplate: outcome.boilerplate,
                                               arguments: CommandLine.arguments)
            timing.mark("stored verdicts, groups and signatures")
            let summary = try store.checkSummary(configHash: hash)
            let judgedCount = judged?.count ?? checkedCount
            if output.json {
                Output.printJSON(["config_hash": hash, "records": judgedCount, "verdicts_added": added,
                                  "signatures_computed": outcome.newSignatures.count, "signatures_reused": stored.count,
                                  "checks": Dictionary(uniqueKeysWithValues: summary.map { ($0.name, ["checked": $0.checked, "failed": $0.failed]) })])
            } else {
                print("checked \(judgedCount) records with configuration \(hash.prefix(12)) (\(added) new verdicts)")
                if configuration.runs("near_duplicate") {
                    print("MinHash signatures: \(outcome.newSignatures.count) computed, \(stored.count) reused from earlier checks")
                }
                Output.printTable(header: ["check", "checked", "failed"], rows: summary.map { [$0.name, "\($0.checked)", "\($0.failed)"] })
                if !configuration.advisory.isEmpty {
                    print("advisory (reported, never a reason to leave a record out): \(configuration.advisory.joined(separator: ", "))")
                }
                print("see `corpus report` for the findings, `corpus dups` for the groups")
            }
        }
    }
}
