import CorpusSupport
import Foundation
import Testing
import TestSupport

/// Writers never write through a symbolic link: a linked folder is refused, a linked file replaced;
/// the file a link points to is left as it was (docs/RELIABILITY.md).
@Suite("SymlinkGuard")
struct SymlinkGuardTests {
    /// A file written where a link is: the link is replaced, the file it pointed to untouched.
    @Test func fileWriteReplacesALink() throws {
        let dir = try scratchFolder("link-file")
        defer { try? FileManager.default.removeItem(at: dir) }
        let victim = dir.appendingPathComponent("victim.txt")
        try Data("keep me".utf8).write(to: victim)
        let link = dir.appendingPathComponent("report.html")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: victim)
        try AtomicFile.write(Data("<html>".utf8), to: link)
        #expect(try String(contentsOf: victim, encoding: .utf8) == "keep me")
        #expect(try FileManager.default.destinationOfSymbolicLinkIfAny(link.path) == nil)
        #expect(try String(contentsOf: link, encoding: .utf8) == "<html>")
        #expect(try entries(dir) == ["report.html", "victim.txt"])
    }

    @Test func folderWriteRefusesALinkedFolder() throws {
        let dir = try scratchFolder("link-folder")
        defer { try? FileManager.default.removeItem(at: dir) }
        let elsewhere = dir.appendingPathComponent("elsewhere")
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: false)
        let link = dir.appendingPathComponent("adapter")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: elsewhere)
        do {
            try AtomicFolder.write([.data(Data("{}".utf8), name: "adapter_config.json")], into: link, requireEmpty: false)
            Issue.record("wrote into a linked folder")
        } catch let error as FileWriteError {
            #expect(error.path == link.path)
            #expect(error.message.contains("does not write a folder through a link"))
        }
        #expect(try entries(elsewhere) == [])
    }

    /// A link inside the target folder is replaced by the new file (rename replaces the link itself),
    /// and the file it pointed to is untouched.
    @Test func linkInsideAFolderIsReplacedNotFollowed() throws {
        let dir = try scratchFolder("link-inside")
        defer { try? FileManager.default.removeItem(at: dir) }
        let victim = dir.appendingPathComponent("victim.txt")
        try Data("keep me".utf8).write(to: victim)
        let folder = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: false)
        try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent("adapter_config.json"), withDestinationURL: victim)
        try AtomicFolder.write([.data(Data("{}".utf8), name: "adapter_config.json")], into: folder, requireEmpty: false)
        #expect(try String(contentsOf: victim, encoding: .utf8) == "keep me")
        let written = folder.appendingPathComponent("adapter_config.json")
        #expect(try FileManager.default.destinationOfSymbolicLinkIfAny(written.path) == nil)
        #expect(try String(contentsOf: written, encoding: .utf8) == "{}")
    }
}

private extension FileManager {
    func destinationOfSymbolicLinkIfAny(_ path: String) throws -> String? {
        let type = try attributesOfItem(atPath: path)[.type] as? FileAttributeType
        return type == .typeSymbolicLink ? try destinationOfSymbolicLink(atPath: path) : nil
    }
}
