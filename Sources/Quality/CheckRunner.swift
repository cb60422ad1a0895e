import CorpusDB
import Dispatch
import Foundation

/// One record as the checks see it.
public struct CheckInput: Sendable {
    public var id: Int64
    public var conversation: Conversation
    public init(id: Int64, conversation: Conversation) {
        self.id = id
        self.conversation = conversation
    }
}

/// What one `corpus check` run found: verdicts, duplicate groups and the corpus's boilerplate.
public struct CheckOutcome: Sendable {
    /// How many records were judged (one packed row of verdicts each).
    public private(set) var judgedCount = 0
    /// The k-th judged record's verdicts (in id order), made when asked for: a check of ten
    /// million records hands them to the store one at a time instead of holding them all.
    private var makeRow: @Sendable (Int) throws -> PackedVerdicts = { PackedVerdicts(recordId: Int64($0)) }
    /// Throws only when the pass kept its records' own verdicts on disk and they cannot be read back.
    public func packedRow(_ k: Int) throws -> PackedVerdicts { try makeRow(k) }
    /// Every judged record's verdicts, one packed row per record in id order (as stored), all made
    /// at once; [] when they cannot be (see `packedRow`).
    public var packed: [PackedVerdicts] { (try? (0..<judgedCount).map(makeRow)) ?? [] }
    /// The verdicts one by one (record by record, each in catalogue order).
    public var verdicts: [CheckVerdict] { packed.flatMap(\.verdicts) }

    init(groups: [DuplicateGroup], boilerplate: [RecurringSentence]) {
        self.init(members: GroupMembers(groups), boilerplate: boilerplate)
    }

    init(members: GroupMembers, boilerplate: [RecurringSentence]) {
        self.members = members
        self.boilerplate = boilerplate
    }

    /// Sets the judged records' verdicts: `count` rows, the k-th made by `row(k)`.
    mutating func setRows(count: Int, _ row: @escaping @Sendable (Int) throws -> PackedVerdicts) {
        judgedCount = count
        makeRow = row
    }
    /// The members of the exact-duplicate and conflicting-answer groups (and of the near-duplicate
    /// groups and borderline pairs when computed), as stored (`duplicate_groups`).
    public var members: GroupMembers
    /// The same as groups (`GroupMembers.groups`).
    public var groups: [DuplicateGroup] { members.groups }
    /// Recurring sentences, most frequent first: the text, in how many answers it occurs, its hash.
    public var boilerplate: [RecurringSentence]
    /// The MinHash signatures computed in this run (not given as already stored), to store: record
    /// ids in id order, each with its row of `signatureRows`.
    public var newSignatureIds: [Int64] = []
    var newSignatureRows: [Int32] = []
    /// How many stored signatures of earlier records an incremental check read.
    public var storedSignaturesRead = 0
    /// How many records' `CheckFacts` were computed in this run and are not stored yet.
    public var newFactsCount: Int { newFactsBlobs.count }
    /// Those facts as stored, in id order (none when the pass stored them before its findings).
    var newFactsBlobs: [(recordId: Int64, blob: Data)] = []

    /// Frees the signatures and the per-record facts once they are stored (the verdicts and
    /// groups stay): at a million records they are most of what the check holds.
    public mutating func releaseStored() {
        newFactsBlobs = []
        signatureRows = []
        newSignatureRows = []
        newSignatureIds = []
    }

    /// The k-th new record's facts as stored, made on demand.
    public func newFacts(_ k: Int) -> (recordId: Int64, blob: Data) {
        newFactsBlobs[k]
    }
    /// The signatures the run held, `permutations` values a row.
    var signatureRows: [UInt32] = []
    var permutations = 0

    /// The k-th new signature as stored (`MinHasher.blob`), made on demand.
    public func newSignature(_ k: Int) -> (recordId: Int64, blob: Data) {
        (newSignatureIds[k], MinHasher.blob(row: Int(newSignatureRows[k]), of: signatureRows, permutations: permutations))
    }

    /// The new signatures, every one copied out.
    public var newSignatures: [(recordId: Int64, signature: [UInt32])] {
        zip(newSignatureIds, newSignatureRows).map { id, row in
            let start = Int(row) * permutations
            return (id, Array(signatureRows[start..<(start + permutations)]))
        }
    }
}

/// Runs the configured checks over records.
///
/// Records are analysed one by one on every core (normalization, keys, filters), then the
/// corpus-wide findings (exact duplicates, conflicting answers, boilerplate) are settled in id
/// order, so the first ingested copy of a duplicate is the one kept. `judged` limits which records
/// get verdicts (`--source`, `--tag`) while every record given still counts as context: a new file
/// is compared with the whole corpus.
public enum CheckRunner {
    /// Token counts of a text, when a tokenizer was given (`corpus check --model`).
    public typealias TokenCounter = @Sendable (String) -> Int

    /// Checks records held in memory (one `CheckPass` over them).
    /// - Parameter signatures: MinHash signatures already stored under
    ///   `c.nearDuplicates.signatureKey`, by record id; the others are computed and returned in
    ///   `newSignatures`.
    public static func run(_ records: [CheckInput], configuration c: CheckConfiguration,
                           judged: Set<Int64>? = nil, tokens: TokenCounter? = nil,
                           signatures: [Int64: [UInt32]] = [:]) throws -> CheckOutcome {
        var pass = CheckPass(configuration: c, judged: judged, tokens: tokens)
        try pass.add(records, stored: signatures)
        var byId: [Int64: Conversation] = [:]
        for r in records where byId[r.id] == nil { byId[r.id] = r.conversation }
        return try pass.finish { byId[$0] }
    }
}

