import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ModelRuntime
import NIOCore
import ServiceLifecycle
import Synchronization

/// `corpus serve`: OpenAI's HTTP API over the models of a `ModelHost`, on Hummingbird. The
/// handlers parse and check requests and shape responses; the `Scheduler` decodes.
public struct Server: Sendable {
    public let host: ModelHost
    public let settings: ServeSettings
    let scheduler: Scheduler
    let metrics = Metrics()
    let created: Int
    /// Called once per completion request that reached the decoder, when it ends
    /// (`--log-requests`); nil: nothing is kept.
    let requestLog: (@Sendable (AnsweredRequest) -> Void)?

    public init(host: ModelHost, settings: ServeSettings, requestLog: (@Sendable (AnsweredRequest) -> Void)? = nil) {
        self.host = host
        self.settings = settings
        self.requestLog = requestLog
        self.scheduler = Scheduler(model: host.base, adapters: host.models.map(\.lora), stopTokens: host.stopTokenIDs,
                                   maxBatch: settings.maxBatch, maxQueue: settings.maxQueue, prefillChunk: settings.prefillChunk)
        self.created = Int(Date().timeIntervalSince1970)
    }

    /// Serves until SIGINT or SIGTERM; then answers new requests with 503, lets the running ones
    /// finish for up to `settings.shutdownGrace` seconds (then ends them: a stream gets an error
    /// event, a waiting client 503), stops accepting connections, stops the decoding thread and
    /// returns.
    /// - Parameter onListening: called once with the bound address and port (the port chosen
    ///   when `settings.port` is 0).
    /// - Throws: when the address cannot be bound.
    public func run(onListening: @escaping @Sendable (String, Int) -> Void) async throws {
        var logger = Logger(label: "corpus-serve")
        logger.logLevel = .warning
        let router = Router(context: ServeContext.self)
        router.add(middleware: MetricsMiddleware(metrics: metrics))
        router.add(middleware: OpenAIErrorMiddleware())
        router.add(middleware: BearerAuthMiddleware(key: settings.apiKey))
        router.get("/health") { _, _ in
            Self.json(["status": "ok", "models": host.models.map(\.name), "queue_depth": scheduler.queueDepth] as [String: Any])
        }
        router.get("/v1/models") { _, _ in self.modelList() }
        router.get("/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            let text = metrics.render(models: host.models.map(\.name), queueDepth: scheduler.queueDepth, running: scheduler.running,
                                      steps: scheduler.stepCount)
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        }
        router.post("/v1/chat/completions") { request, context in try await self.complete(request, kind: .chat, channel: context.channel) }
        router.post("/v1/completions") { request, context in try await self.complete(request, kind: .text, channel: context.channel) }
        let bindHost = settings.host
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(bindHost, port: settings.port), serverName: "corpus"),
            onServerRunning: { channel in onListening(bindHost, channel.localAddress?.port ?? 0) },
            logger: logger)
        scheduler.start()
        defer { scheduler.shutdown() }
        // The grace service comes last so that it hears of the shutdown first (a ServiceGroup
        // shuts its services down in reverse order): the server keeps its connections while the
        // running requests finish, and new requests get 503 meanwhile.
        let group = ServiceGroup(configuration: .init(
            services: [app, ShutdownGrace(scheduler: scheduler, seconds: settings.shutdownGrace)],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    /// GET /v1/models: the base model, then every adapter, each by its name.
    func modelList() -> Response {
        let base = host.models[0].name
        let data = host.models.map { m -> [String: Any] in
            var entry: [String: Any] = ["id": m.name, "object": "model", "created": created, "owned_by": "corpus",
                                        "root": m.name, "parent": m.adapter == nil ? NSNull() as Any : base as Any]
            entry["sha256"] = m.adapter?.sha256 ?? host.baseSHA256
            if let run = m.adapter?.runID { entry["run_id"] = run }
            return entry
        }
        return Self.json(["object": "list", "data": data] as [String: Any])
    }

    /// POST /v1/chat/completions and /v1/completions.
    func complete(_ request: Request, kind: CompletionRequest.Kind, channel: any Channel) async throws -> Response {
        let arrived = ContinuousClock.now
        // A declared length over the limit is refused before reading anything.
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > settings.maxBodyBytes {
            throw ServeError.tooLarge(limit: settings.maxBodyBytes)
        }
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: settings.maxBodyBytes)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw ServeError.tooLarge(limit: settings.maxBodyBytes)
        }
        let parsed = try CompletionRequest.parse(Data(buffer.readableBytesView), kind: kind, host: host, maxTokensLimit: settings.maxTokensLimit)
        let (job, events) = DecodeJob.make(modelIndex: parsed.modelIndex, prompt: parsed.prompt, parameters: parsed.parameters)
        let progress = Progress(started: arrived, metrics: metrics, host: host, parsed: parsed, log: requestLog)
        try scheduler.submit(job)
        let shape = ResponseShape(kind: kind, id: (kind == .chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased(),
                                  created: Int(Date().timeIntervalSince1970), model: host.models[parsed.modelIndex].name,
                                  fingerprint: host.systemFingerprint(parsed.modelIndex))
        var headers = HTTPFields()
        for (name, value) in host.identityHeaders(parsed.modelIndex) {
            if let field = HTTPField.Name(name) { headers[field] = value }
        }
        if parsed.stream {
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-cache"
            let tokenizer = host.tokenizer
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                do {
                    try await Self.stream(events, job: job, parsed: parsed, shape: shape, tokenizer: tokenizer, progress: progress, writer: &writer)
                } catch {
                    job.cancel()   // the client went away: free the row at the next step
                    progress.end(.cancelled)
                    throw error
                }
            })
        }
        var text = AnswerText(stops: parsed.stops)
        var finish = FinishReason.length
        // A client waiting for a whole answer is written nothing until it is done, so its going
        // away is seen on the connection's input: checked at every token.
        let hangUp = await HangUpWatcher.on(channel)
        var cancelled = true    // until the events end: a task cancelled by a client that went away
        defer { if cancelled { job.cancel(); progress.end(.cancelled, text: text) } }
        var hungUp = false
        answer: for await event in events {
            switch event {
            case let .token(token):
                progress.token()
                if hangUp?.hungUp == true {
                    hungUp = true
                    break answer
                }
                _ = text.append(token, tokenizer: host.tokenizer)
                if text.stoppedByString { job.cancel(); finish = .stop }
            case let .finished(reason):
                finish = reason
            case let .failed(message):
                cancelled = false
                progress.end(.failed, text: text)
                throw ServeError.internalError(message)
            case .aborted:
                cancelled = false
                progress.end(.aborted, text: text)
                throw ServeError.abortedByShutdown
            }
            if text.stoppedByString { break }
        }
        cancelled = hungUp || Task.isCancelled
        guard !cancelled else { throw ServeError.clientGone }
        _ = text.finish(cutByLength: finish == .length)
        progress.end(finish == .stop ? .stop : .length, text: text)
        let usage = Self.usage(prompt: parsed.prompt.count, completion: text.ids.count)
        var object = shape.header(object: kind == .chat ? "chat.completion" : "text_completion")
        object["choices"] = [shape.choice(text: text.text, finish: finish, chunk: false)]
        object["usage"] = usage
        var response = Self.json(object)
        response.headers.append(contentsOf: headers)
        return response
    }

    /// Writes the Server-Sent Events of a streamed answer: `data: {chunk}\n\n` per piece of text,
    /// a last chunk with `finish_reason`, the usage chunk when asked for, then `data: [DONE]`.
    static func stream(_ events: AsyncStream<DecodeEvent>, job: DecodeJob, parsed: CompletionRequest, shape: ResponseShape,
                       tokenizer: BPETokenizer, progress: Progress, writer: inout any ResponseBodyWriter) async throws {
        let object = shape.kind == .chat ? "chat.completion.chunk" : "text_completion"
        func send(_ chunk: [String: Any]) async throws {
            var chunk = chunk
            if parsed.includeUsage && chunk["usage"] == nil { chunk["usage"] = NSNull() }
            try await writer.write(ByteBuffer(bytes: Array("data: ".utf8) + Self.encode(chunk) + Array("\n\n".utf8)))
        }
        func piece(_ text: String, finish: FinishReason?, first: Bool = false) -> [String: Any] {
            var chunk = shape.header(object: object)
            if shape.kind == .chat {
                var delta: [String: Any] = [:]
                if first { delta["role"] = "assistant" }
                if !text.isEmpty || first { delta["content"] = text }
                chunk["choices"] = [["index": 0, "delta": delta, "logprobs": NSNull(), "finish_reason": finish.map { $0.rawValue as Any } ?? NSNull()] as [String: Any]]
            } else {
                chunk["choices"] = [shape.choice(text: text, finish: finish, chunk: true)]
            }
            return chunk
        }
        if shape.kind == .chat { try await send(piece("", finish: nil, first: true)) }
        var text = AnswerText(stops: parsed.stops)
        var finish = FinishReason.length
        loop: for await event in events {
            switch event {
            case let .token(token):
                progress.token()
                let delta = text.append(token, tokenizer: tokenizer)
                if !delta.isEmpty { try await send(piece(delta, finish: nil)) }
                if text.stoppedByString {
                    job.cancel()
                    finish = .stop
                    break loop
                }
            case let .finished(reason):
                finish = reason
            case .failed, .aborted:
                let error: ServeError
                if case let .failed(message) = event {
                    error = ServeError.internalError(message)
                    progress.end(.failed, text: text)
                } else {
                    error = ServeError.abortedByShutdown
                    progress.end(.aborted, text: text)
                }
                try await writer.write(ByteBuffer(bytes: Array("data: ".utf8) + Self.encode(error.body) + Array("\n\n".utf8)))
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
                return
            }
        }
        let rest = text.finish(cutByLength: finish == .length)
        progress.end(finish == .stop ? .stop : .length, text: text)
        try await send(piece(rest, finish: finish))
        if parsed.includeUsage {
            var chunk = shape.header(object: object)
            chunk["choices"] = [] as [Any]
            chunk["usage"] = usage(prompt: parsed.prompt.count, completion: text.ids.count)
            try await send(chunk)
        }
        try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
        try await writer.finish(nil)
    }

    static func usage(prompt: Int, completion: Int) -> [String: Any] {
        ["prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion]
    }

    /// JSON bytes with sorted keys (stable output for tests and diffs).
    static func encode(_ object: Any) -> [UInt8] {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return Array(data)
    }

    static func json(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: encode(object))))
    }
}

