import Foundation

/// How `corpus ingest` reads files. Every option is recorded on the source it produced.
public struct IngestOptions: Sendable {
    /// Force a format instead of detecting it from the content.
    public var format: SourceFormat?
    /// Force an encoding (ICU name; GBK and GB2312 are read as GB18030).
    public var encoding: String?
    /// Replace undecodable bytes with U+FFFD and flag the record instead of rejecting the row.
    public var lossy: Bool = false
    /// An explicit field mapping, `user=query,assistant=response,tag.laws=laws`.
    public var map: String?
    /// Tags given to every record (`--tag key=value`), winning over mapped and directory tags.
    public var tags: [String: String] = [:]
    /// Tag each file with its directory name (the part after the first underscore, if any).
    public var tagsFromDirs: Bool = false
    /// The tag key `tagsFromDirs` sets.
    public var dirTagKey: String = "department"
    /// Ingest a file again even when its SHA-256 is already in the store.
    public var force: Bool = false
    /// CSV delimiter; detected from the header line when nil.
    public var delimiter: UInt8?
    /// About how many bytes of a file are decoded and read at a time (`TextStream`): what ingest
    /// holds of a CSV or JSONL file instead of all of it. It changes nothing that is ingested
    /// (the tests read files in windows of a few bytes and compare) and is not recorded.
    public var windowBytes: Int = 16 << 20

    public init() {}

    /// The options as a JSON object, stored on the source.
    public var json: [String: Any] {
        var out: [String: Any] = ["lossy": lossy, "force": force, "tags_from_dirs": tagsFromDirs]
        if let format { out["format"] = format.rawValue }
        if let encoding { out["encoding"] = encoding }
        if let map { out["map"] = map }
        if let delimiter { out["delimiter"] = String(UnicodeScalar(delimiter)) }
        if !tags.isEmpty { out["tags"] = tags }
        if tagsFromDirs { out["dir_tag_key"] = dirTagKey }
        return out
    }
}

/// One file to ingest, with the tags its location gives it.
public struct InputFile: Sendable, Equatable {
    public var path: String
    public var directoryTags: [String: String]

    public init(path: String, directoryTags: [String: String] = [:]) {
        self.path = path
        self.directoryTags = directoryTags
    }
}

/// What happened to one file.
public struct FileSummary: Sendable {
    public var path: String
    public var sha256: String
    public var bytes: Int
    /// The new source's id; nil when the file was skipped.
    public var sourceId: Int64?
    /// Set when the file was not ingested because its hash is already in the store.
    public var alreadyIngestedAs: Int64?
    public var format: SourceFormat?
    public var encoding: String
    public var encodingConfidence: Int
    public var rows: Int
    public var records: Int
    /// Rejects per reason code, most frequent first.
    public var rejectsByReason: [(reason: String, count: Int)]
    public var seconds: Double

    public var rejects: Int { rejectsByReason.reduce(0) { $0 + $1.count } }
}

/// Progress of the file being ingested, sent a few times per second.
public struct IngestProgress: Sendable {
    public var path: String
    public var rows: Int
    /// Bytes of the file processed so far, and in all.
    public var processed: Int
    public var total: Int
    public var elapsed: Double
}
