import Foundation

/// Writes a set of files into a folder so that a reader sees either the old files or all the new
/// ones, never half of them, and an error leaves nothing behind.
///
/// - A folder that does not exist yet is built as a hidden sibling (`.NAME.HOST.PID.UUID.tmp`), every file
///   and the folder flushed to the disk, and renamed into place, so it appears whole.
/// - In a folder that exists, each file is first written as a hidden temporary beside its target
///   and flushed; only when every one is complete are they renamed over the targets (each rename
///   is atomic), and the folder is flushed.
public enum AtomicFolder {
    /// One file to write: its name in the folder and a function that writes it to a given URL.
    public struct File {
        public var name: String
        public var write: (URL) throws -> Void

        public init(name: String, write: @escaping (URL) throws -> Void) {
            self.name = name
            self.write = write
        }

        /// A file whose contents are `data`.
        public static func data(_ data: Data, name: String) -> File {
            File(name: name) { url in try AtomicFolder.writeData(data, to: url) }
        }
    }

    /// - Parameters:
    ///   - requireEmpty: refuse an existing folder that holds anything (a merged model must not be
    ///     mixed with another model's shards).
    /// - Throws: `FileWriteError` naming the folder or file that could not be written, or the
    ///   error a file's `write` threw, unchanged; in both cases nothing new is left behind.
    public static func write(_ files: [File], into directory: URL, requireEmpty: Bool) throws {
        let manager = FileManager.default
        let target = directory.standardizedFileURL
        try SymlinkGuard.refuseLink(at: target, what: "folder")
        var isDirectory: ObjCBool = false
        let exists = manager.fileExists(atPath: target.path, isDirectory: &isDirectory)
        if exists && !isDirectory.boolValue {
            throw FileWriteError(path: target.path, message: "is a file, not a folder; choose a folder path to write to")
        }
        if exists {
            try replaceFiles(files, in: target, requireEmpty: requireEmpty)
        } else {
            try createFolder(files, at: target)
        }
    }

    /// Replaces the whole folder `directory` with one that `build` fills, so that a reader (or a
    /// process that resumes after a crash) finds either the complete old folder or the complete new
    /// one, never a mix of their files (a training checkpoint: the adapter, the optimizer state and
    /// the step must belong together).
    ///
    /// `build` writes into a hidden sibling folder (`.NAME.HOST.PID.UUID.tmp`); every file in it is flushed,
    /// then the sibling and `directory` are exchanged in one atomic step (Linux `renameat2` with
    /// `RENAME_EXCHANGE`) and the old contents removed. Where the file system cannot exchange, the
    /// old folder is first renamed aside (`.NAME.HOST.PID.UUID.old`) and the new one renamed into place: a
    /// crash between those two renames leaves no folder at `directory`, but the complete old one
    /// beside it (never a mix).
    /// - Throws: `FileWriteError` naming the folder, or whatever `build` throws; in both cases
    ///   the old folder is left as it was and nothing new is left behind.
    public static func replaceWhole(_ directory: URL, build: (URL) throws -> Void) throws {
        let manager = FileManager.default
        let target = directory.standardizedFileURL
        try SymlinkGuard.refuseLink(at: target, what: "folder")
        let (parent, staging) = try makeStaging(for: target)
        do {
            try build(staging)
            for name in try manager.contentsOfDirectory(atPath: staging.path) {
                var isDirectory: ObjCBool = false
                let url = staging.appendingPathComponent(name)
                if manager.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue { try Durability.syncFile(url) }
            }
            try Durability.syncFolder(staging)
            var isDirectory: ObjCBool = false
            if !manager.fileExists(atPath: target.path, isDirectory: &isDirectory) {
                try Durability.moveIntoPlace(staging, over: target, what: "folder")
            } else if !isDirectory.boolValue {
                throw FileWriteError(path: target.path, message: "is a file, not a folder; move it aside")
            } else if Durability.exchange(staging, target) {
                // `staging` now holds the old folder.
                try? manager.removeItem(at: staging)
            } else {
                let old = parent.appendingPathComponent(Durability.temporaryName(for: target.lastPathComponent, suffix: "old"))
                try Durability.moveIntoPlace(target, over: old, what: "old folder")
                do {
                    try Durability.moveIntoPlace(staging, over: target, what: "folder")
                } catch {
                    _ = rename(old.path, target.path)
                    throw error
                }
                try? manager.removeItem(at: old)
            }
        } catch {
            try? manager.removeItem(at: staging)
            throw error
        }
        try Durability.syncFolder(parent)
    }

