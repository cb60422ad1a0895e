import Foundation

/// A model on disk, a GGUF file or a Hugging Face folder, and everything the runtime reads from it:
/// the tokenizer, the chat template, the stop tokens and the weights.
public final class ModelFiles: @unchecked Sendable {
    // @unchecked: immutable after init.
    public let path: String
    /// The parsed GGUF (metadata and tensor table, the data mapped), or nil for a folder.
    public let gguf: GGUFFile?
    /// tokenizer_config.json and generation_config.json of a folder (empty for GGUF).
    public let tokenizerConfiguration: TokenizerConfiguration

    /// - Throws: `ModelError.invalidFile` when `path` is neither a readable GGUF file nor a folder.
    public init(path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ModelError.invalidFile(path: path, detail: "no such file or folder; give a .gguf file or a Hugging Face model folder")
        }
        self.path = path
        if isDirectory.boolValue {
            gguf = nil
            tokenizerConfiguration = try TokenizerConfiguration(folder: path)
        } else {
            gguf = try GGUFFile(path: path)
            tokenizerConfiguration = TokenizerConfiguration()
        }
    }

    /// The tokenizer: GGUF `tokenizer.ggml.*`, or the folder's tokenizer.json.
    public func tokenizer() throws -> BPETokenizer {
        if let gguf { return try BPETokenizer.fromGGUF(gguf.metadata) }
        let file = URL(fileURLWithPath: path).appendingPathComponent("tokenizer.json").path
        guard FileManager.default.fileExists(atPath: file) else {
            throw ModelError.invalidFile(path: file, detail: "the model folder has no tokenizer.json")
        }
        return try BPETokenizer.fromTokenizerJSON(path: file, bos: tokenizerConfiguration.bosToken, eos: tokenizerConfiguration.eosToken)
    }

    /// The model's own Jinja chat template, if it has one.
    public var chatTemplate: String? {
        if let gguf { return gguf.metadata["tokenizer.chat_template"]?.string }
        return tokenizerConfiguration.chatTemplate
    }

    /// The weights in Hugging Face layout.
    /// - Parameters:
    ///   - baseType, precision: the in-memory types, applied as each tensor is read
    ///     (`ModelLoader.load`).
    public func weights(baseType: GGMLType? = nil, precision: ComputePrecision = .f32) throws -> LoadedModel {
        if let gguf { return try gguf.loadModel(baseType: baseType, precision: precision) }
        return try ModelLoader.load(path: path, baseType: baseType, precision: precision)
    }

    /// Tokens that end generation: the tokenizer's EOS, the configuration's and generation_config's.
    public func stopTokenIDs(tokenizer: BPETokenizer, configuration: LlamaConfiguration) -> Set<Int> {
        Set([tokenizer.eosID].compactMap { $0 } + configuration.eosTokenIds + tokenizerConfiguration.generationEOSIDs)
    }
}
