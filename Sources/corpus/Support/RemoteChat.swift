import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `corpus chat --url`: one chat turn against a running OpenAI-compatible server (`corpus serve`,
/// or any other), streamed with Server-Sent Events and printed as it arrives.
struct RemoteChat {
    /// What went wrong talking to the server, in a sentence that names the URL.
    struct Failure: Error, CustomStringConvertible {
        var description: String
        /// The server's error message and code (`context_length_exceeded`, …), when it sent one.
        var serverMessage: String?
        var code: String?
    }

    /// The chat completions endpoint: `url` as given when it already ends in
    /// /chat/completions, else `url` + /v1/chat/completions (or + /chat/completions after /v1).
    let endpoint: URL
    let apiKey: String?

    init(url: String, apiKey: String?) throws {
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        if !base.hasSuffix("/chat/completions") { base += base.hasSuffix("/v1") ? "/chat/completions" : "/v1/chat/completions" }
        guard let endpoint = URL(string: base), let scheme = endpoint.scheme, ["http", "https"].contains(scheme), endpoint.host != nil else {
            throw Failure(description: "--url \(url) is not an http(s) address; give e.g. http://127.0.0.1:8000")
        }
        self.endpoint = endpoint
        self.apiKey = apiKey
    }

    /// Sends `messages` to `model` and returns the answer; `onText` sees each piece as it arrives.
    /// - Throws: `Failure` for a refused connection, an HTTP error (with the server's message) or
    ///   a stream that ends without `[DONE]`.
    func send(model: String, messages: [[String: String]], maxTokens: Int, temperature: Float, topP: Float, seed: UInt64,
              onText: @escaping (String) -> Void) throws -> String {
        var request = URLRequest(url: endpoint)
        request.httpMethod = "POST"
        request.timeoutInterval = 600
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        if let apiKey { request.setValue("Bearer \(apiKey)", forHTTPHeaderField: "Authorization") }
        let body: [String: Any] = ["model": model, "messages": messages, "max_tokens": maxTokens, "temperature": Double(temperature),
                                   "top_p": Double(topP), "seed": Int64(bitPattern: seed), "stream": true]
        request.httpBody = try JSONSerialization.data(withJSONObject: body)
        let reader = EventReader(onText: onText)
        let session = URLSession(configuration: .ephemeral, delegate: reader, delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        session.dataTask(with: request).resume()
        reader.done.wait()
        return try reader.result(endpoint: endpoint)
    }
}

/// Reads the SSE stream of one chat completion as it arrives.
private final class EventReader: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    // Touched only on the session's delegate queue (serial), then read after `done` is signalled.
    let onText: (String) -> Void
    let done = DispatchSemaphore(value: 0)
    private var status = 0
    private var buffer = Data()
    private var errorBody = Data()
    private var answer = ""
    private var finished = false
    private var streamError: String?
    private var transportError: (any Error)?

    init(onText: @escaping (String) -> Void) { self.onText = onText }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        status = (response as? HTTPURLResponse)?.statusCode ?? 0
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard status == 200 else { errorBody.append(data); return }
        buffer.append(data)
        while let end = buffer.range(of: Data("\n\n".utf8)) {
            let event = String(decoding: buffer[buffer.startIndex..<end.lowerBound], as: UTF8.self)
            buffer.removeSubrange(buffer.startIndex..<end.upperBound)
            guard event.hasPrefix("data: ") else { continue }
            let payload = String(event.dropFirst(6))
            if payload == "[DONE]" { finished = true; continue }
            guard let object = (try? JSONSerialization.jsonObject(with: Data(payload.utf8))) as? [String: Any] else { continue }
            if let error = object["error"] as? [String: Any] { streamError = error["message"] as? String ?? payload; continue }
            let choice = (object["choices"] as? [[String: Any]])?.first
            if let text = (choice?["delta"] as? [String: Any])?["content"] as? String, !text.isEmpty {
                answer += text
                onText(text)
            }
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        transportError = error
        done.signal()
    }

    func result(endpoint: URL) throws -> String {
        if let transportError {
            throw RemoteChat.Failure(description: "\(endpoint): \(transportError.localizedDescription); is `corpus serve` running there?")
        }
        guard status == 200 else {
            let object = (try? JSONSerialization.jsonObject(with: errorBody)) as? [String: Any]
            let error = object?["error"] as? [String: Any]
            let message = error?["message"] as? String ?? String(decoding: errorBody.prefix(500), as: UTF8.self)
            throw RemoteChat.Failure(description: "\(endpoint): HTTP \(status): \(message)", serverMessage: error?["message"] as? String,
                                     code: error?["code"] as? String)
        }
        if let streamError { throw RemoteChat.Failure(description: "\(endpoint): the server ended the answer: \(streamError)") }
        guard finished else { throw RemoteChat.Failure(description: "\(endpoint): the stream ended before `data: [DONE]`") }
        return answer
    }
}
