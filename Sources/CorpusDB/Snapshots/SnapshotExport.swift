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
        // One read transaction for the whole export: the pair test and both splits see the store
        // at one moment (a withdrawal made meanwhile applies to all of it or to none).
        let tally = try pool.read { db -> Tally in
            // A snapshot holding preference pairs exports LLaMA-Factory's ranking form (one file kind
            // per dataset): its pairs are written, plain conversations counted as skipped.
            let ranking = try Self.holdsPairs(db, snapshot: snapshot, splits: splits)
            // Each split's file is streamed: members read through a cursor one at a time, their lines
            // written in 4 MiB pieces and hashed as they go, so memory does not grow with the
            // snapshot. The files are written (by `AtomicFolder`, in this order) before the manifest
            // that lists their hashes.
            let tally = Tally()
            var outputs = splits.map { memberSplit in
                AtomicFolder.File(name: "\(memberSplit).jsonl") { url in
                    let rows = try Row.fetchCursor(db, sql: """
                        SELECT m.content_hash, m.record_id, r.conversation, w.record_id IS NOT NULL AS withdrawn
                        FROM snapshot_records m JOIN records r ON r.id = m.record_id
                        LEFT JOIN withdrawals w ON w.record_id = m.record_id
                        WHERE m.snapshot_id = ? AND m.split = ? ORDER BY m.position
                        """, arguments: [snapshot.id, memberSplit])
                    let out = try StreamedFile(url)
                    while let row = try rows.next() {
                        if row["withdrawn"] as Bool { tally.skipped["withdrawn", default: 0] += 1; continue }
                        var conversation = try CanonicalJSON.decode(row["conversation"] as String)
                        if ranking && !conversation.isPair { tally.skipped["not_a_preference_pair", default: 0] += 1; continue }
                        if let redact, redactRecordIds.contains(row["record_id"]) {
                            conversation.messages = conversation.messages.map { Message(role: $0.role, content: redact($0.content)) }
                            conversation.rejected = conversation.rejected.map { Message(role: $0.role, content: redact($0.content)) }
                            tally.redacted += 1
                        }
                        guard let line = Self.exportLine(conversation, format: format, contentHash: row["content_hash"]) else {
                            tally.skipped["not_representable_in_\(format.rawValue)", default: 0] += 1
                            continue
                        }
                        try out.append(line)
                    }
                    tally.files["\(memberSplit).jsonl"] = try out.finish()
                }
            }
            // The manifest and dataset_info.json, with sorted keys and no time of export, so the same
            // snapshot always exports to the same bytes.
            outputs.append(AtomicFolder.File(name: "manifest.json") { url in
                let manifest: [String: Any] = [
                    "snapshot": snapshot.label, "name": snapshot.name, "version": snapshot.version, "hash": snapshot.hash,
                    "format": format.rawValue, "split": split, "created_at": snapshot.createdAt, "tool_version": CorpusVersion.string,
                    "files": tally.files.mapValues { ["lines": $0.lines, "sha256": $0.sha256] as [String: Any] },
                    "skipped": tally.skipped, "redacted": tally.redacted, "ranking": ranking, "records": snapshot.records,
                    "train": snapshot.train, "eval": snapshot.eval,
                ]
                try AtomicFolder.writeData(Data((Self.sortedJSON(manifest, pretty: true) + "\n").utf8), to: url)
            })
            var info: [String: Any] = [:]
            for s in splits { info["\(snapshot.name)_\(snapshot.version)_\(s)"] = Self.datasetInfo(file: "\(s).jsonl", format: format, ranking: ranking) }
            outputs.append(.data(Data((Self.sortedJSON(info, pretty: true) + "\n").utf8), name: "dataset_info.json"))
            do {
                try AtomicFolder.write(outputs + extraFiles.map { AtomicFolder.File.data($0.data, name: $0.name) }, into: dir, requireEmpty: false)
            } catch let error as FileWriteError {
                throw CorpusDBError(.invalid, "\(error.path): \(error.message); check the folder's permissions and free space")
            }
            return tally
        }
        return ExportReport(files: tally.files, skipped: tally.skipped, directory: dir.path)
    }

    /// Whether the chosen splits hold a preference pair that is not withdrawn. Only a pair's
    /// canonical JSON has the key `"rejected":` (inside a string a quote is escaped, and a string
    /// is never followed by a colon unless it is a key), so SQLite finds the candidates and the
    /// first one decoded settles it.
    static func holdsPairs(_ db: Database, snapshot: Snapshot, splits: [String]) throws -> Bool {
        let rows = try String.fetchCursor(db, sql: """
            SELECT r.conversation FROM snapshot_records m JOIN records r ON r.id = m.record_id
            LEFT JOIN withdrawals w ON w.record_id = m.record_id
            WHERE m.snapshot_id = ? AND m.split IN (\(splits.map { _ in "?" }.joined(separator: ", "))) AND w.record_id IS NULL
              AND instr(r.conversation, '"rejected":') > 0
            """, arguments: StatementArguments([snapshot.id] + splits.map { $0 as (any DatabaseValueConvertible)? }))
        while let json = try rows.next() {
            if try CanonicalJSON.decode(json).isPair { return true }
        }
        return false
    }

    /// What an export wrote and left out, filled as its files are written.
    final class Tally {
        var files: [String: (lines: Int, sha256: String)] = [:]
        var skipped: [String: Int] = [:]
        var redacted = 0
    }

    /// A file written in pieces and hashed as it is written.
    final class StreamedFile {
        private let handle: FileHandle
        private let url: URL
        private var buffer: [UInt8] = []
        private var hasher = SHA256()
        private var lines = 0
        private var closed = false

        init(_ url: URL) throws {
            self.url = url
            guard FileManager.default.createFile(atPath: url.path, contents: nil), let handle = try? FileHandle(forWritingTo: url) else {
                throw FileWriteError(path: url.path, message: "cannot create the file; check free space and permissions")
            }
            self.handle = handle
            buffer.reserveCapacity(4 << 20)
        }

        deinit {
            if !closed { try? handle.close() }
        }

        func append(_ line: [UInt8]) throws {
            buffer += line
            lines += 1
            if buffer.count >= 4 << 20 { try flush() }
        }

        private func flush() throws {
            hasher.update(data: buffer)
            do {
                try handle.write(contentsOf: buffer)
            } catch {
                throw FileWriteError(path: url.path, message: "cannot write (\(error.localizedDescription)); check free space and permissions")
            }
            buffer.removeAll(keepingCapacity: true)
        }

        /// Writes what is left and closes the file: its line count and SHA-256.
        func finish() throws -> (lines: Int, sha256: String) {
            try flush()
            closed = true
            do {
                try handle.close()
            } catch {
                throw FileWriteError(path: url.path, message: "cannot close (\(error.localizedDescription)); check free space")
            }
            return (lines, hasher.finalize().hexString)
        }
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

}
