import Foundation
@testable import FuzzTargets
import Serve
import Testing

/// Request bodies written to hurt `corpus serve`'s parser (the largest it reads is 1 MiB,
/// `--max-body-bytes`): a 400 naming the problem, quickly.
@Suite("Hostile serve requests")
struct HostileRequestTests {
    func parse(_ body: String, kind: CompletionRequest.Kind = .chat) throws -> CompletionRequest {
        let host = try #require(ServeTargets.host)
        return try CompletionRequest.parse(Data(body.utf8), kind: kind, host: host, maxTokensLimit: 64)
    }

    @Test func deeplyNestedBody() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        for body in [deep, "{\"model\": \"base\", \"messages\": \(deep)}"] {
            let start = Date()
            #expect(throws: ServeError.malformedJSON("it is not valid JSON")) { try parse(body) }
            #expect(Date().timeIntervalSince(start) < 5)
        }
    }

    @Test func numbersNoFieldCanHold() throws {
        for (field, value) in [("max_tokens", "1e300"), ("max_tokens", "9223372036854775808"), ("seed", "-1e19"), ("max_tokens", "1.5")] {
            do {
                _ = try parse("{\"model\": \"base\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"\(field)\": \(value)}")
                Issue.record("\(field) \(value) was accepted")
            } catch let error as ServeError {
                #expect(error.status == 400)
                #expect(error.param == field)
            }
        }
        do {
            _ = try parse("{\"model\": \"base\", \"prompt\": [1e30, 2]}", kind: .text)
            Issue.record("a prompt id of 1e30 was accepted")
        } catch let error as ServeError {
            #expect(error.status == 400)
        }
    }

    /// A prompt of almost 1 MiB (the body limit) is tokenized once and refused as longer than the
    /// context window.
    @Test func promptLongerThanTheWindow() throws {
        let text = String(repeating: "高血压 patient 123 ", count: 40_000)
        let start = Date()
        do {
            _ = try parse("{\"model\": \"base\", \"messages\": [{\"role\": \"user\", \"content\": \"\(text)\"}]}")
            Issue.record("a prompt longer than the window was accepted")
        } catch let error as ServeError {
            #expect(error.status == 400)
            #expect(error.code == "context_length_exceeded")
        }
        #expect(Date().timeIntervalSince(start) < 20)
    }
}
