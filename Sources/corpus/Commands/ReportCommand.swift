import ArgumentParser
import CorpusDB
import CorpusSupport
import Foundation
import Quality

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "The coverage report: counts per source and tag, lengths, duplicates, what each check found, PII, boilerplate, taxonomy coverage.",
        discussion: "Text by default; --json for scripts; --html FILE writes one self-contained page with charts to open in a browser.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption
    @Option(name: .long, help: "Only records with this tag (key=value); repeatable, all must match.") var tag: [String] = []
    @Option(name: .long, help: "A JSON file of expected tag values with minimum counts, e.g. {\"department\": {\"内科\": 200}}.") var taxonomy: String?
    @Option(name: .long, help: "Also write the report as a self-contained HTML page to this file.") var html: String?
    @Option(name: .long, help: "Whose verdicts: default (the newest check configuration), none, or a configuration hash (8+ characters).") var checks = "default"
    @Option(name: .long, help: "Failing records shown per check.") var examples = 3

    func validate() throws {
        for t in tag where TagFilter(parsing: t) == nil { throw ValidationError("--tag \(t) must be key=value") }
        guard examples >= 0 else { throw ValidationError("--examples must be 0 or more") }
    }

    func run() throws {
        try Exit.reporting {
            let store = try database.open()
            let taxonomy = try self.taxonomy.map { try Taxonomy.load(path: $0) }
            let hash = try store.resolveChecks(checks)
            let report = try Report.build(store: store, configHash: hash, tags: tag.compactMap(TagFilter.init(parsing:)),
                                          taxonomy: taxonomy, examples: examples)
            if let html {
                let title = "Corpus report: " + URL(fileURLWithPath: store.path).lastPathComponent
                let page = report.html(title: title, generated: Timestamp.now())
                do {
                    try AtomicFile.write(Data(page.utf8), to: URL(fileURLWithPath: html))
                } catch let error as FileWriteError {
                    throw CorpusDBError(.invalid, "\(html): cannot write the HTML report: \(error.message)")
                }
                Output.progress("wrote \(html)")
            }
            if output.json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
                Output.write(String(decoding: try encoder.encode(report), as: UTF8.self) + "\n")
                return
            }
            printText(report)
        }
    }

    private func printText(_ r: Report) {
        func pct(_ n: Int, _ of: Int) -> String { of == 0 ? "0%" : String(format: "%.1f%%", Double(n) * 100 / Double(of)) }
        print("records \(r.records), pass every check \(r.kept)" + (r.configHash.map { " (configuration \($0.prefix(12)))" } ?? " (no checks have run: `corpus check`)"))
        print("exact duplicates \(r.exactDuplicates) (\(pct(r.exactDuplicates, r.records))), near duplicates \(r.nearDuplicates) (\(pct(r.nearDuplicates, r.records))), conflicting answers \(r.conflictingAnswers)")
        if !r.checks.isEmpty {
            print("")
            let names = CheckConfiguration.checkNames + r.checks.keys.filter { !CheckConfiguration.checkNames.contains($0) }.sorted()
            Output.printTable(header: ["check", "failed", "share", "example"], rows: names.compactMap { name in
                guard let c = r.checks[name] else { return nil }
                let example = c.examples.first.map { "#\($0.record) \($0.detail)" } ?? ""
                return [name + (c.advisory ? " (advisory)" : ""), "\(c.failed)", pct(c.failed, c.checked), Output.excerpt(example, 50)]
            })
        }
        if !r.pii.isEmpty { print("\nPII: " + r.pii.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")) }
        if !r.boilerplate.isEmpty {
            print("\nrecurring sentences:")
            for b in r.boilerplate.prefix(5) { print("  \(b.records)× \(Output.excerpt(b.sentence, 60))") }
        }
        print("\nsources:")
        Output.printTable(header: ["id", "records", "kept", "path"], rows: r.sources.map { ["\($0.id)", "\($0.records)", "\($0.kept)", $0.path] })
        for key in r.tags.keys.sorted() {
            guard let values = r.tags[key] else { continue }
            let top = values.sorted { ($0.value, $1.key) > ($1.value, $0.key) }
            print("\ntag \(key): " + top.prefix(12).map { "\($0.key) \($0.value)" }.joined(separator: ", ") + (top.count > 12 ? ", … (\(top.count) values)" : ""))
        }
        if let taxonomy = r.taxonomy {
            print("\ncoverage:")
            Output.printTable(header: ["tag", "value", "needed", "before", "after", "status"],
                              rows: taxonomy.map { [$0.key, $0.value, "\($0.minimum)", "\($0.before)", "\($0.after)", $0.status] })
        }
    }
}
