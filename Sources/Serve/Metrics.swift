import Foundation
import Synchronization

/// A Prometheus histogram: cumulative bucket counts under fixed upper bounds, a sum and a count.
struct Histogram: Sendable {
    let bounds: [Double]
    var counts: [Int]
    var sum = 0.0
    var count = 0

    init(bounds: [Double]) {
        self.bounds = bounds
        counts = [Int](repeating: 0, count: bounds.count)
    }

    mutating func observe(_ value: Double) {
        for (i, bound) in bounds.enumerated() where value <= bound { counts[i] += 1 }
        sum += value
        count += 1
    }

    /// The text exposition lines of histogram `name` (buckets with `le`, then `_sum` and `_count`).
    func lines(_ name: String) -> [String] {
        var out = zip(bounds, counts).map { "\(name)_bucket{le=\"\(Metrics.number($0))\"} \($1)" }
        out.append("\(name)_bucket{le=\"+Inf\"} \(count)")
        out.append("\(name)_sum \(Metrics.number(sum))")
        out.append("\(name)_count \(count)")
        return out
    }
}

/// What GET /metrics reports, in Prometheus' text format (version 0.0.4): requests by endpoint
/// and status, tokens in and out per served model, queue depth, rows being decoded, forward
/// passes, and histograms of the time to first token and of the time between tokens.
public final class Metrics: Sendable {
    struct State {
        var requests: [String: [Int: Int]] = [:]              // endpoint → status → count
        var promptTokens: [String: Int] = [:]                  // served model → tokens
        var completionTokens: [String: Int] = [:]
        var firstToken = Histogram(bounds: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60])
        var betweenTokens = Histogram(bounds: [0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56])
    }

    private let state = Mutex(State())
    /// Endpoints counted by name; any other path is counted as "other" (a scan of random paths
    /// must not grow the metrics without bound).
    static let endpoints: Set<String> = ["/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics"]

    public init() {}

    func request(path: String, status: Int) {
        let endpoint = Self.endpoints.contains(path) ? path : "other"
        state.withLock { $0.requests[endpoint, default: [:]][status, default: 0] += 1 }
    }

    func tokens(model: String, prompt: Int, completion: Int) {
        state.withLock {
            $0.promptTokens[model, default: 0] += prompt
            $0.completionTokens[model, default: 0] += completion
        }
    }

    func firstToken(after seconds: Double) { state.withLock { $0.firstToken.observe(seconds) } }

    func betweenTokens(_ seconds: Double) { state.withLock { $0.betweenTokens.observe(seconds) } }

    /// The exposition text; `models` are the served names (each gets its token counters, zero
    /// included, so a dashboard sees every model from the start).
    func render(models: [String], queueDepth: Int, running: Int, steps: Int) -> String {
        let s = state.withLock { $0 }
        var lines: [String] = []
        func family(_ name: String, _ type: String, _ help: String, _ body: [String]) {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
            lines.append(contentsOf: body)
        }
        family("corpus_requests_total", "counter", "HTTP requests answered, by endpoint and status code.",
               s.requests.keys.sorted().flatMap { endpoint in
                   (s.requests[endpoint] ?? [:]).keys.sorted().map { status in
                       "corpus_requests_total{endpoint=\"\(endpoint)\",status=\"\(status)\"} \(s.requests[endpoint]?[status] ?? 0)"
                   }
               })
        family("corpus_prompt_tokens_total", "counter", "Prompt tokens of the requests decoded, by served model.",
               models.map { "corpus_prompt_tokens_total{model=\"\(Self.label($0))\"} \(s.promptTokens[$0] ?? 0)" })
        family("corpus_completion_tokens_total", "counter", "Tokens generated, by served model.",
               models.map { "corpus_completion_tokens_total{model=\"\(Self.label($0))\"} \(s.completionTokens[$0] ?? 0)" })
        family("corpus_queue_depth", "gauge", "Requests waiting for a place in the batch.", ["corpus_queue_depth \(queueDepth)"])
        family("corpus_running_requests", "gauge", "Requests being prefilled or decoded.", ["corpus_running_requests \(running)"])
        family("corpus_forward_passes_total", "counter", "Forward passes (decoding steps) run.", ["corpus_forward_passes_total \(steps)"])
        family("corpus_time_to_first_token_seconds", "histogram", "From a completion request's arrival to its first generated token.",
               s.firstToken.lines("corpus_time_to_first_token_seconds"))
        family("corpus_time_per_output_token_seconds", "histogram", "Between consecutive generated tokens of one request.",
               s.betweenTokens.lines("corpus_time_per_output_token_seconds"))
        return lines.joined(separator: "\n") + "\n"
    }

    /// A label value with backslash, quote and newline escaped.
    static func label(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    /// A number as Prometheus writes it: integers without a fraction.
    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}
