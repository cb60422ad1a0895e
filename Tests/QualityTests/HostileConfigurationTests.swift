import Foundation
import Quality
import Testing

/// Check configurations written to hurt the parser: a clear `QualityError` naming the file.
@Suite("Hostile check configurations")
struct HostileConfigurationTests {
    /// JSON nested 100,000 deep, at the top and inside a section.
    @Test(arguments: [
        String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000),
        "{\"length\": " + String(repeating: "{\"a\": ", count: 100_000) + "1" + String(repeating: "}", count: 100_001),
    ])
    func deeplyNestedConfiguration(_ text: String) {
        let start = Date()
        do {
            _ = try CheckConfiguration.load(data: Data(text.utf8), path: "checks.json")
            Issue.record("a configuration nested 100,000 deep was accepted")
        } catch let error as QualityError {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.hasPrefix("checks.json: "))
        } catch {
            Issue.record("\(error) is not a QualityError")
        }
        #expect(Date().timeIntervalSince(start) < 5)
    }

    /// Numbers JSON allows but no setting can hold: refused naming the file, not trapped when
    /// converted to an integer.
    @Test(arguments: ["1e300", "-1e300", "9223372036854775808", "1.5"])
    func hugeNumbers(_ number: String) {
        #expect(throws: QualityError.self) {
            try CheckConfiguration.load(data: Data("{\"length\": {\"min_prompt_chars\": \(number)}}".utf8), path: "checks.json")
        }
    }
}
