import Foundation

/// A record's original fields stored by reference where they repeat the conversation
/// (docs/STORE.md, "Original fields by reference").
///
/// A CSV row's answer column is the assistant turn byte for byte, and its question columns are
/// pieces of the user turn, so storing the fields as read doubled what ingest writes. For rows
/// whose fields are plain strings (CSV), a field whose text occurs in a turn is stored as a
/// reference instead: `records.original` keeps the other fields (a canonical JSON object) and
/// `records.original_refs` maps each referenced field to `[turn, start, length]`: the index in
/// the conversation's turns (`Conversation.allMessages`: the messages, then a pair's rejected
/// answer), and the UTF-8 byte range in that turn's text. `resolve` gives back exactly the text
/// that would have been stored whole (`CanonicalJSON.object` of every field). JSON input keeps
/// the element's own text whole (`original_refs` NULL), as do rows stored before migration 0013.
public enum OriginalFields {
    /// Fields shorter than this many UTF-8 bytes are stored as they are (a reference costs ~12).
    static let minimumReferenced = 16

    /// The stored form of a row's string fields: the fields kept in `original` and the
    /// references (nil when no field is referenced).
    public static func split(_ fields: [String: String], conversation: Conversation) -> (original: String, refs: String?) {
        let turns = conversation.allMessages
        var kept: [String: String] = [:]
        var refs: [(key: String, turn: Int, start: Int, length: Int)] = []
        for (key, value) in fields {
            let bytes = value.utf8.count
            if bytes >= minimumReferenced, let at = locate(value, in: turns) {
                refs.append((key, at.turn, at.start, bytes))
            } else {
                kept[key] = value
            }
        }
        guard !refs.isEmpty else { return (CanonicalJSON.object(fields), nil) }
        refs.sort { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        var out: [UInt8] = [UInt8(ascii: "{")]
        for (i, r) in refs.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            CanonicalJSON.appendString(r.key, to: &out)
            out.append(contentsOf: Array(":[\(r.turn),\(r.start),\(r.length)]".utf8))
        }
        out.append(UInt8(ascii: "}"))
        return (CanonicalJSON.object(kept), String(decoding: out, as: UTF8.self))
    }

    /// Where `value` first occurs in the turns: the turn's index and the UTF-8 offset.
    static func locate(_ value: String, in turns: [Message]) -> (turn: Int, start: Int)? {
        var needle = value
        return needle.withUTF8 { n -> (Int, Int)? in
            for (t, message) in turns.enumerated() {
                var content = message.content
                let found = content.withUTF8 { h -> Int? in
                    guard h.count >= n.count, let hb = h.baseAddress, let nb = n.baseAddress else { return nil }
                    if h.count == n.count { return memcmp(hb, nb, n.count) == 0 ? 0 : nil }
                    // memchr for the first byte, memcmp for the rest (glibc's memmem is not
                    // declared without _GNU_SOURCE).
                    let first = Int32(nb[0]), last = h.count - n.count
                    var at = 0
                    while at <= last {
                        guard let p = memchr(hb + at, first, last - at + 1) else { return nil }
                        at = UnsafeRawPointer(p) - UnsafeRawPointer(hb)
                        if memcmp(hb + at, nb, n.count) == 0 { return at }
                        at += 1
                    }
                    return nil
                }
                if let found { return (t, found) }
            }
            return nil
        }
    }

    /// The original fields as they would have been stored whole.
    /// - Parameters:
    ///   - original: the stored `original` column.
    ///   - refs: the stored `original_refs` column; nil: `original` is already whole.
    ///   - conversation: the record's canonical conversation JSON.
    /// - Throws: `CorpusDBError` (`.invalid`) when the references do not fit the conversation.
    public static func resolve(original: String, refs: String?, conversation: String, record: Int64?) throws -> String {
        guard let refs else { return original }
        let name = record.map { "record \($0)" } ?? "a record"
        func bad(_ what: String) -> CorpusDBError {
            CorpusDBError(.invalid, "\(name): its original fields by reference cannot be resolved (\(what)): the row was changed outside corpus; its conversation is intact, compare with the source file at the record's byte offset")
        }
        guard let kept = (try? JSONSerialization.jsonObject(with: Data(original.utf8))) as? [String: String],
              let table = (try? JSONSerialization.jsonObject(with: Data(refs.utf8))) as? [String: [Int]] else {
            throw bad("original or original_refs is not the expected JSON object")
        }
        let turns = try CanonicalJSON.decode(conversation).allMessages
        var fields = kept
        for (key, at) in table {
            guard at.count == 3, at[0] >= 0, at[0] < turns.count else { throw bad("field \(key) names no turn") }
            let text = Array(turns[at[0]].content.utf8)
            guard at[1] >= 0, at[2] >= 0, at[1] <= text.count, at[2] <= text.count - at[1] else {
                throw bad("field \(key) lies outside its turn")
            }
            guard let value = String(validating: text[at[1]..<(at[1] + at[2])], as: UTF8.self) else {
                throw bad("field \(key) does not start or end on a character boundary")
            }
            fields[key] = value
        }
        return CanonicalJSON.object(fields)
    }
}
