import CorpusDB
import Foundation

/// The configuration of `corpus check`: which checks run, with which thresholds. Its hash (SHA-256
/// of the canonical JSON: sorted keys, no spaces) names the verdicts it produced, so an auditor can
/// say which configuration a snapshot used.
public struct CheckConfiguration: Codable, Sendable, Equatable {
    public struct ExactDuplicates: Codable, Sendable, Equatable {
        /// "pair": the whole conversation must be equal; "prompt": only what is asked.
        public var on = "pair"
    }
    public struct Length: Codable, Sendable, Equatable {
        public var minPromptChars = 2
        public var maxPromptChars = 4000
        public var minAnswerChars = 2
        public var maxAnswerChars = 8000
        enum CodingKeys: String, CodingKey {
            case minPromptChars = "min_prompt_chars", maxPromptChars = "max_prompt_chars"
            case minAnswerChars = "min_answer_chars", maxAnswerChars = "max_answer_chars"
        }
    }
    public struct PIIOptions: Codable, Sendable, Equatable {
        /// Kinds looked for: resident_id, mobile, email, bank_card.
        public var kinds = PII.Kind.allCases.map(\.rawValue)
    }

    public var exactDuplicates = ExactDuplicates()
    public var length = Length()
    public var pii = PIIOptions()

    enum CodingKeys: String, CodingKey {
        case exactDuplicates = "exact_duplicates", length, pii
    }

    public init() {}

    /// Canonical JSON: sorted keys, no whitespace.
    public func canonicalJSON() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// Hex SHA-256 of `canonicalJSON()`.
    public func hash() throws -> String {
        ContentHash.sha256Hex(Array(try canonicalJSON().utf8))
    }

    /// The defaults as a file to edit (`corpus check --print-config`).
    public func prettyJSON() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// Reads a configuration file; keys left out keep their defaults.
    /// - Throws: `CorpusDBError(.invalid)` naming the file and the problem.
    public static func load(path: String) throws -> CheckConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CorpusDBError(.invalid, "\(path): cannot read the check configuration")
        }
        do {
            var config = CheckConfiguration()
            let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
            let known = ["exact_duplicates", "length", "pii"]
            if let unknown = object.keys.first(where: { !known.contains($0) }) {
                throw CorpusDBError(.invalid, "\(path): unknown check '\(unknown)'; known: \(known.joined(separator: ", ")) (corpus check --print-config prints them all)")
            }
            // Each section given is laid over the defaults, so a file can name only what it changes.
            let decoder = JSONDecoder()
            let defaults = try JSONSerialization.jsonObject(with: JSONEncoder().encode(config)) as? [String: Any] ?? [:]
            func section<T: Decodable>(_ key: String, _ type: T.Type) throws -> T? {
                guard let value = object[key] else { return nil }
                guard let given = value as? [String: Any] else {
                    throw CorpusDBError(.invalid, "\(path): '\(key)' must be an object")
                }
                let base = defaults[key] as? [String: Any] ?? [:]
                if let unknown = given.keys.sorted().first(where: { base[$0] == nil }) {
                    throw CorpusDBError(.invalid, "\(path): '\(key)' has no setting '\(unknown)'; known: \(base.keys.sorted().joined(separator: ", "))")
                }
                let merged = base.merging(given) { _, new in new }
                return try decoder.decode(T.self, from: JSONSerialization.data(withJSONObject: merged))
            }
            if let e = try section("exact_duplicates", ExactDuplicates.self) { config.exactDuplicates = e }
            if let l = try section("length", Length.self) { config.length = l }
            if let p = try section("pii", PIIOptions.self) { config.pii = p }
            guard ExactDuplicatesBasis(rawValue: config.exactDuplicates.on) != nil else {
                throw CorpusDBError(.invalid, "\(path): exact_duplicates.on is '\(config.exactDuplicates.on)'; use pair or prompt")
            }
            return config
        } catch let error as CorpusDBError {
            throw error
        } catch {
            throw CorpusDBError(.invalid, "\(path): not a check configuration (\(error)); start from `corpus check --print-config`")
        }
    }
}

typealias ExactDuplicatesBasis = ExactDuplicates.Basis

/// Runs the configured checks over records (in id order, so the first ingested copy of a
/// duplicate is the one kept).
public enum CheckRunner {
    public static func verdicts(_ records: [(id: Int64, conversation: Conversation)], configuration c: CheckConfiguration) -> [CheckVerdict] {
        var out: [CheckVerdict] = []
        let basis = ExactDuplicates.Basis(rawValue: c.exactDuplicates.on) ?? .pair
        var representative: [String: Int64] = [:]
        let kinds = Set(c.pii.kinds)
        for (id, conversation) in records {
            let key = ExactDuplicates.key(conversation, on: basis)
            if let first = representative[key] {
                out.append(CheckVerdict(recordId: id, name: "exact_duplicate", passed: false, score: nil, detail: "duplicate of record \(first)"))
            } else {
                representative[key] = id
                out.append(CheckVerdict(recordId: id, name: "exact_duplicate", passed: true, score: nil, detail: ""))
            }
            let prompt = conversation.messages.filter { $0.role == .user }.map(\.content).joined(separator: "\n")
            let answer = conversation.messages.filter { $0.role == .assistant }.map(\.content).joined(separator: "\n")
            let p = Normalizer.comparable(prompt).count, a = Normalizer.comparable(answer).count
            out.append(CheckVerdict(recordId: id, name: "prompt_length", passed: p >= c.length.minPromptChars && p <= c.length.maxPromptChars,
                               score: Double(p), detail: p < c.length.minPromptChars ? "prompt shorter than \(c.length.minPromptChars) characters" : p > c.length.maxPromptChars ? "prompt longer than \(c.length.maxPromptChars) characters" : ""))
            out.append(CheckVerdict(recordId: id, name: "answer_length", passed: a >= c.length.minAnswerChars && a <= c.length.maxAnswerChars,
                               score: Double(a), detail: a < c.length.minAnswerChars ? "answer shorter than \(c.length.minAnswerChars) characters" : a > c.length.maxAnswerChars ? "answer longer than \(c.length.maxAnswerChars) characters" : ""))
            let findings = conversation.messages.flatMap { PII.findings(in: $0.content) }.filter { kinds.contains($0.kind.rawValue) }
            var counts: [String: Int] = [:]
            for f in findings { counts[f.kind.rawValue, default: 0] += 1 }
            out.append(CheckVerdict(recordId: id, name: "pii", passed: findings.isEmpty, score: Double(findings.count),
                               detail: counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")))
        }
        return out
    }
}
