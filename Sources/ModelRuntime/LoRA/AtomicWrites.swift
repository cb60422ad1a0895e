import CorpusSupport
import Foundation

/// The runtime's file writes (adapter folders, merged models, safetensors files) go through
/// CorpusSupport's atomic writers (temporary file, fsync, rename, fsync of the folder); their
/// `FileWriteError` becomes this module's `ModelError.invalidFile`, naming the same path.
enum AtomicWrites {
    /// `AtomicFolder.write`, with the runtime's error type.
    static func folder(_ files: [AtomicFolder.File], into directory: URL, requireEmpty: Bool) throws {
        do {
            try AtomicFolder.write(files, into: directory, requireEmpty: requireEmpty)
        } catch let error as FileWriteError {
            throw ModelError.invalidFile(path: error.path, detail: error.message)
        }
    }

    /// `AtomicFile.write(to:using:)`, with the runtime's error type.
    static func file(_ url: URL, using produce: (URL) throws -> Void) throws {
        do {
            try AtomicFile.write(to: url, using: produce)
        } catch let error as FileWriteError {
            throw ModelError.invalidFile(path: error.path, detail: error.message)
        }
    }

    /// Writes `data` to `url` inside a staging area (the folder writer flushes it).
    static func data(_ data: Data, to url: URL) throws {
        do {
            try AtomicFolder.writeData(data, to: url)
        } catch let error as FileWriteError {
            throw ModelError.invalidFile(path: error.path, detail: error.message)
        }
    }
}