/// The request context of `corpus serve`'s routes: Hummingbird's, plus the connection, so that a
/// handler can watch it (`HangUpWatcher`).
struct ServeContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// Notices that a client closed its side of the connection (input closed, or the connection
/// gone), from the first place of the channel's pipeline, before the HTTP handlers (which hold
/// such events back while a response is pending). One per connection, added by the first
/// request that waits for a whole answer.
final class HangUpWatcher: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked: the only state is an atomic.
    typealias InboundIn = NIOAny
    private let closed = Atomic<Bool>(false)

    var hungUp: Bool { closed.load(ordering: .relaxed) }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed { closed.store(true, ordering: .relaxed) }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed.store(true, ordering: .relaxed)
        context.fireChannelInactive()
    }

    /// The watcher of `channel`, added first in its pipeline if it has none yet; nil if the
    /// pipeline cannot take it (the connection is already closing).
    static func on(_ channel: any Channel) async -> HangUpWatcher? {
        if let existing = try? await channel.pipeline.handler(type: HangUpWatcher.self).get() { return existing }
        let watcher = HangUpWatcher()
        do {
            try await channel.pipeline.addHandler(watcher, position: .first).get()
            return watcher
        } catch {
            return nil
        }
    }
}

/// The fields every response and chunk of one request share.
struct ResponseShape: Sendable {
    var kind: CompletionRequest.Kind
    var id: String
    var created: Int
    var model: String
    var fingerprint: String

