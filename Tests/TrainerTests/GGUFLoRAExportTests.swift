import Foundation
import TestSupport
import Testing
@testable import ModelRuntime

/// `LoRAAdapter.gguf(for:)` and `GGUFWriter`: the file our own GGUF reader reads back, with
/// llama.cpp's names, dimensions, metadata and Q/K row order (scripts/check-gguf-lora.sh checks
/// llama.cpp itself on the test model).
@Suite("GGUF LoRA export")
struct GGUFLoRAExportTests {
    static func written(_ name: String, type: GGMLType = .f32) throws -> (GGUFFile, LoRAAdapter, LlamaConfiguration) {
        let c = try PEFTFixtures.modelConfiguration
        let adapter = try LoRAAdapter(readingPEFT: PEFTFixtures.adapter(name), configuration: c)
        let url = PEFTFixtures.temporary("lora-\(name)").appendingPathExtension("gguf")
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try adapter.gguf(for: c, type: type, metadata: [("corpus.adapter.sha256", .string("abc")), ("corpus.count", .uint32(7))]).write(to: url)
        return (try GGUFFile(path: url.path), adapter, c)
    }

    /// Every pair as lora_a [in, r] and lora_b [r, out] under llama.cpp's names; A as it is, B of
    /// q/k in llama.cpp's interleaved row order (our loader's unpermute gives PEFT's B back
    /// exactly), every other B as it is; the adapter metadata, then the caller's.
    @Test(arguments: LoRAMergeTests.adapters)
    func readsBackWithLlamaCppNamesAndRowOrder(_ name: String) throws {
        let (file, adapter, c) = try Self.written(name)
        let r = adapter.configuration.rank
        #expect(file.version == 3)
        #expect(file.metadata["general.architecture"]?.string == "llama")
        #expect(file.metadata["general.type"]?.string == "adapter")
        #expect(file.metadata["adapter.type"]?.string == "lora")
        let alpha = adapter.configuration.useRSLoRA ? adapter.configuration.alpha * Float(r).squareRoot() : adapter.configuration.alpha
        #expect(file.metadata["adapter.lora.alpha"]?.float == alpha)
        // llama.cpp scales by alpha / r: the same s as PEFT's.
        #expect(abs(alpha / Float(r) - adapter.configuration.scale) < 1e-6)
        #expect(file.metadata["corpus.adapter.sha256"]?.string == "abc")
        #expect(file.metadata["corpus.count"]?.int == 7)
        #expect(file.tensors.count == 2 * adapter.layers.count * adapter.configuration.targets.count)
        var permuted = 0
        for (l, layer) in adapter.layers.enumerated() {
            for (target, pair) in layer {
                let base = "blk.\(l).\(LoRAAdapter.ggufModuleName(target)).weight"
                let a = try #require(file.tensors.first { $0.name == base + ".lora_a" })
                let b = try #require(file.tensors.first { $0.name == base + ".lora_b" })
                #expect(a.dimensions == [pair.a.shape[1], r])
                #expect(b.dimensions == [r, pair.b.shape[0]])
                #expect(try file.tensorData(a).data == pair.a.data)
                var stored = try file.storedTensor(b)
                if target == .q || target == .k {
                    #expect(try file.tensorData(b).data != pair.b.data, "\(base): q/k rows are reordered")
                    stored = try GGUFFile.unpermuteRows(stored, heads: target == .q ? c.numAttentionHeads : c.numKeyValueHeads, name: b.name)
                    permuted += 1
                }
                #expect(stored.dequantized().data == pair.b.data, "\(base).lora_b")
            }
        }
        #expect(permuted == adapter.layers.reduce(0) { $0 + $1.keys.filter { $0 == .q || $0 == .k }.count }, "every q and k pair")
        #expect(permuted > 0)
    }

