import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import TestSupport

/// A `corpus serve` process started for one test on a free port (`--port 0`), and a small HTTP
/// client for it. `stop()` sends SIGTERM and returns the exit status.
final class ServerProcess: @unchecked Sendable {
    // `stderrText` is guarded by `lock` (the reading thread appends, the test reads); the rest is
    // set once in init.
    let process = Process()
    private let lock = NSLock()
    private var stderrText = ""
    private(set) var port = 0

    /// Starts `corpus serve ARGUMENTS --port 0` and waits (up to `timeout` seconds) for the line
    /// that names the port.
    init(_ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 120) throws {
        process.executableURL = TestSupport.corpusBinary
        process.arguments = ["serve"] + arguments + ["--port", "0"]
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "CORPUS_DB")
        env.removeValue(forKey: "CORPUS_API_KEY")
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let handle = err.fileHandleForReading
        Thread.detachNewThread { [self] in
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                lock.withLock { stderrText += String(decoding: data, as: UTF8.self) }
            }
        }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let port = Self.port(in: stderr) { self.port = port; return }
            if !process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        if process.isRunning { process.terminate() }
        throw ServerProcessError(message: "corpus serve did not start listening: \(stderr)")
    }

    var stderr: String { lock.withLock { stderrText } }

    static func port(in text: String) -> Int? {
        guard let range = text.range(of: "listening on http://127.0.0.1:") else { return nil }
        let digits = text[range.upperBound...].prefix { $0.isNumber }
        return Int(digits)
    }

    /// SIGTERM, then the exit status once the process has ended.
    func stop() -> Int32 {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit { if process.isRunning { process.terminate() } }

    struct Reply: Sendable {
        var status: Int
        var headers: [String: String]
        var body: Data

        func json() throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any], "not a JSON object: \(String(decoding: body, as: UTF8.self))")
        }

        var text: String { String(decoding: body, as: UTF8.self) }

        /// A header by name, case-insensitively.
        func header(_ name: String) -> String? {
            headers.first { $0.key.lowercased() == name.lowercased() }?.value
        }

        /// The `data:` payloads of a Server-Sent Events body, in order.
        var events: [String] {
            text.components(separatedBy: "\n\n").filter { !$0.isEmpty }.map { $0.hasPrefix("data: ") ? String($0.dropFirst(6)) : "NOT AN EVENT: \($0)" }
        }
    }

    /// Sends one request and waits for the whole response.
    func send(_ method: String, _ path: String, json: Any? = nil, body: Data? = nil, headers: [String: String] = [:]) async throws -> Reply {
        var request = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(port)\(path)")))
        request.httpMethod = method
        request.timeoutInterval = 120
        if let json { request.httpBody = try JSONSerialization.data(withJSONObject: json) } else if let body { request.httpBody = body }
        if request.httpBody != nil { request.setValue("application/json", forHTTPHeaderField: "Content-Type") }
        for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
        let session = URLSession(configuration: .ephemeral)
        defer { session.finishTasksAndInvalidate() }
        return try await withCheckedThrowingContinuation { continuation in
            session.dataTask(with: request) { data, response, error in
                if let error { continuation.resume(throwing: error); return }
                guard let http = response as? HTTPURLResponse else {
                    continuation.resume(throwing: ServerProcessError(message: "no HTTP response")); return
                }
                var headers: [String: String] = [:]
                for (k, v) in http.allHeaderFields { headers["\(k)"] = "\(v)" }
                continuation.resume(returning: Reply(status: http.statusCode, headers: headers, body: data ?? Data()))
            }.resume()
        }
    }
}

struct ServerProcessError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
