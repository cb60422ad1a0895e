import Foundation

/// The canonical serialization of a conversation: the exact bytes that `content_hash` hashes and
/// that `records.conversation` stores, so `corpus verify` can recompute every hash.
///
/// Form (docs/STORE.md): `{"messages":[{"role":"user","content":"..."},...]}` with keys in this
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
        out.append(contentsOf: Array("]}".utf8))
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
        do {
            return try JSONDecoder().decode(Conversation.self, from: Data(text.utf8))
        } catch {
            throw CorpusDBError(.cannotOpen, "stored conversation is not valid canonical JSON: \(error)")
        }
    }

    /// Appends `string` as a JSON string literal with the canonical escaping.
    public static func appendString(_ string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x08: out.append(contentsOf: [0x5C, UInt8(ascii: "b")])
            case 0x0C: out.append(contentsOf: [0x5C, UInt8(ascii: "f")])
            case 0x00..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// A JSON object of string values with keys sorted by their UTF-8 bytes, canonically escaped
    /// (used for tags, so equal tag sets are equal text).
    public static func object(_ dictionary: [String: String]) -> String {
        var out: [UInt8] = [UInt8(ascii: "{")]
        for (i, key) in dictionary.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }).enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            appendString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            appendString(dictionary[key] ?? "", to: &out)
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }
}
