import Foundation

/// Personal data found in a text: Chinese resident ID numbers (with their ISO 7064 MOD 11-2 check
/// character and a real birth date), mainland mobile numbers, e-mail addresses and bank card
/// numbers (Luhn). A finding is a verdict; redaction produces the text that export and training
/// use, while the store keeps the original.
public enum PII {
    public enum Kind: String, Sendable, CaseIterable, Codable {
        case residentID = "resident_id"
        case mobile
        case email
        case bankCard = "bank_card"

        /// What redaction writes in its place.
        public var placeholder: String {
            switch self {
            case .residentID: return "[身份证号]"
            case .mobile: return "[手机号]"
            case .email: return "[邮箱]"
            case .bankCard: return "[银行卡号]"
            }
        }
    }

    public struct Finding: Sendable, Equatable {
        public var kind: Kind
        /// Where, in Unicode scalars of the text.
        public var range: Range<Int>
        public var text: String
    }

    /// Every finding, in text order, without overlaps.
    public static func findings(in text: String) -> [Finding] {
        let s = Array(text.unicodeScalars)
        var found: [Finding] = []
        var i = 0
        while i < s.count {
            if let f = residentID(s, i) ?? bankCard(s, i) ?? mobile(s, i) ?? email(s, i) {
                found.append(f)
                i = f.range.upperBound
            } else {
                i += 1
            }
        }
        return found
    }

    /// The text with every finding replaced by its placeholder.
    public static func redact(_ text: String) -> String {
        let s = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var at = 0
        for f in findings(in: text) {
            out.append(contentsOf: s[at..<f.range.lowerBound])
            out.append(contentsOf: f.kind.placeholder.unicodeScalars)
            at = f.range.upperBound
        }
        out.append(contentsOf: s[at...])
        return String(out)
    }

    // MARK: - Recognizers (each at position i, or nil)

    static func isDigit(_ c: Unicode.Scalar) -> Bool { ("0"..."9").contains(c) }
    static func digit(_ c: Unicode.Scalar) -> Int { Int(c.value) - 48 }

    /// A run of exactly `count` digits at i, not inside a longer run of digits or letters.
    static func digits(_ s: [Unicode.Scalar], _ i: Int, _ count: Int) -> Bool {
        guard i + count <= s.count, (i..<(i + count)).allSatisfy({ isDigit(s[$0]) }) else { return false }
        return boundary(s, before: i) && boundary(s, after: i + count)
    }

    static func boundary(_ s: [Unicode.Scalar], before i: Int) -> Bool {
        i == 0 || !(isDigit(s[i - 1]) || ("a"..."z").contains(s[i - 1]) || ("A"..."Z").contains(s[i - 1]))
    }

    static func boundary(_ s: [Unicode.Scalar], after i: Int) -> Bool {
        i >= s.count || !(isDigit(s[i]) || ("a"..."z").contains(s[i]) || ("A"..."Z").contains(s[i]))
    }

