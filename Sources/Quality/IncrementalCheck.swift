import CorpusDB
import Foundation

/// What an incremental check reads of the store about the records the last whole-store check
/// covered (`check_state`): their stored facts and signatures, their findings, the recurring
/// sentences. Closures, so that the pass reads them once, in a stream.
public struct StoredFindings {
    /// How many records the last whole-store check covered (every new record's id is larger).
    public var records: Int
    /// The largest of their ids.
    public var lastRecordId: Int64
    /// Hands over each of them with an id in the range, with its stored facts and signature, in
    /// id order; returns how many. Called from several threads at once, on disjoint ranges.
    public var forEach: @Sendable (ClosedRange<Int64>, (StoredCheckRow) throws -> Void) throws -> Int
    /// Which of the given ids are near duplicates (not kept) under the configuration.
    public var nearDuplicates: ([Int64]) throws -> Set<Int64>
    /// The stored signatures of the given ids (those with one).
    public var signatures: ([Int64]) throws -> [Int64: [UInt32]]
    /// Every recurring sentence stored under the configuration.
    public var boilerplate: [RecurringSentence]

    public init(records: Int, lastRecordId: Int64, forEach: @escaping @Sendable (ClosedRange<Int64>, (StoredCheckRow) throws -> Void) throws -> Int,
                nearDuplicates: @escaping ([Int64]) throws -> Set<Int64>, signatures: @escaping ([Int64]) throws -> [Int64: [UInt32]],
                boilerplate: [RecurringSentence]) {
        self.records = records
        self.lastRecordId = lastRecordId
        self.forEach = forEach
        self.nearDuplicates = nearDuplicates
        self.signatures = signatures
        self.boilerplate = boilerplate
    }
}

/// What one read of (part of) the earlier records finds for the new records' keys: for each exact
/// key the first earlier record and how many (up to 2), for each question the earlier records and
/// their distinct answers, for each sentence how many earlier answers hold it and the first, for
/// each LSH band key the first two and the latest earlier record. Parts over consecutive id
/// ranges merge into what one read of all of them finds.
struct EarlierScan: @unchecked Sendable {
    // @unchecked: each scan is filled by one thread, then merged on one.
    var keys: KeyTable<(key: SHA256Key, first: Int64, count: Int)>
    var prompts: KeyTable<(key: SHA256Key, members: [Int64], answers: Set<SHA256Key>)>
    var sentences: KeyTable<(records: Int, first: Int64)>
    var buckets: [KeyTable<(first: Int64, second: Int64, latest: Int64)>]
    /// A bit per band key of the new records (8 Mbit, 1 MiB): most band keys of earlier records
    /// are not among them, and the filter answers from the cache where the tables (tens of
    /// megabytes over 32 bands) would miss it on almost every lookup.
    var bandFilter: [UInt64]
    let basis: ExactDuplicates.Basis
    let permutations: Int, bands: Int, rows: Int
    var count = 0, signaturesRead = 0
    var malformed = false
    var error: (any Error)?

