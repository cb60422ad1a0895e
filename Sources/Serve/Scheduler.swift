import Foundation
import ModelRuntime
import Synchronization

/// Why an answer ended, as OpenAI's `finish_reason` says it.
public enum FinishReason: String, Sendable {
    /// A stop token (EOS, end of turn) or a `stop` string.
    case stop
    /// `max_tokens` reached.
    case length
}

/// What the decoding loop reports about one request, in order: tokens, then one end.
public enum DecodeEvent: Sendable, Equatable {
    case token(Int)
    case finished(FinishReason)
    /// The forward pass failed (the message says why); no more tokens follow.
    case failed(String)
}

/// One request waiting for or being decoded: the prompt, how to pick tokens, and where its
/// tokens go. A client that goes away calls `cancel()`; the loop drops the row at its next step.
public final class DecodeJob: Sendable {
    /// Index into `ModelHost.models`.
    public let modelIndex: Int
    public let prompt: [Int]
    public let parameters: GenerationParameters
    let continuation: AsyncStream<DecodeEvent>.Continuation
    private let cancelled = Atomic<Bool>(false)

    /// A job and the stream of its events; ending the stream's iteration (a cancelled task)
    /// cancels the job.
    public static func make(modelIndex: Int, prompt: [Int], parameters: GenerationParameters) -> (DecodeJob, AsyncStream<DecodeEvent>) {
        let (stream, continuation) = AsyncStream<DecodeEvent>.makeStream(bufferingPolicy: .unbounded)
        let job = DecodeJob(modelIndex: modelIndex, prompt: prompt, parameters: parameters, continuation: continuation)
        continuation.onTermination = { [weak job] _ in job?.cancel() }
        return (job, stream)
    }

    private init(modelIndex: Int, prompt: [Int], parameters: GenerationParameters, continuation: AsyncStream<DecodeEvent>.Continuation) {
        self.modelIndex = modelIndex
        self.prompt = prompt
        self.parameters = parameters
        self.continuation = continuation
    }

    /// Asks the loop to stop decoding this request and free its row (idempotent).
    public func cancel() { cancelled.store(true, ordering: .relaxed) }

    public var isCancelled: Bool { cancelled.load(ordering: .relaxed) }
}

/// The one decoding loop of `corpus serve`, on its own thread: requests wait in a queue and join
/// the running batch between steps (continuous batching). At every step each served model with
/// work runs one forward pass over all its rows: one new token for each running request, and
/// the whole prompt of each request admitted at this step (prompt and decoding rows share the
/// pass's matrix products). Rows of different served models (the base, each merged adapter) run
/// in separate passes, one after the other, because their weights differ.
///
/// A request alone runs exactly as `Generator.generate` runs one prompt (the prompt as one
/// forward pass, then one token per step, picked by `Generator.pick` with a generator seeded by
/// the request's seed), so its greedy answer is `corpus generate`'s, token for token.
public final class Scheduler: @unchecked Sendable {
    // `pending`, `stopping` and `finished` are guarded by `condition`; `models`, `stopTokens`,
    // `maxBatch` and `maxQueue` are constants; the rows being decoded live in `loop()`'s locals
    // on the decoding thread only. Hence @unchecked.
    private let models: [LlamaModel]
    private let stopTokens: Set<Int>
    private let maxBatch: Int
    private let maxQueue: Int
    private let condition = NSCondition()
    private var pending: [DecodeJob] = []
    private var stopping = false
    private var finished = false
    private var thread: Thread?

    /// - Parameters:
    ///   - maxBatch: rows of one forward pass at most (per served model).
    ///   - maxQueue: requests waiting to join at most; more get 429.
    public init(models: [LlamaModel], stopTokens: Set<Int>, maxBatch: Int, maxQueue: Int) {
        self.models = models
        self.stopTokens = stopTokens
        self.maxBatch = max(1, maxBatch)
        self.maxQueue = max(0, maxQueue)
    }

