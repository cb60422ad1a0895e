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

    /// Matches by record, held as three columns in id order (24 bytes a match: a dictionary of
    /// the 7.8 million near duplicates of ten million records took 400 MB, these 190 MB); looked
    /// up by binary search.
    public struct Matches: Sendable, Sequence {
        public private(set) var keys: [Int64] = []
        private var others: [Int64] = []
        private var similarities: [Double] = []

        public var count: Int { keys.count }
        public var isEmpty: Bool { keys.isEmpty }

        /// The first position whose id is not below `id`.
        private func position(_ id: Int64) -> Int {
            var lo = 0, hi = keys.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if keys[mid] < id { lo = mid + 1 } else { hi = mid }
            }
            return lo
        }

        public subscript(id: Int64) -> Match? {
            get {
                let p = position(id)
                return p < keys.count && keys[p] == id ? Match(other: others[p], similarity: similarities[p]) : nil
            }
            set {
                let p = keys.last.map { $0 < id } ?? true ? keys.count : position(id)
                let present = p < keys.count && keys[p] == id
                switch (newValue, present) {
                case let (match?, true):
                    others[p] = match.other
                    similarities[p] = match.similarity
                case let (match?, false):
                    keys.insert(id, at: p)
                    others.insert(match.other, at: p)
                    similarities.insert(match.similarity, at: p)
                case (nil, true):
                    keys.remove(at: p)
                    others.remove(at: p)
                    similarities.remove(at: p)
                case (nil, false):
                    break
                }
            }
        }

        /// In id order.
        public func makeIterator() -> AnyIterator<(key: Int64, value: Match)> {
            var k = 0
            return AnyIterator {
                guard k < keys.count else { return nil }
                defer { k += 1 }
                return (keys[k], Match(other: others[k], similarity: similarities[k]))
            }
        }
    }

    public struct Result: Sendable {
        /// Near duplicates: record id → its representative (kept) and their similarity.
        public var duplicates = Matches()
        /// Kept records with a kept earlier record just below the threshold.
        public var borderline = Matches()
    }

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
        let n = ids.count, P = s.permutations
        guard P > 0, s.rows > 0 else { return Result() }
        let rowIndex = rowOf ?? (0..<Int32(clamping: n)).map { $0 }
        let available = signatures.count / P
        guard rowIndex.count == n, rowOf != nil || signatures.count == n * P,
              rowIndex.allSatisfy({ $0 >= 0 && Int($0) < available }) else { return Result() }
        return signatures.withUnsafeBufferPointer { sig in
            guard let base = sig.baseAddress else { return Result() }
            // Held in memory: nothing here can fail.
            return (try? search(ids: ids, rowOf: rowIndex, MemorySignatures(base: base, permutations: P, rows: s.rows),
                                settings: s, earlier: earlier, spillFolder: nil)) ?? Result()
        }
    }

    /// The same over signatures spilled to disk (a whole-store check, `CheckSpill`): the
    /// candidates of each band are spilled beside them.
    static func find(ids: [Int64], rowOf: [Int32], spill: CheckSpill, settings s: NearDuplicateSettings) throws -> Result {
        try spill.flush()
        return try search(ids: ids, rowOf: rowOf, SpilledSignatures(spill), settings: s, earlier: nil, spillFolder: spill.folder)
    }

    /// The search, in two steps that each hold a few arrays of one value a record:
    ///
    /// 1. Band by band, the records are sorted by (band key, position): a run of one key is a
    ///    bucket in id order, and each record's candidates in it (the bucket's first two records
    ///    and the one just before it) are written down, three a record a band.
    /// 2. Record by record in id order, its candidates of every band (distinct, still kept) are
    ///    compared with it on the whole signature; it is a near duplicate of the most similar one
    ///    at or above the threshold (the earliest of equals), else borderline with the most
    ///    similar one within the margin below it.
    ///
    /// Every confirmed candidate counts (no cap on neighbours): the outcome depends on neither
    /// the number of cores nor the order the bands are visited in.
    static func search<S: SignatureSource>(ids: [Int64], rowOf: [Int32], _ source: S, settings s: NearDuplicateSettings,
                                           earlier: Earlier?, spillFolder: String?) throws -> Result {
        let n = ids.count, P = s.permutations
        let start = earlier?.count ?? 0
        guard n > start, n > 1, start >= 0 else { return Result() }
        if let earlier, earlier.kept.count != start || earlier.buckets.count != s.bands { return Result() }
        let m = n - start
        let candidates = try CandidateBands(bands: s.bands, records: m, folder: spillFolder)

        // 1. Candidates, band by band.
        for band in 0..<s.bands {
            let keys = try source.bandKeys(band: band, of: rowOf[start..<n])
            var order = [(key: UInt64, rank: Int32)]()
            order.reserveCapacity(m)
            for (k, key) in keys.enumerated() { order.append((key, Int32(start + k))) }
            order.sort { $0.key != $1.key ? $0.key < $1.key : $0.rank < $1.rank }
            var found = [Int32](repeating: -1, count: 3 * m)
            let before = earlier?.buckets[band]
            var r = 0
            while r < order.count {
                let key = order[r].key
                // The bucket as the records before this run left it: empty, or the earlier records'.
                var first: Int32 = -1, second: Int32 = -1, latest: Int32 = -1
                if let b = before?[key], b.first >= 0 { (first, second, latest) = (b.first, b.second, b.latest) }
                while r < order.count && order[r].key == key {
                    let j = Int(order[r].rank), at = 3 * (j - start)
                    if first < 0 {
                        first = Int32(j)
                        latest = Int32(j)
                    } else {
                        found[at] = first
                        found[at + 1] = second
                        found[at + 2] = second == latest || first == latest ? -1 : latest
                        if second < 0 { second = Int32(j) }
                        latest = Int32(j)
                    }
                    r += 1
                }
            }
            try candidates.put(band: band, found)
        }

        // 2. Confirmation, in id order (whether a candidate is kept is known by then).
        var kept = [Bool](repeating: true, count: n)
        if let earlier { kept.replaceSubrange(0..<start, with: earlier.kept) }
        let low = s.threshold - s.borderlineMargin
        let minEqual = Int32((low * Double(P)).rounded(.up))
        let thresholdEqual = Int32((s.threshold * Double(P)).rounded(.up))
        var result = Result()
        let mine = UnsafeMutablePointer<UInt32>.allocate(capacity: P), theirs = UnsafeMutablePointer<UInt32>.allocate(capacity: P)
        defer {
            mine.deallocate()
            theirs.deallocate()
        }
        var distinct: [Int32] = []
        distinct.reserveCapacity(3 * s.bands)
        try candidates.forEachRecord { k, found in
            let j = start + k
            distinct.removeAll(keepingCapacity: true)
            for c in found where c >= 0 && kept[Int(c)] && !distinct.contains(c) { distinct.append(c) }
            guard !distinct.isEmpty else { return }
            let a = try source.row(Int(rowOf[j]), scratch: mine)
            var best = (i: Int32(-1), equal: Int32(0)), bestLow = (i: Int32(-1), equal: Int32(0))
            for c in distinct {
                let equal = cmh_matches(try source.row(Int(rowOf[Int(c)]), scratch: theirs), a, Int32(P))
                if equal >= thresholdEqual {
                    if equal > best.equal || (equal == best.equal && c < best.i) { best = (c, equal) }
                } else if equal >= minEqual, equal > bestLow.equal || (equal == bestLow.equal && c < bestLow.i) {
                    bestLow = (c, equal)
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

    /// Each record's candidates of every band (three a band, -1 where none), by position from the
    /// first record searched: in memory, or in one temporary file a band beside a spill.
    final class CandidateBands {
        let bands: Int, records: Int
        private var memory: [[Int32]] = []
        private var files: [SpillFile] = []

        init(bands: Int, records: Int, folder: String?) throws {
            self.bands = bands
            self.records = records
            if let folder {
                files = try (0..<bands).map { try SpillFile(path: "\(folder)/candidates-\($0)") }
            }
        }

        deinit { for f in files { unlink(f.path) } }

        func put(band: Int, _ found: [Int32]) throws {
            if files.isEmpty {
                memory.append(found)
            } else {
                try found.withUnsafeBufferPointer { try files[band].append($0) }
                try files[band].flush()
            }
        }

        /// Hands over each record's candidates (`3 * bands` values) in order.
        func forEachRecord(_ body: (Int, UnsafeBufferPointer<Int32>) throws -> Void) throws {
            let block = 4096
            var gathered = [Int32](repeating: -1, count: block * 3 * bands)
            var read = [Int32](repeating: -1, count: block * 3)
            var k = 0
            while k < records {
                let count = min(block, records - k)
                for band in 0..<bands {
                    if files.isEmpty {
                        for x in 0..<(count * 3) { read[x] = memory[band][3 * k + x] }
                    } else {
                        try read.withUnsafeMutableBytes { raw in
                            try files[band].read(at: 3 * k * 4, into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<(count * 12)]))
                        }
                    }
                    for r in 0..<count {
                        for x in 0..<3 { gathered[(r * bands + band) * 3 + x] = read[r * 3 + x] }
                    }
                }
                try gathered.withUnsafeBufferPointer { g in
                    for r in 0..<count {
                        try body(k + r, UnsafeBufferPointer(rebasing: g[(r * bands * 3)..<((r + 1) * bands * 3)]))
                    }
                }
                k += count
            }
        }
    }
}

/// Where the near-duplicate search reads signatures: a row's values, and a band's keys of rows.
protocol SignatureSource {
    /// Row `row`'s values: in place, or read into `scratch` (room for a row).
    func row(_ row: Int, scratch: UnsafeMutablePointer<UInt32>) throws -> UnsafePointer<UInt32>
    /// The key of band `band` of each row given.
    func bandKeys(band: Int, of rows: ArraySlice<Int32>) throws -> [UInt64]
}

/// Signatures held in one array.
struct MemorySignatures: SignatureSource {
    let base: UnsafePointer<UInt32>
    let permutations: Int, rows: Int

    func row(_ row: Int, scratch: UnsafeMutablePointer<UInt32>) -> UnsafePointer<UInt32> { base + row * permutations }

    func bandKeys(band: Int, of rowIndex: ArraySlice<Int32>) -> [UInt64] {
        rowIndex.map { NearDuplicateFinder.bandKey(band: band, base + Int($0) * permutations + band * rows, rows: rows) }
    }
}

/// Signatures spilled to disk: a row is read back when compared, a band's keys all at once.
struct SpilledSignatures: SignatureSource {
    let spill: CheckSpill
    init(_ spill: CheckSpill) { self.spill = spill }

    func row(_ row: Int, scratch: UnsafeMutablePointer<UInt32>) throws -> UnsafePointer<UInt32> {
        try spill.read(row: row, into: scratch)
        return UnsafePointer(scratch)
    }

    func bandKeys(band: Int, of rowIndex: ArraySlice<Int32>) throws -> [UInt64] {
        let all = try spill.keys(band: band)
        return rowIndex.map { all[Int($0)] }
    }
}
