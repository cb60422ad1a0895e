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

extension ModelOptions {
    /// An adapter given on the command line (`serve --adapter NAME=X`, `adapters export X`): X
    /// itself when it is a folder; otherwise X is looked up in the store as a training run's id,
    /// or as an adapter's id or SHA-256 (as `corpus lineage adapter` takes it). Also returns the
    /// run id when the store named it.
    /// - Throws: `ModelError` naming X when it is neither.
    static func adapterFolder(_ given: String, database: DatabaseOptions) throws -> (path: String, runID: String?) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: given, isDirectory: &isDirectory), isDirectory.boolValue { return (given, nil) }
        let store: CorpusStore
        do {
            store = try database.open()
        } catch {
            throw ModelError.invalidFile(path: given, detail: "not an adapter folder, and the store to look it up as a run cannot be opened (\(error)); give the adapter's folder or --db")
        }
        var run = try Int64(given).flatMap { try store.run(id: $0) }
        if run?.adapter == nil { run = try store.run(adapter: given) }
        guard let run, let found = run.adapter else {
            throw ModelError.invalidFile(path: given, detail: "neither an adapter folder nor a training run or adapter in \(store.path); `corpus runs list` shows the runs and their adapters")
        }
        return (found.path, String(run.id))
    }
}

extension ModelOptions {
    /// SHA-256 of an adapter folder's adapter_model.safetensors: what `corpus train` records and
    /// lineage, serve and export name an adapter by.
    /// - Throws: `ModelError.invalidFile` naming the file when it cannot be read.
    static func adapterSHA256(_ folder: URL) throws -> String {
        let file = folder.appendingPathComponent(LoRAAdapter.peftWeightsFileName).path
        do {
            return try ContentHash.sha256Hex(fileAt: file)
        } catch {
            throw ModelError.invalidFile(path: file, detail: "cannot read the file to hash it (\(error))")
        }
    }
}
