import CorpusDB
import Foundation

/// The coverage report (`corpus report`): what the corpus holds, what the checks found and
/// whether the tags the user needs are covered. Built from the store under one check
/// configuration; printed as text, JSON (these field names) or a self-contained HTML page.
public struct Report: Codable, Sendable {
    public struct SourceCount: Codable, Sendable {
        public var id: Int64
        public var path: String
        public var records: Int
        public var kept: Int
    }
    public struct Example: Codable, Sendable {
        public var record: Int64
        public var detail: String
        public var prompt: String
        public var answer: String
    }
    public struct CheckCount: Codable, Sendable {
        public var checked: Int
        public var failed: Int
        /// Reported only; never a reason to leave a record out.
        public var advisory: Bool
        public var examples: [Example]
    }
    /// Counts of records per length bucket: `counts[i]` have a length in `edges[i] ..< edges[i+1]`
    /// (the last bucket is open-ended).
    public struct Histogram: Codable, Sendable, Equatable {
        public var edges: [Int]
        public var counts: [Int]
    }
    public struct Recurring: Codable, Sendable {
        public var sentence: String
        public var records: Int
    }
    /// One expected tag value of a taxonomy: how many records carry it before and after the checks.
    public struct Coverage: Codable, Sendable, Equatable {
        public var key: String
        public var value: String
        public var minimum: Int
        public var before: Int
        public var after: Int
        /// "covered" (at least the minimum), "thin" (some, fewer than the minimum) or "missing".
        public var statusBefore: String
        public var status: String
        enum CodingKeys: String, CodingKey {
            case key, value, minimum, before, after, statusBefore = "status_before", status
        }
    }

    public var configHash: String?
    /// Records in scope (after `--tag`), withdrawn ones left out.
    public var records: Int
    /// Records that pass every check that is not advisory: what a snapshot would take.
    public var kept: Int
    public var exactDuplicates: Int
    public var nearDuplicates: Int
    public var conflictingAnswers: Int
    public var sources: [SourceCount]
    public var tags: [String: [String: Int]]
    public var checks: [String: CheckCount]
    public var pii: [String: Int]
    public var lengths: [String: Histogram]
    public var boilerplate: [Recurring]
    public var taxonomy: [Coverage]?

    enum CodingKeys: String, CodingKey {
        case configHash = "config_hash", records, kept, exactDuplicates = "exact_duplicates", nearDuplicates = "near_duplicates"
        case conflictingAnswers = "conflicting_answers", sources, tags, checks, pii, lengths, boilerplate, taxonomy
    }

    /// Bucket edges of the length histograms, in characters or tokens.
    public static let lengthEdges = [0, 10, 20, 50, 100, 200, 500, 1000, 2000, 4000]

