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
    /// Every judged record's verdicts, one packed row per record in id order (as stored).
    public var packed: [PackedVerdicts]
    /// The verdicts one by one (record by record, each in catalogue order).
    public var verdicts: [CheckVerdict] { packed.flatMap(\.verdicts) }
    /// How many verdicts there are.
    public var verdictCount: Int { packed.reduce(0) { $0 + $1.count } }
    /// Exact-duplicate and conflicting-answer groups (and near-duplicate groups when computed).
    public var groups: [DuplicateGroup]
    /// Recurring sentences, most frequent first: the text and in how many answers it occurs.
    public var boilerplate: [(sentence: String, records: Int)]
    /// MinHash signatures computed in this run (those not given as already stored), to store.
    public var newSignatures: [(recordId: Int64, signature: [UInt32])] = []
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

    /// - Parameter signatures: MinHash signatures already stored under
    ///   `c.nearDuplicates.signatureKey`, by record id; the others are computed and returned in
    ///   `newSignatures`.
    public static func run(_ records: [CheckInput], configuration c: CheckConfiguration,
                           judged: Set<Int64>? = nil, tokens: TokenCounter? = nil,
                           signatures: [Int64: [UInt32]] = [:]) -> CheckOutcome {
        let hasher = c.runs("near_duplicate") ? MinHasher(c.nearDuplicates) : nil
        var analyses = analyseAll(records, c, tokens: tokens, hasher: hasher, stored: signatures)
        let order = records.indices.sorted { records[$0].id < records[$1].id }
        let exact = exactDuplicates(records, analyses, order: order, basis: ExactDuplicates.Basis(rawValue: c.exactDuplicates.on) ?? .pair)
        let near = hasher.map { nearDuplicates(records, analyses, order: order, duplicateOf: exact.duplicateOf, hasher: $0, stored: signatures) }
        let recurring = recurringSentences(records, analyses, c.boilerplate)
        let verdicts = collectVerdicts(records, &analyses, order: order, judged: judged, c, exact: exact, near: near, recurring: recurring)
        return CheckOutcome(packed: verdicts, groups: exact.groups + (near?.groups ?? []), boilerplate: recurring.list,
                            newSignatures: near?.newSignatures ?? [])
    }

    // MARK: Corpus-wide findings

    /// Exact duplicates and conflicting answers, settled in id order.
    struct ExactFindings {
        /// Exact-duplicate groups, then conflicting-answer groups.
        var groups: [DuplicateGroup] = []
        /// By index in the records: the id of the earlier record it copies.
        var duplicateOf: [Int: Int64] = [:]
        /// By index in the records: the first record asking the same question, and how many
        /// different answers the copies of the question have.
        var conflict: [Int: (first: Int64, answers: Int)] = [:]
    }

    static func exactDuplicates(_ records: [CheckInput], _ analyses: [Analysis], order: [Int],
                                basis: ExactDuplicates.Basis) -> ExactFindings {
        var found = ExactFindings()
        var byKey: [String: [Int]] = [:], keyOrder: [String] = []
        var byPrompt: [String: [Int]] = [:], promptOrder: [String] = []
        for i in order {
            let key = basis == .pair ? analyses[i].pairKey : analyses[i].promptKey
            if byKey[key] == nil { keyOrder.append(key) }
            byKey[key, default: []].append(i)
            if byPrompt[analyses[i].promptKey] == nil { promptOrder.append(analyses[i].promptKey) }
            byPrompt[analyses[i].promptKey, default: []].append(i)
        }
        for key in keyOrder {
            guard let members = byKey[key], members.count > 1 else { continue }
            let rep = records[members[0]].id
            for m in members.dropFirst() { found.duplicateOf[m] = rep }
            found.groups.append(DuplicateGroup(kind: .exact, representative: rep, members: members.map { records[$0].id }))
        }
        for key in promptOrder {
            guard let members = byPrompt[key], members.count > 1 else { continue }
            // Distinct answers among the copies of this prompt (by the whole conversation's key).
            var answers: [String] = []
            for m in members where !answers.contains(analyses[m].pairKey) { answers.append(analyses[m].pairKey) }
            guard answers.count > 1 else { continue }
            for m in members { found.conflict[m] = (records[members[0]].id, answers.count) }
            found.groups.append(DuplicateGroup(kind: .conflict, representative: records[members[0]].id, members: members.map { records[$0].id }))
        }
        return found
    }

    /// Near duplicates and borderline pairs, with the signatures computed in this run.
    struct NearFindings {
        var result = NearDuplicateFinder.Result()
        /// Near-duplicate groups by representative, then borderline pairs by later record.
        var groups: [DuplicateGroup] = []
        var newSignatures: [(recordId: Int64, signature: [UInt32])] = []
    }

    /// Near duplicates among the records that are not exact copies of an earlier one.
    static func nearDuplicates(_ records: [CheckInput], _ analyses: [Analysis], order: [Int], duplicateOf: [Int: Int64],
                               hasher: MinHasher, stored: [Int64: [UInt32]]) -> NearFindings {
        var found = NearFindings()
        let P = hasher.settings.permutations
        var ids: [Int64] = [], flat: [UInt32] = []
        for i in order {
            guard let signature = analyses[i].signature ?? stored[records[i].id], signature.count == P else { continue }
            if analyses[i].signature != nil { found.newSignatures.append((records[i].id, signature)) }
            guard duplicateOf[i] == nil else { continue }
            ids.append(records[i].id)
            flat += signature
        }
        let near = NearDuplicateFinder.find(ids: ids, signatures: flat, settings: hasher.settings)
        found.result = near
        var members: [Int64: [Int64]] = [:]
        for (id, match) in near.duplicates { members[match.other, default: []].append(id) }
        for rep in members.keys.sorted() {
            let later = (members[rep] ?? []).sorted()
            var similarity = [rep: 1.0]
            for m in later { similarity[m] = near.duplicates[m]?.similarity }
            found.groups.append(DuplicateGroup(kind: .near, representative: rep, members: [rep] + later, similarity: similarity))
        }
        for id in near.borderline.keys.sorted() {
            guard let match = near.borderline[id] else { continue }
            found.groups.append(DuplicateGroup(kind: .borderline, representative: match.other, members: [id], similarity: [id: match.similarity]))
        }
        return found
    }

    /// Sentences recurring in many answers (the corpus's boilerplate).
    struct RecurringSentences {
        /// By sentence hash: in how many answers it occurs, and the index of the first record.
        var recurring: [UInt64: (records: Int, first: Int)]
        /// By sentence hash: its normalized text.
        var text: [UInt64: String]
        /// Most frequent first.
        var list: [(sentence: String, records: Int)]
    }

    /// Boilerplate: sentences recurring in many answers, counted once per answer. Only hashes
    /// are kept per record; the text of a recurring sentence is read again from its first record.
    static func recurringSentences(_ records: [CheckInput], _ analyses: [Analysis],
                                   _ settings: CheckConfiguration.Boilerplate) -> RecurringSentences {
        var sentenceRecords: [UInt64: (records: Int, first: Int)] = [:]
        for (i, a) in analyses.enumerated() {
            for s in a.sentences {
                if let seen = sentenceRecords[s.hash] { sentenceRecords[s.hash] = (seen.records + 1, seen.first) } else { sentenceRecords[s.hash] = (1, i) }
            }
        }
        let needed = max(settings.minRecords, Int((settings.minShare * Double(records.count)).rounded(.up)))
        let recurring = sentenceRecords.filter { $0.value.records >= needed }
        var sentenceText: [UInt64: String] = [:]
        for (hash, found) in recurring {
            let answer = records[found.first].conversation.messages.filter { $0.role == .assistant }.map { Normalizer.comparable($0.content) }.joined(separator: " ")
            for s in sentences(Array(answer.unicodeScalars), minChars: settings.minSentenceChars) where s.hash == hash {
                var view = String.UnicodeScalarView()
                view.append(contentsOf: s.text)
                sentenceText[hash] = String(view)
            }
        }
        let list = recurring.map { (sentence: sentenceText[$0.key] ?? "", records: $0.value.records) }
            .sorted { ($0.records, $1.sentence) > ($1.records, $0.sentence) }
        return RecurringSentences(recurring: recurring, text: sentenceText, list: list)
    }

    /// Every verdict of the judged records in id order: each record's own, then its corpus-wide
    /// ones (exact duplicate, near duplicate, conflicting answer, boilerplate), packed per record.
    /// The per-record verdicts are moved out of `analyses`, not copied.
    static func collectVerdicts(_ records: [CheckInput], _ analyses: inout [Analysis], order: [Int], judged: Set<Int64>?,
                                _ c: CheckConfiguration, exact: ExactFindings, near: NearFindings?,
                                recurring: RecurringSentences) -> [PackedVerdicts] {
        var out: [PackedVerdicts] = []
        out.reserveCapacity(judged?.count ?? records.count)
        for i in order where judged?.contains(records[i].id) ?? true {
            let id = records[i].id, a = analyses[i]
            var verdicts = VerdictList(packed: a.packed)
            analyses[i].packed = PackedVerdicts(recordId: id)
            defer { out.append(verdicts.packed) }
            if c.runs("exact_duplicate") {
                if let rep = exact.duplicateOf[i] {
                    verdicts.append(CheckVerdict(recordId: id, name: "exact_duplicate", passed: false, score: nil, detail: "duplicate of record \(rep)"))
                } else {
                    verdicts.append(CheckVerdict(recordId: id, name: "exact_duplicate", passed: true, score: nil, detail: ""))
                }
            }
            if let near = near?.result {
                if let match = near.duplicates[id] {
                    verdicts.append(CheckVerdict(recordId: id, name: "near_duplicate", passed: false, score: match.similarity,
                                                 detail: "near duplicate of record \(match.other) (similarity \(String(format: "%.2f", match.similarity)))"))
                } else {
                    verdicts.append(CheckVerdict(recordId: id, name: "near_duplicate", passed: true, score: near.borderline[id]?.similarity, detail: ""))
                }
            }
            if c.runs("conflicting_answer") {
                if let found = exact.conflict[i] {
                    let detail = found.first == id ? "same question as later records with other answers (\(found.answers) different answers)"
                        : "same question as record \(found.first) with another answer (\(found.answers) different answers)"
                    verdicts.append(CheckVerdict(recordId: id, name: "conflicting_answer", passed: false, score: Double(found.answers), detail: detail))
                } else {
                    verdicts.append(CheckVerdict(recordId: id, name: "conflicting_answer", passed: true, score: nil, detail: ""))
                }
            }
            if c.runs("boilerplate") {
                var chars = 0, first: String?
                for s in a.sentences where recurring.recurring[s.hash] != nil {
                    chars += s.length
                    if first == nil { first = recurring.text[s.hash] }
                }
                let share = a.answerLength == 0 ? 0 : Double(chars) / Double(a.answerLength)
                let passed = share <= c.boilerplate.maxAnswerShare
                let detail = first.map { "\(Int((share * 100).rounded()))% recurring sentences, e.g. \"\($0)\"" } ?? ""
                verdicts.append(CheckVerdict(recordId: id, name: "boilerplate", passed: passed, score: share, detail: detail))
            }
        }
        return out
    }

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
        var pairKey = ""
        var promptKey = ""
        var answerLength = 0
        /// Distinct sentences of the answer long enough to be boilerplate.
        var sentences: [Sentence] = []
        /// Verdicts that need nothing but the record itself.
        var packed = PackedVerdicts(recordId: 0)
        /// The MinHash signature, when computed here (not stored already and there is text to compare).
        var signature: [UInt32]?
    }

    /// Analyses every record, split over the cores in contiguous chunks; the result does not
    /// depend on the number of cores.
    static func analyseAll(_ records: [CheckInput], _ c: CheckConfiguration, tokens: TokenCounter?,
                           hasher: MinHasher? = nil, stored: [Int64: [UInt32]] = [:]) -> [Analysis] {
        let results = AnalysisBuffer(count: records.count)
        let parts = min(records.count, max(1, ProcessInfo.processInfo.activeProcessorCount) * 8)
        guard parts > 0 else { return [] }
        let chunk = (records.count + parts - 1) / parts
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            let start = p * chunk, end = min(records.count, start + chunk)
            guard start < end else { return }
            for i in start..<end {
                let sign = stored[records[i].id] == nil ? hasher : nil
                results.set(i, analyse(records[i], c, tokens: tokens, hasher: sign))
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

    static func analyse(_ record: CheckInput, _ c: CheckConfiguration, tokens: TokenCounter?, hasher: MinHasher? = nil) -> Analysis {
        var a = Analysis()
        let messages = record.conversation.messages
        var t = Texts(messages, keepTurns: hasher != nil)
        // A preference pair is the same example as another only with the same rejected answer too:
        // several pairs per prompt (or per chosen answer) are ordinary preference data.
        if let rejected = record.conversation.rejected {
            t.pairText += "rejected\u{1F}\(Normalizer.comparable(rejected.content))\u{1E}"
        }
        if let hasher { a.signature = hasher.signature(of: hasher.comparableScalars(normalizedTurns: t.turns)) }
        a.pairKey = ContentHash.sha256Hex(Array(t.pairText.utf8))
        a.promptKey = ContentHash.sha256Hex(Array(t.promptText.utf8))
        let p = Array(t.prompt.unicodeScalars), q = Array(t.answer.unicodeScalars)
        a.answerLength = q.count

        var list = VerdictList(recordId: record.id)
        lengthChecks(&list, p: p, q: q, t, c, tokens: tokens)
        shapeChecks(&list, p: p, q: q, t, c)
        contentChecks(&list, p: p, q: q, t, record.conversation.allMessages, c)
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
