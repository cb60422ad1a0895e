import ArgumentParser
import Foundation
import Trainer

/// `--model PATH|NAME`: a GGUF file, or a model registered with `corpus models add` (looked up in
/// the store of `--db`, which therefore comes with this group: commands that take `--model` use
/// `modelOptions.database` instead of a second `DatabaseOptions`). Hugging Face folders come later.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "The model: a .gguf file (e.g. SmolLM2-135M-Instruct.Q4_1.gguf) or the name of a model registered with `corpus models add`.")
    var model: String

    @OptionGroup var database: DatabaseOptions

    struct Loaded {
        var model: LlamaModel
        var tokenizer: BPETokenizer
        var chatTemplate: String?
    }

    func loadTokenizer() throws -> (GGUFFile, BPETokenizer) {
        let model = try resolvedModelPath()
        guard model.hasSuffix(".gguf") else {
            throw TrainerError.unsupported("\(model): only .gguf files can be loaded so far; Hugging Face folders are coming (issue 5)")
        }
        let file = try GGUFFile(path: model)
        return (file, try BPETokenizer.fromGGUF(file.metadata))
    }

    func load() throws -> Loaded {
        let (file, tokenizer) = try loadTokenizer()
        let weights = try file.loadModel()
        return Loaded(model: try LlamaModel(configuration: weights.configuration, tensors: weights.tensors),
                      tokenizer: tokenizer, chatTemplate: file.metadata["tokenizer.chat_template"]?.string)
    }
}

extension Exit {
    /// Like `reporting`, for model commands: Trainer errors exit 3 (bad input file or option).
    static func reportingModel<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
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

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "Answer a prompt with the model (its chat template applied unless --raw).")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var output: JSONOption
    @Option(name: .long, help: "Tokens to generate at most.") var maxTokens = 256
    @Option(name: .long, help: "0 for greedy decoding; higher values sample more freely.") var temperature: Float = 0
    @Option(name: .long, help: "Sample among the k most likely tokens (0: all).") var topK = 0
    @Option(name: .long, help: "Sample among the most likely tokens covering this probability (1: all).") var topP: Float = 1
    @Option(name: .long, help: "Seed for sampling, so an answer can be reproduced.") var seed: UInt64 = 0
    @Flag(name: .long, help: "Use the prompt as is, without the chat template.") var raw = false
    @Argument(help: "The prompt.") var prompt: String

    func validate() throws {
        if maxTokens < 1 { throw ValidationError("--max-tokens must be at least 1") }
        if temperature < 0 { throw ValidationError("--temperature must be 0 or more") }
        if !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1]") }
    }

    func run() throws {
        try Exit.reportingModel {
            let loaded = try modelOptions.load()
            let text = raw ? prompt : try ChatTemplate.recognize(loaded.chatTemplate)
                .render([ChatMessage(role: "user", content: prompt)], generationPrompt: true)
            let promptIDs = loaded.tokenizer.encode(text)
            var parameters = GenerationParameters()
            parameters.maxTokens = maxTokens
            parameters.temperature = temperature
            parameters.topK = topK
            parameters.topP = topP
            parameters.seed = seed
            parameters.stopTokenIDs = Set([loaded.tokenizer.eosID].compactMap { $0 } + loaded.model.configuration.eosTokenIds)
            let ids = try Generator.generate(model: loaded.model, prompt: promptIDs, parameters: parameters)
            let answer = loaded.tokenizer.decode(ids, skipSpecial: true)
            if output.json {
                Output.printJSON(["prompt_ids": promptIDs, "ids": ids, "text": answer])
            } else {
                print(answer)
            }
        }
    }
}

struct ScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Per-token log-probabilities of a text under the model, with the top alternatives and the mean negative log-likelihood.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var output: JSONOption
    @Option(name: .long, help: "Alternatives shown per position.") var top = 5
    @Argument(help: "The text (no special tokens are added; write them in the text to use them).") var text: String

    func run() throws {
        try Exit.reportingModel {
            let loaded = try modelOptions.load()
            let ids = loaded.tokenizer.encode(text)
            let V = loaded.model.configuration.vocabSize
            let logits = try loaded.model.logits(ids)
            var logprobs: [Any] = [NSNull()]
            var alternatives: [[[String: Any]]] = []
            var nll: Double = 0
            for t in 0..<ids.count {
                let row = logits[(t * V)..<((t + 1) * V)]
                let maxLogit = row.max() ?? 0
                let lse = Double(maxLogit) + log(row.reduce(0.0) { $0 + exp(Double($1 - maxLogit)) })
                let best = row.indices.sorted { row[$0] > row[$1] }.prefix(max(top, 0))
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
}
