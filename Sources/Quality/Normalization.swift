import CorpusDB
import Foundation

/// Text normalized for comparison only (duplicates, filters); the stored text stays as imported.
///
/// Steps, in order: Unicode NFKC (which folds full-width letters, digits and punctuation to their
/// ordinary forms, ideographic space to a space, ligatures to letters); control characters
/// (general category Cc) other than whitespace are dropped; every run of whitespace (Unicode
/// White_Space) becomes one space; leading and trailing spaces are removed.
public enum Normalizer {
    /// Changes whenever what `comparable` returns could change (stored MinHash signatures depend on it).
    public static let version = 1

    public static func comparable(_ text: String) -> String {
        if let fast = comparableWithoutFoundation(text) { return fast }
        // NFKC in two steps: Foundation's one-step `precomposedStringWithCompatibilityMapping`
        // gets some cases wrong on Linux (halfwidth ｶﾞ gives カ + U+3099, not ガ).
        let folded = text.decomposedStringWithCompatibilityMapping.precomposedStringWithCanonicalMapping
        var out = String.UnicodeScalarView()
        var pendingSpace = false
        for scalar in folded.unicodeScalars {
            if scalar.properties.isWhitespace {
                pendingSpace = !out.isEmpty
                continue
            }
            if scalar.properties.generalCategory == .control { continue }
            if pendingSpace { out.append(" "); pendingSpace = false }
            out.append(scalar)
        }
        return String(out)
    }

    /// The same result without Foundation's NFKC when every scalar is one whose NFKC form is
    /// known here: ASCII, CJK unified ideographs, the common CJK punctuation and quotes (all
    /// unchanged by NFKC and never composed with a neighbour), the ideographic space (a space)
    /// and the full-width forms U+FF01-FF5E (their ASCII counterparts). Nil when another scalar
    /// occurs (then NFKC may compose or decompose it); tests check it agrees with the slow path.
    public static func comparableWithoutFoundation(_ text: String) -> String? {
        var out = String.UnicodeScalarView()
        var pendingSpace = false
        for scalar in text.unicodeScalars {
            var v = scalar.value
            if v >= 0xFF01 && v <= 0xFF5E { v -= 0xFEE0 } else if v == 0x3000 { v = 0x20 }
            if v < 0x80 {
                if v == 0x20 || (v >= 0x09 && v <= 0x0D) {
                    pendingSpace = !out.isEmpty
                    continue
                }
                if v < 0x20 || v == 0x7F { continue }
            } else if !((v >= 0x4E00 && v <= 0x9FFF) || (v >= 0x3001 && v <= 0x3002) || (v >= 0x3008 && v <= 0x3011)
                        || v == 0x2018 || v == 0x2019 || v == 0x201C || v == 0x201D || v == 0x2014) {
                return nil
            }
            if pendingSpace { out.append(" "); pendingSpace = false }
            guard let s = Unicode.Scalar(v) else { return nil }
            out.append(s)
        }
        return String(out)
    }
}

/// Keys under which conversations count as exact duplicates.
public enum ExactDuplicates {
    /// What must be equal: the whole conversation (`pair`), or only what is asked (`prompt`:
    /// system and user turns), which finds the same question answered differently.
    public enum Basis: String, Sendable, CaseIterable {
        case pair, prompt
    }

    /// Hex SHA-256 of the normalized turns (each as `role\u{1F}text`, separated by U+001E), so two
    /// conversations share a key exactly when their normalized turns are equal.
    public static func key(_ conversation: Conversation, on basis: Basis) -> String {
        var text = ""
        for message in conversation.messages where basis == .pair || message.role == .system || message.role == .user {
            text += "\(message.role.rawValue)\u{1F}\(Normalizer.comparable(message.content))\u{1E}"
        }
        return ContentHash.sha256Hex(Array(text.utf8))
    }

    /// Groups of ids whose conversations share a key, each group in the given order (the first
    /// is the representative: the first ingested when `items` are in id order); only groups of
    /// two or more, ordered by their representative.
    public static func groups(_ items: [(id: Int64, conversation: Conversation)], on basis: Basis) -> [[Int64]] {
        var byKey: [String: [Int64]] = [:]
        var order: [String] = []
        for item in items {
            let k = key(item.conversation, on: basis)
            if byKey[k] == nil { order.append(k) }
            byKey[k, default: []].append(item.id)
        }
        return order.compactMap { byKey[$0] }.filter { $0.count > 1 }
    }
}
