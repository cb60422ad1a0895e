import ArgumentParser
import Foundation
import ModelRuntime
import Trainer

/// `--model PATH|NAME`: a GGUF file, a Hugging Face folder, or a model registered with
/// `corpus models add` (looked up in the store of `--db`, which therefore comes with this group:
/// commands that take `--model` use `modelOptions.database` instead of a second `DatabaseOptions`).
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "The model: a .gguf file, a Hugging Face folder (config.json, *.safetensors, tokenizer.json), or the name of a model registered with `corpus models add`.")
    var model: String

    @Option(name: .customLong("base-type"), help: "Keep the base model's matrices in this type in memory: f32, bf16, f16, q8_0 or q4_0 (default: as stored in the file, e.g. bf16 from safetensors, Q4_1 from a GGUF; never expanded to fp32 as a whole).")
    var baseType: String?

    @Option(name: .long, help: "Arithmetic of the products with the base model: f32 (exact, as PEFT computes) or bf16 (activations rounded to bf16 as PyTorch's autocast does; about 2x faster on CPUs with AVX512_BF16; fp32 and fp16 weights are then kept in bf16). Default: f32 (docs/TRAINING_MATH.md).")
    var compute: String?

    @OptionGroup var database: DatabaseOptions

    /// `--compute` (f32 when not given).
    /// - Throws: `ValidationError` naming the accepted values.
    func precision() throws -> ComputePrecision {
        guard let compute else { return .f32 }
        guard let p = ComputePrecision(rawValue: compute.lowercased()) else {
            throw ValidationError("--compute \(compute) is not one of f32, bf16")
        }
        return p
    }

    /// `--base-type` as a ggml type (nil: as stored).
    /// - Throws: `ValidationError` naming the accepted values.
    func baseGGMLType() throws -> GGMLType? {
        guard let baseType else { return nil }
        switch baseType.lowercased() {
        case "f32", "fp32": return .f32
        case "bf16": return .bf16
        case "f16", "fp16": return .f16
        case "q8_0": return .q8_0
        case "q4_0": return .q4_0
        default: throw ValidationError("--base-type \(baseType) is not one of f32, bf16, f16, q8_0, q4_0")
        }
    }

    func validate() throws {
        _ = try baseGGMLType()
        _ = try precision()
    }

    struct Loaded {
        var files: ModelFiles
        var model: LlamaModel
        /// The `--adapter`, run unmerged beside the base weights (nil: the base model alone).
        var adapter: LoRAInference?
        var tokenizer: BPETokenizer
        var chatTemplate: String? { files.chatTemplate }
        var stopTokenIDs: Set<Int> { files.stopTokenIDs(tokenizer: tokenizer, configuration: model.configuration) }

        /// The chat template named by `--template`, or else the model's own.
        func template(_ name: String?) throws -> ChatTemplate {
            if let name { return try ChatTemplate.named(name, tokenizer: tokenizer) }
            return try ChatTemplate.recognize(chatTemplate, tokenizer: tokenizer)
        }
    }

    func loadTokenizer() throws -> (ModelFiles, BPETokenizer) {
        let files = try ModelFiles(path: try resolvedModelPath())
        return (files, try files.tokenizer())
    }

    /// Loads the model; with `adapter` (a PEFT adapter folder), the adapter runs beside the base
    /// weights, unmerged (y = Wx + s·B(A·x), as PEFT's forward and `corpus serve` compute it; the
    /// base stays in its stored type and nothing is written: `corpus merge` writes a merged model).
    func load(adapter: String? = nil) throws -> Loaded {
        let (files, tokenizer) = try loadTokenizer()
        let weights = try files.weights(baseType: try baseGGMLType(), precision: try precision())
        var lora: LoRAInference?
        if let adapter {
            lora = try LoRAInference(LoRAAdapter(readingPEFT: URL(fileURLWithPath: adapter), configuration: weights.configuration),
                                     configuration: weights.configuration)
        }
        let model = try LlamaModel(configuration: weights.configuration, weights: weights.weights, precision: try precision())
        Self.noteWhenBF16DoesNothing(model)
        return Loaded(files: files, model: model, adapter: lora, tokenizer: tokenizer)
    }

    /// `--compute bf16` rounds activations only in products with bf16 matrices; block-quantized
    /// matrices (Q4_1, Q8_0, …) are multiplied in fp32 as stored. Says so when no matrix is bf16,
    /// so that a run recorded as bf16 on a quantized base is not mistaken for bf16 arithmetic.
    static func noteWhenBF16DoesNothing(_ model: LlamaModel) {
        guard model.precision == .bf16 else { return }
        let types = Set(model.layers.flatMap { [$0.qkv.type, $0.output.type, $0.gateUp.type, $0.down.type] })
        guard !types.contains(.bf16) else { return }
        Output.error("note: --compute bf16 changes only products with bf16 matrices; this base's matrices are \(types.map(\.name).sorted().joined(separator: ", ")), multiplied in fp32 as stored (add --base-type bf16 for bf16 arithmetic)")
    }
}

