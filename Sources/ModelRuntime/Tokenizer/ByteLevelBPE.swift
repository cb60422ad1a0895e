import Foundation

/// Byte-level BPE as GPT-2 defined it and Hugging Face `tokenizers` implements it: text is
/// normalized (NFC for Qwen2), split by a pre-tokenizer, each piece's UTF-8 bytes are written with
/// GPT-2's byte-to-character table, and merges are applied lowest rank first. Added and special
/// tokens written in the text are matched first.
public final class BPETokenizer: @unchecked Sendable {
    // @unchecked: everything is immutable after init except the word cache, which is guarded by `lock`.
    public let tokens: [String]
    let ids: [String: Int]
    /// (left id, right id) → (rank, merged id).
    let merges: [Int64: (rank: Int, merged: Int)]
    /// Added tokens matched in the text, longest first, with their ids.
    let specials: [(text: [UInt8], id: Int)]
    /// First bytes of `specials`, to skip the search quickly.
    let specialStarts: Set<UInt8>
    /// Tokens that `decode(skipSpecial: true)` leaves out.
    public let specialIDs: Set<Int>
    public let preTokenizer: PreTokenizer
    /// NFC before splitting (Qwen2's tokenizer.json has this normalizer).
    public let normalizeNFC: Bool
    /// A piece that is itself in the vocabulary is taken whole (tokenizer.json `ignore_merges`, Llama 3).
    public let ignoreMerges: Bool
    /// Id of the token for each byte (its GPT-2 character).
    package let byteIDs: [Int]
    public let bosID: Int?
    public let eosID: Int?
    /// Keyed by the piece's UTF-8 bytes, not by `String`: Swift's `String` equality is canonical
    /// equivalence, under which U+037E (Greek question mark) equals ";" and U+F900 equals U+8C48,
    /// and a cache keyed by `String` gave such a piece the other one's tokens (found by fuzzing).
    private var cache: [[UInt8]: (ids: [Int], lengths: [Int])] = [:]
    private let lock = NSLock()

    /// How text is split before BPE. The regexes are hand-written in `PreTokenization`.
    public enum PreTokenizer: String, Sendable, CaseIterable {
        /// GPT-2's regex.
        case gpt2
        /// SmolLM2: every digit on its own, then GPT-2's regex ("smollm" in GGUF).
        case smollm
        /// Llama 3's regex: numbers in groups of up to three ("llama-bpe" in GGUF).
        case llama3
        /// Qwen2's regex: Llama 3's with every digit on its own ("qwen2" in GGUF).
        case qwen2

        /// The pre-tokenizer that GGUF's `tokenizer.ggml.pre` names.
        public init?(ggufName: String) {
            switch ggufName {
            case "smollm": self = .smollm
            case "gpt2", "default": self = .gpt2
            case "llama3", "llama-v3", "llama-bpe", "smaug-bpe", "falcon3", "dbrx": self = .llama3
            case "qwen2", "deepseek-r1-qwen": self = .qwen2
            default: return nil
            }
        }

        static let ggufNames = "smollm, gpt2, llama-bpe (llama3), qwen2"
    }

    /// The most tokens and merges a tokenizer may have (2^21 each; the largest real vocabularies
    /// hold about 260,000 tokens, Llama 3 has 280,000 merges): more is a damaged or hostile file,
    /// refused before any table is built for it.
    public static let maximumTokens = 1 << 21
    public static let maximumMerges = 1 << 21

    /// - Throws: `ModelError.invalidFile` when there are more than `maximumTokens` tokens or
    ///   `maximumMerges` merges (`path` names the file).
    static func checkSizes(tokens: Int, merges: Int, path: String) throws {
        guard tokens <= maximumTokens else {
            throw ModelError.invalidFile(path: path, detail: "\(tokens) tokens, more than the \(maximumTokens) any tokenizer has; the file is damaged")
        }
        guard merges <= maximumMerges else {
            throw ModelError.invalidFile(path: path, detail: "\(merges) merges, more than the \(maximumMerges) any tokenizer has; the file is damaged")
        }
    }

