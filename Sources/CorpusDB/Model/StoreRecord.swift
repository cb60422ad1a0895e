import GRDB

/// A row type of the store: snake_case columns for camelCase properties, and an integer `id`
/// filled in on insert.
public protocol StoreRecord: Codable, FetchableRecord, MutablePersistableRecord {
    var id: Int64? { get set }
}

extension StoreRecord {
    public static var databaseColumnDecodingStrategy: DatabaseColumnDecodingStrategy { .convertFromSnakeCase }
    public static var databaseColumnEncodingStrategy: DatabaseColumnEncodingStrategy { .convertToSnakeCase }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}
