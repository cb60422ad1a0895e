import Foundation

/// The canonical serialization of a conversation: the exact bytes that `content_hash` hashes and
/// that `records.conversation` stores, so `corpus verify` can recompute every hash.
///
/// Form (docs/STORE.md): `{"messages":[{"role":"user","content":"..."},...]}` (a preference pair
/// adds `,"rejected":{"role":"assistant","content":"..."}` after the list) with keys in this
/// order, no whitespace, non-ASCII characters written as raw UTF-8, and only `"`, `\` and the
/// control characters U+0000-U+001F escaped (`\n`, `\r`, `\t`, `\b`, `\f`, else `\u00XX`).
/// The same conversation gives the same bytes on every machine, unlike a platform JSON encoder.
public enum CanonicalJSON {
    /// Canonical bytes of `conversation`.
    public static func encode(_ conversation: Conversation) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + conversation.messages.reduce(0) { $0 + $1.content.utf8.count })
        out.append(contentsOf: Array(#"{"messages":["#.utf8))
        for (i, message) in conversation.messages.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: Array(#"{"role":"#.utf8))
            appendString(message.role.rawValue, to: &out)
            out.append(contentsOf: Array(#","content":"#.utf8))
            appendString(message.content, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
        if let rejected = conversation.rejected {
            out.append(contentsOf: Array(#","rejected":{"role":"#.utf8))
            appendString(rejected.role.rawValue, to: &out)
            out.append(contentsOf: Array(#","content":"#.utf8))
            appendString(rejected.content, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// Canonical text of `conversation`.
    public static func string(_ conversation: Conversation) -> String {
        String(decoding: encode(conversation), as: UTF8.self)
    }

    /// Hex SHA-256 of the canonical bytes: the record's `content_hash`.
    public static func contentHash(_ conversation: Conversation) -> String {
        ContentHash.sha256Hex(encode(conversation))
    }

    /// Parses text written by `encode` (or any JSON of the same shape).
    /// - Throws: `CorpusDBError(.cannotOpen)` naming the problem when the text is not a conversation.
    public static func decode(_ text: String) throws -> Conversation {
        if let fast = decodeCanonical(text) { return fast }
        do {
            return try JSONDecoder().decode(Conversation.self, from: Data(text.utf8))
        } catch {
            throw CorpusDBError(.cannotOpen, "stored conversation is not valid canonical JSON: \(error)")
        }
    }

    /// Reads the exact form `encode` writes without Foundation's JSON parser (several times
    /// faster; `corpus check` reads every record); nil for anything else, which then goes
    /// through `JSONDecoder`.
    static func decodeCanonical(_ text: String) -> Conversation? {
        var text = text
        return text.withUTF8 { b -> Conversation? in
            var i = 0
            func expect(_ literal: StaticString) -> Bool {
                let n = literal.utf8CodeUnitCount
                guard i + n <= b.count else { return false }
                let p = literal.utf8Start
                for k in 0..<n where b[i + k] != p[k] { return false }
                i += n
                return true
            }
            func string() -> String? {
                guard i < b.count, b[i] == 0x22 else { return nil }
                i += 1
                var out: [UInt8] = []
                var start = i
                while i < b.count {
                    let c = b[i]
                    if c == 0x22 {
                        out.append(contentsOf: UnsafeBufferPointer(rebasing: b[start..<i]))
                        i += 1
                        return String(decoding: out, as: UTF8.self)
                    }
                    if c < 0x20 { return nil }
                    guard c == 0x5C else { i += 1; continue }
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: b[start..<i]))
                    guard i + 1 < b.count else { return nil }
                    switch b[i + 1] {
                    case 0x22: out.append(0x22)
                    case 0x5C: out.append(0x5C)
                    case 0x2F: out.append(0x2F)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "u"):
                        // Canonical text escapes only U+0000-U+001F this way.
                        guard i + 5 < b.count, b[i + 2] == 0x30, b[i + 3] == 0x30,
                              let hi = hexValue(b[i + 4]), let lo = hexValue(b[i + 5]), hi < 2 else { return nil }
                        out.append(hi << 4 | lo)
                        i += 4
                    default: return nil
                    }
                    i += 2
                    start = i
                }
                return nil
            }
            guard expect(#"{"messages":["#) else { return nil }
            var messages: [Message] = []
            if i < b.count, b[i] == UInt8(ascii: "]") {
                i += 1
            } else {
                while true {
                    guard expect(#"{"role":"#), let role = string().flatMap(Role.init(rawValue:)),
                          expect(#","content":"#), let content = string(), expect("}") else { return nil }
                    messages.append(Message(role: role, content: content))
                    if expect(",") { continue }
                    guard expect("]") else { return nil }
                    break
                }
            }
            var rejected: Message?
            if expect(#","rejected":"#) {
                guard expect(#"{"role":"#), let role = string().flatMap(Role.init(rawValue:)),
                      expect(#","content":"#), let content = string(), expect("}") else { return nil }
                rejected = Message(role: role, content: content)
            }
            guard expect("}"), i == b.count else { return nil }
            return Conversation(messages: messages, rejected: rejected)
        }
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }

    /// Appends `string` as a JSON string literal with the canonical escaping.
    public static func appendString(_ string: String, to out: inout [UInt8]) {
        var string = string
        string.withUTF8 { utf8 in
            out.append(UInt8(ascii: "\""))
            // Fast path: most text needs no escaping and is copied in one go.
            var start = 0
            for i in 0..<utf8.count {
                let byte = utf8[i]
                guard byte < 0x20 || byte == 0x22 || byte == 0x5C else { continue }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<i]))
                start = i + 1
                switch byte {
                case 0x22: out.append(contentsOf: [0x5C, 0x22])
                case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
                case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
                case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
                case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
                case 0x08: out.append(contentsOf: [0x5C, UInt8(ascii: "b")])
                case 0x0C: out.append(contentsOf: [0x5C, UInt8(ascii: "f")])
                default:
                    out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0xF)]])
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<utf8.count]))
            out.append(UInt8(ascii: "\""))
        }
    }

    static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// A JSON object of string values with keys sorted by their UTF-8 bytes, canonically escaped
    /// (used for tags, so equal tag sets are equal text).
    public static func object(_ dictionary: [String: String]) -> String {
        if dictionary.isEmpty { return "{}" }
        var out: [UInt8] = [UInt8(ascii: "{")]
        out.reserveCapacity(dictionary.reduce(16) { $0 + $1.key.utf8.count + $1.value.utf8.count + 8 })
        for (i, key) in dictionary.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }).enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            appendString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            appendString(dictionary[key] ?? "", to: &out)
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }
}