/// One pass of the checks over a corpus fed in chunks (`add`), so that the conversations are
/// never all in memory: each chunk is analysed on every core and only what the corpus-wide
/// findings need is kept per record (two SHA-256 keys, the answer's sentence hashes, the packed
/// verdicts, the MinHash signature). `finish` settles duplicates, conflicts and boilerplate.
public struct CheckPass: Sendable {
    public let configuration: CheckConfiguration
    let judged: Set<Int64>?
    /// Records judged before under this configuration: context only, their verdicts are kept.
    let done: Set<Int64>
    let tokens: CheckRunner.TokenCounter?
    let hasher: MinHasher?

    /// What is kept of one record between `add` and `finish`. Its keys, sentences and scores
    /// sit in the pass's flat arrays below, at the same index or from the start given: one
    /// allocation each for the whole corpus instead of three per record (at a million records,
    /// ~170 MiB less), and the keys can be freed once the exact duplicates are settled.
    struct Kept: Sendable {
        // Fields ordered so that the struct packs into 48 bytes (480 MB at ten million records).
        var id: Int64
        /// Its own checks' verdicts (as `PackedVerdicts`): one score a check run in `scores` from
        /// `scoreStart`, the reasons in `details`, the checks run and failed below; or, with a
        /// spill, all of them in the spill from `scoreStart` (-1: none).
        var scoreStart = 0
        /// Its sentences: `sentenceCount` entries of `sentenceHashes` and `sentenceLengths` from `sentenceStart`.
        var sentenceStart = 0
        var answerLength: Int32
        /// The signature's row in `signatures`, or -1 when the record has none.
        var signatureRow: Int32 = -1
        var sentenceCount: Int32 = 0
        var ran: UInt32 = 0
        var failed: UInt32 = 0
        /// Whether the signature was computed in this pass (to be stored).
        var newSignature = false
        /// Whether the keys and sentences were computed in this pass and are not stored yet.
        var newFacts = false

        init(id: Int64, answerLength: Int32) {
            self.id = id
            self.answerLength = answerLength
        }

        var sentences: Range<Int> { sentenceStart..<(sentenceStart + Int(sentenceCount)) }
    }

    var kept: [Kept] = []
    /// By index in `kept`: the keys of the whole conversation and of its question (`ExactDuplicates`);
    /// with a spill, only their first 8 bytes (`pairPrefixes`, `promptPrefixes`) and the whole
    /// keys in the spill (`keys(_:)`): 16 bytes a record in memory instead of 64.
    var pairKeys: [SHA256Key] = []
    var promptKeys: [SHA256Key] = []
    var pairPrefixes: [UInt64] = []
    var promptPrefixes: [UInt64] = []
    /// Every record's sentences one after another: FNV-1a hash and length in characters.
    var sentenceHashes: [UInt64] = []
    var sentenceLengths: [Int32] = []
    /// Every record's own scores one after another (`Kept.scoreStart`).
    var scores: [Double] = []
    /// By index in `kept`: the reasons of its own failed checks (few records have any).
    var details: [Int: [String]] = [:]
    /// Every record's signature, `permutations` values a row, in the order records came; or,
    /// after `spillToDisk`, in `spill` on disk (with each band's keys) and none here.
    var signatures: [UInt32] = []
    /// Temporary files beside the store for the signatures, keys and own verdicts (`spillToDisk`).
    var spill: CheckSpill?
    /// Indices of `kept` in id order, once asked for (`storeNew`, then `finish`): records are only
    /// ever added, so an order of as many records as `kept` holds is still the order.
    private var idOrder: [Int] = []

    /// - Parameters:
    ///   - judged: the records to judge (nil: all); the others are context.
    ///   - done: records judged before under this configuration, left out of `judged`.
    public init(configuration: CheckConfiguration, judged: Set<Int64>? = nil, done: Set<Int64> = [], tokens: CheckRunner.TokenCounter? = nil) {
        self.configuration = configuration
        self.judged = judged
        self.done = done
        self.tokens = tokens
        hasher = configuration.runs("near_duplicate") ? MinHasher(configuration.nearDuplicates) : nil
    }

    /// How many records have been added.
    public var count: Int { kept.count }

    /// Keeps the signatures, band keys, exact-duplicate keys and own verdicts of the records added
    /// from now on in temporary files in a folder beside the store (`<store>.check-<pid>-<n>`,
    /// removed when the pass and its outcome are gone) instead of in memory: with the LSH's
    /// candidates about 1.3 KB a record with the default settings, 13 GB at ten million. The
    /// findings and the verdicts read them back (docs/QUALITY.md, "Memory"). Call before adding
    /// any record.
    public mutating func spillToDisk(besideStore path: String) throws {
        guard spill == nil, kept.isEmpty else { return }
        spill = try CheckSpill(besideStore: path, settings: hasher?.settings)
    }

    /// Keeps a signature: its row in `signatures` or in the spill.
    private mutating func keepSignature(_ signature: [UInt32]) throws -> Int32 {
        let P = configuration.nearDuplicates.permutations
        if let spill { return try signature.withUnsafeBufferPointer { try spill.append($0) } }
        signatures += signature
        return Int32(clamping: signatures.count / P - 1)
    }

    /// Signature row `row` as stored (`MinHasher.blob`).
    private func signatureBlob(row: Int32) throws -> Data {
        let P = configuration.nearDuplicates.permutations
        guard let spill else { return MinHasher.blob(row: Int(row), of: signatures, permutations: P) }
        return MinHasher.blob(try spill.row(Int(row)))
    }