    /// - Throws: `ModelError.unsupported` for a merge naming a token that is not in the vocabulary,
    ///   `ModelError.invalidFile` for more than `maximumTokens` tokens or `maximumMerges` merges.
    public init(tokens: [String], merges: [String], specialTokenIDs: [Int], preTokenizer: PreTokenizer,
                bos: Int?, eos: Int?, unknown: Int? = nil, addedTokenIDs: [Int] = [],
                normalizeNFC: Bool = false, ignoreMerges: Bool = false) throws {
        try Self.checkSizes(tokens: tokens.count, merges: merges.count, path: "tokenizer")
        self.tokens = tokens
        var ids: [String: Int] = [:]
        ids.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() where ids[t] == nil && !t.isEmpty { ids[t] = i }
        self.ids = ids
        var table: [Int64: (rank: Int, merged: Int)] = [:]
        table.reserveCapacity(merges.count)
        for (rank, merge) in merges.enumerated() {
            let parts = merge.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let a = ids[String(parts[0])], let b = ids[String(parts[1])],
                  let merged = ids[String(parts[0]) + String(parts[1])] else {
                throw ModelError.unsupported("tokenizer merge \(rank) '\(merge)' names a token that is not in the vocabulary")
            }
            let key = Int64(a) << 32 | Int64(b)
            if table[key] == nil { table[key] = (rank, merged) }
        }
        self.merges = table
        // A byte whose character is not in the vocabulary (SmolLM2 lacks a few control bytes)
        // becomes the unknown token, as Hugging Face's BPE does without byte fallback.
        self.byteIDs = (0..<256).map { ids[String(Self.byteCharacters[$0])] ?? (unknown ?? 0) }
        let matched = Set(specialTokenIDs + addedTokenIDs).filter { $0 >= 0 && $0 < tokens.count && !tokens[$0].isEmpty }
        specials = matched.map { (Array(tokens[$0].utf8), $0) }.sorted { ($0.text.count, $1.id) > ($1.text.count, $0.id) }
        specialStarts = Set(specials.compactMap(\.text.first))
        specialIDs = Set(specialTokenIDs)
        self.preTokenizer = preTokenizer
        self.normalizeNFC = normalizeNFC
        self.ignoreMerges = ignoreMerges
        bosID = bos
        eosID = eos
    }

    /// The tokenizer stored in a GGUF file's `tokenizer.ggml.*` metadata.
    public static func fromGGUF(_ metadata: [String: GGUFValue]) throws -> BPETokenizer {
        guard metadata["tokenizer.ggml.model"]?.string == "gpt2" else {
            throw ModelError.unsupported("tokenizer.ggml.model \(metadata["tokenizer.ggml.model"]?.string ?? "(none)") is not supported; byte-level BPE (gpt2) is. SentencePiece vocabularies (Llama 2, Mistral) are not supported yet")
        }
        func count(_ key: String) -> Int { if case let .array(items)? = metadata[key] { return items.count } else { return 0 } }
        try checkSizes(tokens: count("tokenizer.ggml.tokens"), merges: count("tokenizer.ggml.merges"), path: "the GGUF's tokenizer.ggml metadata")
        guard let tokens = metadata["tokenizer.ggml.tokens"]?.strings, let merges = metadata["tokenizer.ggml.merges"]?.strings else {
            throw ModelError.unsupported("the GGUF has no tokenizer.ggml.tokens or tokenizer.ggml.merges")
        }
        let types = metadata["tokenizer.ggml.token_type"]?.ints ?? []
        // 3 = control (special), 4 = user-defined (an added token matched whole, not special).
        let special = types.enumerated().filter { $0.element == 3 }.map(\.offset)
        let userDefined = types.enumerated().filter { $0.element == 4 }.map(\.offset)
        let name = metadata["tokenizer.ggml.pre"]?.string ?? "gpt2"
        guard let pre = PreTokenizer(ggufName: name) else {
            throw ModelError.unsupported("pre-tokenizer \(name) (tokenizer.ggml.pre) is not supported yet; supported: \(PreTokenizer.ggufNames)")
        }
        return try BPETokenizer(tokens: tokens, merges: merges, specialTokenIDs: special, preTokenizer: pre,
                                bos: metadata["tokenizer.ggml.bos_token_id"]?.int, eos: metadata["tokenizer.ggml.eos_token_id"]?.int,
                                unknown: metadata["tokenizer.ggml.unknown_token_id"]?.int, addedTokenIDs: userDefined,
                                normalizeNFC: pre == .qwen2, ignoreMerges: pre == .llama3)
    }

    /// Token ids of `text`; special tokens written in the text are matched as such. No BOS is added.
    public func encode(_ text: String) -> [Int] { encodeWithOffsets(text).ids }

