// MaskedLanguageModelingData: the rates of masking and next-sentence pairs over many tokens,
// special tokens never masked, batch shapes, the reference's pairing rules and determinism.
import Foundation
import Testing

@testable import Attend

@Suite("MaskedLanguageModelingData")
struct MaskedLanguageModelingDataTests {
    /// Specials, one word per document (d0...), one per sentence position (s0...) and fillers.
    static let documentCount = 40
    static let sentencesPerDocument = 40
    static let vocabulary: [String] =
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (0..<documentCount).map { "d\($0)" }
        + (0..<sentencesPerDocument).map { "s\($0)" } + (0..<40).map { "f\($0)" }

    static func tokenizer() throws -> WordPieceTokenizer { try WordPieceTokenizer(vocabulary: vocabulary) }

    /// Document d's sentence i: "d<d> s<i>" and six filler words (8 tokens).
    static func documents(seed: UInt64 = 7) -> [[String]] {
        var rng = SplitMix64(state: seed)
        return (0..<documentCount).map { d in
            (0..<sentencesPerDocument).map { i in
                (["d\(d)", "s\(i)"] + (0..<6).map { _ in "f\(rng.next() % 40)" }).joined(separator: " ")
            }
        }
    }

    static let specialIDs: Set<Int> = [0, 1, 2, 3, 4]

    @Test("15% of the non-special tokens are selected; of those 80% [MASK], 10% random, 10% unchanged")
    func maskingRates() throws {
        let t = try Self.tokenizer()
        let batches = try MaskedLanguageModelingData(maxLength: 64, batchSize: 16).batches(documents: Self.documents(), tokenizer: t, seed: 1)
        var candidates = 0, selected = 0, masked = 0, random = 0, unchanged = 0
        for b in batches {
            for (r, row) in b.inputIDs.enumerated() {
                for (j, id) in row.enumerated() {
                    let label = b.labels![r][j]
                    let original = label == -100 ? id : label
                    if b.attentionMask![r][j] == 0 || Self.specialIDs.contains(original) { continue }
                    candidates += 1
                    guard label != -100 else { continue }
                    selected += 1
                    if id == 4 { masked += 1 } else if id == label { unchanged += 1 } else { random += 1 }
                }
            }
        }
        #expect(candidates > 10_000, "\(candidates) tokens")
        let rate = Double(selected) / Double(candidates)
        #expect(abs(rate - 0.15) < 0.015, "selected \(rate)")
        let n = Double(selected)
        // A random replacement can draw the original id (1 in 125): counted as unchanged.
        #expect(abs(Double(masked) / n - 0.8) < 0.04, "[MASK] \(Double(masked) / n)")
        #expect(abs(Double(random) / n - 0.1 * 124 / 125) < 0.03, "random \(Double(random) / n)")
        #expect(abs(Double(unchanged) / n - (0.1 + 0.1 / 125)) < 0.03, "unchanged \(Double(unchanged) / n)")
    }

    @Test("special tokens and padding are never selected; rows are [CLS] A [SEP] B [SEP] with segments 0 then 1")
    func specialsNeverMasked() throws {
        let t = try Self.tokenizer()
        // Sentences with [UNK] and a typed [MASK]: special ids the tokenizer names are kept too.
        var docs = Self.documents()
        docs[0][0] = "d0 s0 unknownword [MASK] f1 f2"
        let batches = try MaskedLanguageModelingData(maxLength: 32, batchSize: 8).batches(documents: docs, tokenizer: t, seed: 3)
        for b in batches {
            for r in 0..<b.rows {
                let ids = b.inputIDs[r], labels = b.labels![r], mask = b.attentionMask![r], types = b.tokenTypeIDs![r]
                let n = mask.reduce(0, +)
                #expect(ids[0] == 2 && labels[0] == -100)
                #expect(mask.prefix(n).allSatisfy { $0 == 1 } && mask.dropFirst(n).allSatisfy { $0 == 0 })
                #expect(ids.dropFirst(n).allSatisfy { $0 == 0 } && labels.dropFirst(n).allSatisfy { $0 == -100 })
                #expect(types.dropFirst(n).allSatisfy { $0 == 0 })
                for (j, label) in labels.enumerated() where label != -100 {
                    #expect(!Self.specialIDs.contains(label), "row \(r) position \(j): special id \(label) selected")
                }
                // The two [SEP]s: the last real token, and the end of segment 0.
                let original = zip(ids, labels).map { $1 == -100 ? $0 : $1 }
                #expect(original[n - 1] == 3 && labels[n - 1] == -100)
                let firstB = try #require(types.firstIndex(of: 1))
                #expect(original[firstB - 1] == 3 && labels[firstB - 1] == -100)
                #expect(types.prefix(firstB).allSatisfy { $0 == 0 } && types[firstB..<n].allSatisfy { $0 == 1 })
            }
        }
    }