    @inline(__always) static func filterBit(_ key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 41) }

    mutating func markBand(_ key: UInt64) {
        let bit = Self.filterBit(key)
        bandFilter[bit >> 6] |= 1 << UInt64(bit & 63)
    }

    /// Takes one earlier record into account.
    mutating func observe(_ r: StoredCheckRow, row: inout [UInt32]) {
        guard !malformed else { return }
        count += 1
        guard CheckFacts.isWellFormed(byteCount: r.facts.count) else { malformed = true; return }
        let (pair, prompt) = CheckFacts.keys(r.facts)
        let key = basis == .pair ? pair : prompt
        keys.update(key.a) { v in
            guard v.key == key else { return }
            if v.count == 0 { v.first = r.id }
            v.count = min(2, v.count + 1)
        }
        prompts.update(prompt.a) { v in
            guard v.key == prompt else { return }
            v.members.append(r.id)
            v.answers.insert(pair)
        }
        if !sentences.isEmpty {
            CheckFacts.forEachSentence(r.facts) { hash, _ in
                sentences.update(hash) { v in
                    if v.records == 0 { v.first = r.id }
                    v.records += 1
                }
            }
        }
        guard let signature = r.signature else { return }
        signaturesRead += 1
        guard bands > 0, !r.exactDuplicate else { return }
        guard MinHasher.isSignature(byteCount: signature.count, permutations: permutations) else { malformed = true; return }
        MinHasher.read(signature, into: &row)
        row.withUnsafeBufferPointer { sig in
            guard let base = sig.baseAddress else { return }
            for b in 0..<bands {
                let key = NearDuplicateFinder.bandKey(band: b, base + b * rows, rows: rows)
                let bit = Self.filterBit(key)
                guard bandFilter[bit >> 6] & (1 << UInt64(bit & 63)) != 0 else { continue }
                buckets[b].update(key) { v in
                    if v.first < 0 { v.first = r.id } else if v.second < 0 { v.second = r.id }
                    v.latest = r.id
                }
            }
        }
    }

    /// Adds what a scan of later records (larger ids) found, as if this scan had read them too.
    mutating func merge(later o: EarlierScan) {
        count += o.count
        signaturesRead += o.signaturesRead
        malformed = malformed || o.malformed
        error = error ?? o.error
        keys.merge(o.keys) { a, b in
            if a.count == 0 { a.first = b.first }
            a.count = min(2, a.count + b.count)
        }
        prompts.merge(o.prompts) { a, b in
            a.members += b.members
            a.answers.formUnion(b.answers)
        }
        sentences.merge(o.sentences) { a, b in
            if a.records == 0 { a.first = b.first }
            a.records += b.records
        }
        for band in buckets.indices {
            buckets[band].merge(o.buckets[band]) { a, b in
                // The visits of this part, then those of the later one.
                for id in [b.first, b.second] where id >= 0 {
                    if a.first < 0 { a.first = id } else if a.second < 0 { a.second = id }
                }
                if b.latest >= 0 { a.latest = b.latest }
            }
        }
    }
}