    /// Makes room for `records` records at once: growing the per-record arrays batch by batch
    /// copies them and holds the old and the new copy together (at a million records, half a
    /// gigabyte of signatures).
    public mutating func reserve(records: Int) {
        guard records > 0 else { return }
        kept.reserveCapacity(records)
        if spill == nil {
            pairKeys.reserveCapacity(records)
            promptKeys.reserveCapacity(records)
        } else {
            pairPrefixes.reserveCapacity(records)
            promptPrefixes.reserveCapacity(records)
        }
        let corpusWide: Set = ["exact_duplicate", "near_duplicate", "conflicting_answer", "boilerplate"]
        let own = CheckCatalog.names.filter { configuration.runs($0) && !corpusWide.contains($0) && (tokens != nil || !$0.hasSuffix("_tokens")) }
        if spill == nil { scores.reserveCapacity(records * own.count) }
        if hasher != nil && spill == nil { signatures.reserveCapacity(records * configuration.nearDuplicates.permutations) }
    }

    /// Stores the signatures and facts computed in this pass, each in one call of the saver given
    /// (a count, and the k-th row in id order made on demand), then counts them as stored: `finish`
    /// then frees the signatures as soon as the near-duplicate search has read them, instead of
    /// holding them until they are written. Returns how many signatures were handed over.
    public mutating func storeNew(signatures saveSignatures: (Int, (Int) throws -> (recordId: Int64, blob: Data)) throws -> Void,
                                  facts saveFacts: (Int, (Int) throws -> (recordId: Int64, blob: Data)) throws -> Void) throws -> Int {
        let order = orderById()
        let signed = hasher == nil ? [] : order.filter { kept[$0].newSignature }
        let computed = order.filter { kept[$0].newFacts }
        try spill?.flush()
        try saveSignatures(signed.count) { k in
            let r = kept[signed[k]]
            return (r.id, try signatureBlob(row: r.signatureRow))
        }
        for i in signed { kept[i].newSignature = false }
        try saveFacts(computed.count) { k in try factsBlob(computed[k], inOrder: true) }
        for i in computed { kept[i].newFacts = false }
        return signed.count
    }

    /// Indices of `kept` in id order (sorted once for a given number of records).
    private mutating func orderById() -> [Int] {
        if idOrder.count != kept.count {
            idOrder = kept.indices.sorted { kept[$0].id < kept[$1].id }
        }
        return idOrder
    }

    /// The largest id added (`Int64.min` when none).
    public var lastId: Int64 { kept.reduce(Int64.min) { max($0, $1.id) } }

    /// Keeps one record: its keys and own verdicts; its sentences are added after.
    private mutating func keep(id: Int64, pairKey: SHA256Key, promptKey: SHA256Key, answerLength: Int32,
                               packed: PackedVerdicts) throws -> Kept {
        var k = Kept(id: id, answerLength: answerLength)
        k.sentenceStart = sentenceHashes.count
        k.ran = packed.ran
        k.failed = packed.failed
        if let spill {
            k.scoreStart = packed.ran == 0 ? -1 : try spill.appendOwn(packed)
            try spill.appendKeys(pair: pairKey, prompt: promptKey)
            pairPrefixes.append(pairKey.a)
            promptPrefixes.append(promptKey.a)
        } else {
            k.scoreStart = scores.count
            scores += packed.scores
            if !packed.details.isEmpty { details[kept.count] = packed.details }
            pairKeys.append(pairKey)
            promptKeys.append(promptKey)
        }
        return k
    }

    /// The record's own verdicts (those that need nothing but the record), as analysed.
    func ownVerdicts(_ i: Int) throws -> PackedVerdicts {
        let k = kept[i]
        if let spill { return k.scoreStart < 0 ? PackedVerdicts(recordId: k.id) : try spill.readOwn(at: k.scoreStart, id: k.id) }
        var packed = PackedVerdicts(recordId: k.id)
        packed.ran = k.ran
        packed.failed = k.failed
        packed.scores = Array(scores[k.scoreStart..<(k.scoreStart + k.ran.nonzeroBitCount)])
        packed.details = details[i] ?? []
        return packed
    }

    /// The record's two keys. `inOrder`: read in the order records were added (one thread).
    func keys(_ i: Int, inOrder: Bool = false) throws -> (pair: SHA256Key, prompt: SHA256Key) {
        if let spill { return try spill.keys(i, inOrder: inOrder) }
        return (pairKeys[i], promptKeys[i])
    }

    /// The first 8 bytes of the record's key of the whole conversation or of its question.
    func keyPrefix(_ i: Int, prompt: Bool) -> UInt64 {
        if spill != nil { return prompt ? promptPrefixes[i] : pairPrefixes[i] }
        return prompt ? promptKeys[i].a : pairKeys[i].a
    }

    /// The record's facts as stored (`check_facts`).
    func factsBlob(_ i: Int, inOrder: Bool = false) throws -> (recordId: Int64, blob: Data) {
        let (pair, prompt) = try keys(i, inOrder: inOrder)
        return (kept[i].id, CheckFacts(pairKey: pair, promptKey: prompt, answerLength: kept[i].answerLength,
                                       sentences: kept[i].sentences.map { (sentenceHashes[$0], sentenceLengths[$0]) }).blob)
    }

    /// Adds records judged before whose facts (and signature) are stored: nothing to analyse.
    public mutating func add(known: [(id: Int64, facts: CheckFacts, signature: [UInt32]?)]) throws {
        let P = configuration.nearDuplicates.permutations
        for r in known {
            var k = try keep(id: r.id, pairKey: r.facts.pairKey, promptKey: r.facts.promptKey, answerLength: r.facts.answerLength,
                         packed: PackedVerdicts(recordId: r.id))
            for s in r.facts.sentences {
                sentenceHashes.append(s.hash)
                sentenceLengths.append(s.length)
            }
            k.sentenceCount = Int32(clamping: r.facts.sentences.count)
            if hasher != nil, let signature = r.signature, signature.count == P {
                k.signatureRow = try keepSignature(signature)
            }
            kept.append(k)
        }
    }