    /// Token ids and, for each, the UTF-8 byte range of `text` it stands for. (With the NFC
    /// normalizer, a stretch of text that NFC changes gives its tokens the whole stretch's range.)
    public func encodeWithOffsets(_ text: String) -> (ids: [Int], offsets: [Range<Int>]) {
        var ids: [Int] = []
        var offsets: [Range<Int>] = []
        let bytes = Array(text.utf8)
        var start = 0, i = 0
        while i < bytes.count {
            if specialStarts.contains(bytes[i]), let special = specials.first(where: { bytes[i...].starts(with: $0.text) }) {
                encodeOrdinary(bytes[start..<i], ids: &ids, offsets: &offsets)
                ids.append(special.id)
                offsets.append(i..<(i + special.text.count))
                i += special.text.count
                start = i
            } else {
                i += 1
            }
        }
        encodeOrdinary(bytes[start..<bytes.count], ids: &ids, offsets: &offsets)
        return (ids, offsets)
    }

    private func encodeOrdinary(_ bytes: ArraySlice<UInt8>, ids out: inout [Int], offsets: inout [Range<Int>]) {
        guard !bytes.isEmpty else { return }
        var text = String(decoding: bytes, as: UTF8.self)
        if normalizeNFC { text = text.precomposedStringWithCanonicalMapping }
        let exactOffsets = text.utf8.count == bytes.count
        var position = bytes.startIndex
        for piece in PreTokenization.split(text, kind: preTokenizer) {
            let key = Array(piece.utf8)
            lock.lock()
            let cached = cache[key]
            lock.unlock()
            let word: (ids: [Int], lengths: [Int])
            if let cached {
                word = cached
            } else {
                let start = key.map { byteIDs[Int($0)] }
                let whole = ignoreMerges && start.count > 1 ? self.ids[String(piece.utf8.map { Self.byteCharacters[Int($0)] })] : nil
                word = whole.map { ([$0], [start.count]) } ?? bpe(start)
                // Long pieces are rare and would make the cache's memory follow the input's.
                if key.count <= 256 {
                    lock.lock()
                    if cache.count > 100_000 { cache.removeAll() }
                    cache[key] = word
                    lock.unlock()
                }
            }
            out += word.ids
            for length in word.lengths {
                offsets.append(exactOffsets ? position..<(position + length) : bytes.startIndex..<bytes.endIndex)
                position += length
            }
        }
    }

    /// Words up to this many bytes are merged by scanning; longer ones with a heap.
    static let scanningLimit = 48

    /// Merges the pair of lowest rank (the leftmost of equal pairs) until none applies; also
    /// returns each token's byte count. Short words by scanning (`bpeByScanning`), long ones with
    /// a heap of candidate pairs (`bpeWithHeap`): the same merges, in O(n log n) instead of
    /// O(n²), so a hostile word of a megabyte takes a second, not hours.
    func bpe(_ start: [Int]) -> (ids: [Int], lengths: [Int]) {
        start.count <= Self.scanningLimit ? bpeByScanning(start) : bpeWithHeap(start)
    }

    /// The reference: rescans the word for the best pair after every merge.
    package func bpeByScanning(_ start: [Int]) -> (ids: [Int], lengths: [Int]) {
        var word = start
        var lengths = [Int](repeating: 1, count: start.count)
        while word.count > 1 {
            var best: (index: Int, rank: Int, merged: Int)?
            for i in 0..<(word.count - 1) {
                if let m = merges[Int64(word[i]) << 32 | Int64(word[i + 1])], best.map({ m.rank < $0.rank }) ?? true {
                    best = (i, m.rank, m.merged)
                }
            }
            guard let merge = best else { break }
            word[merge.index] = merge.merged
            word.remove(at: merge.index + 1)
            lengths[merge.index] += lengths[merge.index + 1]
            lengths.remove(at: merge.index + 1)
        }
        return (word, lengths)
    }