/// `--adapter DIR` for the commands that run a model.
struct AdapterOption: ParsableArguments {
    @Option(name: .long, help: "A LoRA adapter folder in PEFT's format (adapter_config.json + adapter_model.safetensors), e.g. one `corpus train` wrote; run beside the base weights, unmerged (nothing is written).")
    var adapter: String?
}

extension Exit {
    /// Like `reporting`, for model commands: model and trainer errors exit 3 (bad input file or option).
    static func reportingModel<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as ModelError {
            Output.error("error: \(error.description)")
            throw ExitCode(inputError)
        } catch let error as TrainerError {
            Output.error("error: \(error.description)")
            throw ExitCode(inputError)
        }
    }
}

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize", abstract: "Show the token ids and pieces of a text (no special tokens added).")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var output: JSONOption
    @Argument(help: "The text.") var text: String

    func run() throws {
        try Exit.reportingModel {
            let (_, tokenizer) = try modelOptions.loadTokenizer()
            let ids = tokenizer.encode(text)
            let pieces = ids.map { tokenizer.decode([$0]) }
            if output.json {
                Output.printJSON(["ids": ids, "pieces": pieces, "tokens": ids.map { tokenizer.piece($0) ?? "" }])
            } else {
                for (id, piece) in zip(ids, pieces) { print("\(id)\t\(piece.debugDescription)") }
                print("\(ids.count) tokens")
            }
        }
    }
}

/// Sampling options shared by `generate` and `chat`.
struct SamplingOptions: ParsableArguments {
    @Option(name: .long, help: "Tokens to generate at most.") var maxTokens = 256
    @Option(name: .long, help: "0 for greedy decoding; higher values sample more freely.") var temperature: Float = 0
    @Option(name: .long, help: "Sample among the k most likely tokens (0: all).") var topK = 0
    @Option(name: .long, help: "Sample among the most likely tokens covering this probability (1: all).") var topP: Float = 1
    @Option(name: .long, help: "Seed for sampling, so an answer can be reproduced.") var seed: UInt64 = 0
    @Option(name: .long, help: "Chat template: chatml, llama3, mistral or alpaca (default: recognized from the model).") var template: String?

    func validate() throws {
        if maxTokens < 1 { throw ValidationError("--max-tokens must be at least 1") }
        if temperature < 0 { throw ValidationError("--temperature must be 0 or more") }
        if !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1]") }
        if topK < 0 { throw ValidationError("--top-k must be 0 or more") }
        if let template, !ChatTemplate.names.contains(template) {
            throw ValidationError("--template must be one of \(ChatTemplate.names.joined(separator: ", "))")
        }
    }

    func parameters(stopping stop: Set<Int>) -> GenerationParameters {
        var p = GenerationParameters()
        p.maxTokens = maxTokens
        p.temperature = temperature
        p.topK = topK
        p.topP = topP
        p.seed = seed
        p.stopTokenIDs = stop
        return p
    }
}

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Answer prompts with the model (its chat template applied unless --raw); several prompts are generated together as one batch.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var adapterOption: AdapterOption
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var output: JSONOption
    @Flag(name: .long, help: "Use the prompts as they are, without the chat template.") var raw = false
    @Argument(help: "The prompts.") var prompts: [String]

    func validate() throws {
        if prompts.isEmpty { throw ValidationError("give at least one prompt") }
    }

    func run() throws {
        try Exit.reportingModel {
            let loaded = try modelOptions.load(adapter: adapterOption.adapter)
            let template = raw ? nil : try loaded.template(sampling.template)
            let promptIDs = prompts.map { prompt in
                loaded.tokenizer.encode(template?.render([ChatMessage(role: "user", content: prompt)], generationPrompt: true) ?? prompt)
            }
            let answers = try Generator.generate(model: loaded.model, adapter: loaded.adapter, prompts: promptIDs,
                                                 parameters: sampling.parameters(stopping: loaded.stopTokenIDs))
            let results = zip(promptIDs, answers).map { prompt, ids -> [String: Any] in
                // An answer cut by --max-tokens can end inside a character (byte-level tokens):
                // its incomplete bytes are left out of the text (the ids keep them).
                var text = loaded.tokenizer.decode(ids, skipSpecial: true)
                while ids.count >= sampling.maxTokens, text.hasSuffix("\u{FFFD}") { text.removeLast() }
                return ["prompt_ids": prompt, "ids": ids, "text": text]
            }
            if output.json {
                // One prompt: one object; several: an array of objects in the order given.
                Output.printJSON(results.count == 1 ? results[0] : results)
            } else {
                for (i, result) in results.enumerated() {
                    if results.count > 1 { print(i == 0 ? "[\(i + 1)]" : "\n[\(i + 1)]") }
                    print(result["text"] as? String ?? "")
                }
            }
        }
    }
}

struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Talk with the model: type a message and press Enter; /reset starts over, /quit or Ctrl-D leaves.",
        discussion: """
            With --url, talks to a running server (`corpus serve` or any OpenAI-compatible one) \
            instead of loading the model: --model is then the served name (the base model's or an \
            adapter's, as GET /v1/models lists them) and the answer streams from the server.
            """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var adapterOption: AdapterOption
    @OptionGroup var sampling: SamplingOptions
    @Option(name: .long, help: "A system message for the conversation.") var system: String?
    @Option(name: .long, help: "A running server to talk to, e.g. http://127.0.0.1:8000 (then --model is the served name).") var url: String?
    @Option(name: .long, help: "With --url: the server's key (default: $CORPUS_API_KEY when set).") var apiKey: String?

    func validate() throws {
        guard url != nil else {
            if apiKey != nil { throw ValidationError("--api-key goes with --url (a server to talk to)") }
            return
        }
        if adapterOption.adapter != nil {
            throw ValidationError("with --url the server holds the adapters: give the adapter's served name as --model instead of --adapter")
        }
        if sampling.topK != 0 { throw ValidationError("--top-k is not part of OpenAI's chat API; leave it out with --url (use --top-p)") }
        if sampling.template != nil { throw ValidationError("with --url the server applies its chat template; leave --template out") }
    }

    func run() throws {
        if let url {
            let key = apiKey ?? ProcessInfo.processInfo.environment["CORPUS_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
            let remote: RemoteChat
            do {
                remote = try RemoteChat(url: url, apiKey: key)
            } catch {
                Output.error("error: \(error)")
                throw ExitCode(Exit.inputError)
            }
            Output.progress("corpus chat: \(modelOptions.model) at \(remote.endpoint). /reset starts over, /quit leaves.\n")
            try conversation { messages in
                do {
                    return try remote.send(model: modelOptions.model, messages: messages.map { ["role": $0.role, "content": $0.content] },
                                           maxTokens: sampling.maxTokens, temperature: sampling.temperature, topP: sampling.topP,
                                           seed: sampling.seed) { Output.write($0) }
                } catch let failure as RemoteChat.Failure where failure.code == "context_length_exceeded" {
                    Output.write("(the server refused: \(failure.serverMessage ?? failure.description) /reset to start over)\n")
                    return nil
                } catch let failure as RemoteChat.Failure {
                    Output.write("\n")
                    Output.error("error: \(failure)")
                    throw ExitCode(Exit.inputError)
                }
            }
            return
        }
        try Exit.reportingModel {
            let loaded = try modelOptions.load(adapter: adapterOption.adapter)
            let template = try loaded.template(sampling.template)
            let parameters = sampling.parameters(stopping: loaded.stopTokenIDs)
            let window = loaded.model.configuration.maxPositionEmbeddings
            Output.progress("corpus chat: \(modelOptions.model) (\(template.name) template). /reset starts over, /quit leaves.\n")
            try conversation { messages in
                let prompt = loaded.tokenizer.encode(template.render(messages, generationPrompt: true))
                if prompt.count + parameters.maxTokens > window {
                    Output.write("(the conversation is \(prompt.count) tokens; with --max-tokens \(parameters.maxTokens) it would pass the model's \(window)-token window: /reset to start over)\n")
                    return nil
                }
                // The answer is printed as it is generated, decoding whole UTF-8 characters only.
                var ids: [Int] = []
                var shown = ""
                let answer = try Generator.generate(model: loaded.model, adapter: loaded.adapter, prompts: [prompt], parameters: parameters) { _, token in
                    ids.append(token)
                    let text = loaded.tokenizer.decode(ids, skipSpecial: true)
                    if !text.hasSuffix("\u{FFFD}"), text.count > shown.count, text.hasPrefix(shown) {
                        Output.write(String(text.dropFirst(shown.count)))
                        shown = text
                    }
                }
                let reply = loaded.tokenizer.decode(answer[0], skipSpecial: true)
                Output.write(reply.hasPrefix(shown) ? String(reply.dropFirst(shown.count)) : "")
                return reply
            }
        }
    }

    /// The read-answer loop: each user line is added to the conversation and `answer` gives
    /// (and prints, as it comes) the reply, or nil when the turn cannot be answered (the line is
    /// then dropped from the conversation).
    private func conversation(_ answer: ([ChatMessage]) throws -> String?) throws {
        var messages: [ChatMessage] = system.map { [ChatMessage(role: "system", content: $0)] } ?? []
        let interactive = isatty(0) == 1
        while true {
            if interactive { Output.write("> ") }
            guard let line = readLine() else { break }
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if text == "/quit" || text == "/exit" { break }
            if text == "/reset" {
                messages = system.map { [ChatMessage(role: "system", content: $0)] } ?? []
                Output.write("(conversation cleared)\n")
                continue
            }
            messages.append(ChatMessage(role: "user", content: text))
            guard let reply = try answer(messages) else {
                messages.removeLast()
                continue
            }
            // Standard output is written directly (not through print's buffer) so the streamed
            // text and the rest appear in order when piped.
            Output.write("\n")
            messages.append(ChatMessage(role: "assistant", content: reply))
        }
    }
}