    /// Analyses a chunk of records. `stored`: signatures already stored for (some of) them;
    /// `factsStored`: the records whose facts are stored already (the others' are to be stored).
    public mutating func add(_ chunk: [CheckInput], stored: [Int64: [UInt32]] = [:], factsStored: Set<Int64> = []) throws {
        let analyses = CheckRunner.analyseAll(chunk, configuration, tokens: tokens, hasher: hasher, stored: stored, judged: judged, done: done)
        let P = configuration.nearDuplicates.permutations
        for (record, a) in zip(chunk, analyses) {
            var k = try keep(id: record.id, pairKey: a.pairKey, promptKey: a.promptKey, answerLength: Int32(clamping: a.answerLength),
                         packed: a.packed)
            for s in a.sentences {
                sentenceHashes.append(s.hash)
                sentenceLengths.append(Int32(clamping: s.length))
            }
            k.sentenceCount = Int32(clamping: a.sentences.count)
            k.newFacts = !factsStored.contains(record.id)
            if hasher != nil, let signature = a.signature ?? stored[record.id], signature.count == P {
                k.signatureRow = try keepSignature(signature)
                k.newSignature = a.signature != nil
            }
            kept.append(k)
        }
    }

    /// Settles the corpus-wide findings and returns every judged record's verdicts.
    /// - Parameter conversation: reads a record's conversation again (the boilerplate's text is
    ///   taken from the first answer it occurs in); nil when it is gone.
    /// - Parameter mark: told the end of each step (exact duplicates, near duplicates,
    ///   boilerplate), for `CORPUS_TIMING`.
    public consuming func finish(conversation: (Int64) throws -> Conversation?, mark: (String) -> Void = { _ in }) throws -> CheckOutcome {
        let c = configuration
        let order = orderById()
        idOrder = []
        var exact = try exactDuplicates(order: order, basis: ExactDuplicates.Basis(rawValue: c.exactDuplicates.on) ?? .pair)
        // The keys are not needed any more unless there are facts still to store.
        pairPrefixes = []
        promptPrefixes = []
        if !kept.contains(where: \.newFacts) {
            pairKeys = []
            promptKeys = []
        }
        mark("exact duplicates and conflicting answers (\(exact.members.count) group members)")
        var near = try hasher.map { try nearDuplicates(order: order, duplicateOf: exact.duplicateOf, settings: $0.settings) }
        // Signatures already stored (`storeNew`) are not needed any more: at a million records
        // they are half a gigabyte.
        if !kept.contains(where: \.newSignature) { signatures = [] }
        mark("near duplicates (\(near?.result.duplicates.count ?? 0) found)")
        let recurring = try recurringSentences(c.boilerplate, conversation: conversation)
        mark("boilerplate (\(recurring.list.count) recurring sentences)")
        // The members move to the outcome (the near ones are most of them: not copied).
        var members = near?.members ?? GroupMembers()
        near?.members = GroupMembers()
        members.append(contentsOf: exact.members)
        exact.members = GroupMembers()
        members.sortForTable()
        var outcome = CheckOutcome(members: members, boilerplate: recurring.list)
        try handOver(&outcome, order: order)
        // The outcome keeps the spill (the records' own verdicts are read back from it) and
        // frees it with itself.
        setVerdicts(&outcome, order: order, exact: exact, near: near, recurring: recurring)
        return outcome
    }

    /// Gives the outcome what is to be stored of the records (new facts and signatures).
    mutating func handOver(_ outcome: inout CheckOutcome, order: [Int]) throws {
        let c = configuration
        outcome.newFactsBlobs = try order.filter { kept[$0].newFacts }.map { try factsBlob($0) }
        if hasher != nil {
            let P = c.nearDuplicates.permutations
            for i in order where kept[i].newSignature {
                outcome.newSignatureIds.append(kept[i].id)
                if let spill {
                    // Spilled signatures not stored yet (`storeNew` not called): read back.
                    outcome.newSignatureRows.append(Int32(clamping: outcome.signatureRows.count / P))
                    outcome.signatureRows += try spill.row(Int(kept[i].signatureRow))
                } else {
                    outcome.newSignatureRows.append(kept[i].signatureRow)
                }
            }
            outcome.permutations = P
            if spill == nil { outcome.signatureRows = signatures }
        }
    }

    // MARK: Corpus-wide findings

    /// Exact duplicates and conflicting answers, settled in id order.
    struct ExactFindings {
        /// The members of the exact-duplicate and conflicting-answer groups.
        var members = GroupMembers()
        /// By index in `kept`: the id of the earlier record it copies.
        var duplicateOf: [Int: Int64] = [:]
        /// By index in `kept`: the first record asking the same question, and how many
        /// different answers the copies of the question have.
        var conflict: [Int: (first: Int64, answers: Int)] = [:]
    }

