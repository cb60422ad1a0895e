/// Duplicate-group members as flat columns, one entry per (kind, record) as in table
/// `duplicate_groups`: what a check hands the store. At ten million records there are millions of
/// members; as `DuplicateGroup` values (an array and a similarity dictionary a group) and then
/// copied into sortable rows they took well over a gigabyte, as columns they take 25 bytes each.
public struct GroupMembers: Sendable, Equatable {
    public private(set) var kinds: [DuplicateGroup.Kind] = []
    public private(set) var records: [Int64] = []
    public private(set) var representatives: [Int64] = []
    /// NaN where a member has none (exact and conflict groups).
    private var similarities: [Double] = []

    public init() {}

    /// The members of `groups`, group by group.
    public init(_ groups: [DuplicateGroup]) {
        reserveCapacity(groups.reduce(0) { $0 + $1.members.count })
        for g in groups {
            for m in g.members { append(g.kind, record: m, representative: g.representative, similarity: g.similarity[m]) }
        }
    }

    public static func == (a: GroupMembers, b: GroupMembers) -> Bool {
        a.kinds == b.kinds && a.records == b.records && a.representatives == b.representatives
            && a.similarities.map(\.bitPattern) == b.similarities.map(\.bitPattern)
    }

    public var count: Int { records.count }
    public var isEmpty: Bool { records.isEmpty }

    public mutating func reserveCapacity(_ n: Int) {
        kinds.reserveCapacity(n)
        records.reserveCapacity(n)
        representatives.reserveCapacity(n)
        similarities.reserveCapacity(n)
    }

    public mutating func append(_ kind: DuplicateGroup.Kind, record: Int64, representative: Int64, similarity: Double? = nil) {
        kinds.append(kind)
        records.append(record)
        representatives.append(representative)
        similarities.append(similarity ?? .nan)
    }

    public mutating func append(contentsOf other: GroupMembers) {
        kinds += other.kinds
        records += other.records
        representatives += other.representatives
        similarities += other.similarities
    }

    /// The k-th member's similarity with its representative (near and borderline groups).
    public func similarity(_ k: Int) -> Double? {
        similarities[k].isNaN ? nil : similarities[k]
    }

    /// Kinds ranked as SQLite orders their names (the table's key order).
    static let tableRank: [DuplicateGroup.Kind: UInt8] = Dictionary(uniqueKeysWithValues:
        DuplicateGroup.Kind.allCases.sorted { $0.rawValue < $1.rawValue }.enumerated().map { ($1, UInt8($0)) })

    /// Puts the members in the table's key order (kind by name, then record); of a (kind,
    /// record) given twice the later one stands, as a later assignment would. Sorts 4-byte
    /// positions and then moves one column at a time: a few bytes a member beside the columns.
    public mutating func sortForTable() {
        let kindRank = kinds.map { Self.tableRank[$0] ?? 0 }
        var order = (0..<Int32(clamping: count)).map { $0 }
        order.sort { a, b in
            let i = Int(a), j = Int(b)
            if kindRank[i] != kindRank[j] { return kindRank[i] < kindRank[j] }
            if records[i] != records[j] { return records[i] < records[j] }
            return a < b
        }
        // The last of each run of the same (kind, record).
        var unique: [Int32] = []
        unique.reserveCapacity(order.count)
        for p in order {
            if let last = unique.last, kindRank[Int(last)] == kindRank[Int(p)], records[Int(last)] == records[Int(p)] {
                unique[unique.count - 1] = p
            } else {
                unique.append(p)
            }
        }
        order = []
        kinds = unique.map { kinds[Int($0)] }
        records = unique.map { records[Int($0)] }
        representatives = unique.map { representatives[Int($0)] }
        similarities = unique.map { similarities[Int($0)] }
    }

    /// Whether the members are in the table's key order with no (kind, record) twice.
    public var isSortedForTable: Bool {
        var previous: (UInt8, Int64)?
        for k in 0..<count {
            let key = (Self.tableRank[kinds[k]] ?? 0, records[k])
            if let previous, !(previous < key) { return false }
            previous = key
        }
        return true
    }

    /// The groups these members make, kind by kind (exact, near, conflict, borderline), each
    /// kind's groups by representative, the representative first among its members and the rest
    /// by id; a borderline pair is a group of its own, by its later record.
    public var groups: [DuplicateGroup] {
        var out: [DuplicateGroup] = []
        for kind in DuplicateGroup.Kind.allCases {
            let members = (0..<count).filter { kinds[$0] == kind }
            if kind == .borderline {
                for k in members.sorted(by: { records[$0] < records[$1] }) {
                    out.append(DuplicateGroup(kind: kind, representative: representatives[k], members: [records[k]],
                                              similarity: similarity(k).map { [records[k]: $0] } ?? [:]))
                }
                continue
            }
            let sorted = members.sorted {
                let a = (representatives[$0], records[$0] == representatives[$0] ? 0 : 1, records[$0])
                let b = (representatives[$1], records[$1] == representatives[$1] ? 0 : 1, records[$1])
                return a < b
            }
            for k in sorted {
                if let last = out.last, last.kind == kind, last.representative == representatives[k] {
                    out[out.count - 1].members.append(records[k])
                } else {
                    out.append(DuplicateGroup(kind: kind, representative: representatives[k], members: [records[k]]))
                }
                if let s = similarity(k) { out[out.count - 1].similarity[records[k]] = s }
            }
        }
        return out
    }
}