extension CheckPass {
    /// Settles the corpus-wide findings of the records added (those given to `add`, every one
    /// newer than the stored ones) against the records checked before, reading of those only their
    /// stored facts, signatures and findings: what `finish` would conclude about the new records
    /// over the whole corpus, at the cost of one read of the stored rows instead of every
    /// comparison again (docs/QUALITY.md, "Incremental checks").
    ///
    /// Earlier records' verdicts and groups stay as stored (adding later records changes neither
    /// which earlier record is a copy of which nor, since LSH compares a record only with earlier
    /// ones, their near duplicates); the outcome's `groups` are the members to add, its
    /// `boilerplate` the whole corpus's list.
    ///
    /// - Returns: nil when the stored rows do not cover the records they should (a record without
    ///   facts, a malformed row, sentences stored without hashes): then `finish` over every
    ///   record is the way.
    public mutating func finishIncremental(stored: StoredFindings, conversation: (Int64) throws -> Conversation?) throws -> CheckOutcome? {
        let c = configuration
        let basis = ExactDuplicates.Basis(rawValue: c.exactDuplicates.on) ?? .pair
        let order = kept.indices.sorted { kept[$0].id < kept[$1].id }
        guard stored.boilerplate.allSatisfy({ $0.hash != nil }), spill == nil else { return nil }
        let near = hasher?.settings
        let P = c.nearDuplicates.permutations, bands = near?.bands ?? 0, rows = near?.rows ?? 0

        // What the new records look for among the earlier ones, each in a table keyed by 64 bits
        // (SHA-256 keys by their first word, confirmed whole).
        var scan = EarlierScan(
            keys: KeyTable(capacity: order.count, empty: (SHA256Key(0, 0, 0, 0), -1, 0)),
            prompts: KeyTable(capacity: order.count, empty: (SHA256Key(0, 0, 0, 0), [], [])),
            sentences: KeyTable(capacity: order.reduce(0) { $0 + Int(kept[$1].sentenceCount) }, empty: (0, -1)),
            buckets: (0..<bands).map { _ in KeyTable(capacity: order.count, empty: (-1, -1, -1)) },
            bandFilter: [UInt64](repeating: 0, count: bands > 0 ? 1 << 17 : 0),
            basis: basis, permutations: P, bands: bands, rows: rows)
        for i in order {
            let key = basis == .pair ? pairKeys[i] : promptKeys[i]
            guard scan.keys.insert(key.a, (key, -1, 0), same: { $0.key == key }),
                  scan.prompts.insert(promptKeys[i].a, (promptKeys[i], [], []), same: { $0.key == promptKeys[i] }) else { return nil }
            for s in kept[i].sentences { _ = scan.sentences.insert(sentenceHashes[s], (0, -1), same: { _ in true }) }
            if near != nil, kept[i].signatureRow >= 0 {
                signatures.withUnsafeBufferPointer { sig in
                    guard let base = sig.baseAddress else { return }
                    let row = base + Int(kept[i].signatureRow) * P
                    for b in 0..<bands {
                        let key = NearDuplicateFinder.bandKey(band: b, row + b * rows, rows: rows)
                        _ = scan.buckets[b].insert(key, (-1, -1, -1), same: { _ in true })
                        scan.markBand(key)
                    }
                }
            }
        }

        // One read of the earlier records, in as many id ranges as there are cores, each read by
        // its own thread into its own copy of the tables, merged in id order; only ids are kept.
        let parts = max(1, min(8, ProcessInfo.processInfo.activeProcessorCount))
        let last = stored.lastRecordId
        let scans = (0..<parts).map { _ in ScanBox(scan) }
        let read = stored.forEach
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let box = scans[part]
            // Ids from 1 (ids are positive); the last part takes everything up to `last`.
            let lo = part == 0 ? Int64.min : last / Int64(parts) * Int64(part) + 1
            let hi = part == parts - 1 ? last : last / Int64(parts) * Int64(part + 1)
            guard lo <= hi else { return }
            var row = [UInt32](repeating: 0, count: P)
            do {
                _ = try read(lo...hi) { r in box.scan.observe(r, row: &row) }
            } catch {
                box.scan.error = error
            }
        }
        scan = scans[0].scan
        for box in scans.dropFirst() { scan.merge(later: box.scan) }
        if let error = scan.error { throw error }
        guard !scan.malformed, scan.count == stored.records else { return nil }
        let keys = scan.keys, prompts = scan.prompts, sentences = scan.sentences
        var buckets = scan.buckets
        let signaturesRead = scan.signaturesRead

        // Exact duplicates: a new record copies the first record with its key, earlier or new.
        var exact = ExactFindings()
        var exactGroups: [Int64: DuplicateGroup] = [:], firstNew: [SHA256Key: Int] = [:]
        func addMember(_ groups: inout [Int64: DuplicateGroup], _ kind: DuplicateGroup.Kind, representative: Int64, _ members: [Int64]) {
            groups[representative, default: DuplicateGroup(kind: kind, representative: representative, members: [])].members += members
        }
        for i in order {
            let key = basis == .pair ? pairKeys[i] : promptKeys[i]
            guard let old = keys.value(key.a) else { continue }
            if old.count > 0 {
                exact.duplicateOf[i] = old.first
                // A key met once before had no group: its first record joins.
                if old.count == 1 && exactGroups[old.first] == nil { addMember(&exactGroups, .exact, representative: old.first, [old.first]) }
                addMember(&exactGroups, .exact, representative: old.first, [kept[i].id])
            } else if let f = firstNew[key] {
                let rep = kept[f].id
                exact.duplicateOf[i] = rep
                if exactGroups[rep] == nil { addMember(&exactGroups, .exact, representative: rep, [rep]) }
                addMember(&exactGroups, .exact, representative: rep, [kept[i].id])
            } else {
                firstNew[key] = i
            }
        }

