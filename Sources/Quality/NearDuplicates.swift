import CMinHash
import CorpusDB
import Foundation

/// Settings of the `near_duplicate` check (section `near_duplicates` of the check configuration).
/// Why each default is what it is: docs/QUALITY.md, "Near duplicates".
public struct NearDuplicateSettings: Codable, Sendable, Equatable {
    /// n of the character n-grams (shingles). The web-page tools use 5; short Chinese Q&A needs
    /// shorter ones (a 40-character question has few 5-grams, and one changed character breaks 5 of them).
    public var ngram = 3
    /// Number of MinHash permutations (length of a signature).
    public var permutations = 128
    /// LSH bands; each band has permutations / bands rows.
    public var bands = 32
    /// A pair is a near duplicate when its estimated Jaccard similarity is at least this.
    public var threshold = 0.7
    /// Pairs within this much below the threshold are listed for review as borderline.
    public var borderlineMargin = 0.1
    /// Compare letters, digits and ideographs only: punctuation, symbols and spaces are dropped
    /// and Latin letters lower-cased before shingling.
    public var ignorePunctuation = true
    /// "pair": the whole conversation; "prompt": only what is asked.
    public var on = "pair"
    /// Seed of the permutations; part of the signature's identity.
    public var seed: UInt64 = 1

    enum CodingKeys: String, CodingKey {
        case ngram, permutations, bands, threshold, borderlineMargin = "borderline_margin"
        case ignorePunctuation = "ignore_punctuation", on, seed
    }

    public init() {}

    /// Rows per band.
    public var rows: Int { bands > 0 ? permutations / bands : 0 }

    /// What a stored signature depends on (not the threshold or the banding): its key in
    /// `minhash_signatures`, so signatures are reused exactly when they would come out the same.
    public var signatureKey: String {
        let text = "minhash-v1 ngram=\(ngram) permutations=\(permutations) seed=\(seed) ignore_punctuation=\(ignorePunctuation) on=\(on) normalization=\(Normalizer.version)"
        return String(ContentHash.sha256Hex(Array(text.utf8)).prefix(16))
    }

    func validate(path: String) throws {
        guard ngram >= 1, ngram <= 32 else { throw QualityError(.invalidConfiguration, "\(path): near_duplicates.ngram must be between 1 and 32") }
        guard permutations >= 16, permutations <= 1024 else {
            throw QualityError(.invalidConfiguration, "\(path): near_duplicates.permutations must be between 16 and 1024")
        }
        guard bands >= 1, permutations % bands == 0 else {
            throw QualityError(.invalidConfiguration, "\(path): near_duplicates.bands (\(bands)) must divide permutations (\(permutations)), e.g. 32 bands of 4 rows for 128")
        }
        guard threshold > 0, threshold <= 1 else { throw QualityError(.invalidConfiguration, "\(path): near_duplicates.threshold must be in (0, 1]") }
        guard borderlineMargin >= 0, borderlineMargin < threshold else {
            throw QualityError(.invalidConfiguration, "\(path): near_duplicates.borderline_margin must be at least 0 and below the threshold")
        }
        guard ExactDuplicates.Basis(rawValue: on) != nil else {
            throw QualityError(.invalidConfiguration, "\(path): near_duplicates.on is '\(on)'; use pair or prompt")
        }
    }
}

/// MinHash signatures of conversations: character n-grams of the normalized text, each hashed
/// once, then `permutations` hash functions (a 32-bit mixing bijection of the n-gram's hash
/// XOR a per-permutation seed); a signature keeps each function's minimum. Two signatures agree
/// at a position with probability equal to the Jaccard similarity of the two n-gram sets.
public struct MinHasher: Sendable {
    public let settings: NearDuplicateSettings
    let seeds: [UInt32]

    public init(_ settings: NearDuplicateSettings) {
        self.settings = settings
        var state = settings.seed
        var seeds: [UInt32] = []
        for _ in 0..<settings.permutations {
            // SplitMix64.
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            seeds.append(UInt32(truncatingIfNeeded: z ^ (z >> 31)))
        }
        self.seeds = seeds
    }

