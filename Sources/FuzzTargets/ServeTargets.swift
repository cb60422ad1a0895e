import Foundation
import ModelRuntime
import Serve

/// `corpus serve`'s request parsing: a request body checked and tokenized against what a host
/// serves, as the `/v1/chat/completions` and `/v1/completions` handlers do before scheduling.
enum ServeTargets {
    static let maxTokensLimit = 64

    /// A host of a tiny model with zero weights (parsing never runs it): the fuzz tokenizer, ChatML,
    /// the base model as "base" and no adapter.
    static let host: ModelHost? = {
        guard let tokenizer = FuzzTokenizer.tokenizer else { return nil }
        let vocabulary = tokenizer.tokens.count
        let configuration = LlamaConfiguration(modelType: "llama", hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 1,
                                               numAttentionHeads: 2, numKeyValueHeads: 1, vocabSize: vocabulary, rmsNormEps: 1e-5,
                                               ropeTheta: 10_000, maxPositionEmbeddings: 256, tieWordEmbeddings: true)
        let shapes: [String: [Int]] = [
            "model.embed_tokens.weight": [vocabulary, 8], "model.norm.weight": [8],
            "model.layers.0.input_layernorm.weight": [8], "model.layers.0.post_attention_layernorm.weight": [8],
            "model.layers.0.self_attn.q_proj.weight": [8, 8], "model.layers.0.self_attn.k_proj.weight": [4, 8],
            "model.layers.0.self_attn.v_proj.weight": [4, 8], "model.layers.0.self_attn.o_proj.weight": [8, 8],
            "model.layers.0.mlp.gate_proj.weight": [16, 8], "model.layers.0.mlp.up_proj.weight": [16, 8],
            "model.layers.0.mlp.down_proj.weight": [8, 16],
        ]
        guard let model = try? LlamaModel(configuration: configuration, tensors: shapes.mapValues { Tensor(zeros: $0) }) else { return nil }
        return try? ModelHost(base: model, models: [ServedModel(name: "base")], baseSHA256: String(repeating: "0", count: 64),
                              tokenizer: tokenizer, template: .chatml(defaultSystem: "You are a helpful assistant."),
                              stopTokenIDs: Set([tokenizer.eosID].compactMap { $0 }))
    }()

    static let serveRequest = FuzzTarget(name: "serve-request", summary: "CompletionRequest.parse: a /v1/chat/completions or /v1/completions body (JSON, OpenAI's fields, refused options, integer checks, messages, prompt ids, stop strings, the context window)") { bytes in
        guard let host = host else { return }
        for kind in [CompletionRequest.Kind.chat, .text] {
            guard let request = try? CompletionRequest.parse(Data(bytes), kind: kind, host: host, maxTokensLimit: maxTokensLimit) else { continue }
            FuzzCheck.require(!request.prompt.isEmpty, "an accepted request with an empty prompt")
            FuzzCheck.require(request.prompt.allSatisfy { $0 >= 0 && $0 < host.base.configuration.vocabSize }, "a prompt id outside the vocabulary")
            let p = request.parameters
            FuzzCheck.require(p.maxTokens >= 1 && p.maxTokens <= maxTokensLimit, "max tokens \(p.maxTokens)")
            FuzzCheck.require(request.prompt.count + p.maxTokens <= host.contextWindow, "prompt \(request.prompt.count) + \(p.maxTokens) tokens exceed the window \(host.contextWindow)")
            FuzzCheck.require(p.temperature.isFinite && p.temperature >= 0 && p.topP > 0 && p.topP <= 1, "temperature \(p.temperature), top_p \(p.topP)")
            FuzzCheck.require(request.stops.count <= 4 && !request.stops.contains(""), "stops \(request.stops)")
            FuzzCheck.require(request.modelIndex >= 0 && request.modelIndex < host.models.count, "model index \(request.modelIndex)")
        }
    }
}
