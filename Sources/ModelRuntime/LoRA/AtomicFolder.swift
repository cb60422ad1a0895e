import Foundation

/// Writes a set of files into a folder so that a reader sees either the old files or all the new
/// ones, never half of them, and an error leaves nothing behind.
///
/// - A folder that does not exist yet is built as a hidden sibling (`.NAME.UUID.tmp`) and renamed
///   into place, so it appears whole.
/// - In a folder that exists, each file is first written as a hidden temporary beside its target;
///   only when every one is complete are they renamed over the targets (each rename is atomic).
enum AtomicFolder {
    /// One file to write: its name in the folder and a function that writes it to a given URL.
    struct File {
        var name: String
        var write: (URL) throws -> Void
    }

    /// - Parameters:
    ///   - requireEmpty: refuse an existing folder that holds anything (a merged model must not be
    ///     mixed with another model's shards).
    /// - Throws: `ModelError.invalidFile` naming the folder or file that could not be written.
    static func write(_ files: [File], into directory: URL, requireEmpty: Bool) throws {
        let manager = FileManager.default
        let target = directory.standardizedFileURL
        var isDirectory: ObjCBool = false
        let exists = manager.fileExists(atPath: target.path, isDirectory: &isDirectory)
        if exists && !isDirectory.boolValue {
            throw ModelError.invalidFile(path: target.path, detail: "is a file, not a folder; choose a folder path to write to")
        }
        if !exists {
            let parent = target.deletingLastPathComponent()
            do {
                try manager.createDirectory(at: parent, withIntermediateDirectories: true)
            } catch {
                throw ModelError.invalidFile(path: parent.path, detail: "cannot create the folder (\(error.localizedDescription))")
            }
            let staging = parent.appendingPathComponent(".\(target.lastPathComponent).\(UUID().uuidString).tmp")
            do {
                try manager.createDirectory(at: staging, withIntermediateDirectories: false)
                for file in files { try file.write(staging.appendingPathComponent(file.name)) }
                guard rename(staging.path, target.path) == 0 else {
                    throw ModelError.invalidFile(path: target.path, detail: "cannot move the finished folder into place (errno \(errno)); nothing was written")
                }
            } catch {
                try? manager.removeItem(at: staging)
                throw wrapped(error, path: target.path)
            }
            return
        }
        if requireEmpty {
            let contents = (try? manager.contentsOfDirectory(atPath: target.path)) ?? []
            if !contents.isEmpty {
                throw ModelError.invalidFile(path: target.path, detail: "the folder already holds \(contents.count) file(s) (\(contents.sorted().prefix(3).joined(separator: ", "))); choose a new folder or empty this one")
            }
        }
        var written: [(temporary: URL, final: URL)] = []
        do {
            for file in files {
                let final = target.appendingPathComponent(file.name)
                let temporary = target.appendingPathComponent(".\(file.name).\(UUID().uuidString).tmp")
                written.append((temporary, final))
                try file.write(temporary)
            }
            for (temporary, final) in written {
                guard rename(temporary.path, final.path) == 0 else {
                    throw ModelError.invalidFile(path: final.path, detail: "cannot replace the file (errno \(errno))")
                }
            }
        } catch {
            for (temporary, _) in written { try? manager.removeItem(at: temporary) }
            throw wrapped(error, path: target.path)
        }
    }

    /// Writes `data` to `url` (used inside a staging area, so a plain write is enough).
    static func writeData(_ data: Data, to url: URL) throws {
        do {
            try data.write(to: url)
        } catch {
            throw ModelError.invalidFile(path: url.path, detail: "cannot write (\(error.localizedDescription))")
        }
    }

    private static func wrapped(_ error: any Error, path: String) -> any Error {
        if error is ModelError { return error }
        return ModelError.invalidFile(path: path, detail: "cannot write (\(error.localizedDescription)); nothing was changed")
    }
}
