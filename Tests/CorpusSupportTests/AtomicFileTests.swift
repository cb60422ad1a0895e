import CorpusSupport
import Foundation
import Testing
import TestSupport

/// A fresh folder in the test run's temporary folder (removed when the run ends).
func scratchFolder(_ label: String) throws -> URL {
    try TestSupport.temporaryDirectory("corpus-support-\(label)")
}

/// Names in `folder`, hidden ones included, sorted.
func entries(_ folder: URL) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
}

struct Boom: Error {}

@Suite("AtomicFile")
struct AtomicFileTests {
    @Test func fileAppearsWhole() throws {
        let dir = try scratchFolder("whole")
        defer { try? FileManager.default.removeItem(at: dir) }
        let target = dir.appendingPathComponent("out.jsonl")
        let data = Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0) })
        try AtomicFile.write(data, to: target)
        #expect(FileManager.default.contents(atPath: target.path) == data)
        #expect(try entries(dir) == ["out.jsonl"])
    }

    @Test func streamedPiecesAppearWhole() throws {
        let dir = try scratchFolder("stream")
        defer { try? FileManager.default.removeItem(at: dir) }
        let target = dir.appendingPathComponent("lines.txt")
        try AtomicFile.write(to: target) { handle in
            for i in 0..<3 { try handle.write(contentsOf: Data("line \(i)\n".utf8)) }
        }
        #expect(String(decoding: try Data(contentsOf: target), as: UTF8.self) == "line 0\nline 1\nline 2\n")
        #expect(try entries(dir) == ["lines.txt"])
    }

    @Test func errorMidwayLeavesNothing() throws {
        let dir = try scratchFolder("midway")
        defer { try? FileManager.default.removeItem(at: dir) }
        let target = dir.appendingPathComponent("half.txt")
        #expect(throws: Boom.self) {
            try AtomicFile.write(to: target) { handle in
                try handle.write(contentsOf: Data("the first half".utf8))
                throw Boom()
            }
        }
        #expect(try entries(dir).isEmpty, "no target and no temporary file")
    }

    @Test func errorMidwayKeepsTheOldFile() throws {
        let dir = try scratchFolder("keep")
        defer { try? FileManager.default.removeItem(at: dir) }
        let target = dir.appendingPathComponent("report.html")
        try AtomicFile.write(Data("old".utf8), to: target)
        #expect(throws: Boom.self) {
            try AtomicFile.write(to: target, using: { url in
                try Data("new, half".utf8).write(to: url)
                throw Boom()
            })
        }
        #expect(String(decoding: try Data(contentsOf: target), as: UTF8.self) == "old")
        #expect(try entries(dir) == ["report.html"])
    }

    @Test func replacesAnExistingFile() throws {
        let dir = try scratchFolder("replace")
        defer { try? FileManager.default.removeItem(at: dir) }
        let target = dir.appendingPathComponent("manifest.json")
        try Data("a much longer old version of the file".utf8).write(to: target)
        try AtomicFile.write(Data("new".utf8), to: target)
        #expect(String(decoding: try Data(contentsOf: target), as: UTF8.self) == "new")
        #expect(try entries(dir) == ["manifest.json"])
    }

    @Test func missingFolderIsAnErrorNamingTheFile() throws {
        let dir = try scratchFolder("missing")
        defer { try? FileManager.default.removeItem(at: dir) }
        let target = dir.appendingPathComponent("no/such/folder/out.txt")
        let error = try #require(throws: FileWriteError.self) { try AtomicFile.write(Data("x".utf8), to: target) }
        #expect(error.path == target.path)
        #expect(try entries(dir).isEmpty)
    }
}

@Suite("AtomicFolder")
struct AtomicFolderTests {
    func files(_ contents: [String: String]) -> [AtomicFolder.File] {
        contents.sorted { $0.key < $1.key }.map { AtomicFolder.File.data(Data($0.value.utf8), name: $0.key) }
    }

    @Test func newFolderAppearsWhole() throws {
        let dir = try scratchFolder("new")
        defer { try? FileManager.default.removeItem(at: dir) }
        let target = dir.appendingPathComponent("adapters/run-1")
        try AtomicFolder.write(files(["adapter_config.json": "{}", "adapter_model.safetensors": "weights"]), into: target, requireEmpty: true)
        #expect(try entries(target) == ["adapter_config.json", "adapter_model.safetensors"])
        #expect(try entries(dir.appendingPathComponent("adapters")) == ["run-1"], "no staging folder left")
    }

    @Test func errorInANewFolderLeavesNothing() throws {
        let dir = try scratchFolder("newfail")
        defer { try? FileManager.default.removeItem(at: dir) }
        let target = dir.appendingPathComponent("merged")
        let broken = files(["config.json": "{}"]) + [AtomicFolder.File(name: "model.safetensors") { _ in throw Boom() }]
        #expect(throws: Boom.self) { try AtomicFolder.write(broken, into: target, requireEmpty: true) }
        #expect(try entries(dir).isEmpty)
    }

    @Test func existingFolderGetsEveryFileReplaced() throws {
        let dir = try scratchFolder("existing")
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("old config".utf8).write(to: dir.appendingPathComponent("adapter_config.json"))
        try Data("keep me".utf8).write(to: dir.appendingPathComponent("README.md"))
        try AtomicFolder.write(files(["adapter_config.json": "new config", "adapter_model.safetensors": "w"]), into: dir, requireEmpty: false)
        #expect(try entries(dir) == ["README.md", "adapter_config.json", "adapter_model.safetensors"])
        #expect(String(decoding: try Data(contentsOf: dir.appendingPathComponent("adapter_config.json")), as: UTF8.self) == "new config")
    }

