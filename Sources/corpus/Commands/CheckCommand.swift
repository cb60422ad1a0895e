import ArgumentParser
import CKernels
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

    /// Records analysed at a time: large enough to keep both cores busy, small enough that the
    /// batch's conversations are a few tens of megabytes. `CORPUS_CHECK_BATCH` sets another size
    /// (the tests use tiny batches to cross batch boundaries); the result never depends on it.
    static var batchSize: Int {
        ProcessInfo.processInfo.environment["CORPUS_CHECK_BATCH"].flatMap(Int.init).flatMap { $0 > 0 ? $0 : nil } ?? 20_000
    }

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
            // The corpus is streamed in batches: only what the corpus-wide findings need is kept
            // per record (docs/QUALITY.md, "Memory"). Signatures stored by earlier runs are
            // reused: only new records are signed.
            let signatureKey = configuration.nearDuplicates.signatureKey
            let permutations = configuration.nearDuplicates.permutations
            // The checks this run makes.
            var expected: UInt32 = 0
            for (bit, name) in CheckCatalog.names.enumerated() where configuration.runs(name) {
                if tokens == nil && (name == "prompt_tokens" || name == "answer_tokens") { continue }
                expected |= UInt32(1) << UInt32(bit)
            }
            let factsKey = configuration.factsKey
            let signing = configuration.runs("near_duplicate")
            // The signatures this run reads and stores (none without near duplicates).
            let usedSignatureKey = signing ? signatureKey : nil
            /// The state a whole-store run leaves for the next one.
            func coveredState(records: Int, lastRecordId: Int64) -> CheckState {
                CheckState(records: records, lastRecordId: lastRecordId, covering: expected, factsKey: factsKey, signatureKey: usedSignatureKey)
            }
            var reused = 0, factsRead = 0
            /// Reads the records with ids above `after` into `pass`, in batches. A record judged
            /// before whose facts (keys, sentence hashes) and signature are stored is not read
            /// again: the findings take it from those rows (docs/QUALITY.md, "Incremental checks").
            func read(into pass: inout CheckPass, after: Int64, done: Set<Int64>) throws {
                try store.forEachCheckBatch(size: Self.batchSize, signatureKey: usedSignatureKey, factsKey: factsKey, after: after,
                                            needsText: { id, facts, signature in
                                                // A malformed stored signature counts as none: the record is signed again.
                                                ((judged?.contains(id) ?? true) && !done.contains(id))
                                                    || (signing && !MinHasher.isSignature(byteCount: signature?.count ?? 0, permutations: permutations))
                                                    || facts.flatMap(CheckFacts.init(blob:)) == nil
                                            }) { rows in
                    var chunk: [CheckInput] = []
                    var stored: [Int64: [UInt32]] = [:]
                    var factsStored = Set<Int64>()
                    var known: [(id: Int64, facts: CheckFacts, signature: [UInt32]?)] = []
                    for row in rows {
                        let signature = row.signature.flatMap { MinHasher.signature(blob: $0, permutations: permutations) }
                        if signature != nil { reused += 1 }
                        if let json = row.json {
                            chunk.append(CheckInput(id: row.id, conversation: try CanonicalJSON.decode(json)))
                            if let signature { stored[row.id] = signature }
                            if row.facts.flatMap(CheckFacts.init(blob:)) != nil { factsStored.insert(row.id) }
                        } else if let facts = row.facts.flatMap(CheckFacts.init(blob:)) {
                            known.append((row.id, facts, signature))
                        }
                    }
                    factsRead += known.count
                    try pass.add(known: known)
                    try pass.add(chunk, stored: stored, factsStored: factsStored)
                }
            }
            let conversation: (Int64) throws -> Conversation? = { id in try store.record(id: id).map { try CanonicalJSON.decode($0.conversation) } }

            // Incremental: when the last check under this configuration covered the whole store
            // and nothing of it changed since (its state, migration 0015), only the records added
            // since are read and analysed, and compared with the stored facts, signatures and
            // findings of the others, whose verdicts and groups stay as stored.
            var outcome: CheckOutcome?
            var earlier: CheckState?
            var before = 0, context = 0, newState: CheckState?, signedEarly = 0
            if judged == nil, let state = try store.checkState(configHash: hash), state.factsKey == factsKey,
               state.signatureKey == usedSignatureKey, state.covering & expected == expected,
               try store.recordCount(upTo: state.lastRecordId) == state.records {
                let done = try store.recordsJudged(configHash: hash, covering: expected, after: state.lastRecordId)
                var pass = CheckPass(configuration: configuration, done: done, tokens: tokens)
                try read(into: &pass, after: state.lastRecordId, done: done)
                timing.mark("read and analysed \(pass.count) records added since the last check (\(state.records) checked before)")
                let stored = StoredFindings(records: state.records, lastRecordId: state.lastRecordId,
                                            forEach: { range, body in try store.forEachStoredCheckRow(configHash: hash, state: state, range: range, body) },
                                            nearDuplicates: { try store.nearDuplicates(configHash: hash, among: $0) },
                                            signatures: { ids in
                                                try store.signatureBlobs(key: signatureKey, ids: ids)
                                                    .compactMapValues { MinHasher.signature(blob: $0, permutations: permutations) }
                                            },
                                            boilerplate: try store.recurringSentences(configHash: hash))
                let added = pass.count, lastId = pass.lastId
                outcome = try pass.finishIncremental(stored: stored, conversation: conversation)
                if outcome != nil {
                    earlier = state
                    factsRead += state.records
                    reused += outcome?.storedSignaturesRead ?? 0
                    before = state.records + done.count
                    context = state.records + added
                    newState = coveredState(records: state.records + added, lastRecordId: max(state.lastRecordId, lastId))
                    timing.mark("corpus-wide findings of the new records against the stored ones")
                } else {
                    timing.mark("the stored findings do not cover the records checked before: settling every record again")
                    reused = 0
                    factsRead = 0
                }
            }
            if outcome == nil {
                // Every record: a record judged before under this configuration by every check
                // this run makes keeps its verdicts (stored rows are never rewritten), so it is
                // context only; a new file costs its own checks plus the corpus-wide comparison.
                let done = try store.recordsJudged(configHash: hash, covering: expected)
                var pass = CheckPass(configuration: configuration, judged: judged, done: done, tokens: tokens)
                // The signatures, keys and own verdicts wait on disk beside the store, not in memory
                // (about 1.3 KB a record); the folder goes with the outcome.
                try pass.spillToDisk(besideStore: store.path)
                pass.reserve(records: try store.recordCountAndLastId().count)
                try read(into: &pass, after: Int64.min, done: done)
                // Each step below frees what the one before held (the batches' conversations and
                // the connections' page caches here, the signatures after the near-duplicate
                // search); glibc keeps freed heap pages resident unless asked to hand them back,
                // so it is asked at every step.
                store.releaseMemory()
                ck_release_free_memory()
                context = pass.count
                timing.mark("read \(context) records, analysed \(context - factsRead) (\(factsRead) from stored facts, \(reused) stored signatures)")
                before = judged.map { $0.intersection(done).count } ?? done.count
                if judged == nil {
                    newState = coveredState(records: pass.count, lastRecordId: pass.lastId)
                }
                // Stored before the findings so that the signatures can be freed right after the
                // near-duplicate search (they are written whatever the findings are).
                signedEarly = try pass.storeNew(signatures: { try store.saveMinHashSignatures(count: $0, key: signatureKey, $1) },
                                                facts: { try store.saveCheckFacts(count: $0, key: factsKey, $1) })
                store.releaseMemory()
                ck_release_free_memory()
                timing.mark("stored \(signedEarly) signatures and the new records' check facts")
                // `consume`: the pass ends here, so what `finish` frees (the signatures) is freed.
                outcome = try (consume pass).finish(conversation: conversation, mark: { ck_release_free_memory(); timing.mark($0) })
                timing.mark("corpus-wide findings (\(outcome?.judgedCount ?? 0) records to judge)")
            }
            guard var outcome else { return }
            // What is left to store (a whole-store check stored it all before the findings).
            if !outcome.newSignatureIds.isEmpty {
                try store.saveMinHashSignatures(count: outcome.newSignatureIds.count, key: signatureKey) { outcome.newSignature($0) }
                timing.mark("stored \(outcome.newSignatureIds.count) signatures")
            }
            if outcome.newFactsCount > 0 {
                try store.saveCheckFacts(count: outcome.newFactsCount, key: factsKey) { outcome.newFacts($0) }
                timing.mark("stored \(outcome.newFactsCount) records' check facts")
            }
            let signaturesComputed = signedEarly + outcome.newSignatureIds.count
            outcome.releaseStored()
            let added = try store.savePackedVerdicts(count: outcome.judgedCount, outcome.packedRow, configHash: hash, configJSON: try configuration.canonicalJSON(),
                                                     groups: outcome.members, replacingGroups: earlier == nil,
                                                     boilerplate: configuration.runs("boilerplate") ? outcome.boilerplate : nil,
                                                     state: newState, arguments: CommandLine.arguments)
            timing.mark("stored verdicts and groups")
            let summary = try store.checkSummary(configHash: hash)
            // Judged in this run; and in its scope, judged before (their verdicts kept).
            let judgedCount = outcome.judgedCount
            if output.json {
                Output.printJSON(["config_hash": hash, "records": judgedCount, "judged_before": before, "context": context, "verdicts_added": added,
                                  "incremental": earlier != nil,
                                  "signatures_computed": signaturesComputed, "signatures_reused": reused, "facts_read": factsRead,
                                  "checks": Dictionary(uniqueKeysWithValues: summary.map { ($0.name, ["checked": $0.checked, "failed": $0.failed]) })])
            } else {
                print("checked \(judgedCount) records with configuration \(hash.prefix(12)) (\(added) new verdicts)"
                      + (before > 0 ? "; \(before) judged before under it keep their verdicts" : ""))
                if let earlier {
                    print("compared with the \(earlier.records) records checked before through their stored facts, signatures and findings")
                }
                if configuration.runs("near_duplicate") {
                    print("MinHash signatures: \(signaturesComputed) computed, \(reused) reused from earlier checks")
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
