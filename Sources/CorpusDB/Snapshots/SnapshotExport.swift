import Crypto
import CorpusSupport
import Foundation
import GRDB

/// Export formats LLaMA-Factory, axolotl and unsloth read.
public enum ExportFormat: String, Sendable, CaseIterable {
    /// `{"instruction", "input", "output", "system", "history": [[q, a], ...]}`.
    case alpaca
    /// `{"conversations": [{"from": "human"|"gpt"|"function_call"|"observation", "value"}], "system"}`.
    case sharegpt
    /// OpenAI style `{"messages": [{"role", "content"}]}`.
    case messages
}

/// What `corpus snapshot export` wrote.
public struct ExportReport: Sendable, Equatable {
    /// File name → (lines, hex SHA-256), for the JSONL files.
    public var files: [String: (lines: Int, sha256: String)]
    /// Members left out: withdrawn, or not representable in the format (alpaca needs
    /// user/assistant pairs).
    public var skipped: [String: Int]
    public var directory: String

    public static func == (a: ExportReport, b: ExportReport) -> Bool {
        a.directory == b.directory && a.skipped == b.skipped && a.files.mapValues { "\($0)" } == b.files.mapValues { "\($0)" }
    }
}

extension CorpusStore {
    /// Writes `train.jsonl` and/or `eval.jsonl`, `manifest.json` and LLaMA-Factory's
    /// `dataset_info.json` (and `extraFiles`) into `directory` through `AtomicFolder`: a new
    /// folder is built as a hidden sibling and renamed into place whole, so a crash never leaves a
    /// half-written export at `directory`; in an existing folder each file is written as a
    /// temporary, flushed, and only then are all renamed into place. Only those names are
    /// written, so nothing else in the folder is touched (a symlink in their place is replaced,
    /// not followed). The bytes depend
    /// only on the snapshot: exporting twice gives identical files. Every line carries the
    /// record's `content_hash` so the export keeps its lineage.
    /// - Throws: `CorpusDBError(.invalid)` when `directory` is a file or cannot be written.
    /// `redact` rewrites each message of the records in `redactRecordIds` (those where the
    /// snapshot's checks found PII); the manifest counts them.
    public func export(_ snapshot: Snapshot, format: ExportFormat, split: String, to directory: String,
                       redact: ((String) -> String)? = nil, redactRecordIds: Set<Int64> = [],
                       extraFiles: [(name: String, data: Data)] = []) throws -> ExportReport {
        let splits: [String]
        switch split {
        case "train", "eval": splits = [split]
        case "all": splits = ["train", "eval"]
        default: throw CorpusDBError(.invalid, "--split \(split) must be train, eval or all")
        }
        let dir = URL(fileURLWithPath: directory).standardizedFileURL
        do {
            try SymlinkGuard.refuseLink(at: dir, what: "folder")
        } catch let error as FileWriteError {
            throw CorpusDBError(.invalid, error.description)
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw CorpusDBError(.invalid, "\(dir.path) exists and is not a folder; give --out a folder to write the export into")
        }
        let rows = try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT m.position, m.split, m.content_hash, m.record_id, r.conversation, w.record_id IS NOT NULL AS withdrawn
                FROM snapshot_records m JOIN records r ON r.id = m.record_id
                LEFT JOIN withdrawals w ON w.record_id = m.record_id
                WHERE m.snapshot_id = ? ORDER BY m.position
                """, arguments: [snapshot.id])
        }
        var lines: [String: [UInt8]] = [:]
        var counts: [String: Int] = [:]
        var skipped: [String: Int] = [:]
        var redacted = 0
        var members: [(split: String, recordId: Int64, contentHash: String, conversation: Conversation)] = []
        for row in rows {
            let memberSplit: String = row["split"]
            guard splits.contains(memberSplit) else { continue }
            if row["withdrawn"] as Bool { skipped["withdrawn", default: 0] += 1; continue }
            members.append((memberSplit, row["record_id"], row["content_hash"], try CanonicalJSON.decode(row["conversation"])))
        }
        // A snapshot holding preference pairs exports LLaMA-Factory's ranking form (one file kind
        // per dataset): its pairs are written, plain conversations counted as skipped.
        let ranking = members.contains { $0.conversation.isPair }
        for member in members {
            let memberSplit = member.split
            var conversation = member.conversation
            if ranking && !conversation.isPair { skipped["not_a_preference_pair", default: 0] += 1; continue }
            if let redact, redactRecordIds.contains(member.recordId) {
                conversation.messages = conversation.messages.map { Message(role: $0.role, content: redact($0.content)) }
                conversation.rejected = conversation.rejected.map { Message(role: $0.role, content: redact($0.content)) }
                redacted += 1
            }
            guard let line = Self.exportLine(conversation, format: format, contentHash: member.contentHash) else {
                skipped["not_representable_in_\(format.rawValue)", default: 0] += 1
                continue
            }
            lines["\(memberSplit).jsonl", default: []] += line
            counts["\(memberSplit).jsonl", default: 0] += 1
        }
        var files: [String: (lines: Int, sha256: String)] = [:]
        var contents: [(name: String, data: Data)] = []
        for s in splits {
            let name = "\(s).jsonl"
            let bytes = lines[name] ?? []
            contents.append((name, Data(bytes)))
            files[name] = (counts[name] ?? 0, SHA256.hash(data: bytes).hexString)
        }
        // The manifest and dataset_info.json, with sorted keys and no time of export, so the same
        // snapshot always exports to the same bytes.
        let manifest: [String: Any] = [
            "snapshot": snapshot.label, "name": snapshot.name, "version": snapshot.version, "hash": snapshot.hash,
            "format": format.rawValue, "split": split, "created_at": snapshot.createdAt, "tool_version": CorpusVersion.string,
            "files": files.mapValues { ["lines": $0.lines, "sha256": $0.sha256] as [String: Any] },
            "skipped": skipped, "redacted": redacted, "ranking": ranking, "records": snapshot.records, "train": snapshot.train, "eval": snapshot.eval,
        ]
        contents.append(("manifest.json", Data((Self.sortedJSON(manifest, pretty: true) + "\n").utf8)))
        var info: [String: Any] = [:]
        for s in splits { info["\(snapshot.name)_\(snapshot.version)_\(s)"] = Self.datasetInfo(file: "\(s).jsonl", format: format, ranking: ranking) }
        contents.append(("dataset_info.json", Data((Self.sortedJSON(info, pretty: true) + "\n").utf8)))
        try Self.writeFolder(dir, contents + extraFiles)
        return ExportReport(files: files, skipped: skipped, directory: dir.path)
    }

    /// LLaMA-Factory's description of one file (data/README.md of LLaMA-Factory); a ranking file
    /// (preference pairs) maps `chosen` and `rejected` instead of the response.
    static func datasetInfo(file: String, format: ExportFormat, ranking: Bool = false) -> [String: Any] {
        guard ranking else { return datasetInfo(file: file, format: format) }
        var info = datasetInfo(file: file, format: format)
        var columns = info["columns"] as? [String: String] ?? [:]
        columns["response"] = nil
        columns["chosen"] = "chosen"
        columns["rejected"] = "rejected"
        info["columns"] = columns
        info["ranking"] = true
        return info
    }

    static func datasetInfo(file: String, format: ExportFormat) -> [String: Any] {
        switch format {
        case .alpaca:
            return ["file_name": file, "formatting": "alpaca",
                    "columns": ["prompt": "instruction", "query": "input", "response": "output", "system": "system", "history": "history"]]
        case .sharegpt:
            return ["file_name": file, "formatting": "sharegpt",
                    "columns": ["messages": "conversations", "system": "system"],
                    "tags": ["role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                             "observation_tag": "observation", "function_tag": "function_call"]]
        case .messages:
            return ["file_name": file, "formatting": "sharegpt",
                    "columns": ["messages": "messages"],
                    "tags": ["role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                             "system_tag": "system", "observation_tag": "observation", "function_tag": "function_call"]]
        }
    }

    /// One JSONL line (with its newline), keys in a fixed order and canonical string escaping;
    /// nil when the conversation cannot be written in `format`.
    static func exportLine(_ conversation: Conversation, format: ExportFormat, contentHash: String) -> [UInt8]? {
        var out: [UInt8] = []
        func key(_ k: String) { CanonicalJSON.appendString(k, to: &out); out.append(UInt8(ascii: ":")) }
        func string(_ s: String) { CanonicalJSON.appendString(s, to: &out) }
        func comma() { out.append(UInt8(ascii: ",")) }
        var messages = conversation.messages
        var system: String?
        if messages.first?.role == .system { system = messages.removeFirst().content }
        out.append(UInt8(ascii: "{"))
        switch format {
        case .alpaca:
            // Alternating user/assistant pairs only; the last pair is the instruction and output.
            guard messages.count >= 2, messages.count % 2 == 0,
                  messages.enumerated().allSatisfy({ $0.element.role == ($0.offset % 2 == 0 ? .user : .assistant) }) else { return nil }
            let pairs = stride(from: 0, to: messages.count, by: 2).map { (messages[$0].content, messages[$0 + 1].content) }
            let last = pairs[pairs.count - 1]
            key("instruction"); string(last.0); comma()
            key("input"); string(""); comma()
            if let rejected = conversation.rejected {
                key("chosen"); string(last.1); comma()
                key("rejected"); string(rejected.content); comma()
            } else {
                key("output"); string(last.1); comma()
            }
            key("system"); string(system ?? ""); comma()
            key("history"); out.append(UInt8(ascii: "["))
            for (i, pair) in pairs.dropLast().enumerated() {
                if i > 0 { comma() }
                out.append(UInt8(ascii: "[")); string(pair.0); comma(); string(pair.1); out.append(UInt8(ascii: "]"))
            }
            out.append(UInt8(ascii: "]"))
        case .sharegpt, .messages:
            let sharegpt = format == .sharegpt
            func turn(_ m: Message) {
                out.append(UInt8(ascii: "{"))
                let role: String
                switch (m.role, sharegpt) {
                case (.user, true): role = "human"
                case (.assistant, true): role = "gpt"
                default: role = m.role.rawValue
                }
                key(sharegpt ? "from" : "role"); string(role); comma()
                key(sharegpt ? "value" : "content"); string(m.content)
                out.append(UInt8(ascii: "}"))
            }
            key(sharegpt ? "conversations" : "messages"); out.append(UInt8(ascii: "["))
            var turns = sharegpt ? messages : conversation.messages
            // A pair: the conversation up to the question, then its two answers.
            let chosen = conversation.rejected != nil ? turns.popLast() : nil
            for (i, m) in turns.enumerated() {
                if i > 0 { comma() }
                turn(m)
            }
            out.append(UInt8(ascii: "]"))
            if let chosen, let rejected = conversation.rejected {
                comma(); key("chosen"); turn(chosen)
                comma(); key("rejected"); turn(rejected)
            }
            // Every sharegpt row has `system` ("" when the conversation has none): LLaMA-Factory reads
            // the column dataset_info.json maps for every row of a file and stops with a KeyError
            // on a file where no row has it (found running LLaMA-Factory 0.9.5 on an export).
            if sharegpt { comma(); key("system"); string(system ?? "") }
        }
        comma(); key("content_hash"); string(contentHash)
        out.append(contentsOf: Array("}\n".utf8))
        return out
    }

    /// Writes the files into `directory` all together (`AtomicFolder`): a reader sees the old
    /// files or all the new ones, and a new folder appears whole or not at all.
    static func writeFolder(_ directory: URL, _ contents: [(name: String, data: Data)]) throws {
        do {
            try AtomicFolder.write(contents.map { AtomicFolder.File.data($0.data, name: $0.name) }, into: directory, requireEmpty: false)
        } catch let error as FileWriteError {
            throw CorpusDBError(.invalid, "\(error.path): \(error.message); check the folder's permissions and free space")
        }
    }

}
