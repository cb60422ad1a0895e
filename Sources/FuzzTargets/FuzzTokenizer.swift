import Foundation
import ModelRuntime

/// A small byte-level BPE tokenizer made for the fuzz targets (no model file needed): the 256
/// byte characters of GPT-2, the merges plain BPE counting learns from `trainingText` (every pair
/// seen at least twice, 125 of them; at most `mergeCount`), and three special tokens. Its
/// `tokenizer.json` text goes through the real loader.
enum FuzzTokenizer {
    static let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    static let mergeCount = 320

    /// Mixed English, Chinese, digits and punctuation, written for this tokenizer.
    static let trainingText = """
        The patient asked whether the tablets can be taken with food. The doctor said the tablets \
        are taken after breakfast and after dinner, with a glass of water, for seven days. \
        Question: how long does the fever last? Answer: usually three to five days; see a doctor \
        if it lasts longer than a week or the temperature is above 39 degrees. \
        高血压患者能吃党参吗？可以少量服用，但是应该先咨询医生。发烧三天了怎么办？多喝水，注意休息，\
        如果体温超过三十九度，请及时就医。糖尿病患者的饮食应该注意什么？少吃甜食，控制主食的量。 \
        1234567890 2024-01-15 3.14159 100% (a+b)*c = d; x <= y && y != z. "quoted" 'single' \
        <html><body>text</body></html> {"key": "value", "list": [1, 2, 3]} \
        the the the and and and of of to to in in is is that that with with for for on on
        """

    /// GPT-2's table: printable bytes stand for themselves, the others for U+0100 onwards.
    static let byteCharacters: [String] = {
        var printable = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        var table = [String](repeating: "", count: 256)
        for b in printable { table[b] = String(UnicodeScalar(UInt8(b))) }
        var next = 0x100
        for b in 0..<256 where !printable.contains(b) {
            table[b] = String(UnicodeScalar(UInt32(next))!)
            next += 1
            printable.append(b)
        }
        return table
    }()

    /// (vocabulary in id order, merges "a b" in rank order).
    static let learnt: (vocabulary: [String], merges: [String]) = {
        var vocabulary = byteCharacters
        var known = Set(vocabulary)
        // Words as GPT-2 splits roughly: a space joins the word after it.
        var words: [[String]] = []
        var current: [String] = []
        for byte in trainingText.utf8 {
            if byte == 0x20 && !current.isEmpty { words.append(current); current = [] }
            current.append(byteCharacters[Int(byte)])
        }
        if !current.isEmpty { words.append(current) }
        var merges: [String] = []
        while merges.count < mergeCount {
            var counts: [String: (count: Int, pair: (String, String))] = [:]
            for word in words where word.count > 1 {
                for i in 0..<(word.count - 1) {
                    let key = word[i] + " " + word[i + 1]
                    counts[key, default: (0, (word[i], word[i + 1]))].count += 1
                }
            }
            // Most frequent first; ties by the pair's text, so the result never depends on hashing.
            guard let best = counts.max(by: { ($0.value.count, $1.key) < ($1.value.count, $0.key) }), best.value.count > 1 else { break }
            let (a, b) = best.value.pair
            merges.append(best.key)
            if known.insert(a + b).inserted { vocabulary.append(a + b) }
            for w in words.indices {
                var i = 0
                var word = words[w]
                while i < word.count - 1 {
                    if word[i] == a && word[i + 1] == b { word[i] = a + b; word.remove(at: i + 1) }
                    i += 1
                }
                words[w] = word
            }
        }
        return (vocabulary, merges)
    }()

    /// The tokenizer.json text (model BPE, ByteLevel pre-tokenizer and decoder).
    static let json: String = {
        var vocab: [String: Int] = [:]
        for (id, token) in learnt.vocabulary.enumerated() { vocab[token] = id }
        let added = specials.enumerated().map { i, s in
            ["id": learnt.vocabulary.count + i, "content": s, "special": true, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false] as [String: Any]
        }
        let object: [String: Any] = [
            "version": "1.0",
            "added_tokens": added,
            "normalizer": NSNull(),
            "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true],
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "fuse_unk": false, "byte_fallback": false,
                      "vocab": vocab, "merges": learnt.merges],
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }()

    /// The tokenizer, loaded from `json` by the real loader; nil only if that loader refuses it,
    /// which the replay tests catch.
    static let tokenizer: BPETokenizer? = try? BPETokenizer.fromTokenizerJSON(data: Data(json.utf8), path: "fuzz-tokenizer.json",
                                                                            bos: "<|im_start|>", eos: "<|im_end|>")

    /// The same vocabulary and merges with each pre-tokenizer.
    static let variants: [BPETokenizer] = BPETokenizer.PreTokenizer.allCases.compactMap { pre in
        guard let base = tokenizer else { return nil }
        let special = specials.compactMap { s in base.tokens.firstIndex(of: s) }
        return try? BPETokenizer(tokens: base.tokens, merges: learnt.merges, specialTokenIDs: special, preTokenizer: pre,
                                 bos: base.bosID, eos: base.eosID, normalizeNFC: pre == .qwen2, ignoreMerges: pre == .llama3)
    }
}
