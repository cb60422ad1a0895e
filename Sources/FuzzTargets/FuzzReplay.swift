import Foundation

/// Runs saved inputs (seeds, regression files, a crash file from libFuzzer) through a target
/// without libFuzzer: what `corpus-fuzz TARGET FILE...` and the replay tests do.
public enum FuzzReplay {
    /// The regular files under `paths` (files as given, folders recursively), sorted by path;
    /// files whose name starts with "." and README files are skipped.
    public static func files(_ paths: [String]) -> [String] {
        var out: [String] = []
        let manager = FileManager.default
        for path in paths {
            var isFolder: ObjCBool = false
            guard manager.fileExists(atPath: path, isDirectory: &isFolder) else { continue }
            if !isFolder.boolValue { out.append(path); continue }
            let inside = (manager.enumerator(atPath: path)?.allObjects as? [String]) ?? []
            for relative in inside {
                let name = (relative as NSString).lastPathComponent
                guard !name.hasPrefix("."), !name.hasPrefix("README") else { continue }
                let full = (path as NSString).appendingPathComponent(relative)
                var folder: ObjCBool = false
                if manager.fileExists(atPath: full, isDirectory: &folder), !folder.boolValue { out.append(full) }
            }
        }
        return out.sorted()
    }

    /// Runs every file of `paths` through `target`; returns how many ran. A finding crashes.
    /// - Throws: when a file cannot be read.
    @discardableResult
    public static func run(_ target: FuzzTarget, paths: [String]) throws -> Int {
        let inputs = files(paths)
        for path in inputs {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw CocoaError(.fileReadUnknown, userInfo: [NSFilePathErrorKey: path])
            }
            target.run([UInt8](data))
        }
        return inputs.count
    }

    /// The tokenizer.json the `bpe`, `chat-template` and `serve-request` targets load (a seed of
    /// `tokenizer-json`).
    public static var tokenizerJSON: String { FuzzTokenizer.json }

    /// How many merges that tokenizer has (nil when the loader refused it).
    public static var tokenizerMerges: Int { FuzzTokenizer.tokenizer == nil ? 0 : FuzzTokenizer.learnt.merges.count }
}
