import Foundation
import HTTPTypes
import Hummingbird
import ServiceLifecycle
import Synchronization

/// One completion request that reached the decoder, as `--log-requests` keeps it.
public struct AnsweredRequest: Sendable, Equatable {
    /// How a request ended.
    public enum Outcome: String, Sendable {
        /// A stop token or stop string (`finish_reason` "stop").
        case stop
        /// `max_tokens` reached (`finish_reason` "length").
        case length
        /// The client went away before the answer was complete.
        case cancelled
        /// The shutdown grace period ran out.
        case aborted
        /// The forward pass failed.
        case failed
    }

    /// "chat" (/v1/chat/completions) or "completion" (/v1/completions).
    public var endpoint: String
    /// The served model's name (the `model` of the request).
    public var model: String
    /// The base model's fingerprint.
    public var baseSHA256: String
    /// The adapter's SHA-256 and run id; nil for the base model.
    public var adapterSHA256: String?
    public var adapterRunID: String?
    /// The prompt as the model read it (for chat: the rendered template, special tokens included).
    public var prompt: String
    /// The answer as sent (what was generated before a cancel or abort).
    public var answer: String
    public var promptTokens: Int
    public var completionTokens: Int
    public var outcome: Outcome
    public var stream: Bool
    /// From the request's arrival to its end.
    public var seconds: Double
}

/// What happens to one request between its arrival and its end: feeds the metrics (time to first
/// token, time between tokens, tokens in and out) and, once, the request log.
final class Progress: Sendable {
    private struct State {
        var last: ContinuousClock.Instant?
        var ended = false
    }

    private let started: ContinuousClock.Instant
    private let metrics: Metrics
    private let host: ModelHost
    private let parsed: CompletionRequest
    private let log: (@Sendable (AnsweredRequest) -> Void)?
    private let state = Mutex(State())

    init(started: ContinuousClock.Instant, metrics: Metrics, host: ModelHost, parsed: CompletionRequest, log: (@Sendable (AnsweredRequest) -> Void)?) {
        self.started = started
        self.metrics = metrics
        self.host = host
        self.parsed = parsed
        self.log = log
    }

    /// A token arrived from the decoder.
    func token() {
        let now = ContinuousClock.now
        let previous = state.withLock { s -> ContinuousClock.Instant? in
            defer { s.last = now }
            return s.last
        }
        if let previous {
            metrics.betweenTokens(Self.seconds(now - previous))
        } else {
            metrics.firstToken(after: Self.seconds(now - started))
        }
    }

    /// The request ended; only the first call counts.
    func end(_ outcome: AnsweredRequest.Outcome, text: AnswerText? = nil) {
        guard state.withLock({ s -> Bool in
            defer { s.ended = true }
            return !s.ended
        }) else { return }
        let model = host.models[parsed.modelIndex]
        let completion = text?.ids.count ?? 0
        metrics.tokens(model: model.name, prompt: parsed.prompt.count, completion: completion)
        guard let log else { return }
        log(AnsweredRequest(endpoint: parsed.kind == .chat ? "chat" : "completion", model: model.name, baseSHA256: host.baseSHA256,
                            adapterSHA256: model.adapter?.sha256, adapterRunID: model.adapter?.runID,
                            prompt: host.tokenizer.decode(parsed.prompt, skipSpecial: false), answer: text?.text ?? "",
                            promptTokens: parsed.prompt.count, completionTokens: completion, outcome: outcome, stream: parsed.stream,
                            seconds: Self.seconds(ContinuousClock.now - started)))
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}

/// Counts every response by endpoint and status for GET /metrics (outermost middleware: it sees
/// the status the error middleware chose).
struct MetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: Metrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            let response = try await next(request, context)
            metrics.request(path: request.uri.path, status: Int(response.status.code))
            return response
        } catch {
            metrics.request(path: request.uri.path, status: (error as? any HTTPResponseError).map { Int($0.status.code) } ?? 500)
            throw error
        }
    }
}

/// On SIGTERM or SIGINT: new requests get 503 at once; the running ones may finish for up to
/// `seconds`, then the scheduler ends them. Returns when the scheduler is idle, so that the
/// HTTP server (shut down after this service) closes its connections only then.
struct ShutdownGrace: Service {
    let scheduler: Scheduler
    let seconds: Double

    func run() async throws {
        // Wait for the shutdown (or the group's cancellation, which ends everything anyway).
        do { try await gracefulShutdown() } catch { return }
        scheduler.stopAccepting()
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while scheduler.running > 0 || scheduler.queueDepth > 0 {
            if ContinuousClock.now >= deadline {
                scheduler.abortAll()
                break
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}
