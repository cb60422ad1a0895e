import CorpusDB
import Foundation
import Testing

/// Builders of fixtures shared by the test targets: temporary directories and stores, the paths
/// of the repository's examples and of ../shared, and a runner for the real `corpus` binary.
public enum TestSupport {
    /// The package root (the folder holding Package.swift), derived from this file's path.
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `../shared/data` beside the repository, when it exists.
    public static var sharedData: URL? {
        let url = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data")
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }

    /// A file of `../shared/data`, or nil when absent (recorded as a failure in CI, where
    /// ../shared is always beside the checkout).
    public static func sharedFile(_ name: String) -> String? {
        if let url = sharedData?.appendingPathComponent(name), FileManager.default.fileExists(atPath: url.path) { return url.path }
        if inCI { Issue.record("../shared/data/\(name) is missing") }
        return nil
    }

    /// A new store with both bundled example files ingested (26 records), as `scripts/setup.sh`
    /// ingests them.
    public static func exampleStore() throws -> (db: String, dir: URL) {
        let dir = try temporaryDirectory()
        let db = dir.appendingPathComponent("corpus.db").path
        #expect(try run(["init", "--db", db]).status == 0)
        #expect(try run(["ingest", "--db", db, packageRoot.appendingPathComponent("examples/medical/medical_qa.csv").path]).status == 0)
        #expect(try run(["ingest", "--db", db, packageRoot.appendingPathComponent("examples/legal/legal_qa.jsonl").path,
                         "--map", "user=query,assistant=response,tag.laws=laws"]).status == 0)
        return (db, dir)
    }

    /// True when running in CI, where missing shared fixtures are failures rather than skips.
    public static var inCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// This test process's folder, $TMPDIR/corpus-tests/run-<pid>-<uuid>: every temporary folder
    /// of the tests lives inside it, and it is removed when the process exits (an `atexit` handler:
    /// Swift Testing has no global tear-down), with $TMPDIR/corpus-tests when that is left empty.
    /// Folders that a crashed run left there more than an hour ago are removed first. The folder
    /// exists; name new paths inside it with a UUID.
    public static let runDirectory: URL = {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("corpus-tests")
        let stale = Date().addingTimeInterval(-3600)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: base.path)) ?? [] {
            let url = base.appendingPathComponent(name)
            if let modified = (try? FileManager.default.attributesOfItem(atPath: url.path))?[.modificationDate] as? Date, modified < stale {
                try? FileManager.default.removeItem(at: url)
            }
        }
        let run = base.appendingPathComponent("run-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        atexit {
            try? FileManager.default.removeItem(at: TestSupport.runDirectory)
            rmdir(TestSupport.runDirectory.deletingLastPathComponent().path)   // only when empty: other runs may be using it
        }
        return run
    }()

    /// A new empty temporary directory, unique per call, inside `runDirectory` (so removed when
    /// the test process exits); `label` begins its name.
    public static func temporaryDirectory(_ label: String = "corpus-test") throws -> URL {
        let url = runDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A fresh store in a temporary directory.
    public static func temporaryStore() throws -> CorpusStore {
        try CorpusStore(path: temporaryDirectory().appendingPathComponent("corpus.db").path, create: true)
    }

    /// Writes `bytes` to `name` inside `directory` and returns the path.
    @discardableResult
    public static func write(_ bytes: [UInt8], to name: String, in directory: URL) throws -> String {
        let url = directory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: url)
        return url.path
    }

    /// Writes UTF-8 `text` to `name` inside `directory` and returns the path.
    @discardableResult
    public static func write(_ text: String, to name: String, in directory: URL) throws -> String {
        try write(Array(text.utf8), to: name, in: directory)
    }
}

/// The result of running the `corpus` binary.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String

    public init(status: Int32, stdout: String, stderr: String) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }

    /// stdout parsed as JSON.
    public func json() throws -> Any {
        try JSONSerialization.jsonObject(with: Data(stdout.utf8), options: [.fragmentsAllowed])
    }
}

extension TestSupport {
    /// The `corpus` executable built beside the test bundle.
    public static var corpusBinary: URL {
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        var dir = executable.deletingLastPathComponent()
        // Linux: .build/<triple>/<config>/corpusPackageTests.xctest is a file; the binary sits beside it.
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("corpus")
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDir), !isDir.boolValue { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return executable.deletingLastPathComponent().appendingPathComponent("corpus")
    }

    /// Runs `corpus` with `arguments` (and `environment` added), waiting for it to finish; with
    /// `input`, that text is its standard input.
    public static func run(_ arguments: [String], environment: [String: String] = [:], currentDirectory: URL? = nil,
                           input: String? = nil) throws -> CommandResult {
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "CORPUS_DB")
        for (k, v) in environment { env[k] = v }
        return try runProcess(corpusBinary, arguments, environment: env, currentDirectory: currentDirectory, input: input)
    }

    /// Runs `executable` with `arguments` (in `environment` when given), waiting for it to
    /// finish; with `input`, that text is its standard input.
    public static func runProcess(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil,
                                  currentDirectory: URL? = nil, input: String? = nil) throws -> CommandResult {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let currentDirectory { process.currentDirectoryURL = currentDirectory }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let stdin = input.map { _ in Pipe() }
        if let stdin { process.standardInput = stdin }
        try process.run()
        if let stdin, let input {
            stdin.fileHandleForWriting.write(Data(input.utf8))
            try stdin.fileHandleForWriting.close()
        }
        // Read both pipes concurrently with the process so large outputs cannot dead-lock.
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errData = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus,
                             stdout: String(decoding: outData, as: UTF8.self),
                             stderr: String(decoding: errData, as: UTF8.self))
    }
}
