import CorpusDB
import Foundation

/// The configuration of `corpus check`: which checks run, with which thresholds. Its hash (SHA-256
/// of the canonical JSON: sorted keys, no spaces) names the verdicts it produced, so an auditor can
/// say which configuration a snapshot used. Every default is explained in docs/QUALITY.md.
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
        /// Token bounds, checked only when `corpus check --model` gives a tokenizer; 0 = no bound.
        public var maxPromptTokens = 0
        public var maxAnswerTokens = 0
        enum CodingKeys: String, CodingKey {
            case minPromptChars = "min_prompt_chars", maxPromptChars = "max_prompt_chars"
            case minAnswerChars = "min_answer_chars", maxAnswerChars = "max_answer_chars"
            case maxPromptTokens = "max_prompt_tokens", maxAnswerTokens = "max_answer_tokens"
        }
    }
    public struct Repetition: Codable, Sendable, Equatable {
        /// Texts shorter than this (characters) are not judged.
        public var minChars = 10
        /// `char_repetition` fails above this share of the most frequent letter or digit.
        public var maxDominantCharacterShare = 0.5
        /// n of the character n-grams of `ngram_repetition`.
        public var ngram = 10
        /// `ngram_repetition` fails above this share of repeated n-grams.
        public var maxNgramRepetition = 0.5
        enum CodingKeys: String, CodingKey {
            case minChars = "min_chars", maxDominantCharacterShare = "max_dominant_character_share"
            case ngram, maxNgramRepetition = "max_ngram_repetition"
        }
    }
    public struct SpecialCharacters: Codable, Sendable, Equatable {
        public var minChars = 10
        /// Fails above this share of special characters among non-space characters.
        public var maxShare = 0.25
        enum CodingKeys: String, CodingKey { case minChars = "min_chars", maxShare = "max_share" }
    }
    public struct Filler: Codable, Sendable, Equatable {
        /// Answers opening with one of these fail `filler_opening`.
        public var openings = ["嗯", "呃", "额，", "唔", "我觉得可能是", "我觉得吧", "我也不太确定", "可能吧", "Um,", "Umm", "Uh,", "Hmm", "I think maybe", "I'm not sure, but"]
    }
    public struct Boilerplate: Codable, Sendable, Equatable {
        /// Sentences shorter than this (characters) are never boilerplate.
        public var minSentenceChars = 8
        /// A sentence is boilerplate when it recurs in at least this many answers...
        public var minRecords = 20
        /// ...and in at least this share of the answers checked.
        public var minShare = 0.002
        /// `boilerplate` fails when recurring sentences make up more than this share of an answer.
        public var maxAnswerShare = 0.6
        enum CodingKeys: String, CodingKey {
            case minSentenceChars = "min_sentence_chars", minRecords = "min_records", minShare = "min_share"
            case maxAnswerShare = "max_answer_share"
        }
    }
    public struct Echo: Codable, Sendable, Equatable {
        /// `answer_echoes_prompt` fails when at least this share of the answer's bigrams are the prompt's.
        public var maxShare = 0.9
        /// Answers shorter than this (characters) are not judged: in dialogue a short reply often
        /// takes up the question's words ("五个月？", "是还在。").
        public var minAnswerChars = 10
        /// ...and only when the answer is at least this long relative to the prompt: an answer that
        /// extracts a short part of a long prompt (a summary, a label) is doing its job.
        public var minLengthRatio = 0.5
        enum CodingKeys: String, CodingKey {
            case maxShare = "max_share", minAnswerChars = "min_answer_chars", minLengthRatio = "min_length_ratio"
        }
    }
    public struct Language: Codable, Sendable, Equatable {
        /// A prompt containing one of these asks for another language on purpose; not a mismatch.
        public var exemptPromptWords = ["翻译", "译成", "英文", "英语", "中文", "translate", "Translate", "English", "Chinese"]
        enum CodingKeys: String, CodingKey { case exemptPromptWords = "exempt_prompt_words" }
    }
    public struct PIIOptions: Codable, Sendable, Equatable {
        /// Kinds looked for: resident_id, mobile, email, bank_card.
        public var kinds = PII.Kind.allCases.map(\.rawValue)
    }

    /// Checks that are reported but do not leave a record out of a snapshot.
    public var advisory = ["conflicting_answer", "pii"]
    /// Checks not run at all.
    public var skip: [String] = []
    public var exactDuplicates = ExactDuplicates()
    public var nearDuplicates = NearDuplicateSettings()
    public var length = Length()
    public var repetition = Repetition()
    public var specialCharacters = SpecialCharacters()
    public var filler = Filler()
    public var boilerplate = Boilerplate()
    public var echo = Echo()
    public var language = Language()
    public var pii = PIIOptions()

    enum CodingKeys: String, CodingKey {
        case advisory, skip, exactDuplicates = "exact_duplicates", nearDuplicates = "near_duplicates", length, repetition
        case specialCharacters = "special_characters", filler, boilerplate, echo, language, pii
    }

    /// Every check `corpus check` can run, in the order they are reported (the store's catalogue,
    /// whose order is also each check's bit in the packed verdicts).
    public static let checkNames = CheckCatalog.names

    public init() {}

    /// Whether a check runs under this configuration.
    public func runs(_ check: String) -> Bool { !skip.contains(check) }

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

    /// Reads a configuration file; sections and settings left out keep their defaults.
    /// - Throws: `QualityError` naming the file and the problem.
    public static func load(path: String) throws -> CheckConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw QualityError(.unreadableFile, "\(path): cannot read the check configuration")
        }
        return try load(data: data, path: path)
    }

    /// Reads a configuration file's bytes; `path` names it in errors.
    /// - Throws: `QualityError` naming the file and the problem.
    public static func load(data: Data, path: String) throws -> CheckConfiguration {
        let config: CheckConfiguration
        do {
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw QualityError(.invalidConfiguration, "\(path): a check configuration is a JSON object; start from `corpus check --print-config`")
            }
            let defaults = try JSONSerialization.jsonObject(with: JSONEncoder().encode(CheckConfiguration())) as? [String: Any] ?? [:]
            // Each section given is laid over its defaults, so a file can name only what it changes.
            var merged = defaults
            for key in object.keys.sorted() {
                guard let base = defaults[key] else {
                    throw QualityError(.invalidConfiguration, "\(path): unknown section '\(key)'; known: \(defaults.keys.sorted().joined(separator: ", ")) (corpus check --print-config prints them all)")
                }
                guard let section = base as? [String: Any] else {
                    merged[key] = object[key]
                    continue
                }
                guard let given = object[key] as? [String: Any] else {
                    throw QualityError(.invalidConfiguration, "\(path): '\(key)' must be an object")
                }
                if let unknown = given.keys.sorted().first(where: { section[$0] == nil }) {
                    throw QualityError(.invalidConfiguration, "\(path): '\(key)' has no setting '\(unknown)'; known: \(section.keys.sorted().joined(separator: ", "))")
                }
                merged[key] = section.merging(given) { _, new in new }
            }
            config = try JSONDecoder().decode(CheckConfiguration.self, from: JSONSerialization.data(withJSONObject: merged))
        } catch let error as QualityError {
            throw error
        } catch {
            throw QualityError(.invalidConfiguration, "\(path): not a check configuration (\(error)); start from `corpus check --print-config`")
        }
        try config.validate(path: path)
        return config
    }

    /// Refuses settings no check can work with, naming the setting.
    func validate(path: String) throws {
        guard Quality.ExactDuplicates.Basis(rawValue: exactDuplicates.on) != nil else {
            throw QualityError(.invalidConfiguration, "\(path): exact_duplicates.on is '\(exactDuplicates.on)'; use pair or prompt")
        }
        for name in advisory + skip where !Self.checkNames.contains(name) {
            throw QualityError(.invalidConfiguration, "\(path): no check named '\(name)' (in advisory or skip); checks: \(Self.checkNames.joined(separator: ", "))")
        }
        if let unknown = pii.kinds.first(where: { PII.Kind(rawValue: $0) == nil }) {
            throw QualityError(.invalidConfiguration, "\(path): pii.kinds has '\(unknown)'; known: \(PII.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        try nearDuplicates.validate(path: path)
        guard repetition.ngram >= 1 else { throw QualityError(.invalidConfiguration, "\(path): repetition.ngram must be at least 1") }
        guard boilerplate.minRecords >= 2 else { throw QualityError(.invalidConfiguration, "\(path): boilerplate.min_records must be at least 2") }
        try validateNumbers(path: path)
    }

    /// Refuses counts below 0 and shares outside [0, 1] (NaN and infinities included): the checks
    /// turn some of them into integers (`boilerplate.min_share` times the number of records), which
    /// would trap on a value such as 1e300.
    func validateNumbers(path: String) throws {
        func count(_ value: Int, _ key: String) throws {
            guard value >= 0 else {
                throw QualityError(.invalidConfiguration, "\(path): \(key) is \(value); it must be a whole number of at least 0")
            }
        }
        func share(_ value: Double, _ key: String, in range: ClosedRange<Double> = 0...1, _ allowed: String = "from 0 to 1") throws {
            guard value.isFinite, range.contains(value) else {
                throw QualityError(.invalidConfiguration, "\(path): \(key) is \(value); it must be a number \(allowed)")
            }
        }
        try count(length.minPromptChars, "length.min_prompt_chars")
        try count(length.maxPromptChars, "length.max_prompt_chars")
        try count(length.minAnswerChars, "length.min_answer_chars")
        try count(length.maxAnswerChars, "length.max_answer_chars")
        try count(length.maxPromptTokens, "length.max_prompt_tokens")
        try count(length.maxAnswerTokens, "length.max_answer_tokens")
        try count(repetition.minChars, "repetition.min_chars")
        try share(repetition.maxDominantCharacterShare, "repetition.max_dominant_character_share")
        try share(repetition.maxNgramRepetition, "repetition.max_ngram_repetition")
        try count(specialCharacters.minChars, "special_characters.min_chars")
        try share(specialCharacters.maxShare, "special_characters.max_share")
        try count(boilerplate.minSentenceChars, "boilerplate.min_sentence_chars")
        try share(boilerplate.minShare, "boilerplate.min_share")
        try share(boilerplate.maxAnswerShare, "boilerplate.max_answer_share")
        try share(echo.maxShare, "echo.max_share")
        try count(echo.minAnswerChars, "echo.min_answer_chars")
        // A length ratio, not a share: an answer may be asked to be several times the prompt.
        try share(echo.minLengthRatio, "echo.min_length_ratio", in: 0...100, "from 0 to 100")
    }
}
