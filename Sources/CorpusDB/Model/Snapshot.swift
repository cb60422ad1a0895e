import Foundation
import GRDB

/// A frozen, content-addressed selection of records with a train/eval split (table `snapshots`).
public struct Snapshot: StoreRecord, Sendable, Equatable {
    public static let databaseTableName = "snapshots"

    public var id: Int64?
    public var name: String
    public var version: Int
    public var parentId: Int64?
    /// Hex SHA-256 over the members' `content_hash split` lines in order (docs/SNAPSHOTS.md).
    public var hash: String
    /// JSON: the selection (checks, tags, sources, eval ratio, seed, cap per tag).
    public var spec: String
    /// The check configuration hash whose verdicts selected the members, nil for none.
    public var checks: String?
    public var evalRatio: Double
    public var seed: Int64
    public var records: Int
    public var train: Int
    public var eval: Int
    /// JSON: `{"key=value": {"train": n, "eval": n}}`.
    public var tagCounts: String
    /// JSON: candidates left out, by reason (`duplicate`, `withdrawn`, `cap_per_tag`, ...).
    public var excluded: String
    public var note: String
    public var createdAt: String
    public var toolVersion: String

    /// `name@version`, the way commands accept and print it.
    public var label: String { "\(name)@\(version)" }
}

/// One member of a snapshot (table `snapshot_records`).
public struct SnapshotMember: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "snapshot_records"
    public static var databaseColumnDecodingStrategy: DatabaseColumnDecodingStrategy { .convertFromSnakeCase }
    public static var databaseColumnEncodingStrategy: DatabaseColumnEncodingStrategy { .convertToSnakeCase }

    public var snapshotId: Int64
    public var position: Int
    public var recordId: Int64
    public var contentHash: String
    /// "train" or "eval".
    public var split: String
}

/// A removal request on a record (table `withdrawals`).
public struct Withdrawal: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "withdrawals"
    public static var databaseColumnDecodingStrategy: DatabaseColumnDecodingStrategy { .convertFromSnakeCase }
    public static var databaseColumnEncodingStrategy: DatabaseColumnEncodingStrategy { .convertToSnakeCase }

    public var recordId: Int64
    public var reason: String
    public var requestedAt: String
    public var erased: Bool
}