    func exactDuplicates(order: [Int], basis: ExactDuplicates.Basis) throws -> ExactFindings {
        var found = ExactFindings()
        // Records with the same key, found by sorting their ranks (positions in id order) by the
        // key's first 8 bytes: runs of one prefix are its records in id order, the first one kept.
        // The whole keys of a run's records are compared after (read back from the spill when
        // there is one); a run whose keys differ (two keys sharing 8 bytes) is split by them.
        // A sort of 12-byte entries instead of dictionaries keyed by 32-byte hashes: a few
        // megabytes at a million records where the dictionaries took a quarter of a gigabyte.
        func runs(prompt: Bool) throws -> (ranks: [Int32], groups: [(first: Int32, start: Int, end: Int)]) {
            var sorted = order.enumerated().map { (prefix: keyPrefix($0.element, prompt: prompt), rank: Int32(clamping: $0.offset)) }
            sorted.sort { ($0.prefix, $0.rank) < ($1.prefix, $1.rank) }
            var ranks = sorted.map { $0.rank }
            var groups: [(first: Int32, start: Int, end: Int)] = []
            var s = 0
            while s < ranks.count {
                var e = s + 1
                while e < ranks.count && sorted[e].prefix == sorted[s].prefix { e += 1 }
                if e - s > 1 {
                    let whole = try ranks[s..<e].map { r in
                        let k = try keys(order[Int(r)])
                        return (key: prompt ? k.prompt : k.pair, rank: r)
                    }
                    if whole.allSatisfy({ $0.key == whole[0].key }) {
                        groups.append((ranks[s], s, e))
                    } else {
                        // Keys that share their first 8 bytes: ordered by the whole key, then rank.
                        let byKey = whole.sorted { x, y in
                            (x.key.a, x.key.b, x.key.c, x.key.d, x.rank) < (y.key.a, y.key.b, y.key.c, y.key.d, y.rank)
                        }
                        for (k, x) in byKey.enumerated() { ranks[s + k] = x.rank }
                        var a = 0
                        while a < byKey.count {
                            var b = a + 1
                            while b < byKey.count && byKey[b].key == byKey[a].key { b += 1 }
                            if b - a > 1 { groups.append((byKey[a].rank, s + a, s + b)) }
                            a = b
                        }
                    }
                }
                s = e
            }
            sorted = []
            // Groups in the order of their first records.
            groups.sort { $0.first < $1.first }
            return (ranks, groups)
        }
        let pairs = try runs(prompt: basis == .prompt)
        for g in pairs.groups {
            let group = pairs.ranks[g.start..<g.end].map { order[Int($0)] }
            let rep = kept[group[0]].id
            for m in group.dropFirst() { found.duplicateOf[m] = rep }
            for m in group { found.members.append(.exact, record: kept[m].id, representative: rep) }
        }
        let prompts = try runs(prompt: true)
        for g in prompts.groups {
            let group = prompts.ranks[g.start..<g.end].map { order[Int($0)] }
            // Distinct answers among the copies of this prompt (by the whole conversation's key).
            var answers: [SHA256Key] = []
            for m in group {
                let pair = try keys(m).pair
                if !answers.contains(pair) { answers.append(pair) }
            }
            guard answers.count > 1 else { continue }
            for m in group {
                found.conflict[m] = (kept[group[0]].id, answers.count)
                found.members.append(.conflict, record: kept[m].id, representative: kept[group[0]].id)
            }
        }
        return found
    }

    /// Near duplicates and borderline pairs.
    struct NearFindings {
        var result: NearDuplicateFinder.Result
        /// The members of the near-duplicate groups (each representative too, similarity 1) and
        /// the borderline pairs' later records.
        var members = GroupMembers()

        init(result: NearDuplicateFinder.Result) {
            self.result = result
            members.reserveCapacity(result.duplicates.count * 5 / 4 + result.borderline.count)
            var representatives: [Int64] = []
            representatives.reserveCapacity(result.duplicates.count)
            for (id, match) in result.duplicates {
                members.append(.near, record: id, representative: match.other, similarity: match.similarity)
                representatives.append(match.other)
            }
            representatives.sort()
            var previous: Int64?
            for rep in representatives where rep != previous {
                members.append(.near, record: rep, representative: rep, similarity: 1)
                previous = rep
            }
            for (id, match) in result.borderline {
                members.append(.borderline, record: id, representative: match.other, similarity: match.similarity)
            }
        }
    }

    /// Near duplicates among the records that are not exact copies of an earlier one.
    func nearDuplicates(order: [Int], duplicateOf: [Int: Int64], settings: NearDuplicateSettings) throws -> NearFindings {
        var ids: [Int64] = [], rows: [Int32] = []
        for i in order where kept[i].signatureRow >= 0 && duplicateOf[i] == nil {
            ids.append(kept[i].id)
            rows.append(kept[i].signatureRow)
        }
        let near = try spill.map { try NearDuplicateFinder.find(ids: ids, rowOf: rows, spill: $0, settings: settings) }
            ?? NearDuplicateFinder.find(ids: ids, signatures: signatures, rowOf: rows, settings: settings)
        return NearFindings(result: near)
    }

    /// Sentences recurring in many answers (the corpus's boilerplate).
    struct RecurringSentences {
        /// By sentence hash: in how many answers it occurs.
        var recurring: [UInt64: Int]
        /// By sentence hash: its normalized text.
        var text: [UInt64: String]
        /// Most frequent first.
        var list: [RecurringSentence]
    }

    /// Boilerplate: sentences recurring in many answers, counted once per answer. Only hashes
    /// are kept per record; the text of a recurring sentence is read again from its first record.
    func recurringSentences(_ settings: CheckConfiguration.Boilerplate,
                            conversation: (Int64) throws -> Conversation?) rethrows -> RecurringSentences {
        var sentenceRecords: [UInt64: (records: Int, first: Int)] = [:]
        for (i, k) in kept.enumerated() {
            for s in k.sentences {
                let hash = sentenceHashes[s]
                if let seen = sentenceRecords[hash] { sentenceRecords[hash] = (seen.records + 1, seen.first) } else { sentenceRecords[hash] = (1, i) }
            }
        }
        let needed = max(settings.minRecords, Int((settings.minShare * Double(kept.count)).rounded(.up)))
        let recurring = sentenceRecords.filter { $0.value.records >= needed }
        var sentenceText: [UInt64: String] = [:]
        for (hash, found) in recurring {
            sentenceText[hash] = try Self.sentenceText(hash, in: kept[found.first].id, settings, conversation: conversation)
        }
        return Self.recurring(recurring.mapValues(\.records), text: sentenceText)
    }

