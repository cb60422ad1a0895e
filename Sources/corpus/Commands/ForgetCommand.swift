import ArgumentParser
import CorpusDB
import Foundation

struct ForgetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forget",
        abstract: "Withdraw records (a removal request): new snapshots leave them out, and every snapshot and adapter that used them is listed.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption
    @Argument(help: "Record ids.") var records: [Int64] = []
    @Option(name: .long, help: "Withdraw every record of this source.") var source: Int64?
    @Option(name: .long, help: "Why (kept for the auditor), e.g. \"patient withdrew consent\".") var reason: String
    @Flag(name: .long, help: "Keep the text in the store (by default it is erased; the content hash is always kept).") var keepText = false

    func validate() throws {
        if records.isEmpty && source == nil { throw ValidationError("name record ids or --source ID") }
    }

    func run() throws {
        try Exit.reporting {
            let report = try database.open().forget(recordIds: records, sourceId: source, reason: reason, erase: !keepText,
                                                    arguments: CommandLine.arguments)
            if output.json {
                Output.printJSON(["withdrawn": report.withdrawn, "already_withdrawn": report.alreadyWithdrawn, "erased": !keepText,
                                  "identical_copies": report.identicalCopies,
                                  "snapshots": report.snapshots.map { ["snapshot": $0.snapshot.label, "hash": $0.snapshot.hash, "records": $0.records] },
                                  "adapters": report.adapters.map { ["id": $0.adapterId, "path": $0.path, "sha256": $0.sha256, "snapshot": $0.snapshot] }])
                return
            }
            print("withdrew \(report.withdrawn.count) record(s)\(keepText ? "" : " and erased their text")\(report.alreadyWithdrawn.isEmpty ? "" : "; \(report.alreadyWithdrawn.count) had been withdrawn before")")
            if !report.identicalCopies.isEmpty {
                print("including \(report.identicalCopies.count) record(s) with identical text: \(report.identicalCopies.map(String.init).joined(separator: ", "))")
            }
            if report.snapshots.isEmpty {
                print("no snapshot used them")
            } else {
                print("snapshots that used them (they stay as they were; new snapshots leave them out):")
                for use in report.snapshots { print("  \(use.snapshot.label): \(use.records) record(s)") }
            }
            if !report.adapters.isEmpty {
                print("adapters trained on those snapshots:")
                for a in report.adapters { print("  adapter \(a.adapterId) \(a.path) (sha256 \(a.sha256), from \(a.snapshot))") }
            }
        }
    }
}