        // Conflicting answers: a question asked again with another answer.
        var newAsking: [SHA256Key: [Int]] = [:], promptOrder: [SHA256Key] = []
        for i in order {
            if newAsking[promptKeys[i]] == nil { promptOrder.append(promptKeys[i]) }
            newAsking[promptKeys[i], default: []].append(i)
        }
        var conflictGroups: [Int64: DuplicateGroup] = [:]
        for prompt in promptOrder {
            guard let members = newAsking[prompt], let old = prompts.value(prompt.a) else { continue }
            var answers = old.answers
            for m in members { answers.insert(pairKeys[m]) }
            guard answers.count > 1 else { continue }
            let first = old.members.first ?? kept[members[0]].id
            for m in members { exact.conflict[m] = (first, answers.count) }
            // A question that had one answer before becomes a group now: its earlier records join.
            addMember(&conflictGroups, .conflict, representative: first, (old.answers.count > 1 ? [] : old.members) + members.map { kept[$0].id })
        }
        exact.members = GroupMembers(exactGroups.values.sorted { $0.representative < $1.representative }
                                     + conflictGroups.values.sorted { $0.representative < $1.representative })

        // Near duplicates: the new records against the earlier ones in their buckets, then each other.
        var nearFindings: NearFindings?
        if let near {
            // The earlier records that matter: those the buckets of the new records that are
            // compared (not exact copies) hold; their signatures are read now.
            var newIds: [Int64] = [], newSignatures: [UInt32] = []
            var inBuckets: [[UInt64: (first: Int64, second: Int64, latest: Int64)]] = Array(repeating: [:], count: bands)
            var referenced = Set<Int64>()
            for i in order where kept[i].signatureRow >= 0 && exact.duplicateOf[i] == nil {
                newIds.append(kept[i].id)
                let start = Int(kept[i].signatureRow) * P
                newSignatures.append(contentsOf: signatures[start..<(start + P)])
                signatures.withUnsafeBufferPointer { sig in
                    guard let base = sig.baseAddress else { return }
                    for b in 0..<bands {
                        let key = NearDuplicateFinder.bandKey(band: b, base + start + b * rows, rows: rows)
                        guard inBuckets[b][key] == nil, let v = buckets[b].value(key), v.first >= 0 else { continue }
                        inBuckets[b][key] = v
                        for x in [v.first, v.second, v.latest] where x >= 0 { referenced.insert(x) }
                    }
                }
            }
            buckets = []
            let candidateIds = referenced.sorted()
            let candidateSignatures = try stored.signatures(candidateIds)
            var all: [UInt32] = []
            all.reserveCapacity((candidateIds.count + newIds.count) * P)
            var index: [Int64: Int32] = [:]
            for (k, id) in candidateIds.enumerated() {
                guard let signature = candidateSignatures[id], signature.count == P else { return nil }
                index[id] = Int32(k)
                all += signature
            }
            all += newSignatures
            let earlierBuckets = inBuckets.map { band in
                band.mapValues { v in (first: index[v.first] ?? -1, second: index[v.second] ?? -1, latest: index[v.latest] ?? -1) }
            }
            let notKept = try stored.nearDuplicates(candidateIds)
            let earlier = NearDuplicateFinder.Earlier(count: candidateIds.count, buckets: earlierBuckets,
                                                      kept: candidateIds.map { !notKept.contains($0) })
            let result = NearDuplicateFinder.find(ids: candidateIds + newIds, signatures: all, settings: near, earlier: earlier)
            // The representatives' own rows (similarity 1) are stored again where they had a group.
            nearFindings = NearFindings(result: result)
        }