    @Test func errorInAnExistingFolderChangesNothing() throws {
        let dir = try scratchFolder("existingfail")
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("old".utf8).write(to: dir.appendingPathComponent("adapter_config.json"))
        let broken = files(["adapter_config.json": "new"]) + [AtomicFolder.File(name: "adapter_model.safetensors") { _ in throw Boom() }]
        #expect(throws: Boom.self) { try AtomicFolder.write(broken, into: dir, requireEmpty: false) }
        #expect(try entries(dir) == ["adapter_config.json"], "no temporary file left")
        #expect(String(decoding: try Data(contentsOf: dir.appendingPathComponent("adapter_config.json")), as: UTF8.self) == "old")
    }

    @Test func requireEmptyRefusesAFolderThatHoldsFiles() throws {
        let dir = try scratchFolder("nonempty")
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("shard".utf8).write(to: dir.appendingPathComponent("model-00001-of-00002.safetensors"))
        let error = try #require(throws: FileWriteError.self) {
            try AtomicFolder.write(files(["model.safetensors": "w"]), into: dir, requireEmpty: true)
        }
        #expect(error.path == dir.standardizedFileURL.path)
        #expect(error.message.contains("already holds 1 file(s)") && error.message.contains("model-00001-of-00002.safetensors"))
        #expect(try entries(dir) == ["model-00001-of-00002.safetensors"])
    }

    @Test func emptyExistingFolderIsAcceptedWithRequireEmpty() throws {
        let dir = try scratchFolder("empty")
        defer { try? FileManager.default.removeItem(at: dir) }
        try AtomicFolder.write(files(["config.json": "{}"]), into: dir, requireEmpty: true)
        #expect(try entries(dir) == ["config.json"])
    }

    @Test func aFileInTheWayIsAnError() throws {
        let dir = try scratchFolder("file")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("out")
        try Data("x".utf8).write(to: path)
        let error = try #require(throws: FileWriteError.self) { try AtomicFolder.write(files(["a": "b"]), into: path, requireEmpty: false) }
        #expect(error.message.contains("is a file, not a folder"))
    }

    @Test func replaceWholeSwapsTheFolder() throws {
        let dir = try scratchFolder("whole-folder")
        let target = dir.appendingPathComponent("checkpoint")
        try AtomicFolder.replaceWhole(target) { staging in
            try Data("1".utf8).write(to: staging.appendingPathComponent("step"))
            try Data("old".utf8).write(to: staging.appendingPathComponent("only-in-old"))
        }
        #expect(try entries(target) == ["only-in-old", "step"])
        try AtomicFolder.replaceWhole(target) { staging in
            try Data("2".utf8).write(to: staging.appendingPathComponent("step"))
        }
        // The new folder as a whole: no file of the old one stays, nothing is left beside it.
        #expect(try entries(target) == ["step"])
        #expect(FileManager.default.contents(atPath: target.appendingPathComponent("step").path) == Data("2".utf8))
        #expect(try entries(dir) == ["checkpoint"])
    }

    @Test func replaceWholeKeepsTheOldFolderOnError() throws {
        let dir = try scratchFolder("whole-folder-error")
        let target = dir.appendingPathComponent("checkpoint")
        try AtomicFolder.replaceWhole(target) { staging in
            try Data("1".utf8).write(to: staging.appendingPathComponent("step"))
        }
        #expect(throws: Boom.self) {
            try AtomicFolder.replaceWhole(target) { staging in
                try Data("2".utf8).write(to: staging.appendingPathComponent("step"))
                throw Boom()
            }
        }
        #expect(FileManager.default.contents(atPath: target.appendingPathComponent("step").path) == Data("1".utf8))
        #expect(try entries(dir) == ["checkpoint"])
    }

    @Test func temporariesOfKilledWritersAreRemovedByTheNextWrite() throws {
        let dir = try scratchFolder("stale")
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count)
        let host = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // A process that has ended: its id is free.
        let gone = Process()
        gone.executableURL = URL(fileURLWithPath: "/bin/true")
        try gone.run()
        gone.waitUntilExit()
        let dead = gone.processIdentifier
        let stale = ".out.jsonl.\(host).\(dead).\(UUID().uuidString).tmp"
        let live = ".out.jsonl.\(host).\(getpid()).\(UUID().uuidString).tmp"
        let elsewhere = ".out.jsonl.other-host.\(dead).\(UUID().uuidString).tmp"
        let staleFolder = ".merged.\(host).\(dead).\(UUID().uuidString).tmp"
        for name in [stale, live, elsewhere] { try Data("x".utf8).write(to: dir.appendingPathComponent(name)) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent(staleFolder).appendingPathComponent("inner"), withIntermediateDirectories: true)

        try AtomicFile.write(Data("new".utf8), to: dir.appendingPathComponent("out.jsonl"))
        #expect(try entries(dir) == [elsewhere, live, staleFolder, "out.jsonl"].sorted())
        try AtomicFolder.write(files(["a": "b"]), into: dir.appendingPathComponent("merged"), requireEmpty: true)
        #expect(try entries(dir) == [elsewhere, live, "merged", "out.jsonl"].sorted())
    }
}
