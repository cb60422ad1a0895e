import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A `corpus serve` process started for one test on a free port (`--port 0`), and a small HTTP
/// client for it. `stop()` sends SIGTERM and returns the exit status.
public final class ServerProcess: @unchecked Sendable {
    // `stderrText` is guarded by `lock` (the reading thread appends, the test reads); the rest is
    // set once in init.
    public let process = Process()
    private let lock = NSLock()
    private var stderrText = ""
    public private(set) var port = 0

    /// Starts `corpus serve ARGUMENTS --port 0` and waits (up to `timeout` seconds) for the line
    /// that names the port.
    public init(_ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 120) throws {
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

    public var stderr: String { lock.withLock { stderrText } }

    static func port(in text: String) -> Int? {
        guard let range = text.range(of: "listening on http://127.0.0.1:") else { return nil }
        let digits = text[range.upperBound...].prefix { $0.isNumber }
        return Int(digits)
    }

    /// SIGTERM, then the exit status once the process has ended.
    public func stop() -> Int32 {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit { if process.isRunning { process.terminate() } }

    public struct Reply: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: Data

        public func json() throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any], "not a JSON object: \(String(decoding: body, as: UTF8.self))")
        }

        public var text: String { String(decoding: body, as: UTF8.self) }

        /// A header by name, case-insensitively.
        public func header(_ name: String) -> String? {
            headers.first { $0.key.lowercased() == name.lowercased() }?.value
        }

        /// The `data:` payloads of a Server-Sent Events body, in order.
        public var events: [String] {
            text.components(separatedBy: "\n\n").filter { !$0.isEmpty }.map { $0.hasPrefix("data: ") ? String($0.dropFirst(6)) : "NOT AN EVENT: \($0)" }
        }
    }

    /// Sends one request and waits for the whole response.
    public func send(_ method: String, _ path: String, json: Any? = nil, body: Data? = nil, headers: [String: String] = [:]) async throws -> Reply {
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

public struct ServerProcessError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

extension ServerProcess {
    /// Greedy chat answers to `requests` (key, served model, user message, max_tokens), all sent
    /// at once; the answer text (nil when the reply had none) by key.
    public func concurrentChats(_ requests: [(key: String, model: String, content: String, maxTokens: Int)]) async throws -> [String: String?] {
        try await withThrowingTaskGroup(of: (String, String?).self) { group in
            for r in requests {
                group.addTask {
                    let reply = try await self.send("POST", "/v1/chat/completions", json: [
                        "model": r.model, "messages": [["role": "user", "content": r.content]], "temperature": 0, "max_tokens": r.maxTokens,
                    ] as [String: Any])
                    let choice = (try reply.json()["choices"] as? [[String: Any]])?.first
                    return (r.key, (choice?["message"] as? [String: Any])?["content"] as? String)
                }
            }
            var all: [String: String?] = [:]
            for try await (key, text) in group { all[key] = text }
            return all
        }
    }

    /// The value of `name{labels}` in the Prometheus text of GET /metrics, or nil.
    public static func metric(_ text: String, _ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }
}

/// A raw HTTP/1.1 connection to the server over a POSIX socket, for what URLSession cannot do in
/// a test: read a streamed response as it arrives, and hang up in the middle of it.
public final class RawConnection {
    private let fd: Int32
    private var closed = false
    /// Everything received so far.
    public private(set) var received = Data()

    /// Connects to 127.0.0.1:`port` and sends `method path` with `json` as the body.
    public init(port: Int, _ method: String, _ path: String, json: Any) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ServerProcessError(message: "socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { Glibc.close(fd); throw ServerProcessError(message: "connect to port \(port) failed") }
        var timeout = timeval(tv_sec: 120, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let body = try JSONSerialization.data(withJSONObject: json)
        let head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let bytes = Array(head.utf8) + Array(body)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { Glibc.close(fd); throw ServerProcessError(message: "send failed") }
            sent += n
        }
    }

    /// Reads until what was received contains `marker` (true) or the server closes (false).
    @discardableResult
    public func read(until marker: String) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !String(decoding: received, as: UTF8.self).contains(marker) {
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { return false }
            received.append(contentsOf: buffer[0..<n])
        }
        return true
    }

    /// Reads until the server closes the connection.
    public func readToEnd() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { return }
            received.append(contentsOf: buffer[0..<n])
        }
    }

    public var text: String { String(decoding: received, as: UTF8.self) }

    /// Hangs up.
    public func close() {
        guard !closed else { return }
        closed = true
        _ = Glibc.close(fd)
    }

    deinit { close() }
}
