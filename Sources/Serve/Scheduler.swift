import CKernels
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
    /// The server shut down before the answer was complete (the grace period ran out).
    case aborted
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
/// the running batch between steps (continuous batching), up to `maxBatch` rows. Every step is
/// **one forward pass over all rows, whatever model they asked for**: the base products are
/// shared, and each row of an adapter adds that adapter's low-rank term
/// (`LlamaModel.forward(batch:)` with a `LoRAInference` per sequence; rows are ordered by served
/// model so that the rows of one adapter share its products too). A running request feeds its
/// last token; a request being prefilled feeds its prompt, in chunks: at most `prefillChunk`
/// prompt tokens enter a step, so a long prompt does not stall the running streams for long.
/// A prompt no longer than `prefillChunk` always enters in one piece (it waits a step rather
/// than being split), so a request alone runs exactly as `Generator.generate` runs one prompt
/// (the prompt as one pass, then one token per step, picked by `Generator.pick` with a
/// generator seeded by the request's seed): its greedy answer is `corpus generate`'s, token for
/// token.
public final class Scheduler: @unchecked Sendable {
    // `pending`, `stopping`, `aborting` and `finished` are guarded by `condition`; `model`,
    // `adapters`, `stopTokens` and the limits are constants; the rows being decoded live in
    // `loop()`'s locals on the decoding thread only. Hence @unchecked.
    private let model: LlamaModel
    private let adapters: [LoRAInference?]
    private let stopTokens: Set<Int>
    private let maxBatch: Int
    private let maxQueue: Int
    private let prefillChunk: Int
    private let condition = NSCondition()
    private var pending: [DecodeJob] = []
    private var stopping = false
    private var aborting = false
    private var finished = false
    private var thread: Thread?
    private let runningRows = Atomic<Int>(0)
    private let steps = Atomic<Int>(0)