    @Test("batches pass TrainingBatch.validate: batchSize rows (the last fewer), at most maxLength, padded to the longest")
    func shapes() throws {
        let t = try Self.tokenizer()
        for (maxLength, batchSize) in [(64, 16), (12, 5), (5, 3)] {
            let data = MaskedLanguageModelingData(maxLength: maxLength, batchSize: batchSize)
            let batches = try data.batches(documents: Self.documents(), tokenizer: t, seed: 11)
            #expect(!batches.isEmpty)
            for (i, b) in batches.enumerated() {
                try b.validate(
                    vocabularySize: Self.vocabulary.count, typeVocabularySize: 2, maxLength: maxLength, labelsMatchInput: true,
                    needsNextSentence: true, where: "batch \(i)")
                #expect(i == batches.count - 1 ? b.rows <= batchSize : b.rows == batchSize)
                #expect(b.attentionMask!.contains { !$0.contains(0) }, "batch \(i) is padded past its longest row")
            }
        }
    }

    @Test("next sentence: about half the pairs have a random B from another document (label 1), the rest B that follows A")
    func nextSentencePairs() throws {
        let t = try Self.tokenizer()
        var rng = SplitMix64(state: 5)
        let pairs = try MaskedLanguageModelingData(maxLength: 40, batchSize: 1).sentencePairs(documents: Self.documents(), tokenizer: t, rng: &rng)
        #expect(pairs.count > 400, "\(pairs.count) pairs")
        let documentOf = { (id: Int) -> Int? in (5..<(5 + Self.documentCount)).contains(id) ? id - 5 : nil }
        let sentenceOf = { (id: Int) -> Int? in
            (45..<(45 + Self.sentencesPerDocument)).contains(id) ? id - 45 : nil
        }
        var random = 0
        for p in pairs {
            #expect(p.inputIDs.count <= 40)
            let sep = try #require(p.inputIDs.firstIndex(of: 3))
            let a = p.inputIDs[1..<sep], b = p.inputIDs[(sep + 1)..<(p.inputIDs.count - 1)]
            #expect(!a.isEmpty && !b.isEmpty)
            let docsA = Set(a.compactMap(documentOf)), docsB = Set(b.compactMap(documentOf))
            #expect(docsA.count <= 1 && docsB.count <= 1, "a pair mixes documents within A or B")
            if p.nextSentenceLabel == 1 {
                random += 1
                if let x = docsA.first, let y = docsB.first { #expect(x != y, "a random B from A's own document") }
            } else {
                if let x = docsA.first, let y = docsB.first { #expect(x == y, "label 0 with B from another document") }
                // B continues A: its first sentence number follows A's last.
                if let lastA = a.compactMap(sentenceOf).last, let firstB = b.compactMap(sentenceOf).first {
                    #expect(firstB > lastA, "label 0 with B (sentence \(firstB)) not after A (sentence \(lastA))")
                }
            }
        }
        let share = Double(random) / Double(pairs.count)
        #expect(share > 0.42 && share < 0.62, "random B in \(share) of the pairs")
    }

    @Test("the same seed gives the same batches; another seed others")
    func deterministic() throws {
        let t = try Self.tokenizer()
        let data = MaskedLanguageModelingData(maxLength: 48, batchSize: 8)
        let a = try data.batches(documents: Self.documents(), tokenizer: t, seed: 42)
        let b = try data.batches(documents: Self.documents(), tokenizer: t, seed: 42)
        let c = try data.batches(documents: Self.documents(), tokenizer: t, seed: 43)
        #expect(a == b)
        #expect(a != c)
    }

    @Test("documents(text:): one sentence per line, blank lines between documents")
    func documentsOfText() {
        let text = "\n\n one a\none b\n\n\n  \ntwo a\r\n\nthree a\n"
        #expect(MaskedLanguageModelingData.documents(text: text) == [["one a", "one b"], ["two a"], ["three a"]])
        #expect(MaskedLanguageModelingData.documents(text: "").isEmpty)
    }

    @Test("errors: no [MASK] in the vocabulary, too short a maxLength, no tokens, probabilities out of range")
    func errors() throws {
        let t = try Self.tokenizer()
        let noMask = try WordPieceTokenizer(vocabulary: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"])
        func message(_ body: () throws -> Void) -> String {
            do {
                try body()
                return ""
            } catch { return "\(error)" }
        }
        #expect(message { _ = try MaskedLanguageModelingData().batches(documents: [["a a"]], tokenizer: noMask, seed: 0) }.contains("[MASK]"))
        #expect(message { _ = try MaskedLanguageModelingData(maxLength: 4).batches(documents: Self.documents(), tokenizer: t, seed: 0) }.contains("maxLength 4"))
        #expect(message { _ = try MaskedLanguageModelingData().batches(documents: [[""], []], tokenizer: t, seed: 0) }.contains("no tokens"))
        var data = MaskedLanguageModelingData()
        data.maskProbability = 1.5
        #expect(message { _ = try data.batches(documents: Self.documents(), tokenizer: t, seed: 0) }.contains("maskProbability"))
        data = MaskedLanguageModelingData(batchSize: 0)
        #expect(message { _ = try data.batches(documents: Self.documents(), tokenizer: t, seed: 0) }.contains("batchSize"))
    }
}
