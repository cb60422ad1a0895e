import Crypto
import Foundation
import GRDB

/// How `corpus snapshot create` selects its members (stored as the snapshot's `spec`).
public struct SnapshotSpec: Sendable, Equatable {
    /// "none", "default" (the latest check configuration when verdicts exist, else none) or a
    /// check configuration hash.
    public var checks = "default"
    /// Records must carry every one of these tags.
    public var tags: [TagFilter] = []
    /// Records must come from one of these sources (empty: all).
    public var sources: [Int64] = []
    /// Share of members put in the eval split, in [0, 1).
    public var evalRatio = 0.05
    public var seed: Int64 = 0
    /// At most this many members per tag set (records with identical tags), chosen by hash.
    public var maxPerTag: Int?
    public var note = ""

    public init() {}

    /// The spec as stored: a JSON object with sorted keys.
    func json(resolvedChecks: String?) -> String {
        var object: [String: Any] = [
            "checks": resolvedChecks ?? "none",
            "tags": tags.map { "\($0.key)=\($0.value)" },
            "sources": sources,
            "eval_ratio": evalRatio,
            "seed": seed,
        ]
        if let maxPerTag { object["max_per_tag"] = maxPerTag }
        return CorpusStore.sortedJSON(object)
    }
}

/// The definitions that make a snapshot reproducible; docs/SNAPSHOTS.md states them for auditors.
public enum SnapshotMath {
    /// A record's place in [0, 1) for the split: the first 8 bytes of SHA-256("seed:content_hash")
    /// read big-endian, divided by 2^64. It depends only on the record's content and the seed, so
    /// adding records never moves existing ones between train and eval.
    public static func splitValue(contentHash: String, seed: Int64) -> Double {
        let digest = SHA256.hash(data: Data("\(seed):\(contentHash)".utf8))
        var value: UInt64 = 0
        for byte in digest.prefix(8) { value = value << 8 | UInt64(byte) }
        return Double(value) / 18_446_744_073_709_551_616.0
    }

    public static func split(contentHash: String, seed: Int64, evalRatio: Double) -> String {
        splitValue(contentHash: contentHash, seed: seed) < evalRatio ? "eval" : "train"
    }

    /// The snapshot hash: hex SHA-256 of the lines `"<content_hash> <split>\n"` of the members in
    /// position order (members are ordered by content hash).
    public static func hash<S: Sequence>(_ members: S) -> String where S.Element == (contentHash: String, split: String) {
        var hasher = SHA256()
        for member in members { hasher.update(data: line(contentHash: member.contentHash, split: member.split)) }
        return hasher.finalize().hexString
    }

    /// One member's line of the snapshot hash.
    static func line(contentHash: String, split: String) -> Data {
        Data("\(contentHash) \(split)\n".utf8)
    }
}

extension CorpusStore {
    /// Creates the next version of snapshot `name`, in one transaction with its audit entry.
    /// - Throws: `CorpusDBError(.invalid)` for a bad name or spec, or when nothing is selected;
    ///   `.notFound` for an unknown source or check configuration.
    public func createSnapshot(name: String, spec: SnapshotSpec, arguments: [String] = []) throws -> Snapshot {
        try Self.validateSnapshotRequest(name: name, spec: spec)
        return try pool.write { db in
            for id in spec.sources where try Source.fetchOne(db, key: id) == nil {
                throw CorpusDBError(.notFound, "\(path): no source \(id); `corpus sources` lists them")
            }
            // Quality verdicts: "default" is the newest check configuration with verdicts (none
            // when `corpus check` has not run), a hash (or a unique prefix of 8+ characters) names one.
            let resolvedChecks = try CorpusStore.resolveChecks(db, spec.checks, path: path)
            let verdicts = try resolvedChecks.map { try Self.verdictSelection(db, configHash: $0) }
            var selection = try Self.snapshotCandidates(db, spec: spec, verdicts: verdicts)
            if let cap = spec.maxPerTag { selection.cap(perTag: cap) }
            var candidates = selection.candidates
            guard !candidates.isEmpty else {
                throw CorpusDBError(.invalid, "\(path): no records match (tags \(spec.tags.map { "\($0.key)=\($0.value)" }), sources \(spec.sources)); nothing to snapshot")
            }
            candidates.sort { $0.hash < $1.hash }
            let splits = candidates.map { $0.value < spec.evalRatio ? "eval" : "train" }
            let hash = SnapshotMath.hash(zip(candidates, splits).map { (contentHash: $0.hash, split: $1) })
            let previous = try Snapshot.filter(Column("name") == name).order(Column("version").desc).fetchOne(db)
            let evalCount = splits.filter { $0 == "eval" }.count
            var snapshot = Snapshot(
                id: nil, name: name, version: (previous?.version ?? 0) + 1, parentId: previous?.id, hash: hash,
                spec: spec.json(resolvedChecks: resolvedChecks), checks: resolvedChecks, evalRatio: spec.evalRatio, seed: spec.seed,
                records: candidates.count, train: candidates.count - evalCount, eval: evalCount,
                tagCounts: Self.sortedJSON(Self.tagCounts(candidates, splits)), excluded: Self.sortedJSON(selection.excluded), note: spec.note,
                createdAt: Timestamp.now(), toolVersion: CorpusVersion.string)
            try snapshot.insert(db)
            guard let snapshotId = snapshot.id else { throw CorpusDBError(.cannotOpen, "\(path): the snapshot row got no id") }
            let insert = try db.makeStatement(sql: "INSERT INTO snapshot_records (snapshot_id, position, record_id, content_hash, split) VALUES (?, ?, ?, ?, ?)")
            for (position, (candidate, split)) in zip(candidates, splits).enumerated() {
                try insert.execute(arguments: [snapshotId, position, candidate.id, candidate.hash, split])
            }
            try Self.audit(db, command: "snapshot create", arguments: arguments,
                           outcome: ["snapshot": snapshot.label, "hash": hash, "records": snapshot.records])
            return snapshot
        }
    }

