import Foundation
import ModelRuntime

/// tokenizer.json loading, BPE encoding of arbitrary bytes, and chat templates.
enum TokenizerTargets {
    static let tokenizerJSON = FuzzTarget(name: "tokenizer-json", summary: "BPETokenizer.fromTokenizerJSON (vocabulary, added tokens, merges, normalizer, pre-tokenizer, decoder) and a round trip through what it loads") { bytes in
        guard let tokenizer = try? BPETokenizer.fromTokenizerJSON(data: Data(bytes), path: "tokenizer.json", bos: "<s>", eos: "</s>") else { return }
        let ids = tokenizer.encode("Hello world, 你好 123 <|im_end|>\n")
        FuzzCheck.require(ids.allSatisfy { $0 >= 0 }, "a negative id")
        _ = tokenizer.decode(ids)
        _ = tokenizer.decode(Array(0..<min(tokenizer.tokens.count, 64)), skipSpecial: true)
    }

    static let bpe = FuzzTarget(name: "bpe", summary: "BPETokenizer.encodeWithOffsets and decode of arbitrary bytes with each pre-tokenizer (GPT-2, SmolLM, Llama 3, Qwen2 with NFC); the heap merge against the scanning reference") { bytes in
        let text = String(decoding: bytes, as: UTF8.self)
        let length = text.utf8.count
        for tokenizer in FuzzTokenizer.variants {
            let (ids, offsets) = tokenizer.encodeWithOffsets(text)
            FuzzCheck.require(ids.count == offsets.count, "\(tokenizer.preTokenizer): \(ids.count) ids, \(offsets.count) offsets")
            FuzzCheck.require(ids.allSatisfy { $0 >= 0 && $0 < tokenizer.tokens.count }, "\(tokenizer.preTokenizer): an id outside the vocabulary")
            FuzzCheck.require(offsets.allSatisfy { $0.lowerBound >= 0 && $0.upperBound <= length }, "\(tokenizer.preTokenizer): an offset outside the text")
            // The heap merge agrees with the scanning reference on the whole input as one word.
            // (256 bytes: the reference is quadratic.)
            let word = bytes.prefix(256).map { tokenizer.byteIDs[Int($0)] }
            if word.count > 1 && tokenizer.preTokenizer == .gpt2 {
                let (heap, scan) = (tokenizer.bpeWithHeap(word), tokenizer.bpeByScanning(word))
                FuzzCheck.require(heap.ids == scan.ids && heap.lengths == scan.lengths, "\(tokenizer.preTokenizer): heap merge \(heap.ids) differs from scanning \(scan.ids)")
            }
            if !tokenizer.normalizeNFC {
                // Byte-level BPE loses nothing: every byte has a token and specials decode to themselves.
                FuzzCheck.require(tokenizer.decode(ids) == text, "\(tokenizer.preTokenizer): decode(encode(text)) differs from the text")
                var position = 0
                for range in offsets {
                    FuzzCheck.require(range.lowerBound == position, "\(tokenizer.preTokenizer): offsets not contiguous at \(position)")
                    position = range.upperBound
                }
                FuzzCheck.require(position == length, "\(tokenizer.preTokenizer): offsets end at \(position) of \(length)")
            }
        }
    }

    static let roles = ["system", "user", "assistant", "developer", "tool", ""]

    /// Input: byte 0 chooses the template (a named one, or recognized from the first segment's
    /// Jinja text), then NUL-separated segments, each a message whose first byte picks its role.
    static let chatTemplate = FuzzTarget(name: "chat-template", summary: "ChatTemplate.recognize on arbitrary Jinja text, rendering with assistant spans and encoding with the assistant mask") { bytes in
        guard let first = bytes.first, let tokenizer = FuzzTokenizer.tokenizer else { return }
        var segments = bytes.dropFirst().split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        let template: ChatTemplate
        switch Int(first) % 6 {
        case 4, 5:
            let jinja = segments.isEmpty ? "" : segments.removeFirst()
            guard let recognized = try? ChatTemplate.recognize(jinja, tokenizer: first % 6 == 5 ? tokenizer : nil) else { return }
            template = recognized
        case let k:
            guard let named = try? ChatTemplate.named(ChatTemplate.names[k], tokenizer: k % 2 == 0 ? tokenizer : nil) else { return }
            template = named
        }
        let messages = segments.map { segment -> ChatMessage in
            let role = roles[Int(segment.utf8.first ?? 0) % roles.count]
            return ChatMessage(role: role, content: String(segment.dropFirst()))
        }
        for generationPrompt in [false, true] {
            let rendered = template.renderWithSpans(messages, generationPrompt: generationPrompt)
            let length = rendered.text.utf8.count
            var end = 0
            for span in rendered.assistantSpans {
                FuzzCheck.require(span.lowerBound >= end && span.upperBound <= length, "assistant span \(span) (previous end \(end), \(length) bytes)")
                end = span.upperBound
            }
            FuzzCheck.require(template.render(messages, generationPrompt: generationPrompt) == rendered.text, "render and renderWithSpans differ")
            let (ids, mask) = template.encode(messages, tokenizer: tokenizer, generationPrompt: generationPrompt)
            FuzzCheck.require(ids.count == mask.count, "\(ids.count) ids, \(mask.count) mask entries")
            FuzzCheck.require(rendered.assistantSpans.allSatisfy(\.isEmpty) || mask.contains(true) || ids.isEmpty,
                              "assistant text rendered but no token is marked")
        }
    }
}