    /// F16 halves the file and keeps each value within half a unit in the last place of fp16.
    @Test func f16Matrices() throws {
        let (file, adapter, _) = try Self.written("adapter-all", type: .f16)
        let pair = try #require(adapter.layers[0][.v])
        let a = try #require(file.tensors.first { $0.name == "blk.0.attn_v.weight.lora_a" })
        #expect(a.type == .f16)
        let back = try file.tensorData(a).data
        for (x, y) in zip(back, pair.a.data) { #expect(x == Float(Float16(y))) }
    }

    /// Quantized types are refused (llama.cpp's LoRA loader and our writer take F32, F16, BF16).
    @Test func quantizedTypesAreRefused() throws {
        let c = try PEFTFixtures.modelConfiguration
        let adapter = try LoRAAdapter(readingPEFT: PEFTFixtures.adapter("adapter-all"), configuration: c)
        #expect { try adapter.gguf(for: c, type: .q8_0) } throws: { "\($0)".contains("F32, F16 or BF16, not Q8_0") }
    }

    /// The writer refuses a tensor whose bytes do not match its dimensions, and a key twice.
    @Test func writerRefusesInconsistentInput() throws {
        var writer = ModelRuntime.GGUFWriter()
        writer.tensors = [.init(name: "x", dimensions: [4, 2], type: .f32, bytes: [UInt8](repeating: 0, count: 31))]
        #expect { try writer.bytes() } throws: { "\($0)".contains("31 bytes for dimensions [4, 2] of F32, which take 32") }
        writer.tensors = []
        writer.metadata = [("a", .uint32(1)), ("a", .uint32(2))]
        #expect { try writer.bytes() } throws: { "\($0)".contains("a is given twice") }
    }

    /// Our Q4_K quantizer writes blocks our dequantizer (checked against ggml's) reads back within
    /// one quantization step of every value; an all-zero block stays zero; sub-blocks of one sign
    /// and of both signs, and a wide dynamic range.
    @Test func q4KQuantizerRoundTrips() throws {
        var rng = SplitMix64(seed: 7)
        var values: [Float] = []
        for block in 0..<6 {
            for j in 0..<256 {
                let u = Float(rng.nextDouble()) * 2 - 1
                switch block {
                case 0: values.append(0)
                case 1: values.append(abs(u))                       // all ≥ 0
                case 2: values.append(-abs(u) * 3)                  // all ≤ 0
                case 3: values.append(u * Float(1 + j / 32))        // each sub-block its own range
                case 4: values.append(u * 1e-3)
                default: values.append(u * (j % 37 == 0 ? 50 : 1))  // outliers
                }
            }
        }
        var bytes: [UInt8] = []
        GGMLQuantize.append(values, as: .q4_K, to: &bytes)
        #expect(bytes.count == 6 * 144)
        var back = [Float](repeating: .nan, count: values.count)
        bytes.withUnsafeBytes { raw in back.withUnsafeMutableBufferPointer { out in
            GGMLDequantize.run(.q4_K, source: raw.baseAddress!, count: values.count, into: out.baseAddress!)
        } }
        #expect(back[0..<256].allSatisfy { $0 == 0 })
        for b in 0..<6 {
            let subs = (0..<8).map { j in (b * 256 + j * 32)..<(b * 256 + j * 32 + 32) }
            let ranges = subs.map { sub in (lo: min(0, values[sub].min() ?? 0), hi: values[sub].max() ?? 0) }
            let maxStep = ranges.map { ($0.hi - $0.lo) / 15 }.max() ?? 0
            let maxOffset = ranges.map { -$0.lo }.max() ?? 0
            for (j, sub) in subs.enumerated() {
                // Half a step of the sub-block, the 6-bit rounding of its scale over 15 levels
                // (d = largest step / 63) and of its offset (dmin = largest offset / 63), and
                // fp16's rounding of d and dmin.
                let bound = (ranges[j].hi - ranges[j].lo) / 30 + 8 * maxStep / 63 + maxOffset / 126 + 2e-3 * (15 * maxStep + maxOffset) + 1e-7
                for i in sub { #expect(abs(back[i] - values[i]) <= bound, "block \(b) sub-block \(j) value \(i): \(values[i]) → \(back[i]), bound \(bound)") }
            }
        }
    }
}
