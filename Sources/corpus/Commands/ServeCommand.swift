import ArgumentParser
import CorpusDB
import Foundation
import ModelRuntime
import Quality
import Serve

/// `corpus serve`: the base model and its adapters behind OpenAI's HTTP API (docs/SERVE.md).
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the model and its adapters over OpenAI's HTTP API (/v1/chat/completions, /v1/completions, /v1/models).",
        discussion: """
            Binds 127.0.0.1 unless --host says otherwise; any other address needs --api-key (or \
            CORPUS_API_KEY) or an explicit --no-auth. Prints the address it listens on to standard \
            error; SIGINT or SIGTERM stops taking requests, finishes those in flight and exits 0. \
            See docs/SERVE.md.
            """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .long, help: "An adapter to serve as NAME=PATH (a PEFT adapter folder) or NAME=RUN (a training run's id, or an adapter's id or SHA-256, looked up in the store); clients ask for it with \"model\": \"NAME\". Repeat for several.")
    var adapter: [String] = []
    @Option(name: .long, help: "The name clients use for the base model (default: the model file or folder name without .gguf, or the registered name).")
    var name: String?
    @Option(name: .long, help: "Chat template: chatml, llama3, mistral or alpaca (default: recognized from the model).")
    var template: String?
    @Option(name: .long, help: "The address to listen on.") var host = "127.0.0.1"
    @Option(name: .long, help: "The port to listen on; 0 picks a free port (the one chosen is printed).") var port = 8000
    @Option(name: .long, help: "Require `Authorization: Bearer KEY` on every endpoint but /health (default: $CORPUS_API_KEY when set).")
    var apiKey: String?
    @Flag(name: .long, help: "Listen on a non-loopback --host without an API key (anyone who reaches the port can use the model).")
    var noAuth = false
    @Option(name: .long, help: "Requests decoded together in one forward pass at most (the base model's and every adapter's together).") var maxBatch = 16
    @Option(name: .long, help: "Prompt tokens one forward pass takes at most; longer prompts are prefilled in chunks so running answers keep flowing.") var prefillChunk = 512
    @Option(name: .long, help: "Seconds SIGINT/SIGTERM lets running requests finish before ending them.") var shutdownGrace: Double = 30
    @Option(name: .long, help: "Requests waiting for a place in the batch at most; more get 429 with Retry-After.") var maxQueue = 64
    @Option(name: .long, help: "The largest max_tokens a request may ask for (also the default for chat requests that give none).") var maxTokensLimit = 1024
    @Option(name: .long, help: "Request bodies larger than this many bytes get 413.") var maxBodyBytes = 1 << 20
    @Flag(name: .long, help: "Keep every answered request (prompt and answer with personal data redacted, model, adapter, tokens) in the store (--db), so `corpus lineage adapter` counts what an adapter answered. Off by default.")
    var logRequests = false

    /// The key in effect: --api-key, else CORPUS_API_KEY.
    var key: String? {
        if let apiKey { return apiKey }
        if let env = ProcessInfo.processInfo.environment["CORPUS_API_KEY"], !env.isEmpty { return env }
        return nil
    }

    func validate() throws {
        if let key, key.isEmpty || key.contains(where: { $0.isWhitespace }) {
            throw ValidationError("--api-key must be non-empty and without spaces (it is sent as `Authorization: Bearer KEY`)")
        }
        if key != nil && noAuth { throw ValidationError("--api-key and --no-auth contradict each other; give one") }
        if !Self.isLoopback(host) && key == nil && !noAuth {
            throw ValidationError("--host \(host) is reachable from other machines: give --api-key KEY (or set CORPUS_API_KEY) so only clients with the key are answered, or --no-auth to serve anyone who reaches the port")
        }
        if !(0...65535).contains(port) { throw ValidationError("--port must be in 0...65535 (0 picks a free port)") }
        if maxBatch < 1 || maxBatch > 256 { throw ValidationError("--max-batch must be in 1...256") }
        if prefillChunk < 16 { throw ValidationError("--prefill-chunk must be at least 16") }
        if !(shutdownGrace >= 0) { throw ValidationError("--shutdown-grace must be 0 or more seconds") }
        if maxQueue < 0 { throw ValidationError("--max-queue must be 0 or more") }
        if maxTokensLimit < 1 { throw ValidationError("--max-tokens-limit must be at least 1") }
        if maxBodyBytes < 1024 { throw ValidationError("--max-body-bytes must be at least 1024") }
        if let template, !ChatTemplate.names.contains(template) {
            throw ValidationError("--template must be one of \(ChatTemplate.names.joined(separator: ", "))")
        }
        var names: Set<String> = [baseName]
        for spec in adapter {
            let (n, path) = try Self.adapterSpec(spec)
            guard names.insert(n).inserted else {
                throw ValidationError("--adapter \(spec): the name \(n) is already used (by the base model or another adapter); give each a different NAME")
            }
            _ = path
        }
    }

    /// 127.0.0.0/8, ::1 and localhost.
    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }

    /// NAME=PATH.
    static func adapterSpec(_ spec: String) throws -> (name: String, path: String) {
        guard let eq = spec.firstIndex(of: "=") else {
            throw ValidationError("--adapter \(spec) is not NAME=PATH; write e.g. --adapter med=out/run-3/adapter")
        }
        let name = String(spec[..<eq]), path = String(spec[spec.index(after: eq)...])
        guard !name.isEmpty, !path.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.:".contains($0) }) else {
            throw ValidationError("--adapter \(spec): NAME must be letters, digits, '-', '_', '.' or ':' and PATH must not be empty")
        }
        return (name, path)
    }

    var baseName: String {
        if let name { return name }
        let last = URL(fileURLWithPath: modelOptions.model).lastPathComponent
        return last.hasSuffix(".gguf") ? String(last.dropLast(5)) : last
    }

    func run() async throws {
        var log: RequestLog?
        if logRequests {
            let store = try Exit.reporting { try modelOptions.database.open() }
            log = RequestLog(store: store)
        }
        var onAnswered: (@Sendable (AnsweredRequest) -> Void)?
        if let log { onAnswered = { log.append($0) } }
        let server = try Exit.reportingModel { try Server(host: loadHost(), settings: settings(), requestLog: onAnswered) }
        let names = server.host.models.map(\.name)
        Interrupt.unblock()
        do {
            try await server.run { host, port in
                let shown = host.contains(":") ? "[\(host)]" : host
                Output.error("corpus serve: listening on http://\(shown):\(port) (models: \(names.joined(separator: ", ")))")
            }
        } catch {
            Output.error("error: cannot serve on \(host):\(port): \(error). Pick another --port (0 chooses a free one) or stop what uses it.")
            throw ExitCode(Exit.inputError)
        }
        log?.drain()
        Output.error("corpus serve: stopped")
    }

    func settings() -> ServeSettings {
        var s = ServeSettings()
        s.host = host
        s.port = port
        s.apiKey = noAuth ? nil : key
        s.maxBatch = maxBatch
        s.prefillChunk = prefillChunk
        s.shutdownGrace = shutdownGrace
        s.maxQueue = maxQueue
        s.maxTokensLimit = maxTokensLimit
        s.maxBodyBytes = maxBodyBytes
        return s
    }

    /// Loads the base model once, then each adapter (its matrices only: adapters run unmerged
    /// beside the shared base weights), and hashes the base model's weight files and each
    /// adapter's safetensors.
    func loadHost() throws -> ModelHost {
        let path = try modelOptions.resolvedModelPath()
        let files = try ModelFiles(path: path)
        let tokenizer = try files.tokenizer()
        let precision = try modelOptions.precision()
        let weights = try files.weights(baseType: try modelOptions.baseGGMLType(), precision: precision)
        let base = try LlamaModel(configuration: weights.configuration, weights: weights.weights, precision: precision)
        ModelOptions.noteWhenBF16DoesNothing(base)
        var served = [ServedModel(name: baseName)]
        for spec in adapter {
            let (name, given) = try Self.adapterSpec(spec)
            let (dir, storedRun) = try ModelOptions.adapterFolder(given, database: modelOptions.database)
            let url = URL(fileURLWithPath: dir)
            Output.error("loading adapter \(name) from \(dir)")
            let lora = try LoRAInference(LoRAAdapter(readingPEFT: url, configuration: weights.configuration), configuration: weights.configuration)
            let sha = try ModelOptions.adapterSHA256(url)
            let runID = storedRun ?? (try? LoRAAdapter.readPEFTInfo(directory: url))?.metadata["corpus.run_id"]
            served.append(ServedModel(name: name, lora: lora, adapter: AdapterIdentity(path: dir, sha256: sha, runID: runID)))
        }
        let chatTemplate = try template.map { try ChatTemplate.named($0, tokenizer: tokenizer) }
            ?? ChatTemplate.recognize(files.chatTemplate, tokenizer: tokenizer)
        do {
            return try ModelHost(base: base, models: served, baseSHA256: try baseFingerprint(path: path), tokenizer: tokenizer, template: chatTemplate,
                                 stopTokenIDs: files.stopTokenIDs(tokenizer: tokenizer, configuration: weights.configuration))
        } catch let error as ServeError {
            throw ModelError.unsupported(error.message)
        }
    }

    /// The base model's fingerprint as lineage records it: the registered one when --model is a
    /// registered name, else the SHA-256 of its weight files (one file: that file's SHA-256).
    func baseFingerprint(path: String) throws -> String {
        if path != modelOptions.model, let store = try? modelOptions.database.open(),
           let registered = try? store.model(named: modelOptions.model), registered.path == path {
            return registered.fingerprint
        }
        return ModelFingerprint.combine(try ModelIdentity.weightHashes(try ModelInspector.inspect(path: path)))
    }
}

/// `--log-requests`: each answered request, redacted, appended to the store on one serial queue
/// (the HTTP handlers never wait for the disk).
final class RequestLog: Sendable {
    let store: CorpusStore
    private let queue = DispatchQueue(label: "corpus-serve-request-log")

    init(store: CorpusStore) { self.store = store }

    func append(_ r: AnsweredRequest) {
        queue.async { [store] in
            let redactions = PII.findings(in: r.prompt).count + PII.findings(in: r.answer).count
            let row = ServedRequest(endpoint: r.endpoint, modelName: r.model, modelSHA256: r.baseSHA256, adapterSHA256: r.adapterSHA256,
                                    adapterRun: r.adapterRunID, prompt: PII.redact(r.prompt), answer: PII.redact(r.answer), redactions: redactions,
                                    promptTokens: r.promptTokens, completionTokens: r.completionTokens, outcome: r.outcome.rawValue,
                                    stream: r.stream, seconds: r.seconds)
            do {
                try store.recordServedRequest(row)
            } catch {
                Output.error("error: --log-requests: cannot store a request in \(store.path): \(error)")
            }
        }
    }

    /// Returns when every request handed over so far is stored.
    func drain() { queue.sync {} }
}
