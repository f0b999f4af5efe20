// Hugging Face encoder-decoder checkpoints loaded from their folders (config.json,
// generation_config.json, model.safetensors or a sharded index) against what transformers
// computes from the same folders: encoder output and teacher-forced logits within 1e-4,
// greedy and 3-beam `generate` ids exactly, for a batch of two sources whose second is padded.
//
//   t5, marian          shared/golden (transformers 5.23): tied heads, relu T5, swish Marian
//   t5_gated            make_hf_fixtures.py (transformers 5.24): gated-gelu, separate lm_head,
//                       no output scale, 6 heads x 8 = 48 != d_model 32, 3 + 2 layers, sharded
//   t5_bf16, t5_f16     make_half_fixtures.py: the golden t5 saved in BF16 / F16, its weights
//                       held 16-bit (tolerance as float32's: the reference upcasts the same
//                       16-bit weights, which is what widening in registers computes)
//   marian_split        make_hf_fixtures.py: separate source/target embeddings, target
//                       vocabulary 48 != 64, unscaled embeddings, relu, 3 and 2 heads
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

/// The folder `Fixtures/NAME` of this test bundle.
func fixtureFolder(_ name: String) throws -> URL {
    try #require(
        Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"),
        "fixture folder Fixtures/\(name) is missing from the test bundle")
}