    static func finding(_ kind: Kind, _ s: [Unicode.Scalar], _ a: Int, _ b: Int) -> Finding {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: s[a..<b])
        return Finding(kind: kind, range: a..<b, text: String(view))
    }

    /// 17 digits and a check character (digit or X), the check per ISO 7064 MOD 11-2 (GB 11643),
    /// and digits 7-14 a real date between 1900 and 2099.
    static func residentID(_ s: [Unicode.Scalar], _ i: Int) -> Finding? {
        guard i + 18 <= s.count, boundary(s, before: i), (i..<(i + 17)).allSatisfy({ isDigit(s[$0]) }) else { return nil }
        let last = s[i + 17]
        guard isDigit(last) || last == "X" || last == "x", boundary(s, after: i + 18) else { return nil }
        let d = (i..<(i + 17)).map { digit(s[$0]) }
        guard isResidentIDCheck(d, last) else { return nil }
        let year = d[6] * 1000 + d[7] * 100 + d[8] * 10 + d[9], month = d[10] * 10 + d[11], day = d[12] * 10 + d[13]
        guard (1900...2099).contains(year), (1...12).contains(month), (1...daysIn(month, year)).contains(day) else { return nil }
        return finding(.residentID, s, i, i + 18)
    }

    /// The check character of an 18-character resident ID: weights 2^(17-k) mod 11.
    public static func residentIDCheckCharacter(_ first17: [Int]) -> Character {
        var sum = 0
        var weight = 1
        var weights = [Int](repeating: 0, count: 17)
        for k in (0..<17).reversed() { weight = weight * 2 % 11; weights[k] = weight }
        for (k, value) in first17.enumerated() { sum += value * weights[k] }
        let check = (12 - sum % 11) % 11
        return check == 10 ? "X" : Character(String(check))
    }

    static func isResidentIDCheck(_ first17: [Int], _ last: Unicode.Scalar) -> Bool {
        String(residentIDCheckCharacter(first17)) == String(last).uppercased()
    }

    static func daysIn(_ month: Int, _ year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// 1[3-9] and nine more digits, optionally written 3-4-4 with spaces or hyphens, optionally
    /// after +86 (or "86 "), not inside a longer run of digits or letters.
    static func mobile(_ s: [Unicode.Scalar], _ i: Int) -> Finding? {
        guard boundary(s, before: i) else { return nil }
        var j = i
        if s[j] == "+", j + 2 < s.count, s[j + 1] == "8", s[j + 2] == "6" {
            j += 3
        } else if j + 2 < s.count, s[j] == "8", s[j + 1] == "6", s[j + 2] == " " || s[j + 2] == "-" {
            j += 3
        }
        if j > i { while j < s.count, s[j] == " " || s[j] == "-" { j += 1 } }
        guard j + 11 <= s.count, s[j] == "1", ("3"..."9").contains(s[j + 1]) else { return nil }
        if (j..<(j + 11)).allSatisfy({ isDigit(s[$0]) }), boundary(s, after: j + 11) {
            return finding(.mobile, s, i, j + 11)
        }
        // 3-4-4 with one kind of separator.
        guard j + 13 <= s.count else { return nil }
        let separator = s[j + 3]
        guard separator == " " || separator == "-", s[j + 8] == separator,
              (0..<3).allSatisfy({ isDigit(s[j + $0]) }), (4..<8).allSatisfy({ isDigit(s[j + $0]) }),
              (9..<13).allSatisfy({ isDigit(s[j + $0]) }), boundary(s, after: j + 13) else { return nil }
        return finding(.mobile, s, i, j + 13)
    }

    /// local@domain.tld with the usual characters; the top-level domain has two or more letters.
    static func email(_ s: [Unicode.Scalar], _ i: Int) -> Finding? {
        func local(_ c: Unicode.Scalar) -> Bool { c.isASCII && (c.properties.isAlphabetic || isDigit(c) || "._%+-".unicodeScalars.contains(c)) }
        func domain(_ c: Unicode.Scalar) -> Bool { c.isASCII && (c.properties.isAlphabetic || isDigit(c) || c == "-" || c == ".") }
        guard local(s[i]), i == 0 || !local(s[i - 1]) else { return nil }
        var at = i
        while at < s.count, local(s[at]) { at += 1 }
        guard at < s.count, s[at] == "@", at > i else { return nil }
        var end = at + 1
        while end < s.count, domain(s[end]) { end += 1 }
        while end > at + 1, s[end - 1] == "." || s[end - 1] == "-" { end -= 1 }
        let host = String(String.UnicodeScalarView(s[(at + 1)..<end]))
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2, labels.allSatisfy({ !$0.isEmpty }),
              let tld = labels.last, tld.count >= 2, tld.unicodeScalars.allSatisfy({ $0.properties.isAlphabetic }) else { return nil }
        return finding(.email, s, i, end)
    }

    /// 16 to 19 digits, contiguous or in groups of four separated by single spaces or hyphens,
    /// passing the Luhn check.
    static func bankCard(_ s: [Unicode.Scalar], _ i: Int) -> Finding? {
        guard isDigit(s[i]), boundary(s, before: i) else { return nil }
        var numerals: [Int] = []
        var j = i
        var lastDigitEnd = i
        while j < s.count, numerals.count < 19 {
            if isDigit(s[j]) {
                numerals.append(digit(s[j]))
                j += 1
                lastDigitEnd = j
            } else if (s[j] == " " || s[j] == "-"), numerals.count % 4 == 0, j + 1 < s.count, isDigit(s[j + 1]) {
                j += 1
            } else {
                break
            }
        }
        guard (16...19).contains(numerals.count), boundary(s, after: lastDigitEnd), luhn(numerals) else { return nil }
        return finding(.bankCard, s, i, lastDigitEnd)
    }

    /// The Luhn checksum (ISO/IEC 7812): doubling every second digit from the right.
    public static func luhn(_ digits: [Int]) -> Bool {
        var sum = 0
        for (k, d) in digits.reversed().enumerated() {
            if k % 2 == 1 { let twice = d * 2; sum += twice > 9 ? twice - 9 : twice } else { sum += d }
        }
        return !digits.isEmpty && sum % 10 == 0
    }
}
