import Foundation
import Testing

/// Inputs some tests read that the repository does not hold: the real test model and the shared
/// folder beside the checkout (`../shared/data`, `../shared/reference`).
///
/// A test that needs one carries a trait built here (`.needsTestModel`, `.needsShared(...)`), so
/// on a machine without the input it shows as *skipped* with the reason, never as passed. In CI
/// (`CI=true`: scripts/test.sh fetches the model and ../shared is beside the clone) the conditions
/// are always true, so the test runs and fails on the missing file (`model()`, `shared(_:)`).
public enum TestInputs {
    /// The test model's file name (SmolLM2-135M-Instruct, Q4_1 GGUF).
    public static let modelFileName = "SmolLM2-135M-Instruct.Q4_1.gguf"

    /// Where the test model is expected: `$CORPUS_TEST_MODEL_DIR`, else ~/.cache/corpus/models
    /// (where scripts/fetch-test-model.sh puts it).
    public static var modelPath: String {
        let directory = ProcessInfo.processInfo.environment["CORPUS_TEST_MODEL_DIR"].flatMap { $0.isEmpty ? nil : $0 }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/corpus/models").path
        return URL(fileURLWithPath: directory).appendingPathComponent(modelFileName).path
    }

    /// True when `CORPUS_TEST_SKIP_MODEL=1` (scripts/test.sh --fast) turns the model's tests off.
    public static var modelTestsOff: Bool { ProcessInfo.processInfo.environment["CORPUS_TEST_SKIP_MODEL"] == "1" }

    /// True when tests of the model should run: the file is there, or this is CI (unless
    /// `modelTestsOff`).
    public static var hasModel: Bool { !modelTestsOff && (TestSupport.inCI || FileManager.default.fileExists(atPath: modelPath)) }

    /// The test model's path; records an issue and throws when it is missing.
    public static func model(sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let path = modelPath
        try #require(FileManager.default.fileExists(atPath: path),
                     "the test model is missing at \(path); run scripts/fetch-test-model.sh", sourceLocation: sourceLocation)
        return path
    }

    /// The shared folder beside the repository (`../shared`).
    public static var sharedDirectory: URL { TestSupport.packageRoot.deletingLastPathComponent().appendingPathComponent("shared") }

    /// True when tests of `../shared/<relative>` should run: the file is there, or this is CI.
    public static func hasShared(_ relative: String) -> Bool {
        TestSupport.inCI || FileManager.default.fileExists(atPath: sharedDirectory.appendingPathComponent(relative).path)
    }

    /// `../shared/<relative>`; records an issue and throws when it is missing.
    public static func shared(_ relative: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> URL {
        let url = sharedDirectory.appendingPathComponent(relative)
        try #require(FileManager.default.fileExists(atPath: url.path),
                     "\(url.path) is missing; the shared folder (data and reference files) belongs beside the repository as ../shared",
                     sourceLocation: sourceLocation)
        return url
    }
}

extension Trait where Self == ConditionTrait {
    /// Skips the test, with the reason, when the test model is absent (outside CI) or model tests
    /// are off.
    public static var needsTestModel: Self {
        .enabled(if: TestInputs.hasModel, Comment(rawValue: TestInputs.modelTestsOff
            ? "a test of the model, off with CORPUS_TEST_SKIP_MODEL=1 (scripts/test.sh --fast)"
            : "needs the test model \(TestInputs.modelPath): run scripts/fetch-test-model.sh (or set CORPUS_TEST_MODEL_DIR to its folder)"))
    }

    /// Skips the test, with the reason, when a file of `../shared` is absent (outside CI).
    public static func needsShared(_ files: String...) -> Self {
        .enabled(if: files.allSatisfy(TestInputs.hasShared),
                 Comment(rawValue: "needs ../shared/\(files.joined(separator: " and ../shared/")): put the shared folder beside the repository"))
    }
}