    /// The scalars compared: the turns chosen by `on` (already normalized with
    /// `Normalizer.comparable`), in order, separated by U+001E; with `ignorePunctuation`, only
    /// letters, marks, digits and ideographs are kept and Latin capitals are lower-cased.
    public func comparableScalars(normalizedTurns turns: [(role: Role, text: String)]) -> [UInt32] {
        var out: [UInt32] = []
        for turn in turns where settings.on == "pair" || turn.role == .system || turn.role == .user {
            if !out.isEmpty { out.append(0x1E) }
            for s in turn.text.unicodeScalars {
                let v = s.value
                if !settings.ignorePunctuation {
                    out.append(v)
                } else if v < 0x80 {
                    if v >= 0x41 && v <= 0x5A { out.append(v + 0x20) } else if (v >= 0x61 && v <= 0x7A) || (v >= 0x30 && v <= 0x39) { out.append(v) }
                } else if v >= 0x4E00 && v <= 0x9FFF {
                    out.append(v)
                } else {
                    switch s.properties.generalCategory {
                    case .uppercaseLetter, .titlecaseLetter:
                        out.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars.map(\.value))
                    case .lowercaseLetter, .modifierLetter, .otherLetter, .nonspacingMark, .spacingMark, .enclosingMark,
                         .decimalNumber, .letterNumber, .otherNumber:
                        out.append(v)
                    default:
                        break
                    }
                }
            }
        }
        return out
    }

    /// The signature of a conversation's comparable scalars; nil when there is nothing to
    /// compare (no letters or digits at all).
    public func signature(of scalars: [UInt32]) -> [UInt32]? {
        guard !scalars.isEmpty else { return nil }
        var shingles = [UInt32](repeating: 0, count: max(1, scalars.count - settings.ngram + 1))
        let count = scalars.withUnsafeBufferPointer { text in
            shingles.withUnsafeMutableBufferPointer { out in
                cmh_shingles(text.baseAddress, text.count, Int32(settings.ngram), out.baseAddress)
            }
        }
        var signature = [UInt32](repeating: 0, count: settings.permutations)
        shingles.withUnsafeBufferPointer { sh in
            seeds.withUnsafeBufferPointer { sd in
                signature.withUnsafeMutableBufferPointer { out in
                    cmh_signature(sh.baseAddress, count, sd.baseAddress, Int32(settings.permutations), out.baseAddress)
                }
            }
        }
        return signature
    }

    /// Estimated Jaccard similarity of two signatures: the share of equal positions.
    public static func similarity(_ a: [UInt32], _ b: [UInt32]) -> Double {
        guard a.count == b.count, !a.isEmpty else { return 0 }
        let equal = a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in cmh_matches(x.baseAddress, y.baseAddress, Int32(a.count)) } }
        return Double(equal) / Double(a.count)
    }

    /// A signature as stored: little-endian unsigned 32-bit integers, one per permutation.
    public static func blob(_ signature: [UInt32]) -> Data {
        signature.withUnsafeBufferPointer { blob($0) }
    }

    /// Row `row` of a flat array of signatures (`permutations` values a row), as stored.
    static func blob(row: Int, of rows: [UInt32], permutations: Int) -> Data {
        let start = row * permutations
        return rows.withUnsafeBufferPointer { blob(UnsafeBufferPointer(rebasing: $0[start..<(start + permutations)])) }
    }

    /// The same from a row of values in place (no array per signature: a million are stored in
    /// one go). Written value by value: `map(\.littleEndian)` went through a key path per value,
    /// a fifth of the time of storing a million signatures.
    static func blob(_ signature: UnsafeBufferPointer<UInt32>) -> Data {
        var data = Data(count: signature.count * 4)
        data.withUnsafeMutableBytes { raw in
            for (k, v) in signature.enumerated() { raw.storeBytes(of: v.littleEndian, toByteOffset: k * 4, as: UInt32.self) }
        }
        return data
    }

    /// A stored signature; nil when its length is not `permutations` values.
    public static func signature(blob: Data, permutations: Int) -> [UInt32]? {
        guard isSignature(byteCount: blob.count, permutations: permutations) else { return nil }
        var signature = [UInt32](repeating: 0, count: permutations)
        blob.withUnsafeBytes { read($0, into: &signature) }
        return signature
    }

    /// Whether a stored blob of this many bytes is a signature of `permutations` values.
    public static func isSignature(byteCount: Int, permutations: Int) -> Bool { byteCount == permutations * 4 }

    /// Reads a stored signature (`isSignature` of its length) into `out`, which has one value a
    /// permutation: no allocation, for streams of a million.
    static func read(_ raw: UnsafeRawBufferPointer, into out: inout [UInt32]) {
        for k in out.indices { out[k] = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: k * 4, as: UInt32.self)) }
    }
}

/// Near duplicates among signed records by MinHash LSH.
///
/// Candidates: records whose signatures agree on every row of at least one band. Within a
/// band's bucket, each record is compared with the bucket's first two records and with the one
/// just before it (by id), and the pair is confirmed by the estimated Jaccard similarity of the
/// whole signatures. Then, in id order, a record is a near duplicate when it is confirmed
/// similar to an earlier record that is itself kept (so a chain A~B~C where C is not similar
/// to A keeps C); its representative is the most similar such record. Kept pairs within the
/// borderline margin below the threshold are listed for review.
public enum NearDuplicateFinder {
    public struct Match: Sendable, Equatable {
        /// The earlier record.
        public var other: Int64
        public var similarity: Double
    }