    /// Starts the decoding thread (once).
    public func start() {
        condition.lock()
        defer { condition.unlock() }
        guard thread == nil else { return }
        let t = Thread { [self] in loop() }
        t.name = "corpus-serve-decoder"
        thread = t
        t.start()
    }

    /// Queues `job`; its events arrive on its stream.
    /// - Throws: `ServeError.queueFull` (429) when `maxQueue` requests are waiting,
    ///   `ServeError.shuttingDown` (503) after `shutdown()`.
    public func submit(_ job: DecodeJob) throws {
        condition.lock()
        defer { condition.unlock() }
        guard !stopping else { throw ServeError.shuttingDown }
        guard pending.count < maxQueue else { throw ServeError.queueFull(limit: maxQueue) }
        pending.append(job)
        condition.signal()
    }

    /// Requests waiting to join the batch.
    public var queueDepth: Int {
        condition.lock()
        defer { condition.unlock() }
        return pending.count
    }

    /// Takes no new request, finishes every queued and running one, then ends the thread;
    /// returns when it has ended.
    public func shutdown() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while thread != nil && !finished { condition.wait() }
        condition.unlock()
    }

    /// A request being decoded: its KV cache, sampler and the last token it got.
    private struct Row {
        var job: DecodeJob
        var cache: KVCache
        var rng: SplitMix64
        var generated = 0
        var lastToken = 0
    }

    private func loop() {
        var running = [[Row]](repeating: [], count: models.count)   // per served model
        while true {
            // Admit waiting requests (first come, first served) up to maxBatch rows per model.
            condition.lock()
            while pending.isEmpty && running.allSatisfy(\.isEmpty) && !stopping { condition.wait() }
            if stopping && pending.isEmpty && running.allSatisfy(\.isEmpty) {
                finished = true
                condition.broadcast()
                condition.unlock()
                return
            }
            var admitted = [[Row]](repeating: [], count: models.count)
            var waiting: [DecodeJob] = []
            for job in pending {
                if job.isCancelled { job.continuation.finish(); continue }
                let m = job.modelIndex
                if running[m].count + admitted[m].count < maxBatch {
                    let cache = KVCache(configuration: models[m].configuration, capacity: job.prompt.count + job.parameters.maxTokens)
                    admitted[m].append(Row(job: job, cache: cache, rng: SplitMix64(seed: job.parameters.seed)))
                } else {
                    waiting.append(job)
                }
            }
            pending = waiting
            condition.unlock()

            for m in models.indices {
                running[m].removeAll { row in
                    if row.job.isCancelled { row.job.continuation.finish() }
                    return row.job.isCancelled
                }
                let rows = running[m] + admitted[m]
                guard !rows.isEmpty else { continue }
                running[m] = step(model: models[m], decoding: running[m].count, rows: rows)
            }
        }
    }

    /// One forward pass over `rows` (the first `decoding` feed their last token, the others
    /// their prompt), one token picked for each; returns the rows that go on.
    private func step(model: LlamaModel, decoding: Int, rows: [Row]) -> [Row] {
        let inputs = rows.enumerated().map { i, row in (ids: i < decoding ? [row.lastToken] : row.job.prompt, cache: row.cache) }
        let logits: [[Float]]
        do {
            logits = try model.forward(batch: inputs, allLogits: false)
        } catch {
            for row in rows {
                row.job.continuation.yield(.failed("the forward pass failed: \(error)"))
                row.job.continuation.finish()
            }
            return []
        }
        var next: [Row] = []
        for (i, var row) in rows.enumerated() {
            let token = Generator.pick(logits[i], row.job.parameters, &row.rng)
            row.generated += 1
            row.lastToken = token
            row.job.continuation.yield(.token(token))
            if stopTokens.contains(token) || row.job.parameters.stopTokenIDs.contains(token) {
                row.job.continuation.yield(.finished(.stop))
                row.job.continuation.finish()
            } else if row.generated >= row.job.parameters.maxTokens {
                row.job.continuation.yield(.finished(.length))
                row.job.continuation.finish()
            } else {
                next.append(row)
            }
        }
        return next
    }
}