    /// The normalized text of the sentence with this hash in a record's answer; nil when the
    /// record is gone or the sentence is not in it.
    static func sentenceText(_ hash: UInt64, in recordId: Int64, _ settings: CheckConfiguration.Boilerplate,
                             conversation: (Int64) throws -> Conversation?) rethrows -> String? {
        guard let conversation = try conversation(recordId) else { return nil }
        let answer = conversation.messages.filter { $0.role == .assistant }.map { Normalizer.comparable($0.content) }.joined(separator: " ")
        var text: String?
        for s in CheckRunner.sentences(Array(answer.unicodeScalars), minChars: settings.minSentenceChars) where s.hash == hash {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: s.text)
            text = String(view)
        }
        return text
    }

    /// The recurring sentences with their texts, listed most frequent first.
    static func recurring(_ counts: [UInt64: Int], text: [UInt64: String]) -> RecurringSentences {
        let list = counts.map { RecurringSentence(sentence: text[$0.key] ?? "", records: $0.value, hash: $0.key) }
            .sorted { ($0.records, $1.sentence, $1.hash ?? 0) > ($1.records, $0.sentence, $0.hash ?? 0) }
        return RecurringSentences(recurring: counts, text: text, list: list)
    }

    /// Gives the outcome the judged records' verdicts, made one record at a time when asked for
    /// (from what the pass and the findings hold, not kept once made).
    func setVerdicts(_ outcome: inout CheckOutcome, order: [Int], exact: ExactFindings, near: NearFindings?, recurring: RecurringSentences) {
        var judgedOrder: [Int32] = []
        judgedOrder.reserveCapacity(judged?.count ?? kept.count)
        for i in order where judged?.contains(kept[i].id) ?? true && !done.contains(kept[i].id) { judgedOrder.append(Int32(i)) }
        var pass = self
        // What only the verdicts need; the rest (signatures, keys) is let go.
        pass.signatures = []
        pass.pairKeys = []
        pass.promptKeys = []
        pass.idOrder = []
        let nearResult = near?.result
        outcome.setRows(count: judgedOrder.count) { [pass, judgedOrder] k in
            try pass.verdicts(of: Int(judgedOrder[k]), exact: exact, near: nearResult, recurring: recurring)
        }
    }

    /// One record's verdicts: its own, then its corpus-wide ones (exact duplicate, near
    /// duplicate, conflicting answer, boilerplate), packed.
    func verdicts(of i: Int, exact: ExactFindings, near: NearDuplicateFinder.Result?, recurring: RecurringSentences) throws -> PackedVerdicts {
        let c = configuration
        let id = kept[i].id
        var verdicts = CheckRunner.VerdictList(packed: try ownVerdicts(i))
        if c.runs("exact_duplicate") {
            if let rep = exact.duplicateOf[i] {
                verdicts.add("exact_duplicate", false, nil, "duplicate of record \(rep)")
            } else {
                verdicts.add("exact_duplicate", true, nil, "")
            }
        }
        if let near {
            if let match = near.duplicates[id] {
                verdicts.add("near_duplicate", false, match.similarity,
                             "near duplicate of record \(match.other) (similarity \(String(format: "%.2f", match.similarity)))")
            } else {
                verdicts.add("near_duplicate", true, near.borderline[id]?.similarity, "")
            }
        }
        if c.runs("conflicting_answer") {
            if let found = exact.conflict[i] {
                let detail = found.first == id ? "same question as later records with other answers (\(found.answers) different answers)"
                    : "same question as record \(found.first) with another answer (\(found.answers) different answers)"
                verdicts.add("conflicting_answer", false, Double(found.answers), detail)
            } else {
                verdicts.add("conflicting_answer", true, nil, "")
            }
        }
        if c.runs("boilerplate") {
            var chars = 0, first: String?
            for s in kept[i].sentences where recurring.recurring[sentenceHashes[s]] != nil {
                chars += Int(sentenceLengths[s])
                if first == nil { first = recurring.text[sentenceHashes[s]] }
            }
            let length = Int(kept[i].answerLength)
            let share = length == 0 ? 0 : Double(chars) / Double(length)
            let passed = share <= c.boilerplate.maxAnswerShare
            let detail = first.map { "\(Int((share * 100).rounded()))% recurring sentences, e.g. \"\($0)\"" } ?? ""
            verdicts.add("boilerplate", passed, share, detail)
        }
        return verdicts.packed
    }
}

extension CheckRunner {
    // MARK: Per-record analysis

    struct Sentence: Sendable {
        var hash: UInt64
        var length: Int
    }

    /// The distinct sentences of normalized text at least `minChars` long, with their FNV-1a hashes.
    static func sentences(_ q: [Unicode.Scalar], minChars: Int) -> [(hash: UInt64, length: Int, text: ArraySlice<Unicode.Scalar>)] {
        var seen = Set<UInt64>()
        var out: [(hash: UInt64, length: Int, text: ArraySlice<Unicode.Scalar>)] = []
        for s in TextFilters.sentences(q) where s.count >= minChars {
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            for ch in s { h = (h ^ UInt64(ch.value)) &* 0x100_0000_01b3 }
            if seen.insert(h).inserted { out.append((h, s.count, s)) }
        }
        return out
    }

    struct Analysis: Sendable {
        var pairKey = SHA256Key(0, 0, 0, 0)
        var promptKey = SHA256Key(0, 0, 0, 0)
        var answerLength = 0
        /// Distinct sentences of the answer long enough to be boilerplate.
        var sentences: [Sentence] = []
        /// Verdicts that need nothing but the record itself.
        var packed = PackedVerdicts(recordId: 0)
        /// The MinHash signature, when computed here (not stored already and there is text to compare).
        var signature: [UInt32]?
    }