    /// Builds the report from the store.
    /// - Parameters:
    ///   - configHash: the check configuration whose verdicts count; nil when none has run
    ///     (then only counts, tags and sources are filled).
    ///   - tags: only records with all these tags.
    ///   - taxonomy: expected values per tag key with their minimum counts.
    ///   - examples: how many failing records to show per check.
    public static func build(store: CorpusStore, configHash: String?, tags filters: [TagFilter] = [],
                             taxonomy: Taxonomy? = nil, examples: Int = 3) throws -> Report {
        var advisory = Set(["pii"])
        if let configHash, let json = try store.checkConfiguration(hash: configHash),
           let object = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any],
           let list = object["advisory"] as? [String] {
            advisory = Set(list)
        }
        var report = Report(configHash: configHash, records: 0, kept: 0, exactDuplicates: 0, nearDuplicates: 0, conflictingAnswers: 0,
                            sources: [], tags: [:], checks: [:], pii: [:], lengths: [:], boilerplate: [], taxonomy: nil)
        var perSource: [Int64: (records: Int, kept: Int)] = [:]
        var keptTags: [String: [String: Int]] = [:]
        var exampleIds: [String: [(Int64, String)]] = [:]
        var buckets: [String: [Int]] = [:]
        try store.forEachRecordFacts(configHash: configHash) { facts in
            guard !facts.withdrawn, filters.allSatisfy({ facts.tags[$0.key] == $0.value }) else { return }
            report.records += 1
            var kept = true
            for v in facts.verdicts {
                var count = report.checks[v.name] ?? CheckCount(checked: 0, failed: 0, advisory: advisory.contains(v.name), examples: [])
                count.checked += 1
                if !v.passed {
                    count.failed += 1
                    if !count.advisory { kept = false }
                    if exampleIds[v.name, default: []].count < examples { exampleIds[v.name, default: []].append((facts.id, v.detail)) }
                    if v.name == "pii" {
                        // The detail reads "1 email, 2 mobile".
                        for part in v.detail.split(separator: ",") {
                            let words = part.split(separator: " ")
                            if words.count == 2, let n = Int(words[0]) { report.pii[String(words[1]), default: 0] += n }
                        }
                    }
                }
                report.checks[v.name] = count
                let histogram: String? = switch v.name {
                case "prompt_length": "prompt_chars"
                case "answer_length": "answer_chars"
                case "prompt_tokens": "prompt_tokens"
                case "answer_tokens": "answer_tokens"
                default: nil
                }
                if let histogram, let score = v.score {
                    let bucket = (lengthEdges.lastIndex { Double($0) <= score }) ?? 0
                    buckets[histogram, default: Array(repeating: 0, count: lengthEdges.count)][bucket] += 1
                }
            }
            if facts.verdicts.isEmpty && configHash != nil { kept = false }     // not checked
            if kept { report.kept += 1 }
            perSource[facts.sourceId, default: (0, 0)].records += 1
            if kept { perSource[facts.sourceId, default: (0, 0)].kept += 1 }
            for (k, v) in facts.tags {
                report.tags[k, default: [:]][v, default: 0] += 1
                if kept { keptTags[k, default: [:]][v, default: 0] += 1 }
            }
        }
        report.exactDuplicates = report.checks["exact_duplicate"]?.failed ?? 0
        report.nearDuplicates = report.checks["near_duplicate"]?.failed ?? 0
        report.conflictingAnswers = report.checks["conflicting_answer"]?.failed ?? 0
        report.lengths = buckets.mapValues { Histogram(edges: lengthEdges, counts: $0) }
        for (name, ids) in exampleIds {
            for (id, detail) in ids {
                guard let record = try store.record(id: id), let conversation = try? record.decodedConversation() else { continue }
                let prompt = conversation.messages.filter { $0.role == .user }.map(\.content).joined(separator: "\n")
                let answer = conversation.messages.filter { $0.role == .assistant }.map(\.content).joined(separator: "\n")
                report.checks[name]?.examples.append(Example(record: id, detail: detail, prompt: excerpt(prompt), answer: excerpt(answer)))
            }
        }
        let sources = try store.allSources()
        report.sources = sources.compactMap { s in
            guard let id = s.id, let counts = perSource[id] else { return nil }
            return SourceCount(id: id, path: s.path, records: counts.records, kept: counts.kept)
        }
        if let configHash {
            report.boilerplate = try store.boilerplate(configHash: configHash, limit: 10).map { Recurring(sentence: $0.sentence, records: $0.records) }
        }
        if let taxonomy {
            report.taxonomy = taxonomy.expected.map { e in
                let before = report.tags[e.key]?[e.value] ?? 0, after = keptTags[e.key]?[e.value] ?? 0
                return Coverage(key: e.key, value: e.value, minimum: e.minimum, before: before, after: after,
                                statusBefore: Taxonomy.status(before, minimum: e.minimum), status: Taxonomy.status(after, minimum: e.minimum))
            }
        }
        return report
    }

    /// The first 160 characters of a text, with "…" when cut.
    static func excerpt(_ text: String) -> String {
        text.count <= 160 ? text : String(text.prefix(160)) + "…"
    }
}

/// The tag values a corpus is expected to cover, each with a minimum count (`--taxonomy FILE`):
/// a JSON object of tag keys, each an object of values and minimum counts, e.g.
/// `{"department": {"内科": 200, "外科": 200, "儿科": 100}}`.
public struct Taxonomy: Sendable, Equatable {
    public struct Expected: Sendable, Equatable {
        public var key: String
        public var value: String
        public var minimum: Int
    }
    /// In the file's key order sorted, values sorted.
    public var expected: [Expected]

    /// Reads a taxonomy file.
    /// - Throws: `QualityError` naming the file and what is wrong.
    public static func load(path: String) throws -> Taxonomy {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw QualityError(.unreadableFile, "\(path): cannot read the taxonomy file")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any], !object.isEmpty else {
            throw QualityError(.invalidTaxonomy, "\(path): a taxonomy is a JSON object of tag keys, e.g. {\"department\": {\"内科\": 200, \"外科\": 100}}")
        }
        var expected: [Expected] = []
        for key in object.keys.sorted() {
            guard let values = object[key] as? [String: Any], !values.isEmpty else {
                throw QualityError(.invalidTaxonomy, "\(path): '\(key)' must be an object of values and minimum counts, e.g. {\"内科\": 200}")
            }
            for value in values.keys.sorted() {
                guard let n = values[value] as? Int, n >= 1 else {
                    throw QualityError(.invalidTaxonomy, "\(path): \(key)=\(value) needs a minimum count of at least 1")
                }
                expected.append(Expected(key: key, value: value, minimum: n))
            }
        }
        return Taxonomy(expected: expected)
    }

    static func status(_ count: Int, minimum: Int) -> String {
        count >= minimum ? "covered" : count > 0 ? "thin" : "missing"
    }
}
