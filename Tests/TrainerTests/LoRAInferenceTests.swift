import Foundation
import TestSupport
import Testing
@testable import ModelRuntime

/// Adapters run unmerged beside the base weights (`LoRAInference`): PEFT's logits, and a batch
/// whose sequences use different adapters (what `corpus serve` decodes) equal to each sequence alone.
@Suite("LoRA unmerged inference")
struct LoRAInferenceTests {
    /// The adapter applied unmerged gives PEFT's logits for the fixture's input.
    @Test(arguments: LoRAMergeTests.adapters)
    func unmergedLogitsEqualPEFTs(_ name: String) throws {
        let reference = try PEFTFixtures.reference(name)
        let base = try ModelLoader.load(path: PEFTFixtures.base.path)
        let adapter = try LoRAAdapter(readingPEFT: PEFTFixtures.adapter(name), configuration: base.configuration)
        let model = try LlamaModel(configuration: base.configuration, tensors: base.tensors)
        let logits = try model.logits(reference.ids, adapter: try LoRAInference(adapter, configuration: base.configuration))
        let toPEFT = PEFTFixtures.maxDifference(logits, reference.peft)
        #expect(toPEFT <= 2e-5, "max |logit - PEFT adapter logit| = \(toPEFT)")
        #expect(PEFTFixtures.maxDifference(logits, reference.base) > 1e-2, "the adapter matters")
        print("unmerged \(name): max |logit - PEFT adapter| = \(toPEFT)")
    }

    /// One forward pass over five sequences (base, adapter A, adapter B, A again, base) of
    /// different lengths, then a decoding step of all five: each sequence's logits equal those
    /// of the same sequence run alone with its adapter.
    @Test func aBatchOfDifferentAdaptersEqualsEachAlone() throws {
        let base = try ModelLoader.load(path: PEFTFixtures.base.path)
        let c = base.configuration
        let model = try LlamaModel(configuration: c, tensors: base.tensors)
        let a = try LoRAInference(LoRAAdapter(readingPEFT: PEFTFixtures.adapter("adapter-all"), configuration: c), configuration: c)
        let b = try LoRAInference(LoRAAdapter(readingPEFT: PEFTFixtures.adapter("adapter-rslora"), configuration: c), configuration: c)
        let adapters: [LoRAInference?] = [nil, a, b, a, nil]
        let prompts = [[1, 5, 9], [2, 7, 7, 3, 11], [4], [6, 1, 8, 2], [3, 3]]
        let next = [10, 12, 5, 9, 1]

        func alone(_ i: Int) throws -> [[Float]] {
            let cache = KVCache(configuration: c, capacity: 8)
            let first = try model.forward(batch: [(prompts[i], cache, adapters[i])], allLogits: true)[0]
            let second = try model.forward(batch: [([next[i]], cache, adapters[i])], allLogits: false)[0]
            return [first, second]
        }
        let caches = prompts.map { _ in KVCache(configuration: c, capacity: 8) }
        let prefill = try model.forward(batch: prompts.indices.map { (prompts[$0], caches[$0], adapters[$0]) }, allLogits: true)
        let step = try model.forward(batch: prompts.indices.map { ([next[$0]], caches[$0], adapters[$0]) }, allLogits: false)
        var worst: Float = 0
        for i in prompts.indices {
            let expected = try alone(i)
            #expect(prefill[i].count == prompts[i].count * c.vocabSize)
            worst = max(worst, PEFTFixtures.maxDifference(prefill[i], expected[0]), PEFTFixtures.maxDifference(step[i], expected[1]))
        }
        #expect(worst <= 1e-5, "max |batched - alone| = \(worst)")
        // The adapters really differ from the base and from each other on the same input.
        let same = [1, 5, 9]
        let logits = try [nil, a, b].map { try model.logits(same, adapter: $0) }
        #expect(PEFTFixtures.maxDifference(logits[0], logits[1]) > 1e-3)
        #expect(PEFTFixtures.maxDifference(logits[1], logits[2]) > 1e-3)
    }

    /// An adapter for another number of layers is refused when it is prepared.
    @Test func anAdapterForAnotherModelIsRefused() throws {
        let base = try ModelLoader.load(path: PEFTFixtures.base.path)
        let c = base.configuration
        var adapter = try LoRAAdapter(readingPEFT: PEFTFixtures.adapter("adapter-all"), configuration: c)
        adapter.layers.removeLast()
        #expect {
            try LoRAInference(adapter, configuration: c)
        } throws: { "\($0)".contains("the adapter has \(c.numHiddenLayers - 1) layers but the model has \(c.numHiddenLayers)") }
    }
}
