import CorpusDB
import Foundation

/// What the corpus-wide findings need of one record besides its MinHash signature: the keys of
/// its normalized conversation and question (exact duplicates, conflicting answers), its answer's
/// length and the hashes of its answer's sentences (boilerplate). Stored per record
/// (`check_facts`, migration 0014) under `CheckConfiguration.factsKey`, so a later check reads a
/// record judged before instead of decoding and normalizing it again (docs/QUALITY.md,
/// "Incremental checks").
///
/// Stored form (little-endian): pair key (32 bytes), prompt key (32), answer length in scalars
/// (u32), then per distinct sentence its hash (u64) and length (u32).
public struct CheckFacts: Sendable, Equatable {
    public var pairKey: SHA256Key
    public var promptKey: SHA256Key
    public var answerLength: Int32
    public var sentences: [(hash: UInt64, length: Int32)]

    public init(pairKey: SHA256Key, promptKey: SHA256Key, answerLength: Int32, sentences: [(hash: UInt64, length: Int32)]) {
        self.pairKey = pairKey
        self.promptKey = promptKey
        self.answerLength = answerLength
        self.sentences = sentences
    }

    public static func == (a: CheckFacts, b: CheckFacts) -> Bool {
        a.pairKey == b.pairKey && a.promptKey == b.promptKey && a.answerLength == b.answerLength
            && a.sentences.count == b.sentences.count && zip(a.sentences, b.sentences).allSatisfy { $0.hash == $1.hash && $0.length == $1.length }
    }

    static let fixedBytes = 68

    /// The stored form.
    public var blob: Data {
        // Stored value by value into a buffer of the final size (no generic helper, no array of
        // the two keys: a million records' facts are made in one go).
        var data = Data(count: Self.fixedBytes + sentences.count * 12)
        data.withUnsafeMutableBytes { raw in
            var at = 0
            func u64(_ v: UInt64) { raw.storeBytes(of: v.littleEndian, toByteOffset: at, as: UInt64.self); at += 8 }
            func u32(_ v: UInt32) { raw.storeBytes(of: v.littleEndian, toByteOffset: at, as: UInt32.self); at += 4 }
            u64(pairKey.a); u64(pairKey.b); u64(pairKey.c); u64(pairKey.d)
            u64(promptKey.a); u64(promptKey.b); u64(promptKey.c); u64(promptKey.d)
            u32(UInt32(bitPattern: answerLength))
            for s in sentences { u64(s.hash); u32(UInt32(bitPattern: s.length)) }
        }
        return data
    }

    /// Whether a stored blob of this many bytes has the stored form's shape.
    static func isWellFormed(byteCount: Int) -> Bool { byteCount >= fixedBytes && (byteCount - fixedBytes) % 12 == 0 }

    /// The pair and prompt keys of a stored form (`isWellFormed` of its length), read in place.
    static func keys(_ raw: UnsafeRawBufferPointer) -> (pair: SHA256Key, prompt: SHA256Key) {
        func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        return (SHA256Key(u64(0), u64(8), u64(16), u64(24)), SHA256Key(u64(32), u64(40), u64(48), u64(56)))
    }

    /// Calls `body` with each sentence's hash and length of a stored form, read in place.
    static func forEachSentence(_ raw: UnsafeRawBufferPointer, _ body: (UInt64, Int32) -> Void) {
        var at = fixedBytes
        while at + 12 <= raw.count {
            body(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self)),
                 Int32(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at + 8, as: UInt32.self))))
            at += 12
        }
    }

    /// Reads the stored form; nil when it is malformed (then the record is analysed again).
    public init?(blob: Data) {
        guard Self.isWellFormed(byteCount: blob.count) else { return nil }
        var facts: CheckFacts?
        blob.withUnsafeBytes { raw in
            let keys = Self.keys(raw)
            var sentences: [(hash: UInt64, length: Int32)] = []
            sentences.reserveCapacity((raw.count - Self.fixedBytes) / 12)
            Self.forEachSentence(raw) { sentences.append(($0, $1)) }
            let answerLength = Int32(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 64, as: UInt32.self)))
            facts = CheckFacts(pairKey: keys.pair, promptKey: keys.prompt, answerLength: answerLength, sentences: sentences)
        }
        guard let facts, facts.answerLength >= 0, facts.sentences.allSatisfy({ $0.length >= 0 }) else { return nil }
        self = facts
    }
}

extension CheckConfiguration {
    /// What a record's `CheckFacts` depend on (the normalization, and whether and from which
    /// length sentences are counted): their key in `check_facts`, so stored facts are read
    /// exactly when they would come out the same.
    public var factsKey: String {
        let sentences = runs("boilerplate") ? boilerplate.minSentenceChars : 0
        let text = "check-facts-v1 normalization=\(Normalizer.version) sentences=\(sentences)"
        return String(ContentHash.sha256Hex(Array(text.utf8)).prefix(16))
    }
}
