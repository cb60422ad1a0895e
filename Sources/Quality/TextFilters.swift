/// Measurements behind the per-record filters. Each works on normalized text (`Normalizer`) as
/// an array of Unicode scalars, so a Chinese character and an ASCII letter count alike, and each
/// is a pure function with positive and negative cases in `Tests/QualityTests`.
public enum TextFilters {
    // MARK: Character classes

    /// CJK unified ideographs (basic block, extensions A to F, compatibility ideographs).
    @inline(__always)
    public static func isHan(_ v: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(v) || (0x3400...0x4DBF).contains(v) || (0x20000...0x2FA1F).contains(v) || (0xF900...0xFAFF).contains(v)
    }

    /// ASCII letters and the Latin-1 / Latin Extended-A and -B letters.
    @inline(__always)
    static func isLatinLetter(_ v: UInt32) -> Bool {
        (0x41...0x5A).contains(v) || (0x61...0x7A).contains(v) || ((0xC0...0x24F).contains(v) && v != 0xD7 && v != 0xF7)
    }

    enum CharacterClass { case letter, digit, space, punctuation, special }

    /// Letters (any script), digits, whitespace, punctuation; everything else (symbols, private
    /// use, unassigned, format characters, emoji) is special. ASCII and CJK take a fast path.
    @inline(__always)
    static func characterClass(_ s: Unicode.Scalar) -> CharacterClass {
        let v = s.value
        if v < 0x80 {
            switch v {
            case 0x30...0x39: return .digit
            case 0x41...0x5A, 0x61...0x7A: return .letter
            case 0x09...0x0D, 0x20: return .space
            case 0x21...0x2F, 0x3A...0x40, 0x5B...0x60, 0x7B...0x7E:
                // Sentence punctuation and brackets are ordinary; the rest are symbols.
                return "!\"'(),-.:;?[]_{}/".unicodeScalars.contains(s) ? .punctuation : .special
            default: return .special
            }
        }
        if isHan(v) { return .letter }
        let p = s.properties
        if p.isAlphabetic { return .letter }
        switch p.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return .digit
        case .spaceSeparator, .lineSeparator, .paragraphSeparator: return .space
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return .punctuation
        default: return .special
        }
    }

    // MARK: Repetition

    /// The share of the text's letters and digits taken by its most frequent one ("啊啊啊啊啊" is
    /// 1.0; ordinary Chinese prose is below 0.1, its most frequent character being 的).
    /// Returns 0 for text without letters or digits.
    public static func dominantCharacterShare(_ s: [Unicode.Scalar]) -> Double {
        var counts: [UInt32: Int] = [:]
        var total = 0
        for c in s {
            let k = characterClass(c)
            guard k == .letter || k == .digit else { continue }
            // ASCII letters fold case, so "AAAaaa" is one character repeated.
            let v = (0x41...0x5A).contains(c.value) ? c.value + 0x20 : c.value
            counts[v, default: 0] += 1
            total += 1
        }
        guard total > 0, let top = counts.values.max() else { return 0 }
        return Double(top) / Double(total)
    }

    /// The share of the text's character n-grams that repeat an earlier one: 0 when every n-gram
    /// is new, approaching 1 when one phrase loops ("我很好。我很好。我很好。"). Spaces count as
    /// characters. Returns 0 for text shorter than n + 1.
    public static func ngramRepetition(_ s: [Unicode.Scalar], n: Int) -> Double {
        guard n > 0, s.count > n else { return 0 }
        let total = s.count - n + 1
        var seen = Set<UInt64>(minimumCapacity: total)
        var repeats = 0
        for i in 0..<total {
            // FNV-1a over the n scalars: collisions only make the ratio slightly higher.
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            for j in i..<(i + n) {
                h = (h ^ UInt64(s[j].value)) &* 0x100_0000_01b3
            }
            if !seen.insert(h).inserted { repeats += 1 }
        }
        return Double(repeats) / Double(total)
    }

    /// The share of non-space characters that are special (symbols, emoji, private-use or
    /// unassigned code points, format characters), not letters, digits or punctuation.
    public static func specialCharacterShare(_ s: [Unicode.Scalar]) -> Double {
        var special = 0, total = 0
        for c in s {
            switch characterClass(c) {
            case .space: continue
            case .special: special += 1; total += 1
            default: total += 1
            }
        }
        return total == 0 ? 0 : Double(special) / Double(total)
    }

    /// The text without its fenced code blocks (from a line of ``` to the next ```, or to the end),
    /// which the repetition and special-character filters leave alone: code repeats itself and is
    /// made of symbols by nature.
    public static func withoutCode(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        var inCode = false
        var i = 0
        while i < s.count {
            if i + 2 < s.count, s[i] == "`", s[i + 1] == "`", s[i + 2] == "`" {
                inCode.toggle()
                i += 3
                continue
            }
            if !inCode { out.append(s[i]) }
            i += 1
        }
        return out
    }

    // MARK: Mojibake

    /// Telltales of text that went through a wrong decoding before it reached us (the bytes were
    /// valid, so ingestion could not see it; DESIGN.md "Encodings"): U+FFFD replacement characters,
    /// 锟斤拷 (U+FFFD's UTF-8 bytes read as GBK), 烫烫烫 / 屯屯屯 (uninitialised memory shown as GBK),
    /// and UTF-8 read as Latin-1 or Windows-1252: "Ã" or "Â" followed by a Latin-1 symbol or
    /// letter (é as "Ã©"), "â€" (curly quotes and dashes as "â€™", "â€œ"), "ï»¿" (a BOM).
    /// - Returns: each telltale found, in order of first appearance, without repeats.
    public static func mojibake(_ text: String) -> [String] {
        var found: [String] = []
        func note(_ marker: String) { if !found.contains(marker) { found.append(marker) } }
        let s = Array(text.unicodeScalars)
        var i = 0
        while i < s.count {
            let v = s[i].value
            let next = i + 1 < s.count ? s[i + 1].value : 0
            let third = i + 2 < s.count ? s[i + 2].value : 0
            switch v {
            case 0xFFFD: note("U+FFFD")
            case 0x951F where next == 0x65A4 && third == 0x62F7: note("锟斤拷")
            case 0x70EB where next == 0x70EB && third == 0x70EB: note("烫烫烫")
            case 0x5C6F where next == 0x5C6F && third == 0x5C6F: note("屯屯屯")
            case 0xC3, 0xC2:
                // Second byte of a two-byte UTF-8 sequence shown as Latin-1 (0x80-0xBF): printed
                // as a C1 control, a Latin-1 symbol (© ® ° ±) or, in Windows-1252, € ‚ ƒ „ … ™ etc.
                if (0x80...0xBF).contains(next) || [0x20AC, 0x201A, 0x192, 0x201E, 0x2026, 0x2020, 0x2021, 0x2C6, 0x2030, 0x160,
                                                    0x2039, 0x152, 0x17D, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                                    0x2DC, 0x2122, 0x161, 0x203A, 0x153, 0x17E, 0x178].contains(next) {
                    note(String(s[i]) + String(s[i + 1]))
                }
            case 0xE2 where next == 0x20AC: note("â€")
            case 0xEF where next == 0xBB && third == 0xBF: note("ï»¿")
            default: break
            }
            i += 1
        }
        return found
    }

    // MARK: Openings, echoes, language

    /// The first filler phrase the answer opens with ("嗯…", "我觉得可能是"), or nil. The answer is
    /// normalized text; fillers are compared after normalization too, and a Latin filler must end
    /// at a word boundary ("Um," opens "Um, yes" but not "Umbrella").
    public static func fillerOpening(_ answer: String, fillers: [String]) -> String? {
        for filler in fillers {
            let f = Normalizer.comparable(filler)
            // Both normalized: compare scalars (String.hasPrefix would compare grapheme clusters
            // under canonical equivalence, much slower and not needed here).
            guard !f.isEmpty, answer.unicodeScalars.starts(with: f.unicodeScalars) else { continue }
            if let last = f.unicodeScalars.last, isLatinLetter(last.value),
               let after = answer.unicodeScalars.dropFirst(f.unicodeScalars.count).first, isLatinLetter(after.value) {
                continue
            }
            return filler
        }
        return nil
    }

    /// The share of the answer's character bigrams that also occur in the prompt: 1.0 when the
    /// answer only repeats (part of) the question, low when it adds its own words. Spaces and
    /// punctuation are left out; an answer with fewer than two letters or digits gives 0.
    public static func echo(prompt: [Unicode.Scalar], answer: [Unicode.Scalar]) -> Double {
        func content(_ s: [Unicode.Scalar]) -> [UInt32] {
            s.compactMap { c in
                let k = characterClass(c)
                guard k == .letter || k == .digit else { return nil }
                return (0x41...0x5A).contains(c.value) ? c.value + 0x20 : c.value
            }
        }
        let p = content(prompt), a = content(answer)
        guard a.count >= 2 else { return 0 }
        var bigrams = Set<UInt64>()
        if p.count >= 2 {
            for i in 0..<(p.count - 1) { bigrams.insert(UInt64(p[i]) << 32 | UInt64(p[i + 1])) }
        }
        var hit = 0
        for i in 0..<(a.count - 1) where bigrams.contains(UInt64(a[i]) << 32 | UInt64(a[i + 1])) { hit += 1 }
        return Double(hit) / Double(a.count - 1)
    }

    /// The language of a text, as far as its script tells: Chinese, English (Latin script), or
    /// undetermined (too little text, or mixed).
    public enum Script: String, Sendable {
        case chinese = "zh", latin = "en", undetermined = "?"
    }

    /// Counts Han characters and Latin words (runs of Latin letters) as units: at least 3 units,
    /// and Chinese when Han characters make at least half of them, Latin when words make at least
    /// 80% (Chinese prose often carries a few English terms such as "CT" or "MRI").
    public static func script(_ s: [Unicode.Scalar]) -> Script {
        var han = 0, words = 0
        var inWord = false
        for c in s {
            let v = c.value
            if isHan(v) { han += 1; inWord = false } else if isLatinLetter(v) {
                if !inWord { words += 1 }
                inWord = true
            } else { inWord = false }
        }
        let units = han + words
        guard units >= 3 else { return .undetermined }
        if Double(han) >= 0.5 * Double(units) { return .chinese }
        if Double(words) >= 0.8 * Double(units) { return .latin }
        return .undetermined
    }

    // MARK: Sentences

    /// Splits normalized text into sentences at 。！？；!?; and line ends, and at ". " after a
    /// Latin sentence; each sentence keeps its closing mark and has its spaces trimmed.
    public static func sentences(_ s: [Unicode.Scalar]) -> [ArraySlice<Unicode.Scalar>] {
        var out: [ArraySlice<Unicode.Scalar>] = []
        var start = 0
        func close(_ end: Int) {
            var a = start, b = end
            while a < b, s[a] == " " { a += 1 }
            while b > a, s[b - 1] == " " { b -= 1 }
            if b > a { out.append(s[a..<b]) }
            start = end
        }
        var i = 0
        while i < s.count {
            switch s[i] {
            case "。", "！", "？", "；", "!", "?", ";", "\n":
                close(i + 1)
            case "." where i + 1 == s.count || s[i + 1] == " ":
                close(i + 1)
            default: break
            }
            i += 1
        }
        close(s.count)
        return out
    }
}