struct ScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Per-token log-probabilities of a text under the model, with the top alternatives and the mean negative log-likelihood.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var adapterOption: AdapterOption
    @OptionGroup var output: JSONOption
    @Option(name: .long, help: "Alternatives shown per position.") var top = 5
    @Argument(help: "The text (no special tokens are added; write them in the text to use them).") var text: String

    func run() throws {
        try Exit.reportingModel {
            let loaded = try modelOptions.load(adapter: adapterOption.adapter)
            let ids = loaded.tokenizer.encode(text)
            let V = loaded.model.configuration.vocabSize
            let logits = try loaded.model.logits(ids, adapter: loaded.adapter)
            var logprobs: [Any] = [NSNull()]
            var alternatives: [[[String: Any]]] = []
            var nll: Double = 0
            for t in 0..<ids.count {
                let row = logits[(t * V)..<((t + 1) * V)]
                let maxLogit = row.max() ?? 0
                let lse = Double(maxLogit) + log(row.reduce(0.0) { $0 + exp(Double($1 - maxLogit)) })
                let best = Self.largest(row, count: max(top, 0))
                alternatives.append(best.map { i in
                    ["id": i - t * V, "piece": loaded.tokenizer.decode([i - t * V]), "logprob": Double(row[i]) - lse]
                })
                if t + 1 < ids.count {
                    let lp = Double(row[t * V + ids[t + 1]]) - lse
                    logprobs.append(lp)
                    nll -= lp
                }
            }
            let mean: Any = ids.count > 1 ? nll / Double(ids.count - 1) : NSNull()
            if output.json {
                Output.printJSON(["ids": ids, "logprobs": logprobs, "mean_nll": mean,
                                  "top": alternatives.dropLast().map { $0 } as [Any]])
            } else {
                for (t, id) in ids.enumerated() {
                    let lp = (logprobs[t] as? Double).map { String(format: "%8.3f", $0) } ?? "       -"
                    let next = t > 0 ? alternatives[t - 1].map { "\(($0["piece"] as? String ?? "").debugDescription) \(String(format: "%.2f", $0["logprob"] as? Double ?? 0))" }.joined(separator: ", ") : ""
                    print("\(id)\t\(lp)\t\(loaded.tokenizer.decode([id]).debugDescription)\t\(next)")
                }
                if let mean = mean as? Double { print(String(format: "mean NLL %.4f, perplexity %.2f over %d predicted tokens", mean, exp(mean), ids.count - 1)) }
            }
        }
    }

    /// The indices of the `count` largest values of `row`, largest first (ties: lower index
    /// first), in one pass over the row: sorting the whole vocabulary at every position was most
    /// of `score`'s time.
    static func largest(_ row: ArraySlice<Float>, count: Int) -> [Int] {
        guard count > 0 else { return [] }
        var best: [Int] = []
        best.reserveCapacity(count + 1)
        for i in row.indices {
            let v = row[i]
            if best.count == count, let last = best.last, !(v > row[last]) { continue }
            var k = best.count
            while k > 0 && v > row[best[k - 1]] { k -= 1 }
            best.insert(i, at: k)
            if best.count > count { best.removeLast() }
        }
        return best
    }
}