    /// Refuses an unusable name, eval ratio or cap before the store is touched.
    static func validateSnapshotRequest(name: String, spec: SnapshotSpec) throws {
        guard !name.isEmpty, name.count <= 100,
              name.unicodeScalars.allSatisfy({ !$0.properties.isWhitespace && $0.value >= 0x20 && $0 != "@" && $0 != "/" }) else {
            throw CorpusDBError(.invalid, "snapshot name '\(name)' is not usable: use 1-100 characters without spaces, '@' or '/' (e.g. med-v1)")
        }
        guard spec.evalRatio >= 0, spec.evalRatio < 1 else {
            throw CorpusDBError(.invalid, "--eval-ratio \(spec.evalRatio) must be at least 0 and below 1")
        }
        if let cap = spec.maxPerTag, cap < 1 { throw CorpusDBError(.invalid, "--max-per-tag must be at least 1") }
    }

    /// What the verdicts under one check configuration say about each record.
    struct VerdictSelection {
        /// The first (by name) check each record failed, advisory checks left out.
        var failed: [Int64: String] = [:]
        /// The records checked at all under the configuration.
        var checked = Set<Int64>()
    }

    /// The checks each record failed under a configuration (PII is not a reason to leave a record
    /// out: export redacts it), and which records were checked at all. Advisory checks (the
    /// configuration's "advisory" list; PII in configurations that predate the list) are reported
    /// but leave nobody out.
    static func verdictSelection(_ db: Database, configHash config: String) throws -> VerdictSelection {
        var selection = VerdictSelection()
        let json = try String.fetchOne(db, sql: "SELECT config FROM check_configs WHERE hash = ?", arguments: [config]) ?? "{}"
        let object = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any]
        let advisory = object?["advisory"] as? [String] ?? ["pii"]
        // Failures that count: a bit mask over the catalogue without the advisory checks.
        var counted: Int64 = 0
        for (bit, name) in CheckCatalog.names.enumerated() where !advisory.contains(name) { counted |= Int64(1) << Int64(bit) }
        // The first failed check by name, as reasons are counted by it.
        let byName = CheckCatalog.names.indices.sorted { CheckCatalog.names[$0] < CheckCatalog.names[$1] }
        let rows = try Row.fetchCursor(db, sql: """
            SELECT record_id, failed FROM verdicts WHERE config_id = (SELECT id FROM check_configs WHERE hash = ?)
            """, arguments: [config])
        while let row = try rows.next() {
            let id: Int64 = row[0], failed: Int64 = row[1]
            selection.checked.insert(id)
            let reasons = failed & counted
            if reasons != 0, let bit = byName.first(where: { reasons & (Int64(1) << Int64($0)) != 0 }) {
                selection.failed[id] = CheckCatalog.names[bit]
            }
        }
        return selection
    }

    /// The records a snapshot may take, in id order, and how many were left out for each reason.
    struct SnapshotCandidates {
        var candidates: [(id: Int64, hash: String, tags: String, value: Double)] = []
        /// By reason: withdrawn, unchecked, failed_<check>, duplicate, cap_per_tag.
        var excluded: [String: Int] = [:]

        /// Keeps at most `cap` members per tag set (records with identical tags), the lowest
        /// split values first (ties by content hash).
        mutating func cap(perTag cap: Int) {
            var groups: [String: [Int]] = [:]
            for (i, c) in candidates.enumerated() { groups[c.tags, default: []].append(i) }
            var keep = Set<Int>()
            for (_, members) in groups {
                let chosen = members.sorted { (candidates[$0].value, candidates[$0].hash) < (candidates[$1].value, candidates[$1].hash) }.prefix(cap)
                keep.formUnion(chosen)
            }
            excluded["cap_per_tag"] = candidates.count - keep.count
            candidates = candidates.indices.filter { keep.contains($0) }.map { candidates[$0] }
        }
    }

    /// Walks the records in id order and keeps those that match the spec's sources and tags, are
    /// not withdrawn, passed every non-advisory check (when `verdicts` is given) and are the first
    /// ingested copy of their content.
    static func snapshotCandidates(_ db: Database, spec: SnapshotSpec, verdicts: VerdictSelection?) throws -> SnapshotCandidates {
        var sql = """
            SELECT r.id, r.content_hash, r.tags, w.record_id IS NOT NULL AS withdrawn
            FROM records r LEFT JOIN withdrawals w ON w.record_id = r.id
            """
        if !spec.sources.isEmpty { sql += " WHERE r.source_id IN (\(spec.sources.map { String($0) }.joined(separator: ",")))" }
        sql += " ORDER BY r.id"
        var selection = SnapshotCandidates()
        var seen = Set<String>()
        let cursor = try Row.fetchCursor(db, sql: sql)
        while let row = try cursor.next() {
            let tags: String = row["tags"]
            if !spec.tags.isEmpty {
                let decoded = (try? JSONSerialization.jsonObject(with: Data(tags.utf8))) as? [String: Any] ?? [:]
                guard spec.tags.allSatisfy({ decoded[$0.key] as? String == $0.value }) else { continue }
            }
            if row["withdrawn"] as Bool { selection.excluded["withdrawn", default: 0] += 1; continue }
            let id: Int64 = row["id"]
            if let verdicts {
                guard verdicts.checked.contains(id) else { selection.excluded["unchecked", default: 0] += 1; continue }
                if let check = verdicts.failed[id] { selection.excluded["failed_\(check)", default: 0] += 1; continue }
            }
            let hash: String = row["content_hash"]
            // Exact duplicates: the first ingested record represents its content.
            guard seen.insert(hash).inserted else { selection.excluded["duplicate", default: 0] += 1; continue }
            selection.candidates.append((id, hash, tags, SnapshotMath.splitValue(contentHash: hash, seed: spec.seed)))
        }
        return selection
    }

    /// Members per "key=value" tag and split.
    static func tagCounts(_ candidates: [(id: Int64, hash: String, tags: String, value: Double)], _ splits: [String]) -> [String: [String: Int]] {
        var tagCounts: [String: [String: Int]] = [:]
        for (candidate, split) in zip(candidates, splits) {
            let decoded = (try? JSONSerialization.jsonObject(with: Data(candidate.tags.utf8))) as? [String: Any] ?? [:]
            for (key, value) in decoded {
                tagCounts["\(key)=\(value as? String ?? "\(value)")", default: ["train": 0, "eval": 0]][split, default: 0] += 1
            }
        }
        return tagCounts
    }

    /// JSON text with sorted keys of a Foundation value (`pretty` for files people read).
    static func sortedJSON(_ value: Any, pretty: Bool = false) -> String {
        var options: JSONSerialization.WritingOptions = [.sortedKeys, .withoutEscapingSlashes]
        if pretty { options.insert(.prettyPrinted) }
        guard JSONSerialization.isValidJSONObject(value),
              let data = try? JSONSerialization.data(withJSONObject: value, options: options) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    /// An audit entry written in the caller's transaction (every store-changing command's entry
    /// goes through here).
    static func audit(_ db: Database, command: String, arguments: [String], toolVersion: String = CorpusVersion.string,
                      outcome: [String: Any]) throws {
        var entry = AuditEntry(at: Timestamp.now(), command: command, arguments: sortedJSON(arguments),
                               toolVersion: toolVersion, outcome: sortedJSON(outcome))
        try entry.insert(db)
    }
}