    /// Analyses every record, split over the cores in contiguous chunks; the result does not
    /// depend on the number of cores. Records outside `judged` (context only) get the keys,
    /// sentences and signature the corpus-wide findings need, not their own checks.
    static func analyseAll(_ records: [CheckInput], _ c: CheckConfiguration, tokens: TokenCounter?,
                           hasher: MinHasher? = nil, stored: [Int64: [UInt32]] = [:], judged: Set<Int64>? = nil,
                           done: Set<Int64> = []) -> [Analysis] {
        let results = AnalysisBuffer(count: records.count)
        let parts = min(records.count, max(1, ProcessInfo.processInfo.activeProcessorCount) * 8)
        guard parts > 0 else { return [] }
        let chunk = (records.count + parts - 1) / parts
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            let start = p * chunk, end = min(records.count, start + chunk)
            guard start < end else { return }
            for i in start..<end {
                let sign = stored[records[i].id] == nil ? hasher : nil
                results.set(i, analyse(records[i], c, tokens: tokens, hasher: sign, judge: (judged?.contains(records[i].id) ?? true) && !done.contains(records[i].id)))
            }
        }
        return results.values
    }

    /// Writes from several threads into distinct slots of one buffer.
    private final class AnalysisBuffer: @unchecked Sendable {
        // @unchecked: each index is written by exactly one thread (the chunks do not overlap), and
        // `values` is read only after concurrentPerform has returned. A raw buffer, not an Array:
        // an Array's copy-on-write check is itself a race.
        private let buffer: UnsafeMutableBufferPointer<Analysis>
        init(count: Int) {
            buffer = .allocate(capacity: count)
            buffer.initialize(repeating: Analysis())
        }
        deinit {
            buffer.deinitialize()
            buffer.deallocate()
        }
        func set(_ i: Int, _ a: Analysis) { buffer[i] = a }
        var values: [Analysis] { Array(buffer) }
    }

    /// The texts of one record that the checks look at.
    struct Texts {
        /// The user turns, normalized, joined by spaces; the assistant turns likewise.
        var prompt = "", answer = ""
        /// The user turns as stored, joined by newlines; the assistant turns likewise.
        var rawPrompt = "", rawAnswer = ""
        /// Keys of the normalized turns (role, U+001F, text, U+001E), as `ExactDuplicates.key`:
        /// of the whole conversation, and of its system and user turns only.
        var pairText = "", promptText = ""
        /// Every turn's role and normalized text, kept only when a signature is to be computed.
        var turns: [(role: Role, text: String)] = []

        init(_ messages: [Message], keepTurns: Bool) {
            for m in messages {
                let n = Normalizer.comparable(m.content)
                if keepTurns { turns.append((m.role, n)) }
                let turn = "\(m.role.rawValue)\u{1F}\(n)\u{1E}"
                pairText += turn
                if m.role == .system || m.role == .user { promptText += turn }
                if m.role == .user {
                    prompt += prompt.isEmpty ? n : " " + n
                    rawPrompt += rawPrompt.isEmpty ? m.content : "\n" + m.content
                } else if m.role == .assistant {
                    answer += answer.isEmpty ? n : " " + n
                    rawAnswer += rawAnswer.isEmpty ? m.content : "\n" + m.content
                }
            }
        }
    }

    /// One record's verdicts as they are made, packed; a passing verdict has no detail.
    struct VerdictList {
        var packed: PackedVerdicts

        init(recordId: Int64) { packed = PackedVerdicts(recordId: recordId) }
        init(packed: PackedVerdicts) { self.packed = packed }

        /// `name` is one of the catalogue's (the checks below name only those).
        mutating func add(_ name: String, _ passed: Bool, _ score: Double?, _ detail: @autoclosure () -> String) {
            guard let bit = CheckCatalog.bit(name) else {
                assertionFailure("check \(name) is not in the catalogue")
                return
            }
            packed.add(bit: bit, passed: passed, score: score, detail: passed ? "" : detail())
        }

        mutating func append(_ v: CheckVerdict) { add(v.name, v.passed, v.score, v.detail) }
    }

    static func analyse(_ record: CheckInput, _ c: CheckConfiguration, tokens: TokenCounter?, hasher: MinHasher? = nil,
                        judge: Bool = true) -> Analysis {
        var a = Analysis()
        let messages = record.conversation.messages
        var t = Texts(messages, keepTurns: hasher != nil)
        // A preference pair is the same example as another only with the same rejected answer too:
        // several pairs per prompt (or per chosen answer) are ordinary preference data.
        if let rejected = record.conversation.rejected {
            t.pairText += "rejected\u{1F}\(Normalizer.comparable(rejected.content))\u{1E}"
        }
        if let hasher { a.signature = hasher.signature(of: hasher.comparableScalars(normalizedTurns: t.turns)) }
        a.pairKey = ContentHash.sha256Key(Array(t.pairText.utf8))
        a.promptKey = ContentHash.sha256Key(Array(t.promptText.utf8))
        let p = Array(t.prompt.unicodeScalars), q = Array(t.answer.unicodeScalars)
        a.answerLength = q.count

        var list = VerdictList(recordId: record.id)
        if judge {
            lengthChecks(&list, p: p, q: q, t, c, tokens: tokens)
            shapeChecks(&list, p: p, q: q, t, c)
            contentChecks(&list, p: p, q: q, t, record.conversation.allMessages, c)
        }
        a.packed = list.packed
        if c.runs("boilerplate") {
            a.sentences = sentences(q, minChars: c.boilerplate.minSentenceChars).map { Sentence(hash: $0.hash, length: $0.length) }
        }
        return a
    }

    /// prompt_length, answer_length, and with a tokenizer prompt_tokens and answer_tokens.
    /// `p` and `q` are the scalars of the normalized prompt and answer.
    static func lengthChecks(_ v: inout VerdictList, p: [Unicode.Scalar], q: [Unicode.Scalar], _ t: Texts,
                             _ c: CheckConfiguration, tokens: TokenCounter?) {
        let L = c.length
        if c.runs("prompt_length") {
            v.add("prompt_length", p.count >= L.minPromptChars && p.count <= L.maxPromptChars, Double(p.count),
                  p.count < L.minPromptChars ? "prompt shorter than \(L.minPromptChars) characters" : "prompt longer than \(L.maxPromptChars) characters")
        }
        if c.runs("answer_length") {
            v.add("answer_length", q.count >= L.minAnswerChars && q.count <= L.maxAnswerChars, Double(q.count),
                  q.count < L.minAnswerChars ? (q.isEmpty ? "empty answer" : "answer shorter than \(L.minAnswerChars) characters")
                      : "answer longer than \(L.maxAnswerChars) characters")
        }
        if let tokens {
            if c.runs("prompt_tokens") {
                let n = tokens(t.rawPrompt)
                v.add("prompt_tokens", L.maxPromptTokens == 0 || n <= L.maxPromptTokens, Double(n), "prompt longer than \(L.maxPromptTokens) tokens (\(n))")
            }
            if c.runs("answer_tokens") {
                let n = tokens(t.rawAnswer)
                v.add("answer_tokens", L.maxAnswerTokens == 0 || n <= L.maxAnswerTokens, Double(n), "answer longer than \(L.maxAnswerTokens) tokens (\(n))")
            }
        }
    }

    /// char_repetition, ngram_repetition and special_characters: the worse of prompt and answer,
    /// among texts long enough. Fenced code is left out of these (code repeats itself and is made
    /// of symbols).
    static func shapeChecks(_ v: inout VerdictList, p: [Unicode.Scalar], q: [Unicode.Scalar], _ t: Texts, _ c: CheckConfiguration) {
        let R = c.repetition
        // Byte search (Foundation's String.contains goes through CFString and is slow here).
        func hasFence(_ text: String) -> Bool {
            var run = 0
            for b in text.utf8 {
                run = b == 0x60 ? run + 1 : 0
                if run == 3 { return true }
            }
            return false
        }
        let hasCode = hasFence(t.prompt) || hasFence(t.answer)
        let pt = hasCode ? TextFilters.withoutCode(p) : p, qt = hasCode ? TextFilters.withoutCode(q) : q
        func worse(_ measure: ([Unicode.Scalar]) -> Double, minChars: Int) -> (score: Double, part: String) {
            let sp = pt.count >= minChars ? measure(pt) : 0, sq = qt.count >= minChars ? measure(qt) : 0
            return sq >= sp ? (sq, "answer") : (sp, "prompt")
        }
        if c.runs("char_repetition") {
            let r = worse(TextFilters.dominantCharacterShare, minChars: R.minChars)
            v.add("char_repetition", r.score <= R.maxDominantCharacterShare, r.score,
                  "one character is \(Int((r.score * 100).rounded()))% of the \(r.part)'s letters")
        }
        if c.runs("ngram_repetition") {
            let r = worse({ TextFilters.ngramRepetition($0, n: R.ngram) }, minChars: R.minChars)
            v.add("ngram_repetition", r.score <= R.maxNgramRepetition, r.score,
                  "\(Int((r.score * 100).rounded()))% of the \(r.part)'s \(R.ngram)-character sequences repeat")
        }
        if c.runs("special_characters") {
            let r = worse(TextFilters.specialCharacterShare, minChars: c.specialCharacters.minChars)
            v.add("special_characters", r.score <= c.specialCharacters.maxShare, r.score,
                  "\(Int((r.score * 100).rounded()))% of the \(r.part) is symbols or unusual characters")
        }
    }

    /// mojibake, filler_opening, answer_echoes_prompt, language_mismatch and pii.
    static func contentChecks(_ v: inout VerdictList, p: [Unicode.Scalar], q: [Unicode.Scalar], _ t: Texts,
                              _ allMessages: [Message], _ c: CheckConfiguration) {
        if c.runs("mojibake") {
            // On the stored text: normalization would fold some telltales away.
            let found = TextFilters.mojibake(t.rawPrompt + "\n" + t.rawAnswer)
            v.add("mojibake", found.isEmpty, Double(found.count), "garbled encoding: \(found.joined(separator: ", "))")
        }
        if c.runs("filler_opening") {
            let f = TextFilters.fillerOpening(t.answer, fillers: c.filler.openings)
            v.add("filler_opening", f == nil, nil, "answer opens with \"\(f ?? "")\"")
        }
        if c.runs("answer_echoes_prompt") {
            let judged = q.count >= c.echo.minAnswerChars && Double(q.count) >= c.echo.minLengthRatio * Double(p.count)
            let share = judged ? TextFilters.echo(prompt: p, answer: q) : 0
            v.add("answer_echoes_prompt", share < c.echo.maxShare, share,
                  "\(Int((share * 100).rounded()))% of the answer repeats the question")
        }
        if c.runs("language_mismatch") {
            let sp = TextFilters.script(p), sq = TextFilters.script(q)
            let mismatch = sp != .undetermined && sq != .undetermined && sp != sq
                && !c.language.exemptPromptWords.contains { t.prompt.contains($0) }
            v.add("language_mismatch", !mismatch, nil, "question in \(sp.rawValue), answer in \(sq.rawValue)")
        }
        if c.runs("pii") {
            let kinds = Set(c.pii.kinds)
            let findings = allMessages.flatMap { PII.findings(in: $0.content) }.filter { kinds.contains($0.kind.rawValue) }
            var counts: [String: Int] = [:]
            for f in findings { counts[f.kind.rawValue, default: 0] += 1 }
            v.add("pii", findings.isEmpty, Double(findings.count),
                  counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))
        }
    }
}