@Suite("Hugging Face T5 and Marian checkpoints")
struct HFSeq2SeqTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let architecture: Seq2SeqArchitecture
        let start: Int, eos: Int, pad: Int, forcedEOS: Int?
        /// The settings the reference `generate` calls used.
        let maxNew: Int, greedyMinNew: Int, lengthPenalty: Float, earlyStopping: EarlyStopping
        var testDescription: String { name }
    }
    static let cases = [
        Case(
            name: "t5", architecture: .t5, start: 0, eos: 1, pad: 0, forcedEOS: nil,
            maxNew: 10, greedyMinNew: 10, lengthPenalty: 1, earlyStopping: .whenBeamsFinished),
        // The golden t5 saved in BF16 and F16 (make_half_fixtures.py): weights kept 16-bit,
        // against transformers on the same weights upcast to float32.
        Case(
            name: "t5_bf16", architecture: .t5, start: 0, eos: 1, pad: 0, forcedEOS: nil,
            maxNew: 10, greedyMinNew: 10, lengthPenalty: 1, earlyStopping: .whenBeamsFinished),
        Case(
            name: "t5_f16", architecture: .t5, start: 0, eos: 1, pad: 0, forcedEOS: nil,
            maxNew: 10, greedyMinNew: 10, lengthPenalty: 1, earlyStopping: .whenBeamsFinished),
        Case(
            name: "marian", architecture: .marian, start: 63, eos: 2, pad: 63, forcedEOS: 2,
            maxNew: 10, greedyMinNew: 10, lengthPenalty: 1, earlyStopping: .whenBeamsFinished),
        Case(
            name: "t5_gated", architecture: .t5, start: 0, eos: 1, pad: 0, forcedEOS: nil,
            maxNew: 12, greedyMinNew: 12, lengthPenalty: 0.8, earlyStopping: .heuristic),
        Case(
            name: "marian_split", architecture: .marian, start: 47, eos: 2, pad: 47, forcedEOS: 2,
            maxNew: 12, greedyMinNew: 12, lengthPenalty: 0.8, earlyStopping: .heuristic),
    ]

    /// The sources of a fixture: its input rows cut at the attention mask (right padding).
    static func sources(_ io: SafeTensorsFile) throws -> [[Int]] {
        let ids = idRows(try io.integers("in.input_ids"), rows: 2)
        let mask = idRows(try io.integers("in.attention_mask"), rows: 2)
        return zip(ids, mask).map { row, m in Array(row.prefix(m.reduce(0, +))) }
    }

    @Test("loads the folder and matches transformers: encoder output, teacher-forced logits, greedy and 3-beam ids", arguments: cases)
    func parity(_ c: Case) throws {
        let model = try Seq2SeqModel(directory: try fixtureFolder(c.name))
        #expect(model.architecture == c.architecture)
        #expect(model.decoderStartTokenID == c.start && model.padTokenID == c.pad)
        #expect(model.generationDefaults.eosTokenIDs == [c.eos] && model.generationDefaults.forcedEOSTokenID == c.forcedEOS)
        #expect(model.generationDefaults.maxNewTokens == 19 && model.generationDefaults.numBeams == 1)
        #expect(model.ignoredGenerationSettings.isEmpty)

        let io = try fixture("\(c.name).io")
        let sources = try Self.sources(io)
        let encoded = try model.encode(sources)
        // Compare the real positions only: the reference's padded positions hold other ids.
        let expected = try io.tensor("out.encoder_last_hidden_state")  // [2, S, d]
        let (s, d) = (expected.shape[1], expected.shape[2])
        var worst = 0.0
        for (b, n) in sources.map(\.count).enumerated() {
            for i in 0..<(n * d) {
                worst = max(worst, abs(Double(encoded.memory.scalars[b * s * d + i]) - Double(expected.scalars[b * s * d + i])))
            }
        }
        let logits = try model.decode(idRows(try io.integers("in.decoder_input_ids"), rows: 2), encoded: encoded)
        let logitDev = deviation(logits, try io.tensor("out.logits"))
        print("\(c.name): encoder max abs \(worst); logits \(logitDev)")
        #expect(worst <= 1e-4 && logitDev.maxAbs <= 1e-4, "\(c.name): encoder \(worst), logits \(logitDev)")

        var greedy = model.generationDefaults
        greedy.maxNewTokens = c.maxNew
        greedy.minNewTokens = c.greedyMinNew
        var beam = model.generationDefaults
        beam.maxNewTokens = c.maxNew
        beam.numBeams = 3
        beam.lengthPenalty = c.lengthPenalty
        beam.earlyStopping = c.earlyStopping
        let greedyIDs = try model.generate(sources: sources, config: greedy).sequences
        let beamIDs = try model.generate(sources: sources, config: beam).sequences
        print("\(c.name) greedy \(greedyIDs), beam \(beamIDs)")
        #expect(greedyIDs == idRows(try io.integers("out.greedy_ids"), rows: 2), "\(c.name) greedy")
        #expect(beamIDs == idRows(try io.integers("out.beam3_ids"), rows: 2), "\(c.name) beam search")

        // Each row of the padded batch equals generating from that source alone.
        for (r, source) in sources.enumerated() {
            let alone = try model.generate(sources: [source], config: beam).sequences[0]
            let batched = beamIDs[r]
            #expect(
                Array(batched.prefix(alone.count)) == alone && batched.dropFirst(alone.count).allSatisfy { $0 == c.pad },
                "\(c.name): row \(r) alone \(alone), in the batch \(batched)")
        }

        // Streaming delivers the greedy tokens step by step, the same ones.
        var steps: [[Int]] = []
        let streamed = try model.greedy(sources: sources, startTokenID: model.decoderStartTokenID, config: greedy) { steps.append($0) }
        #expect(streamed == greedyIDs && steps.count == greedyIDs[0].count - 1)
        #expect((0..<2).allSatisfy { r in steps.map { $0[r] } == Array(greedyIDs[r].dropFirst()) })
    }

    @Test("a BF16 / F16 folder keeps its weights 16-bit; weightPrecision converts at load (rounding float32 as torch does)")
    func weightPrecision() throws {
        let io = try fixture("t5.io")
        let sources = try Self.sources(io)
        let targets = idRows(try io.integers("in.decoder_input_ids"), rows: 2)
        for (name, precision) in [("t5_bf16", WeightPrecision.bfloat16), ("t5_f16", .float16)] {
            let kept = try Seq2SeqModel(directory: try fixtureFolder(name))
            #expect(kept.lmHead.weightPrecision == precision && kept.encoderEmbedding.weightPrecision == precision)
            let logits = try kept.decode(targets, encoded: try kept.encode(sources))
            // The float32 folder rounded at load holds the same 16-bit matrices as torch's
            // rounding (to nearest even) wrote; its norms and bias tables stay float32, so
            // its outputs differ by their rounding only.
            let rounded = try Seq2SeqModel(directory: try fixtureFolder("t5"), weightPrecision: precision)
            #expect(rounded.lmHead.weightPrecision == precision)
            #expect(rounded.lmHead.weight.scalars.map(\.bitPattern) == kept.lmHead.weight.scalars.map(\.bitPattern), "\(name): rounding")
            let again = try rounded.decode(targets, encoded: try rounded.encode(sources))
            #expect(maxAbsDifference(again.scalars, logits.scalars) <= 0.05, "\(name): the float32 folder rounded at load")
            // Widened at load: float32 weights (the packed float32 GEMM sums in another order).
            let widened = try Seq2SeqModel(directory: try fixtureFolder(name), weightPrecision: .float32)
            #expect(widened.lmHead.weightPrecision == .float32 && widened.encoderEmbedding.weightPrecision == .float32)
            let wide = try widened.decode(targets, encoded: try widened.encode(sources))
            #expect(maxAbsDifference(wide.scalars, logits.scalars) <= 1e-5, "\(name): widened at load")
        }
    }

    @Test("memoryPrecision .bfloat16: the memory rounded once, decoding steps equal teacher forcing, close to float32; .automatic keeps float32 for 16-bit weights")
    func bfloat16Memory() throws {
        let io = try fixture("t5_bf16.io")
        let sources = try Self.sources(io)
        let targets = idRows(try io.integers("in.decoder_input_ids"), rows: 2)
        var model = try Seq2SeqModel(directory: try fixtureFolder("t5_bf16"))
        #expect(model.memoryPrecision == .automatic)
        let encoded = try model.encode(sources)
        #expect(try model.makeCache(for: encoded).crossAttention?.allSatisfy { $0.half == nil } == true, "16-bit weights keep a float32 memory by default")
        let exact = try model.decode(targets, encoded: encoded)
        model.memoryPrecision = .bfloat16
        let cache0 = try model.makeCache(for: encoded)
        #expect(cache0.crossAttention?.allSatisfy { $0.half != nil && $0.packed == nil } == true, "every layer's memory held in bfloat16")
        let rounded = try model.decode(targets, encoded: encoded)
        // The rounding moves the logits (so the bfloat16 path ran) by about what 8 significant
        // bits of every key and value give, far less than the logits' spread.
        let moved = maxAbsDifference(rounded.scalars, exact.scalars)
        print("t5_bf16 with a bfloat16 memory: logits moved by at most \(moved)")
        #expect(moved > 0 && moved <= 0.05, "\(moved)")
        let expected = try io.tensor("out.logits")
        #expect(deviation(exact, expected).maxAbs <= 1e-4)
        // One token at a time over the cache equals teacher forcing on the same bfloat16 memory.
        Self.expectStepsEqual(rounded, model: model, targets: targets, cache: cache0)
        // On the golden sources the greedy ids stay transformers' (beam search, which compares
        // close sums of log-probabilities, may not).
        var greedy = model.generationDefaults
        greedy.maxNewTokens = 10
        greedy.minNewTokens = 10
        #expect(try model.generate(sources: sources, config: greedy).sequences == idRows(try io.integers("out.greedy_ids"), rows: 2))
    }

    @Test("the decoder's cached steps equal teacher forcing (T5's causal bias at the cache offset)")
    func cachedSteps() throws {
        let model = try Seq2SeqModel(directory: try fixtureFolder("t5_gated"))
        let io = try fixture("t5_gated.io")
        let sources = try Self.sources(io)
        let targets = idRows(try io.integers("in.decoder_input_ids"), rows: 2)
        let encoded = try model.encode(sources)
        let full = try model.decode(targets, encoded: encoded)  // [2, T, V]
        Self.expectStepsEqual(full, model: model, targets: targets, cache: try model.makeCache(for: encoded))
    }

    /// Feeds `targets` (2 rows) one token at a time through `cache` and expects each step's
    /// logits within 1e-5 of the teacher-forced `full` `[2, T, V]`.
    static func expectStepsEqual(_ full: Tensor, model: Seq2SeqModel, targets: [[Int]], cache: KVCache) {
        var cache = cache
        let v = model.vocabularySize, t = targets[0].count
        for step in 0..<t {
            let logits = model.nextTokenLogits(appending: targets.map { [$0[step]] }, to: &cache)  // [2, V]
            for r in 0..<2 {
                let expected = Array(full.scalars[((r * t + step) * v)..<((r * t + step + 1) * v)])
                let got = Array(logits.scalars[(r * v)..<((r + 1) * v)])
                let worst = zip(got, expected).map { abs($0 - $1) }.max()!
                #expect(worst <= 1e-5, "step \(step), row \(r): \(worst)")
            }
        }
    }

    @Test("generation_config.json settings become the defaults; unsupported ones are reported")
    func generationSettings() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("attend-t5-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let source = try fixtureFolder("t5")
        for f in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: source.appendingPathComponent(f), to: folder.appendingPathComponent(f))
        }
        let settings =
            #"{"decoder_start_token_id": 0, "eos_token_id": [1, 5], "pad_token_id": 0, "max_length": 40, "min_length": 3, "num_beams": 4, "length_penalty": 0.6, "early_stopping": "never", "bad_words_ids": [[7], [8, 9]], "no_repeat_ngram_size": 3}"#
        try Data(settings.utf8).write(to: folder.appendingPathComponent("generation_config.json"))
        let model = try Seq2SeqModel(directory: folder)
        let g = model.generationDefaults
        #expect(g.maxNewTokens == 39 && g.minNewTokens == 2 && g.numBeams == 4 && g.lengthPenalty == 0.6)
        #expect(g.earlyStopping == .never && g.eosTokenIDs == [1, 5] && g.suppressedTokenIDs == [7])
        #expect(g.noRepeatNGramSize == 3)
        // Left: the multi-token bad word, and sampling with beams.
        #expect(model.ignoredGenerationSettings.count == 1, "\(model.ignoredGenerationSettings)")
        let out = try model.generate(sources: [[3, 4, 5]])
        #expect(out.sequences.count == 1 && !out.sequences[0].contains(7))

        // A list of end tokens keeps each id once, in first-seen order; 200000 repeats with
        // 1024 beams generate as the short list does.
        let repeated = "[5, 1" + String(repeating: ", 1, 5", count: 100_000) + "]"
        try Data(#"{"decoder_start_token_id": 0, "eos_token_id": \#(repeated), "num_beams": 1024, "max_new_tokens": 2}"#.utf8)
            .write(to: folder.appendingPathComponent("generation_config.json"))
        let many = try Seq2SeqModel(directory: folder)
        #expect(many.generationDefaults.eosTokenIDs == [5, 1])
        #expect(try many.generate(sources: [[3, 4, 5]]).sequences.count == 1)

        // Sampling and repetition settings are read, checked, and used.
        let sampling =
            #"{"decoder_start_token_id": 0, "eos_token_id": 1, "do_sample": true, "temperature": 0.7, "top_k": 0, "top_p": 0.9, "min_p": 0.05, "repetition_penalty": 1.2, "no_repeat_ngram_size": 2}"#
        try Data(sampling.utf8).write(to: folder.appendingPathComponent("generation_config.json"))
        let sampler = try Seq2SeqModel(directory: folder)
        let s = sampler.generationDefaults
        #expect(s.doSample && s.temperature == 0.7 && s.topK == 0 && s.topP == 0.9 && s.minP == 0.05)
        #expect(s.repetitionPenalty == 1.2 && s.noRepeatNGramSize == 2 && sampler.ignoredGenerationSettings.isEmpty)
        #expect(try sampler.generate(sources: [[3, 4, 5]]).sequences.count == 1)
        for bad in [
            #""do_sample": true, "temperature": 0"#, #""top_p": 1.5"#, #""min_p": -0.1"#, #""repetition_penalty": 0"#,
            #""do_sample": true, "top_k": -2"#, #""no_repeat_ngram_size": -1"#,
        ] {
            try Data("{\(bad)}".utf8).write(to: folder.appendingPathComponent("generation_config.json"))
            #expect(throws: ModelFileError.self, "\(bad)") { try Seq2SeqModel(directory: folder) }
        }
        try Data(#"{"do_sample": true, "num_beams": 3}"#.utf8).write(to: folder.appendingPathComponent("generation_config.json"))
        let beams = try Seq2SeqModel(directory: folder)
        #expect(!beams.generationDefaults.doSample && beams.ignoredGenerationSettings.count == 1, "\(beams.ignoredGenerationSettings)")
    }

    @Test("init(t5:) / init(marian:) with settings built in code: thrown errors, never a trap")
    func codeBuiltSettings() throws {
        let t5 = try fixtureFolder("t5"), marian = try fixtureFolder("marian")
        let t5Config = try T5Config(contentsOf: t5.appendingPathComponent("config.json"))
        let marianConfig = try MarianConfig(contentsOf: marian.appendingPathComponent("config.json"))
        func buildT5(_ c: T5Config, _ g: GenerationConfig? = nil) throws {
            _ = try Seq2SeqModel(t5: c, weights: try SafeTensorsCheckpoint(directory: t5), generation: g)
        }
        func buildMarian(_ c: MarianConfig, _ g: GenerationConfig? = nil) throws {
            _ = try Seq2SeqModel(marian: c, weights: try SafeTensorsCheckpoint(directory: marian), generation: g)
        }
        try buildT5(t5Config)
        try buildMarian(marianConfig)
        // Generation settings out of range: the validation's GenerationError.
        #expect(throws: GenerationError.invalidConfig("maxNewTokens 0 must be at least 1")) {
            try buildT5(t5Config, GenerationConfig(maxNewTokens: 0))
        }
        #expect(throws: GenerationError.invalidConfig("maxNewTokens 0 must be at least 1")) {
            try buildMarian(marianConfig, GenerationConfig(maxNewTokens: 0))
        }
        #expect(throws: GenerationError.self) { try buildT5(t5Config, GenerationConfig(maxNewTokens: 5, eosTokenID: 64)) }
        // Special tokens and sizes out of range: CheckpointError.invalidConfig naming the setting.
        func expectInvalid(_ field: String, _ body: () throws -> Void) {
            do {
                try body()
                Issue.record("\(field): built")
            } catch CheckpointError.invalidConfig(let message) {
                #expect(message.contains(field), "\(field): \(message)")
            } catch {
                Issue.record("\(field): \(error)")
            }
        }
        var c = t5Config
        c.padTokenID = 64
        expectInvalid("padTokenID") { try buildT5(c) }
        c = t5Config
        c.decoderStartTokenID = -1
        expectInvalid("decoderStartTokenID") { try buildT5(c) }
        c = t5Config
        c.numHeads = 0
        expectInvalid("numHeads") { try buildT5(c) }
        var m = marianConfig
        m.padTokenID = 64
        expectInvalid("padTokenID") { try buildMarian(m) }
        m = marianConfig
        m.decoderStartTokenID = 1000
        expectInvalid("decoderStartTokenID") { try buildMarian(m) }
        m = marianConfig
        m.decoderVocabSize = 65
        expectInvalid("decoderVocabSize") { try buildMarian(m) }
        m = marianConfig
        m.encoderAttentionHeads = 3
        expectInvalid("encoderAttentionHeads") { try buildMarian(m) }
    }

    @Test("a cache another model or decoder stack made: thrown GenerationError.invalidInput, not a trap")
    func misusedCaches() async throws {
        let t5 = try Seq2SeqModel(directory: try fixtureFolder("t5"))  // 2 decoder layers, 4 heads of 8
        let sources = [[5, 6, 7], [8, 9]]
        let encoded = try t5.encode(sources)
        let prompt = sources.map { _ in [t5.decoderStartTokenID] }
        let config = GenerationConfig(maxNewTokens: 3)
        var beams = config
        beams.numBeams = 2
        // Caches of other models, made for sources of the same count: other widths.
        for name in ["marian_split", "t5_gated"] {
            let other = try Seq2SeqModel(directory: try fixtureFolder(name))
            let cache = try other.makeCache(for: other.encode(sources))
            expectInvalidInput("\(name)'s cache", "another model") { _ = try t5.generate(prompt: prompt, cache: cache, config: config) }
            expectInvalidInput("\(name)'s cache, beams", "another model") {
                var c = cache
                _ = try t5.beamSearch(prompt: prompt, cache: &c, config: beams)
            }
        }
        // Decoder stacks built in code over t5's own memory (width 32): one layer too few,
        // the right layers with heads of another size, no cross-attention at all.
        var rng = SeededRNG(seed: caseSeed(97))
        func stack(layers: Int, heads: Int, cross: Bool) -> TransformerDecoder {
            TransformerDecoder(
                layers: (0..<layers).map { _ in StackTests.randomLayer(32, heads: heads, ff: 16, cross: cross, &rng) }, finalNorm: nil)
        }
        let oneLayer = stack(layers: 1, heads: 4, cross: true).makeCache(memory: encoded.memory, memoryPadding: encoded.padding)
        expectInvalidInput("a one-layer stack's cache", "1 decoder layer,") { _ = try t5.generate(prompt: prompt, cache: oneLayer, config: config) }
        let otherHeads = stack(layers: 2, heads: 2, cross: true).makeCache(memory: encoded.memory, memoryPadding: encoded.padding)
        expectInvalidInput("a cache of heads of 16", "heads of 16") { _ = try t5.generate(prompt: prompt, cache: otherHeads, config: config) }
        let noMemory = stack(layers: 2, heads: 4, cross: false).makeCache(memory: nil, rows: 2)
        expectInvalidInput("a decoder-only stack's cache", "no encoder memory") {
            _ = try t5.generate(prompt: prompt, cache: noMemory, config: config)
        }
        await #expect(throws: GenerationError.self) {
            for try await _ in t5.greedyStream(prompt: prompt, cache: oneLayer, config: config) {}
        }
        // The paper's model (width 64) with t5's cache, and t5 with the paper model's.
        let paper = Seq2Seq.model
        let paperCache = try paper.makeCache(for: paper.encode(sources))
        expectInvalidInput("the paper model's cache", "another model") { _ = try t5.generate(prompt: prompt, cache: paperCache, config: config) }
        expectInvalidInput("t5's cache in the paper model", "another model") {
            _ = try paper.generate(prompt: [[1], [1]], cache: t5.makeCache(for: encoded), config: config)
        }
        // The model's own cache still generates what generate(sources:) does.
        let own = try t5.generate(prompt: prompt, cache: t5.makeCache(for: encoded), config: config)
        #expect(own == (try t5.generate(sources: sources, config: config)))
    }

    @Test("encoder outputs another model made, or built in code to a wrong shape: thrown GenerationError.invalidInput, not a trap")
    func misusedEncoderOutputs() throws {
        let t5 = try Seq2SeqModel(directory: try fixtureFolder("t5"))  // d = 32
        let split = try Seq2SeqModel(directory: try fixtureFolder("marian_split"))  // d = 24
        let sources = [[5, 6, 7], [8, 9]]
        let foreign = try split.encode(sources)
        #expect(throws: GenerationError.invalidInput("the encoder output [2, 3, 24] has width 24; this model's decoder reads width 32 (another model's encoding?)")) {
            _ = try t5.makeCache(for: foreign)
        }
        expectInvalidInput("marian_split's memory, decode", "width 24") { _ = try t5.decode([[0, 5], [0, 6]], encoded: foreign) }
        let paper = Seq2Seq.model  // d = 64
        let t5Encoded = try t5.encode(sources)
        expectInvalidInput("t5's memory in the paper model, makeCache", "has width 32; this model's decoder reads width 64") {
            _ = try paper.makeCache(for: t5Encoded)
        }
        expectInvalidInput("t5's memory in the paper model, decode", "width 32") {
            _ = try paper.decode([[1, 5], [1, 6]], encoded: t5Encoded)
        }
        // EncodedSource built in code: lengths, padding and memory must agree.
        let memory = Tensor.zeros([2, 3, 32])
        expectInvalidInput("a source longer than the memory", "lengths") { _ = try EncodedSource(memory: memory, padding: nil, lengths: [3, 4]) }
        expectInvalidInput("no rows", "no rows") { _ = try EncodedSource(memory: Tensor.zeros([0, 3, 32]), padding: nil, lengths: []) }
        expectInvalidInput("lengths for 1 of 2 rows", "lengths") { _ = try EncodedSource(memory: memory, padding: nil, lengths: [3]) }
        expectInvalidInput("a memory of rank 2", "memory") { _ = try EncodedSource(memory: Tensor.zeros([2, 32]), padding: nil, lengths: [1, 1]) }
        expectInvalidInput("padding of 2 positions", "padding") {
            _ = try EncodedSource(memory: memory, padding: [[true, true], [true, false]], lengths: [3, 1])
        }
        // A well-formed one decodes as the model's own encoding does.
        let own = try t5.encode(sources)
        let rebuilt = try EncodedSource(memory: own.memory, padding: own.padding, lengths: own.lengths)
        var cache = try t5.makeCache(for: rebuilt)
        #expect(
            t5.nextTokenLogits(appending: [[0], [0]], to: &cache).scalars
                == (try t5.decode([[0], [0]], encoded: own)).scalars)
    }

    @Test("checkedNextTokenLogits: bad tokens, another model's cache, a length past max_position_embeddings throw")
    func checkedSteps() throws {
        let marian = try Seq2SeqModel(directory: try fixtureFolder("marian"))  // V = 64, max_position_embeddings = 64
        let t5 = try Seq2SeqModel(directory: try fixtureFolder("t5"))
        let encoded = try marian.encode([[5, 6, 7]])
        var cache = try marian.makeCache(for: encoded)
        let start = marian.decoderStartTokenID
        var reference = cache
        #expect(
            try marian.checkedNextTokenLogits(appending: [[start]], to: &cache).scalars
                == marian.nextTokenLogits(appending: [[start]], to: &reference).scalars)
        expectInvalidInput("an id past the vocabulary", "token id 64") { _ = try marian.checkedNextTokenLogits(appending: [[64]], to: &cache) }
        expectInvalidInput("two rows for one", "2 token rows") { _ = try marian.checkedNextTokenLogits(appending: [[1], [2]], to: &cache) }
        var foreign = try t5.makeCache(for: t5.encode([[5, 6, 7], [8]]))
        expectInvalidInput("a cache of two rows", "2 rows") { _ = try marian.checkedNextTokenLogits(appending: [[1]], to: &foreign) }
        var paper = try Seq2Seq.model.makeCache(for: Seq2Seq.model.encode([[5, 6]]))
        expectInvalidInput("the paper model's cache", "another model") { _ = try marian.checkedNextTokenLogits(appending: [[1]], to: &paper) }
        #expect(throws: GenerationError.exceedsPositionLimit(setting: "max_position_embeddings", limit: 64, requested: 65)) {
            _ = try marian.checkedNextTokenLogits(appending: [[Int](repeating: 3, count: 64)], to: &cache)
        }
        #expect(cache.length == 1)
    }

    @Test("KVCache.selectRows with indices that are not rows of the row's source throws, the cache unchanged")
    func badRowSelections() throws {
        let t5 = try Seq2SeqModel(directory: try fixtureFolder("t5"))
        var cache = try t5.makeCache(for: t5.encode([[5, 6, 7], [8, 9]]))  // 2 sources, 1 row each
        _ = try t5.checkedNextTokenLogits(appending: [[0], [0]], to: &cache)
        expectInvalidInput("no rows", "0 rows") { try cache.selectRows([]) }
        expectInvalidInput("3 rows over 2 sources", "3 rows") { try cache.selectRows([0, 0, 1]) }
        expectInvalidInput("sources swapped", "not a row of source 0") { try cache.selectRows([1, 0]) }
        expectInvalidInput("a row past the cache", "old row 2") { try cache.selectRows([0, 2]) }
        expectInvalidInput("a negative row", "old row -1") { try cache.selectRows([-1, 1]) }
        #expect(cache.rows == 2 && cache.rowsPerSource == 1 && cache.length == 1)
        try cache.selectRows([0, 0, 1, 1])  // two beams per source
        #expect(cache.rows == 4 && cache.rowsPerSource == 2)
    }

    @Test("bad folders throw errors that name the file and what is wrong")
    func badFolders() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("attend-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect(throws: ModelFileError.self) { try Seq2SeqModel(directory: folder.appendingPathComponent("absent")) }
        #expect(throws: ModelFileError.missingFile(path: folder.appendingPathComponent("config.json").path)) {
            try Seq2SeqModel(directory: folder)
        }
        let config = folder.appendingPathComponent("config.json")
        try Data(#"{"model_type": "bart"}"#.utf8).write(to: config)
        #expect(throws: ModelFileError.self) { try Seq2SeqModel(directory: folder) }
        try Data(#"{"model_type": "t5", "d_model": -3}"#.utf8).write(to: config)
        #expect(throws: ModelFileError.invalidValue(path: config.path, key: "d_model", reason: "-3 is out of range 1...16777216")) {
            try Seq2SeqModel(directory: folder)
        }
        try Data(#"{"model_type": "t5", "feed_forward_proj": "gated-foo"}"#.utf8).write(to: config)
        #expect(throws: ModelFileError.self) { try Seq2SeqModel(directory: folder) }
        // A T5 config whose sizes disagree with the weights: the first misshapen tensor is named.
        let t5 = try fixtureFolder("t5")
        try FileManager.default.copyItem(at: t5.appendingPathComponent("model.safetensors"), to: folder.appendingPathComponent("model.safetensors"))
        try Data(
            #"{"model_type": "t5", "vocab_size": 64, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4, "num_decoder_layers": 3}"#
                .utf8
        ).write(to: config)
        #expect(throws: CheckpointError.missingTensor(name: "decoder.block.2.layer.0.SelfAttention.q.weight")) {
            try Seq2SeqModel(directory: folder)
        }
        try Data(#"{"model_type": "t5", "vocab_size": 64, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 1, "num_heads": 4}"#.utf8).write(
            to: config)
        #expect(throws: CheckpointError.self) { try Seq2SeqModel(directory: folder) }  // block 1 left unused
    }
}

private func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? .infinity }
