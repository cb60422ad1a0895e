import CorpusDB
import Foundation
import ModelRuntime
import Trainer

extension ModelOptions {
    /// The path `--model` stands for: the argument itself when a file or folder exists there
    /// (a path wins over a name), else the path of the model registered under that name in the
    /// store of `--db` (or `CORPUS_DB`).
    /// - Throws: `ModelError.invalidFile` naming the argument when it is neither (exit 3).
    func resolvedModelPath() throws -> String {
        try Self.resolve(model, database: database)
    }

    /// `resolvedModelPath()` for a command whose `--model` is optional.
    static func resolve(_ model: String, database: DatabaseOptions) throws -> String {
        if FileManager.default.fileExists(atPath: model) { return model }
        // Names have no '/' and are not all digits; anything else can only have been a path.
        guard RegisteredModel.problem(withName: model) == nil else {
            throw ModelError.invalidFile(path: model, detail: "no such file or folder")
        }
        let store: CorpusStore
        let registered: RegisteredModel?
        do {
            store = try database.open()
            registered = try store.model(named: model)
        } catch {
            throw ModelError.invalidFile(path: model, detail: "no such file or folder, and it cannot be looked up as a registered model name: \(error)")
        }
        guard let registered else {
            throw ModelError.invalidFile(path: model, detail: "no such file or folder, and no model of that name is registered in \(store.path); see `corpus models list`, or register one with `corpus models add PATH --name \(model)`")
        }
        return registered.path
    }
}
