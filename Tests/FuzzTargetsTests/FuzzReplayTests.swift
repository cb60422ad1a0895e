import Foundation
import FuzzTargets
import Testing

/// Every seed and every regression input of every fuzz target runs through the target in the
/// normal suite, so a crash once found by the fuzzer stays fixed (docs/RELIABILITY.md).
@Suite struct FuzzReplayTests {
    /// The repository's fuzz/ folder.
    static let fuzzFolder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fuzz")

    static func folder(_ kind: String, _ target: String) -> String {
        fuzzFolder.appendingPathComponent(kind).appendingPathComponent(target).path
    }

    @Test(arguments: FuzzTarget.all.map(\.name))
    func seedsReplay(_ name: String) throws {
        let target = try #require(FuzzTarget.named(name))
        let count = try FuzzReplay.run(target, paths: [Self.folder("seeds", name)])
        #expect(count >= 2, "fuzz/seeds/\(name) should hold a few small inputs written for the target")
    }

    @Test(arguments: FuzzTarget.all.map(\.name))
    func regressionsReplay(_ name: String) throws {
        let target = try #require(FuzzTarget.named(name))
        try FuzzReplay.run(target, paths: [Self.folder("regressions", name)])
    }

    @Test func everySeedFolderIsATarget() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.fuzzFolder.appendingPathComponent("seeds").path)
        let known = Set(FuzzTarget.all.map(\.name))
        #expect(Set(names.filter { !$0.hasPrefix(".") }) == known)
    }

    @Test func inputsStaySmall() {
        for path in FuzzReplay.files([Self.fuzzFolder.path]) {
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            #expect(size <= 64 * 1024, "\(path) is \(size) bytes; seeds and regression inputs stay small")
        }
    }

    /// The tokenizer the bpe, chat-template and serve-request targets use loads through the real
    /// loader with its merges (125: every pair seen at least twice in its training text).
    @Test func fuzzTokenizerLoads() throws {
        let seed = try String(contentsOfFile: Self.folder("seeds", "tokenizer-json") + "/fuzz-tokenizer.json", encoding: .utf8)
        #expect(seed.trimmingCharacters(in: .whitespacesAndNewlines) == FuzzReplay.tokenizerJSON.trimmingCharacters(in: .whitespacesAndNewlines),
                "fuzz/seeds/tokenizer-json/fuzz-tokenizer.json is `corpus-fuzz --print-tokenizer`; write it again")
        #expect(FuzzReplay.tokenizerMerges >= 100)
    }
}
