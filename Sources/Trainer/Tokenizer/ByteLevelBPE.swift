import Foundation

/// Byte-level BPE as GPT-2 defined it and Hugging Face `tokenizers` implements it: text is split
/// by a pre-tokenizer, each piece's UTF-8 bytes are written with GPT-2's byte-to-character table,
/// and merges are applied lowest rank first. Special tokens written in the text are matched first.
public final class BPETokenizer: @unchecked Sendable {
    // @unchecked: everything is immutable after init except the word cache, which is guarded by `lock`.
    public let tokens: [String]
    let ids: [String: Int]
    /// (left id, right id) → (rank, merged id).
    let merges: [Int64: (rank: Int, merged: Int)]
    /// Special tokens, longest first, with their ids.
    let specials: [(text: [UInt8], id: Int)]
    public let specialIDs: Set<Int>
    let preTokenizer: PreTokenizer
    /// Id of the token for each byte (its GPT-2 character).
    let byteIDs: [Int]
    public let bosID: Int?
    public let eosID: Int?
    private var cache: [String: [Int]] = [:]
    private let lock = NSLock()

    /// How text is split before BPE.
    public enum PreTokenizer: String, Sendable {
        /// GPT-2's regex.
        case gpt2
        /// SmolLM2: every digit on its own, then GPT-2's regex ("smollm" in GGUF).
        case smollm
    }

    /// - Throws: `TrainerError.unsupported` for a merge naming a token that is not in the vocabulary.
    public init(tokens: [String], merges: [String], specialTokenIDs: [Int], preTokenizer: PreTokenizer,
                bos: Int?, eos: Int?, unknown: Int? = nil) throws {
        self.tokens = tokens
        var ids: [String: Int] = [:]
        ids.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() where ids[t] == nil { ids[t] = i }
        self.ids = ids
        var table: [Int64: (rank: Int, merged: Int)] = [:]
        table.reserveCapacity(merges.count)
        for (rank, merge) in merges.enumerated() {
            let parts = merge.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let a = ids[String(parts[0])], let b = ids[String(parts[1])],
                  let merged = ids[String(parts[0]) + String(parts[1])] else {
                throw TrainerError.unsupported("tokenizer merge \(rank) '\(merge)' names a token that is not in the vocabulary")
            }
            let key = Int64(a) << 32 | Int64(b)
            if table[key] == nil { table[key] = (rank, merged) }
        }
        self.merges = table
        // A byte whose character is not in the vocabulary (SmolLM2 lacks a few control bytes)
        // becomes the unknown token, as Hugging Face's BPE does without byte fallback.
        self.byteIDs = (0..<256).map { ids[String(Self.byteCharacters[$0])] ?? (unknown ?? 0) }
        specials = specialTokenIDs.filter { $0 >= 0 && $0 < tokens.count }.map { (Array(tokens[$0].utf8), $0) }
            .sorted { $0.text.count > $1.text.count }
        specialIDs = Set(specialTokenIDs)
        self.preTokenizer = preTokenizer
        bosID = bos
        eosID = eos
    }

    /// The tokenizer stored in a GGUF file's `tokenizer.ggml.*` metadata.
    public static func fromGGUF(_ metadata: [String: GGUFValue]) throws -> BPETokenizer {
        guard metadata["tokenizer.ggml.model"]?.string == "gpt2" else {
            throw TrainerError.unsupported("tokenizer.ggml.model \(metadata["tokenizer.ggml.model"]?.string ?? "(none)") is not supported; byte-level BPE (gpt2) is")
        }
        guard let tokens = metadata["tokenizer.ggml.tokens"]?.strings, let merges = metadata["tokenizer.ggml.merges"]?.strings else {
            throw TrainerError.unsupported("the GGUF has no tokenizer.ggml.tokens or tokenizer.ggml.merges")
        }
        let types = metadata["tokenizer.ggml.token_type"]?.ints ?? []
        let special = types.enumerated().filter { $0.element == 3 || $0.element == 4 }.map(\.offset)
        let pre: PreTokenizer
        switch metadata["tokenizer.ggml.pre"]?.string ?? "gpt2" {
        case "smollm": pre = .smollm
        case "gpt2", "default": pre = .gpt2
        case let other: throw TrainerError.unsupported("pre-tokenizer \(other) is not supported yet; supported: smollm, gpt2")
        }
        return try BPETokenizer(tokens: tokens, merges: merges, specialTokenIDs: special, preTokenizer: pre,
                                bos: metadata["tokenizer.ggml.bos_token_id"]?.int, eos: metadata["tokenizer.ggml.eos_token_id"]?.int,
                                unknown: metadata["tokenizer.ggml.unknown_token_id"]?.int)
    }

    /// Token ids of `text`; special tokens written in the text are matched as such. No BOS is added.
    public func encode(_ text: String) -> [Int] {
        var out: [Int] = []
        let bytes = Array(text.utf8)
        var start = 0, i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "<"), let special = specials.first(where: { bytes[i...].starts(with: $0.text) }) {
                encodeOrdinary(bytes[start..<i], into: &out)
                out.append(special.id)
                i += special.text.count
                start = i
            } else {
                i += 1
            }
        }
        encodeOrdinary(bytes[start..<bytes.count], into: &out)
        return out
    }

    private func encodeOrdinary(_ bytes: ArraySlice<UInt8>, into out: inout [Int]) {
        guard !bytes.isEmpty else { return }
        let text = String(decoding: bytes, as: UTF8.self)
        for piece in PreTokenization.split(text, kind: preTokenizer) {
            lock.lock()
            let cached = cache[piece]
            lock.unlock()
            if let cached { out += cached; continue }
            let ids = bpe(Array(piece.utf8).map { byteIDs[Int($0)] })
            lock.lock()
            if cache.count > 100_000 { cache.removeAll() }
            cache[piece] = ids
            lock.unlock()
            out += ids
        }
    }

    /// Merges the pair of lowest rank until none applies.
    func bpe(_ start: [Int]) -> [Int] {
        var word = start
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
        }
        return word
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
    /// then GPT-2's rules run on each part.
    static func split(_ text: String, kind preKind: BPETokenizer.PreTokenizer) -> [String] {
        let scalars = Array(text.unicodeScalars)
        guard preKind == .smollm else { return gpt2(scalars[...]) }
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

    static func gpt2(_ s: ArraySlice<Unicode.Scalar>) -> [String] {
        var out: [String] = []
        var i = s.startIndex
        let end = s.endIndex
        func emit(_ a: Int, _ b: Int) {
            var piece = String.UnicodeScalarView()
            piece.append(contentsOf: s[a..<b])
            out.append(String(piece))
        }
        while i < end {
            let c = s[i]
            // Contractions.
            if c == "'" && i + 1 < end {
                let n1 = s[i + 1]
                if ["s", "t", "m", "d"].contains(n1) { emit(i, i + 2); i += 2; continue }
                if i + 2 < end {
                    let pair = String(String.UnicodeScalarView([n1, s[i + 2]]))
                    if pair == "re" || pair == "ve" || pair == "ll" { emit(i, i + 3); i += 3; continue }
                }
            }
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
