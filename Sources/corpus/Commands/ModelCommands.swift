import ArgumentParser
import Foundation
import Trainer

/// `--model PATH`: a GGUF file (Hugging Face folders and registered names come with `corpus models`).
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "The model: a .gguf file (e.g. SmolLM2-135M-Instruct.Q4_1.gguf).")
    var model: String

    struct Loaded {
        var model: LlamaModel
        var tokenizer: BPETokenizer
        var chatTemplate: String?
    }

    func loadTokenizer() throws -> (GGUFFile, BPETokenizer) {
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
