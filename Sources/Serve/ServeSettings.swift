/// How `corpus serve` listens and what it accepts (docs/SERVE.md lists the defaults).
public struct ServeSettings: Sendable {
    /// Address to bind; 127.0.0.1 unless `--host`.
    public var host = "127.0.0.1"
    /// Port to bind; 0 picks a free one (the bound port is printed).
    public var port = 8000
    /// The bearer token every endpoint but /health requires; nil with `--no-auth` or on loopback.
    public var apiKey: String?
    /// Rows of one forward pass at most (requests for all served models together).
    public var maxBatch = 16
    /// Prompt tokens one forward pass takes at most; longer prompts are prefilled in chunks.
    public var prefillChunk = 512
    /// Seconds SIGTERM/SIGINT lets running requests finish before they are ended.
    public var shutdownGrace: Double = 30
    /// Requests waiting to join the batch at most; more get 429 with Retry-After.
    public var maxQueue = 64
    /// The largest `max_tokens` a request may ask for.
    public var maxTokensLimit = 1024
    /// Request bodies over this many bytes get 413.
    public var maxBodyBytes = 1 << 20

    public init() {}
}

/// Comparison of secrets whose time does not depend on where they differ.
public enum ConstantTime {
    /// True when `a` and `b` are the same bytes. Every byte of the longer is visited whatever
    /// the contents, so the time tells at most the lengths.
    public static func equal(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
        let x = Array(a), y = Array(b)
        var difference = UInt64(truncatingIfNeeded: x.count ^ y.count)
        for i in 0..<max(x.count, y.count) {
            let u = i < x.count ? x[i] : 0
            let v = i < y.count ? y[i] : 0
            difference |= UInt64(u ^ v)
        }
        return difference == 0
    }
}