    /// The same merges with the symbols in a linked list and the candidate pairs in a binary heap
    /// ordered by (rank, position); a candidate whose symbols changed since it was pushed is
    /// skipped when popped (Hugging Face `tokenizers` merges words this way, `word.rs`).
    package func bpeWithHeap(_ start: [Int]) -> (ids: [Int], lengths: [Int]) {
        let n = start.count
        var ids = start
        var lengths = [Int](repeating: 1, count: n)
        var next = Array(1...n)          // n: none
        var previous = Array(-1..<(n - 1)) // -1: none
        var alive = [Bool](repeating: true, count: n)
        // (rank, left position, left id, right id)
        var heap: [(rank: Int, position: Int, left: Int, right: Int)] = []
        heap.reserveCapacity(n)
        func before(_ a: (rank: Int, position: Int, left: Int, right: Int), _ b: (rank: Int, position: Int, left: Int, right: Int)) -> Bool {
            a.rank != b.rank ? a.rank < b.rank : a.position < b.position
        }
        func push(_ i: Int) {
            let j = next[i]
            guard j < n, let m = merges[Int64(ids[i]) << 32 | Int64(ids[j])] else { return }
            heap.append((m.rank, i, ids[i], ids[j]))
            var c = heap.count - 1
            while c > 0 {
                let parent = (c - 1) / 2
                guard before(heap[c], heap[parent]) else { break }
                heap.swapAt(c, parent)
                c = parent
            }
        }
        func pop() -> (rank: Int, position: Int, left: Int, right: Int) {
            let top = heap[0]
            let last = heap.removeLast()
            if !heap.isEmpty {
                heap[0] = last
                var c = 0
                while true {
                    let l = 2 * c + 1, r = l + 1
                    var m = c
                    if l < heap.count && before(heap[l], heap[m]) { m = l }
                    if r < heap.count && before(heap[r], heap[m]) { m = r }
                    if m == c { break }
                    heap.swapAt(c, m)
                    c = m
                }
            }
            return top
        }
        for i in 0..<(n - 1) { push(i) }
        while !heap.isEmpty {
            let candidate = pop()
            let i = candidate.position
            let j = next[i]
            guard alive[i], j < n, ids[i] == candidate.left, ids[j] == candidate.right,
                  let m = merges[Int64(ids[i]) << 32 | Int64(ids[j])] else { continue }
            ids[i] = m.merged
            lengths[i] += lengths[j]
            alive[j] = false
            next[i] = next[j]
            if next[j] < n { previous[next[j]] = i }
            if previous[i] >= 0 { push(previous[i]) }
            push(i)
        }
        var outIDs: [Int] = [], outLengths: [Int] = []
        var i = 0
        while i < n {
            outIDs.append(ids[i])
            outLengths.append(lengths[i])
            i = next[i]
        }
        return (outIDs, outLengths)
    }

