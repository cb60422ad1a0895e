import Foundation
@testable import FuzzTargets
@testable import ModelRuntime
import TestSupport
import Testing

/// `corpus merge --format gguf` from a Hugging Face folder: sizes in config.json that a GGUF's
/// uint32 fields cannot hold are an error naming config.json and the key, not a trap.
@Suite("GGUF export limits")
struct GGUFExportLimitTests {
    @Test(arguments: [1 << 40, -1, Int(UInt32.max) + 1])
    func contextLengthThatAGGUFCannotHold(_ value: Int) throws {
        let folder = try TestSupport.temporaryDirectory("gguf-limits")
        try FuzzReplay.tokenizerJSON.write(to: folder.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
        let c = LlamaConfiguration(modelType: "llama", hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 1, numAttentionHeads: 2,
                                   numKeyValueHeads: 1, vocabSize: 600, rmsNormEps: 1e-5, ropeTheta: 10_000,
                                   maxPositionEmbeddings: value, tieWordEmbeddings: true)
        let config = folder.appendingPathComponent("config.json").path
        #expect(throws: ModelError.invalidFile(path: config, detail: "max_position_embeddings is \(value), which a GGUF file cannot hold (0 to 4294967295); correct config.json")) {
            try LoRAMerge.ggufMetadata(c, folder: folder.path, name: "m")
        }
    }
}
