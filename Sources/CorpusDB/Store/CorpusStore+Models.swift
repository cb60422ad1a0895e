import Foundation
import GRDB

extension CorpusStore {
    /// Registers `model` unless its name is taken. Check and insert happen in one write
    /// transaction, so two concurrent registrations cannot both take a name.
    /// - Returns: `.added` with the new id, or `.alreadyRegistered` with the existing row when a
    ///   model of that name has the same fingerprint (nothing is written then).
    /// - Throws: `CorpusDBError(.conflict)` when the name belongs to a model with another
    ///   fingerprint; GRDB's `DatabaseError` when a constraint rejects the row.
    public func register(_ model: RegisteredModel) throws -> ModelRegistration {
        try pool.write { db in
            if let existing = try RegisteredModel.filter(Column("name") == model.name).fetchOne(db) {
                guard existing.fingerprint == model.fingerprint else {
                    throw CorpusDBError(.conflict,
                        "\(model.path): the name \"\(model.name)\" is already taken by model \(existing.id ?? 0) (\(existing.path), fingerprint \(existing.fingerprint.prefix(12))…), whose weights differ (this one's fingerprint is \(model.fingerprint.prefix(12))…); choose another name with --name")
                }
                return .alreadyRegistered(existing)
            }
            var row = model
            row.id = nil
            try row.insert(db)
            return .added(row)
        }
    }

    /// Every registered model, oldest first.
    public func allModels() throws -> [RegisteredModel] {
        try pool.read { db in try RegisteredModel.order(Column("id")).fetchAll(db) }
    }

    /// The model called `name`, or nil.
    public func model(named name: String) throws -> RegisteredModel? {
        try pool.read { db in try RegisteredModel.filter(Column("name") == name).fetchOne(db) }
    }

    /// The model with this id, or nil.
    public func model(id: Int64) throws -> RegisteredModel? {
        try pool.read { db in try RegisteredModel.fetchOne(db, key: id) }
    }

    /// Models whose weights have this fingerprint (the same weights may carry several names).
    public func models(fingerprint: String) throws -> [RegisteredModel] {
        try pool.read { db in
            try RegisteredModel.filter(Column("fingerprint") == fingerprint).order(Column("id")).fetchAll(db)
        }
    }

    /// The model `reference` names: an id when it is all digits (names never are), else a name.
    public func model(reference: String) throws -> RegisteredModel? {
        if !reference.isEmpty, reference.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            guard let id = Int64(reference) else { return nil }
            return try model(id: id)
        }
        return try model(named: reference)
    }
}