        // Boilerplate over the whole corpus: a sentence of no new record keeps its stored count.
        let settings = c.boilerplate
        var newCounts: [UInt64: (records: Int, first: Int64)] = [:]
        for i in order {
            for s in kept[i].sentences {
                let hash = sentenceHashes[s]
                if let seen = newCounts[hash] { newCounts[hash] = (seen.records + 1, seen.first) } else { newCounts[hash] = (1, kept[i].id) }
            }
        }
        let total = stored.records + kept.count
        let needed = max(settings.minRecords, Int((settings.minShare * Double(total)).rounded(.up)))
        var counts: [UInt64: Int] = [:], text: [UInt64: String] = [:]
        var storedText: [UInt64: String] = [:]
        for b in stored.boilerplate {
            guard let hash = b.hash else { continue }
            storedText[hash] = b.sentence
            if newCounts[hash] == nil && b.records >= needed {
                counts[hash] = b.records
                text[hash] = b.sentence
            }
        }
        for (hash, new) in newCounts {
            let old = sentences.value(hash) ?? (0, -1)
            guard old.records + new.records >= needed else { continue }
            counts[hash] = old.records + new.records
            text[hash] = try storedText[hash] ?? Self.sentenceText(hash, in: old.records > 0 ? old.first : new.first, settings, conversation: conversation)
        }
        let recurring = Self.recurring(counts, text: text)

        var outcome = CheckOutcome(members: exact.members, boilerplate: recurring.list)
        if let nearFindings { outcome.members.append(contentsOf: nearFindings.members) }
        outcome.storedSignaturesRead = signaturesRead
        try handOver(&outcome, order: order)
        setVerdicts(&outcome, order: order, exact: exact, near: nearFindings, recurring: recurring)
        return outcome
    }
}

/// A small open-addressing table from 64-bit keys to values, for the few keys of new records
/// that a stream of a million earlier records is matched against (a Swift dictionary costs
/// several times more per lookup, and there are ~35 lookups per earlier record). Each entry holds
/// its key and value together: a lookup that misses the cache misses it once.
struct KeyTable<Value> {
    private struct Entry {
        var key: UInt64
        var used: Bool
        var value: Value
    }
    private var entries: [Entry]
    private let mask: Int
    private(set) var count = 0

    init(capacity: Int, empty: Value) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        entries = [Entry](repeating: Entry(key: 0, used: false, value: empty), count: size)
        mask = size - 1
    }

    var isEmpty: Bool { count == 0 }

    @inline(__always)
    private func slot(_ key: UInt64) -> Int {
        entries.withUnsafeBufferPointer { e in
            var slot = Int(truncatingIfNeeded: ((key ^ (key >> 29)) &* 0xBF58_476D_1CE4_E5B9) >> 20) & mask
            while e[slot].used && e[slot].key != key { slot = (slot + 1) & mask }
            return slot
        }
    }

    /// Adds a key with its value; a key present already keeps its value. Returns false when the
    /// key is present with a value that `same` says is another (two SHA-256 keys sharing their
    /// first 64 bits: the caller then does without the table).
    mutating func insert(_ key: UInt64, _ value: Value, same: (Value) -> Bool) -> Bool {
        let s = slot(key)
        if entries[s].used { return same(entries[s].value) }
        entries[s] = Entry(key: key, used: true, value: value)
        count += 1
        return true
    }

    /// Changes the value of a key, when present.
    @inline(__always)
    mutating func update(_ key: UInt64, _ change: (inout Value) -> Void) {
        let s = slot(key)
        guard entries[s].used else { return }
        change(&entries[s].value)
    }

    /// Combines each entry with the same entry of a table built by the same inserts (so laid out
    /// the same): `combine(&mine, theirs)`.
    mutating func merge(_ other: KeyTable, _ combine: (inout Value, Value) -> Void) {
        guard other.entries.count == entries.count else { return }
        for k in entries.indices where entries[k].used && other.entries[k].used && other.entries[k].key == entries[k].key {
            combine(&entries[k].value, other.entries[k].value)
        }
    }

    func value(_ key: UInt64) -> Value? {
        let s = slot(key)
        return entries[s].used ? entries[s].value : nil
    }
}

/// One part's scan, filled by its thread.
final class ScanBox: @unchecked Sendable {
    // @unchecked: each box is written by one thread of `concurrentPerform`, read after it returns.
    var scan: EarlierScan
    init(_ scan: EarlierScan) { self.scan = scan }
}
