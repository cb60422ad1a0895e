import ArgumentParser
import CorpusDB
import Foundation
import Ingest

struct IngestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Import CSV, JSON and JSONL question-answer files into the store.",
        discussion: """
            Every input row becomes exactly one record or one reject with a reason (see `corpus rejects`). \
            Each file is one transaction: a file that fails or is interrupted leaves nothing behind. \
            A file whose SHA-256 is already in the store is skipped unless --force is given.
            """)

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption

    @Argument(help: "Files and directories (read recursively) to ingest.")
    var paths: [String]

    @Option(name: .long, help: "Force the format instead of detecting it: csv, json or jsonl.")
    var format: SourceFormat?

    @Option(name: .long, help: "Force the encoding (e.g. GB18030, GBK, UTF-8, UTF-16LE) instead of detecting it.")
    var encoding: String?

    @Flag(name: .long, help: "Keep rows with undecodable bytes, replaced by U+FFFD and flagged, instead of rejecting them.")
    var lossy = false

    @Option(name: .long, help: "Field mapping, e.g. user=query,assistant=response,tag.laws=laws (user=title+ask joins columns).")
    var map: String?

    @Option(name: .long, help: "A tag for every record of these files, as key=value; repeat for several.")
    var tag: [String] = []

    @Flag(name: .long, help: "Tag each file with its directory name: IM_内科/a.csv gets department=内科.")
    var tagsFromDirs = false

    @Option(name: .long, help: "The tag key --tags-from-dirs sets.")
    var dirTagKey = "department"

    @Option(name: .long, help: "CSV delimiter: a single character, or 'tab' (detected from the header line by default).")
    var delimiter: String?

    @Flag(name: .long, help: "Ingest files again even when their SHA-256 is already in the store.")
    var force = false

    func validate() throws {
        for t in tag where TagFilter(parsing: t) == nil {
            throw ValidationError("--tag \(t): expected key=value, e.g. --tag department=内科")
        }
        if let delimiter, delimiter != "tab", delimiter.utf8.count != 1 {
            throw ValidationError("--delimiter \(delimiter): expected one ASCII character such as ',' or ';', or 'tab'")
        }
    }

    func run() throws {
        try Exit.reporting {
            var options = IngestOptions()
            options.format = format
            options.encoding = encoding
            options.lossy = lossy
            options.map = map
            options.tagsFromDirs = tagsFromDirs
            options.dirTagKey = dirTagKey
            options.force = force
            if let delimiter { options.delimiter = delimiter == "tab" ? 0x09 : delimiter.utf8.first }
            for t in tag { if let f = TagFilter(parsing: t) { options.tags[f.key] = f.value } }

            let store = try database.open()
            let files = try InputExpander.expand(paths, options: options)
            let ingestor = Ingestor(store: store, options: options)
            Interrupt.install()
            ingestor.isCancelled = { Interrupt.requested }
            let interactive = isatty(STDERR_FILENO) == 1
            ingestor.onProgress = { p in
                let rate = Double(p.processed) / max(p.elapsed, 0.001)
                let eta = Double(p.total - p.processed) / max(rate, 1)
                let line = String(format: "  %@: %d rows, %.0f rows/s, %.1f MB/s, %.0f%%, ETA %.0fs",
                                  (p.path as NSString).lastPathComponent, p.rows, Double(p.rows) / max(p.elapsed, 0.001),
                                  rate / 1e6, 100 * Double(p.processed) / Double(max(p.total, 1)), eta)
                Output.progress(interactive ? "\r" + line + "\u{1B}[K" : line + "\n")
            }

            var summaries: [FileSummary] = []
            var failures: [(path: String, message: String)] = []
            for file in files {
                do {
                    let summary = try ingestor.ingest(file)
                    if interactive { Output.progress("\r\u{1B}[K") }
                    summaries.append(summary)
                    if !output.json { Self.printSummary(summary) }
                } catch let error as IngestError where error.code != .interrupted {
                    if interactive { Output.progress("\r\u{1B}[K") }
                    failures.append((file.path, error.message))
                    Output.error("error: \(error.message)")
                }
            }
            try store.logAudit(command: "ingest", arguments: CommandLine.arguments, toolVersion: CorpusVersion.string, outcome: [
                "sources": summaries.compactMap { $0.sourceId },
                "records": summaries.reduce(0) { $0 + $1.records },
                "rejects": summaries.reduce(0) { $0 + $1.rejects },
                "failed": failures.map(\.path),
            ])
            if output.json {
                Output.printJSON(["files": summaries.map(Self.json), "failed": failures.map { ["path": $0.path, "error": $0.message] }])
            } else if files.count > 1 {
                print("\(summaries.count) of \(files.count) files ingested: \(summaries.reduce(0) { $0 + $1.records }) records, \(summaries.reduce(0) { $0 + $1.rejects }) rejects"
                      + (failures.isEmpty ? "" : "; \(failures.count) failed (see the errors above)"))
            }
            if !failures.isEmpty { throw ExitCode(Exit.inputError) }
        }
    }

    static func printSummary(_ s: FileSummary) {
        if let existing = s.alreadyIngestedAs {
            print("\(s.path): already ingested as source \(existing) (same SHA-256 \(s.sha256.prefix(12))…); skipped, use --force to ingest it again")
            return
        }
        print("\(s.path)")
        print("  source \(s.sourceId ?? 0): \(s.format?.rawValue ?? "?"), \(s.encoding) (confidence \(s.encodingConfidence)%), \(s.bytes) bytes, sha256 \(s.sha256)")
        print("  \(s.rows) rows → \(s.records) records, \(s.rejects) rejects" + String(format: " in %.2fs", s.seconds))
        for (reason, count) in s.rejectsByReason { print("    \(count) \(reason)") }
    }

    static func json(_ s: FileSummary) -> [String: Any] {
        var out: [String: Any] = ["path": s.path, "sha256": s.sha256, "bytes": s.bytes, "encoding": s.encoding,
                                  "encoding_confidence": s.encodingConfidence, "rows": s.rows, "records": s.records,
                                  "rejects": s.rejects, "seconds": s.seconds,
                                  "rejects_by_reason": Dictionary(uniqueKeysWithValues: s.rejectsByReason.map { ($0.reason, $0.count) })]
        out["source_id"] = s.sourceId ?? NSNull()
        out["already_ingested_as"] = s.alreadyIngestedAs ?? NSNull()
        out["format"] = s.format?.rawValue ?? NSNull()
        return out
    }
}

extension SourceFormat: ExpressibleByArgument {}