    /// Removes the folder `directory` so that a crash midway never leaves part of it at its path:
    /// it is renamed to a hidden sibling (`.NAME.HOST.PID.UUID.old`) in one step, then deleted. A missing
    /// folder is not an error.
    public static func remove(_ directory: URL) {
        let target = directory.standardizedFileURL
        let aside = target.deletingLastPathComponent().appendingPathComponent(Durability.temporaryName(for: target.lastPathComponent, suffix: "old"))
        guard rename(target.path, aside.path) == 0 else { return }
        try? FileManager.default.removeItem(at: aside)
    }

    /// Writes `data` to `url` (inside a staging area, so a plain write is enough; the folder
    /// writer flushes it).
    /// - Throws: `FileWriteError` naming the file.
    public static func writeData(_ data: Data, to url: URL) throws {
        do {
            try data.write(to: url)
        } catch {
            throw FileWriteError(path: url.path, message: "cannot write (\(error.localizedDescription)); check free space and permissions")
        }
    }

    /// Creates `target`'s parent if needed, removes staging folders a dead process left beside
    /// `target`, and creates an empty hidden sibling (`.NAME.HOST.PID.UUID.tmp`) to build in.
    /// - Throws: `FileWriteError` naming the folder that could not be created.
    private static func makeStaging(for target: URL) throws -> (parent: URL, staging: URL) {
        let manager = FileManager.default
        let parent = target.deletingLastPathComponent()
        do {
            try manager.createDirectory(at: parent, withIntermediateDirectories: true)
        } catch {
            throw FileWriteError(path: parent.path, message: "cannot create the folder (\(error.localizedDescription))")
        }
        Durability.removeStale(beside: target.lastPathComponent, in: parent)
        let staging = parent.appendingPathComponent(Durability.temporaryName(for: target.lastPathComponent))
        do {
            try manager.createDirectory(at: staging, withIntermediateDirectories: false)
        } catch {
            throw FileWriteError(path: staging.path, message: "cannot create the folder (\(error.localizedDescription)); check that \(parent.path) is writable")
        }
        return (parent, staging)
    }

    /// A new folder: built as a hidden sibling, flushed, renamed into place.
    private static func createFolder(_ files: [File], at target: URL) throws {
        let manager = FileManager.default
        let (parent, staging) = try makeStaging(for: target)
        do {
            for file in files {
                let url = staging.appendingPathComponent(file.name)
                try file.write(url)
                try Durability.syncFile(url)
            }
            try Durability.syncFolder(staging)
            try Durability.moveIntoPlace(staging, over: target, what: "folder")
        } catch {
            try? manager.removeItem(at: staging)
            throw error
        }
        try Durability.syncFolder(parent)
    }

    /// An existing folder: every file written as a hidden temporary, then all renamed.
    private static func replaceFiles(_ files: [File], in target: URL, requireEmpty: Bool) throws {
        let manager = FileManager.default
        if requireEmpty {
            let contents = (try? manager.contentsOfDirectory(atPath: target.path)) ?? []
            if !contents.isEmpty {
                throw FileWriteError(path: target.path, message: "the folder already holds \(contents.count) file(s) (\(contents.sorted().prefix(3).joined(separator: ", "))); choose a new folder or empty this one")
            }
        }
        var written: [(temporary: URL, final: URL)] = []
        do {
            for file in files {
                let final = target.appendingPathComponent(file.name)
                Durability.removeStale(beside: file.name, in: target)
                let temporary = target.appendingPathComponent(Durability.temporaryName(for: file.name))
                written.append((temporary, final))
                try file.write(temporary)
                try Durability.syncFile(temporary)
            }
            for (temporary, final) in written {
                try Durability.moveIntoPlace(temporary, over: final, what: "file")
            }
        } catch {
            for (temporary, _) in written { try? manager.removeItem(at: temporary) }
            throw error
        }
        try Durability.syncFolder(target)
    }
}
