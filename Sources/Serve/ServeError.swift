import Foundation

/// An error answered to a client, in OpenAI's shape: `{"error": {"message", "type", "param",
/// "code"}}` with an HTTP status. The module's one error type; `corpus serve`'s start-up errors
/// (bad options) are the CLI's and model errors are `ModelError`.
public struct ServeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The HTTP status code (400, 401, 404, 413, 429, 500, 503).
    public var status: Int
    /// What is wrong and what to do.
    public var message: String
    /// OpenAI's error type: `invalid_request_error`, `authentication_error`, `not_found_error`,
    /// `rate_limit_error`, `server_error`.
    public var type: String
    /// The request field at fault (`messages`, `max_tokens`, `model`, …), or nil.
    public var param: String?
    /// A short machine-readable code (`invalid_api_key`, `model_not_found`,
    /// `context_length_exceeded`, …), or nil.
    public var code: String?
    /// Seconds after which a client may retry (sent as `Retry-After` with 429 and 503).
    public var retryAfter: Int?

    public init(status: Int, message: String, type: String, param: String? = nil, code: String? = nil, retryAfter: Int? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.retryAfter = retryAfter
    }

    public var description: String { "\(status) \(type)\(code.map { " (\($0))" } ?? ""): \(message)" }

    /// The JSON body: `{"error": {"message", "type", "param", "code"}}`, nulls included.
    public var body: [String: Any] {
        ["error": ["message": message, "type": type, "param": param.map { $0 as Any } ?? NSNull(), "code": code.map { $0 as Any } ?? NSNull()] as [String: Any]]
    }

    /// 400 for a request that cannot be served as written.
    public static func invalid(_ message: String, param: String? = nil, code: String? = nil) -> ServeError {
        ServeError(status: 400, message: message, type: "invalid_request_error", param: param, code: code)
    }

    /// 400 for a body that is not JSON (OpenAI's wording).
    public static func malformedJSON(_ detail: String) -> ServeError {
        invalid("We could not parse the JSON body of your request (\(detail)). The request body must be a JSON object; check the Content-Type and the quoting.", code: "invalid_json")
    }

    /// 401 for a missing or wrong API key.
    public static let unauthorized = ServeError(
        status: 401, message: "Incorrect or missing API key: send it as `Authorization: Bearer KEY`, the key given to `corpus serve --api-key`.",
        type: "invalid_request_error", code: "invalid_api_key")

    /// 404 for a `model` that is neither the base model nor an adapter being served.
    public static func unknownModel(_ name: String, served: [String]) -> ServeError {
        ServeError(status: 404, message: "The model `\(name)` does not exist: this server serves \(served.map { "`\($0)`" }.joined(separator: ", ")) (see GET /v1/models); adapters are added with `corpus serve --adapter NAME=PATH`.",
                   type: "invalid_request_error", param: "model", code: "model_not_found")
    }

    /// 404 for a path that is not an endpoint.
    public static func noRoute(_ method: String, _ path: String) -> ServeError {
        ServeError(status: 404, message: "There is no endpoint \(method) \(path); this server answers GET /v1/models, POST /v1/chat/completions, POST /v1/completions and GET /health.",
                   type: "invalid_request_error", code: "unknown_url")
    }

    /// 413 for a body over `--max-body-bytes`.
    public static func tooLarge(limit: Int) -> ServeError {
        ServeError(status: 413, message: "The request body is larger than this server's limit of \(limit) bytes; send a shorter conversation or restart `corpus serve` with a larger --max-body-bytes.",
                   type: "invalid_request_error", code: "request_too_large")
    }

    /// 400 when the prompt and the tokens asked for do not fit the model's context window
    /// (OpenAI's message, with the counts).
    public static func contextOverflow(window: Int, prompt: Int, completion: Int, param: String) -> ServeError {
        invalid("This model's maximum context length is \(window) tokens. However, you requested \(prompt + completion) tokens (\(prompt) in the \(param == "prompt" ? "prompt" : "messages"), \(completion) in the completion). Please reduce the length of the \(param == "prompt" ? "prompt" : "messages") or completion.",
                param: param, code: "context_length_exceeded")
    }

    /// 429 when the queue of waiting requests is full.
    public static func queueFull(limit: Int) -> ServeError {
        ServeError(status: 429, message: "The server is busy: \(limit) requests are already waiting (--max-queue). Retry after a second.",
                   type: "rate_limit_error", code: "queue_full", retryAfter: 1)
    }

    /// 503 once the server is shutting down.
    public static let shuttingDown = ServeError(
        status: 503, message: "The server is shutting down and takes no new requests.", type: "server_error", code: "shutting_down", retryAfter: 5)

    /// 503 for a request the server ended because its shutdown grace period ran out.
    public static let abortedByShutdown = ServeError(
        status: 503, message: "The server shut down before the answer was complete (its --shutdown-grace ran out); send the request again once it is back.",
        type: "server_error", code: "shutting_down", retryAfter: 5)

    /// 499 (nginx's "client closed request"): the client went away before its answer was
    /// complete. Nobody reads it; it is what /metrics counts such a request as.
    public static let clientGone = ServeError(
        status: 499, message: "The client closed the connection before the answer was complete.", type: "invalid_request_error", code: "client_closed_request")

    /// 500 for a failure inside the server (a bug: the message says what failed).
    public static func internalError(_ detail: String) -> ServeError {
        ServeError(status: 500, message: "The server failed while answering: \(detail)", type: "server_error", code: "internal_error")
    }
}