    /// - Parameters:
    ///   - adapters: per served model (index of `DecodeJob.modelIndex`), its adapter or nil (the base).
    ///   - maxBatch: rows of one forward pass at most.
    ///   - maxQueue: requests waiting to join at most; more get 429.
    ///   - prefillChunk: prompt tokens one step takes at most.
    public init(model: LlamaModel, adapters: [LoRAInference?], stopTokens: Set<Int>, maxBatch: Int, maxQueue: Int, prefillChunk: Int = 512) {
        self.model = model
        self.adapters = adapters
        self.stopTokens = stopTokens
        self.maxBatch = max(1, maxBatch)
        self.maxQueue = max(0, maxQueue)
        self.prefillChunk = max(1, prefillChunk)
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
    ///   `ServeError.shuttingDown` (503) after `stopAccepting()` or `shutdown()`.
    public func submit(_ job: DecodeJob) throws {
        condition.lock()
        defer { condition.unlock() }
        guard !stopping else { throw ServeError.shuttingDown }
        guard job.modelIndex >= 0 && job.modelIndex < adapters.count else {
            throw ServeError.internalError("no served model has index \(job.modelIndex)")
        }
        // Free rows take requests beyond the queue's limit: it counts those that must wait.
        let free = max(0, maxBatch - runningRows.load(ordering: .relaxed))
        guard pending.count < maxQueue + free else { throw ServeError.queueFull(limit: maxQueue) }
        pending.append(job)
        condition.signal()
    }

    /// Requests waiting to join the batch.
    public var queueDepth: Int {
        condition.lock()
        defer { condition.unlock() }
        return pending.count
    }

    /// Requests being decoded (or prefilled) now.
    public var running: Int { runningRows.load(ordering: .relaxed) }

    /// Forward passes run so far.
    public var stepCount: Int { steps.load(ordering: .relaxed) }

    /// From now on new requests get 503; queued and running ones go on.
    public func stopAccepting() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    /// Ends every queued and running request now with `.aborted` (the shutdown grace period ran
    /// out); takes no new request.
    public func abortAll() {
        condition.lock()
        stopping = true
        aborting = true
        condition.broadcast()
        condition.unlock()
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

    /// A request being decoded: its KV cache, sampler, how much of its prompt is in the cache,
    /// and the last token it got.
    private struct Row {
        var job: DecodeJob
        var cache: KVCache
        var rng: SplitMix64
        var fed = 0
        var generated = 0
        var lastToken = 0
        var prefilling: Bool { fed < job.prompt.count }
    }

    private func loop() {
        var rows: [Row] = []
        while true {
            // Admit waiting requests (first come, first served) up to maxBatch rows.
            condition.lock()
            if pending.isEmpty && rows.isEmpty && !stopping {
                // Idle: hand the freed KV caches and activations back to the system, so the
                // process's memory follows its load instead of its peak (glibc keeps freed
                // memory in its arenas otherwise).
                Self.releaseFreedMemory()
            }
            while pending.isEmpty && rows.isEmpty && !stopping { condition.wait() }
            if aborting {
                for job in pending { job.continuation.yield(.aborted); job.continuation.finish() }
                pending = []
                for row in rows { row.job.continuation.yield(.aborted); row.job.continuation.finish() }
                rows = []
            }
            if stopping && pending.isEmpty && rows.isEmpty {
                finished = true
                runningRows.store(0, ordering: .relaxed)
                condition.broadcast()
                condition.unlock()
                return
            }
            var waiting: [DecodeJob] = []
            for job in pending {
                if job.isCancelled { job.continuation.finish(); continue }
                if rows.count < maxBatch {
                    let cache = KVCache(configuration: model.configuration, capacity: job.prompt.count + job.parameters.maxTokens)
                    rows.append(Row(job: job, cache: cache, rng: SplitMix64(seed: job.parameters.seed)))
                } else {
                    waiting.append(job)
                }
            }
            pending = waiting
            condition.unlock()

            rows.removeAll { row in
                if row.job.isCancelled { row.job.continuation.finish() }
                return row.job.isCancelled
            }
            runningRows.store(rows.count, ordering: .relaxed)
            guard !rows.isEmpty else { continue }
            rows = step(rows)
            steps.add(1, ordering: .relaxed)
            runningRows.store(rows.count, ordering: .relaxed)
        }
    }

    /// How many prompt tokens each prefilling row feeds this step (the others feed their last
    /// token): prompts in admission order while `prefillChunk` lasts; a prompt that fits the
    /// chunk enters whole or waits; a longer one takes what is left of the chunk.
    private func promptTokens(_ rows: [Row]) -> [Int] {
        var budget = prefillChunk
        return rows.map { row in
            guard row.prefilling else { return 0 }
            let remaining = row.job.prompt.count - row.fed
            if remaining <= budget {
                budget -= remaining
                return remaining
            }
            if remaining > prefillChunk && budget > 0 {
                defer { budget = 0 }
                return budget
            }
            return 0
        }
    }

    /// One forward pass over the rows that feed something this step, one token picked for each
    /// row whose prompt is complete; returns the rows that go on.
    private func step(_ rows: [Row]) -> [Row] {
        let take = promptTokens(rows)
        // Rows of the same served model next to each other: one pair of low-rank products per adapter.
        let order = rows.indices.filter { !rows[$0].prefilling || take[$0] > 0 }
            .sorted { (rows[$0].job.modelIndex, $0) < (rows[$1].job.modelIndex, $1) }
        let inputs = order.map { i -> (ids: [Int], cache: KVCache, adapter: LoRAInference?) in
            let row = rows[i]
            let ids = row.prefilling ? Array(row.job.prompt[row.fed..<(row.fed + take[i])]) : [row.lastToken]
            return (ids, row.cache, adapters[row.job.modelIndex])
        }
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
        var rows = rows
        var done = Set<Int>()
        for (j, i) in order.enumerated() {
            if rows[i].prefilling {
                rows[i].fed += take[i]
                if rows[i].prefilling { continue }     // more of the prompt next step
            }
            let token = Generator.pick(logits[j], rows[i].job.parameters, &rows[i].rng)
            rows[i].generated += 1
            rows[i].lastToken = token
            let job = rows[i].job
            job.continuation.yield(.token(token))
            if stopTokens.contains(token) || job.parameters.stopTokenIDs.contains(token) {
                job.continuation.yield(.finished(.stop))
                job.continuation.finish()
                done.insert(i)
            } else if rows[i].generated >= job.parameters.maxTokens {
                job.continuation.yield(.finished(.length))
                job.continuation.finish()
                done.insert(i)
            }
        }
        return rows.indices.filter { !done.contains($0) }.map { rows[$0] }
    }

    /// Returns memory freed by the allocator to the system (glibc's `malloc_trim`).
    static func releaseFreedMemory() { ck_release_free_memory() }
}