    public struct Result: Sendable {
        /// Near duplicates: record id → its representative (kept) and their similarity.
        public var duplicates: [Int64: Match] = [:]
        /// Kept records with a kept earlier record just below the threshold.
        public var borderline: [Int64: Match] = [:]
    }

    /// How many earlier neighbours (confirmed at or above threshold - margin) each record keeps.
    static let neighbourSlots = 6

    /// Records compared before, for a search that judges only records added since (an
    /// incremental check): the first `count` of `ids` are such records, candidates only.
    public struct Earlier: Sendable {
        /// How many of `ids` (the first ones) are earlier records.
        public var count: Int
        /// Per band: what the bucket table held after the earlier records, for the band keys of
        /// the new records (the others cannot matter): the first two records and the latest with
        /// the key, as indices into `ids` below `count`, -1 where none.
        public var buckets: [[UInt64: (first: Int32, second: Int32, latest: Int32)]]
        /// Whether each earlier record is kept (not itself a near duplicate).
        public var kept: [Bool]

        public init(count: Int, buckets: [[UInt64: (first: Int32, second: Int32, latest: Int32)]], kept: [Bool]) {
            self.count = count
            self.buckets = buckets
            self.kept = kept
        }
    }

    /// The key of band `band` of a signature (`rows` values from `row`): FNV-1a of its rows, with
    /// the band mixed in.
    @inline(__always)
    static func bandKey(band: Int, _ row: UnsafePointer<UInt32>, rows: Int) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(band)
        for r in 0..<rows { h = (h ^ UInt64(row[r])) &* 0x100_0000_01b3 }
        return h
    }

    /// - Parameters:
    ///   - ids: ascending record ids.
    ///   - signatures: rows of `settings.permutations` values: row i for ids[i], or with `rowOf`,
    ///     row `rowOf[i]` (so a pass can hand over the signatures it holds without copying them).
    ///   - earlier: when given, the first `earlier.count` ids are records compared before: only
    ///     the others are looked up and judged, against them and each other, exactly as a search
    ///     over every record would judge them.
    public static func find(ids: [Int64], signatures: [UInt32], rowOf: [Int32]? = nil, settings s: NearDuplicateSettings,
                            earlier: Earlier? = nil) -> Result {
        let n = ids.count, P = s.permutations, rows = s.rows
        let start = earlier?.count ?? 0
        guard n > start, n > 1, P > 0, rows > 0, start >= 0 else { return Result() }
        if let earlier, earlier.kept.count != start || earlier.buckets.count != s.bands { return Result() }
        let rowIndex = rowOf ?? (0..<Int32(clamping: n)).map { $0 }
        let available = signatures.count / P
        guard rowIndex.count == n, rowOf != nil || signatures.count == n * P,
              rowIndex.allSatisfy({ $0 >= 0 && Int($0) < available }) else { return Result() }
        let low = s.threshold - s.borderlineMargin
        let minEqual = Int32((low * Double(P)).rounded(.up))
        let K = neighbourSlots

        // Each band is scanned with its own bucket table; the bands are split over the cores,
        // each part with its own neighbour lists, merged afterwards.
        let parts = max(1, min(s.bands, ProcessInfo.processInfo.activeProcessorCount))
        let lists = (0..<parts).map { _ in NeighbourLists(count: n, slots: K) }
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            signatures.withUnsafeBufferPointer { sig in rowIndex.withUnsafeBufferPointer { at in
                guard let base = sig.baseAddress else { return }
                let mine = lists[part]
                var table = BucketTable(capacity: n)
                var band = part
                while band < s.bands {
                    table.clear()
                    if let earlier {
                        for (key, b) in earlier.buckets[band] { table.fill(key: key, first: b.first, second: b.second, latest: b.latest) }
                    }
                    let offset = band * rows
                    for j in start..<n {
                        let h = bandKey(band: band, base + Int(at[j]) * P + offset, rows: rows)
                        let found = table.visit(key: h, record: Int32(j))
                        func confirm(_ candidate: Int32) {
                            guard candidate >= 0, !mine.contains(record: j, other: candidate) else { return }
                            let equal = cmh_matches(base + Int(at[Int(candidate)]) * P, base + Int(at[j]) * P, Int32(P))
                            if equal >= minEqual { mine.add(record: j, other: candidate, equal: equal) }
                        }
                        confirm(found.first)
                        confirm(found.second)
                        confirm(found.previous)
                    }
                    band += parts
                }
            } }
        }
        for part in lists.dropFirst() { lists[0].merge(part) }
        let merged = lists[0]

        var kept = [Bool](repeating: true, count: n)
        if let earlier { kept.replaceSubrange(0..<start, with: earlier.kept) }
        var result = Result()
        let thresholdEqual = Int32((s.threshold * Double(P)).rounded(.up))
        for j in start..<n {
            // The most similar kept earlier record at or above the threshold, else below it.
            var best = (i: Int32(-1), equal: Int32(0)), bestLow = (i: Int32(-1), equal: Int32(0))
            for (i, equal) in merged.neighbours(of: j) where kept[Int(i)] {
                if equal >= thresholdEqual {
                    if equal > best.equal || (equal == best.equal && i < best.i) { best = (i, equal) }
                } else if equal > bestLow.equal || (equal == bestLow.equal && i < bestLow.i) {
                    bestLow = (i, equal)
                }
            }
            if best.i >= 0 {
                kept[j] = false
                result.duplicates[ids[j]] = Match(other: ids[Int(best.i)], similarity: Double(best.equal) / Double(P))
            } else if bestLow.i >= 0 {
                result.borderline[ids[j]] = Match(other: ids[Int(bestLow.i)], similarity: Double(bestLow.equal) / Double(P))
            }
        }
        return result
    }

    /// Open-addressing table from a band key to the first two records and the latest record with it.
    struct BucketTable {
        private var keys: [UInt64]
        private var first: [Int32]
        private var second: [Int32]
        private var latest: [Int32]
        private let mask: Int

        init(capacity: Int) {
            var size = 16
            while size < capacity * 2 { size <<= 1 }
            keys = [UInt64](repeating: 0, count: size)
            first = [Int32](repeating: -1, count: size)
            second = [Int32](repeating: -1, count: size)
            latest = [Int32](repeating: -1, count: size)
            mask = size - 1
        }

        mutating func clear() {
            for i in first.indices { first[i] = -1 }
        }

        /// The slot holding `key`, or the empty slot where it goes.
        private func slot(of key: UInt64) -> Int {
            var slot = Int(truncatingIfNeeded: ((key ^ (key >> 29)) &* 0xBF58_476D_1CE4_E5B9) >> 20) & mask
            while first[slot] >= 0 && keys[slot] != key { slot = (slot + 1) & mask }
            return slot
        }

        /// Sets what the table holds for a key, as if the records had been visited.
        mutating func fill(key: UInt64, first f: Int32, second s: Int32, latest l: Int32) {
            guard f >= 0 else { return }
            let slot = slot(of: key)
            keys[slot] = key
            first[slot] = f
            second[slot] = s
            latest[slot] = l
        }

        /// The records met before with this key (-1 where none), then records this one.
        mutating func visit(key: UInt64, record: Int32) -> (first: Int32, second: Int32, previous: Int32) {
            let slot = slot(of: key)
            if first[slot] < 0 {
                keys[slot] = key
                first[slot] = record
                second[slot] = -1
                latest[slot] = record
                return (-1, -1, -1)
            }
            let found = (first[slot], second[slot], second[slot] == latest[slot] || first[slot] == latest[slot] ? -1 : latest[slot])
            if second[slot] < 0 { second[slot] = record }
            latest[slot] = record
            return found
        }
    }

    /// Up to `slots` confirmed earlier neighbours per record, keeping the most similar.
    final class NeighbourLists: @unchecked Sendable {
        // @unchecked: each instance is used by one thread at a time (one per part of the bands).
        let slots: Int
        var other: [Int32]
        /// Equal values (at most `permutations`, validated to 1,024): two bytes, not four, a
        /// neighbour (a million records keep 6 a part).
        var equal: [UInt16]

        init(count: Int, slots: Int) {
            self.slots = slots
            other = [Int32](repeating: -1, count: count * slots)
            equal = [UInt16](repeating: 0, count: count * slots)
        }

        func contains(record j: Int, other i: Int32) -> Bool {
            let base = j * slots
            for k in 0..<slots where other[base + k] == i { return true }
            return false
        }

        func add(record j: Int, other i: Int32, equal wide: Int32) {
            let e = UInt16(clamping: wide)
            let base = j * slots
            var weakest = base
            for k in base..<(base + slots) {
                if other[k] == i { return }
                if other[k] < 0 { other[k] = i; equal[k] = e; return }
                if equal[k] < equal[weakest] { weakest = k }
            }
            if e > equal[weakest] { other[weakest] = i; equal[weakest] = e }
        }

        func merge(_ o: NeighbourLists) {
            let n = other.count / slots
            for j in 0..<n {
                for k in (j * slots)..<((j + 1) * slots) where o.other[k] >= 0 { add(record: j, other: o.other[k], equal: Int32(o.equal[k])) }
            }
        }

        func neighbours(of j: Int) -> [(Int32, Int32)] {
            var out: [(Int32, Int32)] = []
            for k in (j * slots)..<((j + 1) * slots) where other[k] >= 0 { out.append((other[k], Int32(equal[k]))) }
            return out
        }
    }
}