    /// The text of `ids`; bytes that do not form UTF-8 become U+FFFD, as Hugging Face decodes.
    public func decode(_ ids: [Int], skipSpecial: Bool = false) -> String {
        var bytes: [UInt8] = []
        for id in ids where id >= 0 && id < tokens.count {
            if specialIDs.contains(id) {
                if !skipSpecial { bytes += Array(tokens[id].utf8) }
                continue
            }
            for scalar in tokens[id].unicodeScalars {
                if let byte = Self.characterBytes[scalar] { bytes.append(byte) } else { bytes += Array(String(scalar).utf8) }
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The token's text as stored in the vocabulary (GPT-2 characters, e.g. "Ġthe").
    public func piece(_ id: Int) -> String? { id >= 0 && id < tokens.count ? tokens[id] : nil }

    /// GPT-2's table: printable Latin-1 bytes stand for themselves, the others are shifted to U+0100 and up.
    static let byteCharacters: [Character] = {
        var chars = [Character](repeating: " ", count: 256)
        var n = 0
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            let scalar = printable ? b : 256 + n
            if !printable { n += 1 }
            chars[b] = Character(UnicodeScalar(UInt32(scalar)) ?? " ")
        }
        return chars
    }()

    static let characterBytes: [Unicode.Scalar: UInt8] = {
        var map: [Unicode.Scalar: UInt8] = [:]
        for (b, c) in byteCharacters.enumerated() { if let s = c.unicodeScalars.first { map[s] = UInt8(b) } }
        return map
    }()
}

/// The pre-tokenizers' splitting rules, hand-written to equal the regexes they stand for.
enum PreTokenization {
    enum Kind { case letter, number, space, other }

    static func kind(_ s: Unicode.Scalar) -> Kind {
        if s.properties.isWhitespace { return .space }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    /// Splits `text` into pieces. GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    /// SmolLM: first every numeric character is isolated (Hugging Face `Digits(individual_digits)`),
    /// then GPT-2's rules run on each part. Llama 3 and Qwen2: see `llama3`.
    static func split(_ text: String, kind preKind: BPETokenizer.PreTokenizer) -> [String] {
        let scalars = Array(text.unicodeScalars)
        switch preKind {
        case .gpt2: return gpt2(scalars[...])
        case .llama3: return llama3(scalars[...], maxDigits: 3)
        case .qwen2: return llama3(scalars[...], maxDigits: 1)
        case .smollm: break
        }
        var out: [String] = []
        var start = 0
        for (i, s) in scalars.enumerated() where kind(s) == .number {
            if start < i { out += gpt2(scalars[start..<i]) }
            out.append(String(s))
            start = i + 1
        }
        if start < scalars.count { out += gpt2(scalars[start..<scalars.count]) }
        return out
    }

    /// Case-insensitive contraction after an apostrophe at `i` (`(?i:'s|'t|'re|'ve|'m|'ll|'d)`):
    /// the length of the match, or 0. `ignoreCase` folds as Oniguruma does (ſ is s).
    static func contraction(_ s: ArraySlice<Unicode.Scalar>, _ i: Int, ignoreCase: Bool) -> Int {
        guard s[i] == "'", i + 1 < s.endIndex else { return 0 }
        func fold(_ c: Unicode.Scalar) -> Unicode.Scalar {
            guard ignoreCase else { return c }
            if c == "\u{17F}" { return "s" }
            if ("A"..."Z").contains(c), let lower = Unicode.Scalar(c.value + 32) { return lower }
            return c
        }
        let n1 = fold(s[i + 1])
        if n1 == "s" || n1 == "t" || n1 == "m" || n1 == "d" { return 2 }
        if i + 2 < s.endIndex {
            let n2 = fold(s[i + 2])
            if (n1 == "r" && n2 == "e") || (n1 == "v" && n2 == "e") || (n1 == "l" && n2 == "l") { return 3 }
        }
        return 0
    }

    static func isNewline(_ c: Unicode.Scalar) -> Bool { c == "\r" || c == "\n" }

    static func text(_ scalars: ArraySlice<Unicode.Scalar>) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    /// Llama 3's regex, and Qwen2's with `maxDigits` 1:
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
    /// the alternatives tried in order at each position, as the regex engine does.
    static func llama3(_ s: ArraySlice<Unicode.Scalar>, maxDigits: Int) -> [String] {
        var out: [String] = []
        var i = s.startIndex
        let end = s.endIndex
        func emit(_ a: Int, _ b: Int) { out.append(text(s[a..<b])) }
        while i < end {
            let c = s[i]
            let k = kind(c)
            // 1. Contractions, case-insensitive.
            let contraction = contraction(s, i, ignoreCase: true)
            if contraction > 0 { emit(i, i + contraction); i += contraction; continue }
            // 2. Letters, optionally after one character that is not a letter, digit or newline.
            var j = i
            if k != .letter && k != .number && !isNewline(c) && i + 1 < end && kind(s[i + 1]) == .letter { j = i + 1 }
            if kind(s[j]) == .letter {
                while j < end && kind(s[j]) == .letter { j += 1 }
                emit(i, j); i = j; continue
            }
            // 3. Numbers, up to `maxDigits` at a time.
            if k == .number {
                j = i
                while j < end && j - i < maxDigits && kind(s[j]) == .number { j += 1 }
                emit(i, j); i = j; continue
            }
            // 4. Punctuation and symbols, optionally after a space, then any newlines.
            j = i
            if c == " " && i + 1 < end && kind(s[i + 1]) == .other { j = i + 1 }
            if kind(s[j]) == .other {
                while j < end && kind(s[j]) == .other { j += 1 }
                while j < end && isNewline(s[j]) { j += 1 }
                emit(i, j); i = j; continue
            }
            // k == .space from here. 5. Whitespace up to and including its last newline.
            j = i
            var lastNewline: Int?
            while j < end && kind(s[j]) == .space {
                if isNewline(s[j]) { lastNewline = j }
                j += 1
            }
            if let lastNewline { emit(i, lastNewline + 1); i = lastNewline + 1; continue }
            // 6. Whitespace not followed by a non-space (all but the last), 7. else the whitespace.
            if j < end && j - i >= 2 {
                emit(i, j - 1); i = j - 1
            } else {
                emit(i, j); i = j
            }
        }
        return out
    }

    static func gpt2(_ s: ArraySlice<Unicode.Scalar>) -> [String] {
        var out: [String] = []
        var i = s.startIndex
        let end = s.endIndex
        func emit(_ a: Int, _ b: Int) { out.append(text(s[a..<b])) }
        while i < end {
            let c = s[i]
            // Contractions (case-sensitive in GPT-2's regex).
            let contraction = contraction(s, i, ignoreCase: false)
            if contraction > 0 { emit(i, i + contraction); i += contraction; continue }
            var j = i
            var k = kind(c)
            if c == " " && i + 1 < end && kind(s[i + 1]) != .space {
                j = i + 1
                k = kind(s[j])
            }
            if k != .space {
                while j < end && kind(s[j]) == k { j += 1 }
                emit(i, j)
                i = j
                continue
            }
            // Whitespace: a run not followed by non-space, or all but its last character.
            while j < end && kind(s[j]) == .space { j += 1 }
            if j < end && j - i >= 2 {
                emit(i, j - 1)
                i = j - 1
            } else {
                emit(i, j)
                i = j
            }
        }
        return out
    }
}