    func header(object: String) -> [String: Any] {
        ["id": id, "object": object, "created": created, "model": model, "system_fingerprint": fingerprint]
    }

    /// One entry of `choices` of a whole answer (chat: `message`; text: `text`).
    func choice(text: String, finish: FinishReason?, chunk: Bool) -> [String: Any] {
        var choice: [String: Any] = ["index": 0, "logprobs": NSNull(), "finish_reason": finish.map { $0.rawValue as Any } ?? NSNull()]
        if kind == .chat { choice["message"] = ["role": "assistant", "content": text, "refusal": NSNull()] as [String: Any] } else { choice["text"] = text }
        return choice
    }
}

/// Turns every error into OpenAI's error body: `ServeError` as it is, Hummingbird's (an unknown
/// route, a wrong method) with their status, anything else as a 500 naming it.
struct OpenAIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as ServeError {
            return Self.response(error)
        } catch let error as any HTTPResponseError {
            let status = Int(error.status.code)
            if status == 404 { return Self.response(ServeError.noRoute(request.method.rawValue, request.uri.path)) }
            if status == 413 {
                return Self.response(ServeError(status: 413, message: "The request body is larger than this server accepts (--max-body-bytes).", type: "invalid_request_error", code: "request_too_large"))
            }
            return Self.response(ServeError(status: status, message: "\(request.method.rawValue) \(request.uri.path): \(error.status.reasonPhrase)",
                                            type: status < 500 ? "invalid_request_error" : "server_error"))
        } catch {
            return Self.response(ServeError.internalError("\(error)"))
        }
    }

    static func response(_ error: ServeError) -> Response {
        var response = Server.json(error.body, status: HTTPResponse.Status(code: error.status))
        if let retry = error.retryAfter { response.headers[.retryAfter] = String(retry) }
        return response
    }
}

/// `Authorization: Bearer KEY` on every endpoint but /health when a key is set, compared in
/// constant time.
struct BearerAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let key: [UInt8]?

    init(key: String?) { self.key = key.map { Array($0.utf8) } }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let key, request.uri.path != "/health" else { return try await next(request, context) }
        let header = request.headers[.authorization] ?? ""
        let prefix = "Bearer "
        guard header.hasPrefix(prefix), ConstantTime.equal(Array(header.utf8.dropFirst(prefix.utf8.count)), key) else {
            throw ServeError.unauthorized
        }
        return try await next(request, context)
    }
}
