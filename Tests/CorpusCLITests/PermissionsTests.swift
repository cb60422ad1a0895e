import Foundation
import TestSupport
import Testing

/// What corpus creates is the owner's alone, it never writes through a symbolic link, and the
/// same command twice writes the same bytes (docs/RELIABILITY.md).
@Suite("Permissions, links, reproducible files")
struct PermissionsTests {
    let medical = TestSupport.packageRoot.appendingPathComponent("examples/medical/medical_qa.csv").path

    static func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    /// A store with the medical example ingested, checked and frozen as `med`.
    func store() throws -> (db: String, dir: URL) {
        let dir = try TestSupport.temporaryDirectory("permissions")
        let db = dir.appendingPathComponent("corpus.db").path
        for arguments in [["init"], ["ingest", medical], ["check"], ["snapshot", "create", "med", "--eval-ratio", "0.2"]] {
            let result = try TestSupport.run(arguments + ["--db", db])
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
        }
        return (db, dir)
    }

    @Test func storeExportsAndReportsAreOwnerOnly() throws {
        let (db, dir) = try store()
        #expect(try Self.mode(db) == 0o600)
        for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: db + suffix) {
            #expect(try Self.mode(db + suffix) == 0o600, "\(suffix)")
        }
        let export = dir.appendingPathComponent("export").path
        let exported = try TestSupport.run(["snapshot", "export", "med", "--format", "sharegpt", "--out", export, "--db", db])
        #expect(exported.status == 0, "\(exported.stderr)")
        #expect(try Self.mode(export) == 0o700)
        let files = try FileManager.default.contentsOfDirectory(atPath: export).sorted()
        #expect(files.count >= 2)
        for file in files { #expect(try Self.mode(export + "/" + file) == 0o600, "\(file)") }
        let report = dir.appendingPathComponent("report.html").path
        #expect(try TestSupport.run(["report", "--html", report, "--db", db]).status == 0)
        #expect(try Self.mode(report) == 0o600)
        // A file that was there before is replaced by an owner-only one.
        try Data("old".utf8).write(to: URL(fileURLWithPath: report))
        chmod(report, 0o644)
        #expect(try TestSupport.run(["report", "--html", report, "--db", db]).status == 0)
        #expect(try Self.mode(report) == 0o600)
    }

    @Test func exportAndReportNeverWriteThroughLinks() throws {
        let (db, dir) = try store()
        let elsewhere = dir.appendingPathComponent("elsewhere")
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: false)
        let link = dir.appendingPathComponent("export-link").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: elsewhere.path)
        let refused = try TestSupport.run(["snapshot", "export", "med", "--format", "sharegpt", "--out", link, "--db", db])
        #expect(refused.status == 3)
        #expect(refused.stderr.contains("\(link): is a symbolic link (to \(elsewhere.path)); corpus does not write a folder through a link"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: elsewhere.path) == [])

        // Links planted inside the export folder under the export's file names: the links are
        // replaced by the files, the file they pointed to is untouched.
        let real = dir.appendingPathComponent("export").path
        #expect(try TestSupport.run(["snapshot", "export", "med", "--format", "sharegpt", "--out", real, "--db", db]).status == 0)
        let names = try FileManager.default.contentsOfDirectory(atPath: real).sorted()
        let victim = dir.appendingPathComponent("victim.txt").path
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: victim))
        let planted = dir.appendingPathComponent("planted").path
        try FileManager.default.createDirectory(atPath: planted, withIntermediateDirectories: false)
        for name in names { try FileManager.default.createSymbolicLink(atPath: planted + "/" + name, withDestinationPath: victim) }
        let through = try TestSupport.run(["snapshot", "export", "med", "--format", "sharegpt", "--out", planted, "--db", db])
        #expect(through.status == 0, "\(through.stderr)")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep me")
        for name in names {
            #expect(try FileManager.default.attributesOfItem(atPath: planted + "/" + name)[.type] as? FileAttributeType == .typeRegular)
            #expect(try Data(contentsOf: URL(fileURLWithPath: planted + "/" + name)) == Data(contentsOf: URL(fileURLWithPath: real + "/" + name)))
        }

        let reportLink = dir.appendingPathComponent("report.html").path
        try FileManager.default.createSymbolicLink(atPath: reportLink, withDestinationPath: victim)
        #expect(try TestSupport.run(["report", "--html", reportLink, "--db", db]).status == 0)
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep me")
        #expect(try FileManager.default.attributesOfItem(atPath: reportLink)[.type] as? FileAttributeType == .typeRegular)
    }

    /// Exports in every format and the HTML report, written twice by two processes: the same bytes
    /// (the report apart from its "Generated" time).
    @Test func exportsAndReportsAreByteIdentical() throws {
        let (db, dir) = try store()
        for format in ["sharegpt", "alpaca", "messages"] {
            var folders: [[String: Data]] = []
            for copy in 1...2 {
                let out = dir.appendingPathComponent("\(format)-\(copy)").path
                #expect(try TestSupport.run(["snapshot", "export", "med", "--format", format, "--out", out, "--db", db]).status == 0)
                var files: [String: Data] = [:]
                for name in try FileManager.default.contentsOfDirectory(atPath: out) {
                    files[name] = try Data(contentsOf: URL(fileURLWithPath: out + "/" + name))
                }
                folders.append(files)
            }
            #expect(folders[0].keys.sorted() == ["dataset_info.json", "eval.jsonl", "manifest.json", "train.jsonl"], "\(format)")
            #expect(folders[0] == folders[1], "\(format)")
        }
        var pages: [[String]] = []
        for copy in 1...2 {
            let path = dir.appendingPathComponent("report-\(copy).html").path
            #expect(try TestSupport.run(["report", "--html", path, "--db", db]).status == 0)
            let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines.filter { $0.contains("Generated 20") }.count == 1)
            pages.append(lines.filter { !$0.contains("Generated 20") }.map(String.init))
        }
        #expect(pages[0] == pages[1])
    }
}
