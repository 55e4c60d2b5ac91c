import Foundation

/// Writes a small, deterministic, working byte-level BPE tokenizer (Qwen2 layout) for synthetic model
/// folders (`mirage models synth`): the 256 byte symbols, merges learned from a built-in text, reserved
/// tokens up to the requested size, and `<|endoftext|>`, `<|im_start|>`, `<|im_end|>` as the last ids.
/// Both Mirage and transformers' AutoTokenizer load the result.
public enum SyntheticTokenizer {
    public static let specialTokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    /// The smallest vocabulary: 256 bytes and the special tokens.
    public static var minimumVocabularySize: Int { 256 + specialTokens.count }

    /// `tokenizer.json`, `tokenizer_config.json` and `special_tokens_map.json`, by file name.
    /// `vocabularySize` counts every id, special tokens included.
    public static func files(vocabularySize: Int) throws -> [String: Data] {
        guard vocabularySize >= minimumVocabularySize else {
            throw TokenizerError.unsupported(component: "synthetic tokenizer",
                                             detail: "vocabulary size \(vocabularySize) is below the minimum \(minimumVocabularySize)")
        }
        let modelSize = vocabularySize - specialTokens.count
        var tokens = ByteLevelAlphabet.byteToScalar.map { String($0) }
        let merges = learnMerges(maxMerges: modelSize - 256, tokens: &tokens)
        var reserved = 0
        while tokens.count < modelSize {
            tokens.append("<|reserved_\(reserved)|>")
            reserved += 1
        }
        var vocab: [String: Int] = [:]
        for (id, token) in tokens.enumerated() { vocab[token] = id }

        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false]
        let added: [[String: Any]] = specialTokens.enumerated().map { offset, content in
            ["id": modelSize + offset, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
             "normalized": false, "special": true]
        }
        let tokenizer: [String: Any] = [
            "version": "1.0",
            "truncation": NSNull(),
            "padding": NSNull(),
            "added_tokens": added,
            "normalizer": ["type": "NFC"],
            "pre_tokenizer": ["type": "Sequence", "pretokenizers": [
                ["type": "Split", "pattern": ["Regex": TokenizerPattern.qwen2Regex], "behavior": "Isolated", "invert": false],
                byteLevel,
            ]] as [String: Any],
            "post_processor": byteLevel,
            "decoder": byteLevel,
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": vocab, "merges": merges.map { "\(tokens[$0.0]) \(tokens[$0.1])" },
            ] as [String: Any],
        ]
        var decoderEntries: [String: Any] = [:]
        for entry in added {
            decoderEntries[String(entry["id"] as! Int)] = entry.filter { $0.key != "id" }
        }
        let config: [String: Any] = [
            "tokenizer_class": "Qwen2Tokenizer", "bos_token": NSNull(), "eos_token": "<|endoftext|>",
            "pad_token": "<|endoftext|>", "unk_token": NSNull(), "add_prefix_space": false,
            "clean_up_tokenization_spaces": false, "errors": "replace", "split_special_tokens": false,
            "model_max_length": 32768, "added_tokens_decoder": decoderEntries,
            "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        ]
        let map: [String: Any] = ["eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                                  "additional_special_tokens": ["<|im_start|>", "<|im_end|>"]]
        func encode(_ object: [String: Any]) throws -> Data {
            try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        }
        return ["tokenizer.json": try encode(tokenizer), "tokenizer_config.json": try encode(config),
                "special_tokens_map.json": try encode(map)]
    }

    /// Writes the three files into `folder` (created if needed).
    public static func write(to folder: URL, vocabularySize: Int) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (name, data) in try files(vocabularySize: vocabularySize) {
            try data.write(to: folder.appendingPathComponent(name), options: .atomic)
        }
    }

    /// Plain BPE training on the built-in text: repeatedly merge the most frequent adjacent pair (ties:
    /// smallest ids), until `maxMerges` merges or no pair occurs twice. Appends new tokens to `tokens`.
    static func learnMerges(maxMerges: Int, tokens: inout [String]) -> [(Int, Int)] {
        // Words as byte-symbol ids, with counts, split like the Qwen2 pre-tokenizer.
        var counts: [[Int]: Int] = [:]
        let scalars = Array(trainingText.unicodeScalars)
        for range in TokenizerPattern.qwen2(maxDigits: 1).matches(scalars) {
            var word = String.UnicodeScalarView()
            word.append(contentsOf: scalars[range])
            counts[String(word).utf8.map { Int($0) }, default: 0] += 1
        }
        var words = counts.map { ($0.key, $0.value) }.sorted { $0.0.lexicographicallyPrecedes($1.0) }
        var merges: [(Int, Int)] = []
        while merges.count < maxMerges {
            var pairs: [Int: Int] = [:]  // (a << 32 | b) → count
            for (word, count) in words where word.count > 1 {
                for k in 0..<(word.count - 1) { pairs[word[k] << 32 | word[k + 1], default: 0] += count }
            }
            guard let best = pairs.max(by: { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }),
                  best.value >= 2 else { break }
            let a = best.key >> 32, b = best.key & 0xFFFF_FFFF
            let merged = tokens.count
            tokens.append(tokens[a] + tokens[b])
            merges.append((a, b))
            for index in words.indices where words[index].0.count > 1 {
                let word = words[index].0
                var out: [Int] = []
                out.reserveCapacity(word.count)
                var k = 0
                while k < word.count {
                    if k + 1 < word.count && word[k] == a && word[k + 1] == b {
                        out.append(merged)
                        k += 2
                    } else {
                        out.append(word[k])
                        k += 1
                    }
                }
                words[index].0 = out
            }
        }
        return merges
    }

    /// Training text (written for Mirage): image descriptions like the captions Mirage scores, plus
    /// punctuation, digits, code and chat markup so common pieces of each get merges.
    public static let trainingText = """
    The image shows a kitchen with a wooden table, four chairs and a bowl of fruit. There is a refrigerator \
    on the left side of the room and a window above the sink. A cat is sitting on the counter next to a \
    cup of coffee. The image depicts a busy city street with cars, buses and people walking on the \
    sidewalk. A man is riding a bicycle near a traffic light, and a woman is holding an umbrella. \
    In the background there are tall buildings, trees and a clock tower. Two dogs are playing in the \
    grass of a park while children fly a kite. A plate of food with pizza, a sandwich and a glass of \
    water sits on the dining table. The bathroom has a toilet, a sink and a mirror; a towel hangs on the \
    wall. Several boats are floating on the water near the beach, and a surfer rides a wave. A giraffe \
    and an elephant stand in a field under a blue sky with white clouds. The living room features a \
    couch, a television, a potted plant and a vase of flowers on a small table. A train is stopped at \
    the station while passengers wait on the platform. A person is skiing down a snowy mountain, and \
    another person holds a snowboard. There are no people visible in the scene. Is there a dog in the \
    image? Yes, there is a dog. Is there a horse in the image? No, there is not.
    USER: <image>
    Describe this image in detail. ASSISTANT: The picture shows 2 cats, 3 laptops and 10 books.
    <|im_start|>user
    What is in the photo?<|im_end|>
    <|im_start|>assistant
    It's a photo of a red car. They're parked; we've seen it, I'm sure, you'll like it, he'd say.
    def caption(image): return model.generate(image, max_new_tokens=64)  # greedy
    for i in range(10): print(i * 2, "items", [1, 2, 3], {"key": "value"})
    Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 2024 3.14 50% $20 #1 @user https://example.com/a?b=c
    Café, naïve, résumé, Ångström, straße, 東京, こんにちは, 안녕하세요, Привет, مرحبا, שלום, 😀 👍
    """
}
