import Foundation

/// Turns command-line paths (files and directories) into the list of files to ingest.
public enum InputExpander {
    /// File name endings read when walking a directory. Files named directly are read whatever their name.
    public static let extensions: Set<String> = ["csv", "tsv", "json", "jsonl", "ndjson", "txt"]

    /// Expands `paths`: files as given, directories recursively (hidden entries skipped, files sorted
    /// by path so ingest order is stable).
    /// - Throws: `IngestError(.unreadableFile)` for a path that does not exist,
    ///   `IngestError(.noInputFiles)` for a directory with no readable file.
    public static func expand(_ paths: [String], options: IngestOptions) throws -> [InputFile] {
        let fm = FileManager.default
        var out: [InputFile] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw IngestError(.unreadableFile, "\(path): no such file or directory; check the path")
            }
            let root = URL(fileURLWithPath: path).standardizedFileURL
            if !isDirectory.boolValue {
                var tags: [String: String] = [:]
                if options.tagsFromDirs {
                    let parent = root.deletingLastPathComponent().lastPathComponent
                    if !parent.isEmpty && parent != "/" { tags[options.dirTagKey] = tagValue(parent) }
                }
                out.append(InputFile(path: root.path, directoryTags: tags))
                continue
            }
            guard let walker = fm.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey],
                                             options: [.skipsHiddenFiles]) else {
                throw IngestError(.unreadableFile, "\(path): cannot list this directory; check its permissions")
            }
            var found: [InputFile] = []
            for case let url as URL in walker {
                guard (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true,
                      extensions.contains(url.pathExtension.lowercased()),
                      fm.isReadableFile(atPath: url.path) else { continue }
                var tags: [String: String] = [:]
                if options.tagsFromDirs {
                    let parent = url.standardizedFileURL.deletingLastPathComponent()
                    if parent.path != root.path { tags[options.dirTagKey] = tagValue(parent.lastPathComponent) }
                }
                found.append(InputFile(path: url.standardizedFileURL.path, directoryTags: tags))
            }
            guard !found.isEmpty else {
                throw IngestError(.noInputFiles,
                    "\(path): no readable .csv, .tsv, .json, .jsonl, .ndjson or .txt file in this directory; name files directly to read other endings")
            }
            out += found.sorted { $0.path < $1.path }
        }
        return out
    }

    /// `IM_内科` → `内科`: the part after the first underscore, or the whole name.
    static func tagValue(_ directory: String) -> String {
        if let underscore = directory.firstIndex(of: "_"), directory.index(after: underscore) < directory.endIndex {
            return String(directory[directory.index(after: underscore)...])
        }
        return directory
    }
}
