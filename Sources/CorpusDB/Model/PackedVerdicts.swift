import Foundation

/// The checks a verdict can name, each with a fixed bit (its index here) in the packed layout of
/// table `verdicts` (migration 0012). Append only: a stored bit keeps its meaning for ever.
public enum CheckCatalog {
    /// Every check `corpus check` can run, in the order they are reported; bit i is `names[i]`.
    public static let names = [
        "exact_duplicate", "near_duplicate", "conflicting_answer", "prompt_length", "answer_length", "prompt_tokens", "answer_tokens",
        "char_repetition", "ngram_repetition", "special_characters", "mojibake", "filler_opening", "boilerplate",
        "answer_echoes_prompt", "language_mismatch", "pii",
    ]

    /// The bit of a check name, or nil for a name the catalogue does not know.
    public static func bit(_ name: String) -> Int? { bits[name] }

    private static let bits: [String: Int] = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($0.element, $0.offset) })
}

/// Every verdict of one record under one configuration, packed as one row of table `verdicts`:
/// which checks judged it and which it failed (bit masks over `CheckCatalog.names`), one score per
/// check judged (NaN when the check has no measure), and the reasons of the checks it failed.
///
/// A million records make a million rows, not fourteen million: the layout behind `corpus check`'s
/// storage time and memory (issue 17, docs/STORE.md).
public struct PackedVerdicts: Sendable, Equatable {
    public var recordId: Int64
    /// Bit i set: check `CheckCatalog.names[i]` judged the record.
    public var ran: UInt32 = 0
    /// Bit i set: the record failed check i (always within `ran`).
    public var failed: UInt32 = 0
    /// One score per bit of `ran`, lowest bit first; NaN for a check with no score.
    public var scores: [Double] = []
    /// One reason per bit of `failed`, lowest bit first.
    public var details: [String] = []

    public init(recordId: Int64) { self.recordId = recordId }

    public static func == (a: PackedVerdicts, b: PackedVerdicts) -> Bool {
        a.recordId == b.recordId && a.ran == b.ran && a.failed == b.failed && a.details == b.details
            && a.scores.count == b.scores.count && zip(a.scores, b.scores).allSatisfy { $0.bitPattern == $1.bitPattern }
    }

    /// Adds one check's verdict. A check already present keeps its first verdict (as the former
    /// one-row-per-verdict table's INSERT OR IGNORE did).
    /// - Throws: `CorpusDBError(.invalid)` for a check name the catalogue does not know.
    public mutating func add(_ name: String, passed: Bool, score: Double?, detail: String) throws {
        guard let bit = CheckCatalog.bit(name) else {
            throw CorpusDBError(.invalid, "no check named \(name) (record \(recordId)); the checks are \(CheckCatalog.names.joined(separator: ", "))")
        }
        add(bit: bit, passed: passed, score: score, detail: detail)
    }

    /// Adds the verdict of check `bit` (a valid index of `CheckCatalog.names`).
    public mutating func add(bit: Int, passed: Bool, score: Double?, detail: String) {
        let mask = UInt32(1) << UInt32(bit)
        guard ran & mask == 0 else { return }
        let below = mask &- 1
        scores.insert(score ?? .nan, at: (ran & below).nonzeroBitCount)
        ran |= mask
        if !passed {
            details.insert(detail, at: (failed & below).nonzeroBitCount)
            failed |= mask
        }
    }

    /// Packs the verdicts of one record.
    public init(recordId: Int64, _ verdicts: [CheckVerdict]) throws {
        self.recordId = recordId
        for v in verdicts { try add(v.name, passed: v.passed, score: v.score, detail: v.detail) }
    }

    /// How many checks judged the record.
    public var count: Int { ran.nonzeroBitCount }

    /// The verdicts one by one, in catalogue order (a passing verdict has no detail).
    public var verdicts: [CheckVerdict] {
        var out: [CheckVerdict] = []
        out.reserveCapacity(count)
        var s = 0, d = 0
        for bit in 0..<CheckCatalog.names.count where ran & (UInt32(1) << UInt32(bit)) != 0 {
            let fails = failed & (UInt32(1) << UInt32(bit)) != 0
            let score = s < scores.count ? scores[s] : .nan
            out.append(CheckVerdict(recordId: recordId, name: CheckCatalog.names[bit], passed: !fails,
                                    score: score.isNaN ? nil : score, detail: fails && d < details.count ? details[d] : ""))
            s += 1
            if fails { d += 1 }
        }
        return out
    }

    /// The scores as stored: little-endian IEEE 754 doubles.
    public var scoresBlob: Data {
        var data = Data(capacity: scores.count * 8)
        for s in scores { withUnsafeBytes(of: s.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        return data
    }

    /// The reasons as stored: a JSON object by check name (sorted keys), or nil when none failed.
    public var detailsJSON: String? {
        guard failed != 0 else { return nil }
        var object: [String: String] = [:]
        var d = 0
        for bit in 0..<CheckCatalog.names.count where failed & (UInt32(1) << UInt32(bit)) != 0 {
            object[CheckCatalog.names[bit]] = d < details.count ? details[d] : ""
            d += 1
        }
        return CanonicalJSON.object(object)
    }

    /// Unpacks a stored row. Returns nil when the row is inconsistent (scores not one per check
    /// judged, failures outside the checks judged, bits the catalogue does not know, reasons that
    /// are not a JSON object of strings).
    public init?(recordId: Int64, ran: Int64, failed: Int64, scores blob: Data, details json: String?) {
        guard ran >= 0, ran < (Int64(1) << Int64(CheckCatalog.names.count)), failed >= 0, failed & ~ran == 0 else { return nil }
        self.recordId = recordId
        self.ran = UInt32(ran)
        self.failed = UInt32(failed)
        guard blob.count == self.ran.nonzeroBitCount * 8 else { return nil }
        scores = blob.withUnsafeBytes { raw in
            (0..<(raw.count / 8)).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
        }
        if self.failed != 0 {
            guard let json, let object = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: String] else { return nil }
            for bit in 0..<CheckCatalog.names.count where self.failed & (UInt32(1) << UInt32(bit)) != 0 {
                details.append(object[CheckCatalog.names[bit]] ?? "")
            }
        }
    }
}
