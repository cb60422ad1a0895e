import Foundation

/// One fuzz target: a name (`scripts/fuzz.sh NAME SECONDS`), what it reaches, and the function
/// that feeds it one input. The function calls the real parser and swallows the errors it throws
/// (a clear error is the right answer to a hostile input); what it must never do is trap, read
/// out of bounds or break an invariant, which `FuzzCheck.require` turns into a crash for libFuzzer
/// to report. docs/RELIABILITY.md lists the targets and how they are run.
public struct FuzzTarget: Sendable {
    public var name: String
    public var summary: String
    public var run: @Sendable ([UInt8]) -> Void

    public init(name: String, summary: String, run: @escaping @Sendable ([UInt8]) -> Void) {
        self.name = name
        self.summary = summary
        self.run = run
    }

    /// Every target, in the order `scripts/fuzz.sh --list` prints them.
    public static let all: [FuzzTarget] = [
        IngestTargets.csv, IngestTargets.json, IngestTargets.encoding,
        ModelFileTargets.gguf, ModelFileTargets.safetensors, ModelFileTargets.peftConfig,
        TokenizerTargets.tokenizerJSON, TokenizerTargets.bpe, TokenizerTargets.chatTemplate,
        ConfigurationTargets.checkConfig, ServeTargets.serveRequest,
    ]

    /// The target called `name`, if any.
    public static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }
}

/// Invariants the targets check beyond "no crash".
public enum FuzzCheck {
    /// Crashes (for libFuzzer to record the input) when `condition` is false: a broken invariant
    /// is a finding, exactly like a trap.
    @inline(__always)
    public static func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                               file: StaticString = #fileID, line: UInt = #line) {
        if !condition() {
            FileHandle.standardError.write(Data("fuzz invariant broken at \(file):\(line): \(message())\n".utf8))
            abort()
        }
    }
}
