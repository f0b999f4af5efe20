// A checkpoint's generation settings: `generation_config.json` (written by save_pretrained
// since transformers 4.26) or, for older folders, the same keys in `config.json`, with
// transformers' defaults for what neither says (max_length 20, greedy, length_penalty 1,
// early_stopping false).

import Foundation

/// A Hugging Face model folder's `config.json` (required) and `generation_config.json` (when
/// present). Throws `ModelFileError` when the folder or `config.json` is missing or a file is
/// not valid JSON (naming the file).
func readHFModelConfigs(_ directory: URL) throws -> (config: JSONFields, configURL: URL, generation: JSONFields?) {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw ModelFileError.missingFile(path: directory.path)
    }
    let configURL = directory.appendingPathComponent("config.json")
    let config = try JSONFields(try readModelJSON(configURL), path: configURL.path)
    let generationURL = directory.appendingPathComponent("generation_config.json")
    let generation =
        FileManager.default.fileExists(atPath: generationURL.path)
        ? try JSONFields(try readModelJSON(generationURL), path: generationURL.path) : nil
    return (config, configURL, generation)
}

/// The generation settings of a Hugging Face model folder, turned into a ``GenerationConfig``
/// with `transformers`' meaning for an encoder-decoder model (whose decoder prompt is the
/// single start token, so `max_length` counts it: `maxNewTokens = max_length - 1`).
struct HFGenerationSettings {
    /// The settings `generate` uses by default.
    var config: GenerationConfig
    /// `decoder_start_token_id` (nil when neither file gives it).
    var decoderStartTokenID: Int?
    /// Keys with values this library does not implement, as `key = value` (they are ignored).
    var ignored: [String] = []
    /// Decoder-only models: `max_length` (prompt included) when `max_new_tokens` is not given;
    /// `config.maxNewTokens` then depends on the prompt's length.
    var maxLength: Int? = nil

    /// transformers' defaults for a model whose configuration names no generation settings.
    static func defaults(maxNewTokens: Int) -> HFGenerationSettings {
        HFGenerationSettings(config: GenerationConfig(maxNewTokens: maxNewTokens), decoderStartTokenID: nil)
    }

    private init(config: GenerationConfig, decoderStartTokenID: Int?) {
        self.config = config
        self.decoderStartTokenID = decoderStartTokenID
    }

    /// Reads the keys from `generation` when that file exists, else from `config` (as
    /// `transformers` does; only `decoder_start_token_id` falls back to `config`); ids must
    /// lie in `0..<vocabularySize`; a list of end tokens keeps each id once. With `decoderOnly`, `max_length` and `min_length` count the
    /// prompt (the first is kept in ``maxLength``; the second is reported as ignored).
    /// Throws `ModelFileError.invalidValue` naming the file and key.
    init(config: JSONFields, generation: JSONFields?, vocabularySize v: Int, decoderOnly: Bool = false) throws {
        let g = generation ?? config
        let id = 0...(v - 1)
        var eos: [Int] = []
        if case .array(let list)? = g.raw("eos_token_id") {
            // Each id once, in first-seen order (the first is the pad fallback): a repeated id
            // changes nothing but beam search's candidate count.
            var seen = Set<Int>()
            for (i, item) in list.enumerated() {
                guard let e = item.intValue, id.contains(e) else {
                    throw g.fail("eos_token_id", "entry \(i) is not a token id in 0..<\(v)")
                }
                if seen.insert(e).inserted { eos.append(e) }
            }
        } else if let e = try g.int("eos_token_id", in: id) {
            eos = [e]
        }
        let maxLength = try g.int("max_length", in: 2...(1 << 20)) ?? 20
        let maxNew = try g.int("max_new_tokens", in: 1...(1 << 20))
        var c = GenerationConfig(maxNewTokens: maxNew ?? (maxLength - 1))
        if decoderOnly && maxNew == nil { self.maxLength = maxLength }
        c.eosTokenIDs = eos
        if let m = try g.int("min_new_tokens", in: 0...(1 << 20)) {
            c.minNewTokens = m
        } else if let m = try g.int("min_length", in: 0...(1 << 20)) {
            if decoderOnly {
                if m > 0 { ignored.append("min_length = \(m) (counts the prompt; use min_new_tokens)") }
            } else {
                c.minNewTokens = max(0, m - 1)
            }
        }
        c.padTokenID = try g.int("pad_token_id", in: id)
        decoderStartTokenID = try g.int("decoder_start_token_id", in: id) ?? config.int("decoder_start_token_id", in: id)
        c.numBeams = try g.int("num_beams", in: 1...1024) ?? 1
        c.numReturnSequences = try g.int("num_return_sequences", in: 1...c.numBeams) ?? 1
        if let lp = try g.double("length_penalty") { c.lengthPenalty = Float(lp) }
        if let raw = g.raw("early_stopping") {
            if let b = raw.boolValue {
                c.earlyStopping = b ? .whenBeamsFinished : .heuristic
            } else if raw.stringValue == "never" {
                c.earlyStopping = .never
            } else {
                throw g.fail("early_stopping", "expected true, false or \"never\"")
            }
        }
        c.forcedBOSTokenID = try g.int("forced_bos_token_id", in: id)
        c.forcedEOSTokenID = try g.int("forced_eos_token_id", in: id)
        // bad_words_ids [[pad]] (Marian) and suppress_tokens forbid single tokens.
        var suppressed: [Int] = []
        if let bad = try g.array("bad_words_ids") {
            for (i, entry) in bad.enumerated() {
                guard case .array(let words) = entry, !words.isEmpty else { throw g.fail("bad_words_ids", "entry \(i) is not a list of token ids") }
                let ids = words.compactMap(\.intValue)
                guard ids.count == words.count, ids.allSatisfy(id.contains) else {
                    throw g.fail("bad_words_ids", "entry \(i) holds something other than token ids in 0..<\(v)")
                }
                if ids.count == 1 {
                    suppressed.append(ids[0])
                } else {
                    ignored.append("bad_words_ids entry \(i) (a sequence of \(ids.count) tokens)")
                }
            }
        }
        if let list = try g.array("suppress_tokens") {
            for (i, item) in list.enumerated() {
                guard let t = item.intValue, id.contains(t) else { throw g.fail("suppress_tokens", "entry \(i) is not a token id in 0..<\(v)") }
                suppressed.append(t)
            }
        }
        c.suppressedTokenIDs = suppressed
        if let r = try g.double("repetition_penalty") {
            guard r > 0 else { throw g.fail("repetition_penalty", "\(r) must be positive") }
            c.repetitionPenalty = Float(r)
        }
        c.noRepeatNGramSize = try g.int("no_repeat_ngram_size", in: 0...(1 << 20)) ?? 0
        try Self.readSampling(g, into: &c, ignored: &ignored)
        // What generate would do differently here: say so rather than pretend.
        if let n = try g.int("encoder_no_repeat_ngram_size", in: 0...(1 << 20)), n > 0 { ignored.append("encoder_no_repeat_ngram_size = \(n)") }
        if let n = try g.int("num_beam_groups", in: 1...(1 << 20)), n > 1 { ignored.append("num_beam_groups = \(n)") }
        if let list = try g.array("begin_suppress_tokens"), !list.isEmpty { ignored.append("begin_suppress_tokens") }
        if let list = try g.array("forced_decoder_ids"), !list.isEmpty { ignored.append("forced_decoder_ids") }
        // Whatever combination the keys made, the result must be a configuration generate takes.
        do { try c.validate(vocabularySize: v) } catch { throw g.fail("(generation settings)", "\(error)") }
        self.config = c
    }

    /// `do_sample` and its warpers (`temperature`, `top_k`, `top_p`, `min_p`), checked as
    /// transformers checks them when it samples. Sampling with beams (beam-search
    /// multinomial sampling) is not implemented: it is reported and the beams run without it.
    private static func readSampling(_ g: JSONFields, into c: inout GenerationConfig, ignored: inout [String]) throws {
        let sample = try g.bool("do_sample") ?? false
        if let t = try g.double("temperature") {
            if sample && !(t > 0) { throw g.fail("temperature", "\(t) must be positive when do_sample is true") }
            if t > 0 { c.temperature = Float(t) }
        }
        if let k = try g.int("top_k", in: Int.min...Int.max) {
            if sample && k < 0 { throw g.fail("top_k", "\(k) must not be negative (0 turns it off)") }
            c.topK = max(k, 0)
        }
        if let p = try g.double("top_p") {
            guard p >= 0 && p <= 1 else { throw g.fail("top_p", "\(p) must lie in [0, 1]") }
            c.topP = p
        }
        if let p = try g.double("min_p") {
            guard p >= 0 && p <= 1 else { throw g.fail("min_p", "\(p) must lie in [0, 1]") }
            c.minP = Float(p)
        }
        if sample && c.numBeams > 1 {
            ignored.append("do_sample = true with num_beams = \(c.numBeams) (beam-search sampling; the beams run without sampling)")
        } else {
            c.doSample = sample
        }
        if sample {
            if let p = try g.double("typical_p"), p < 1 { ignored.append("typical_p = \(p)") }
            if let e = try g.double("epsilon_cutoff"), e > 0 { ignored.append("epsilon_cutoff = \(e)") }
            if let e = try g.double("eta_cutoff"), e > 0 { ignored.append("eta_cutoff = \(e)") }
        }
    }
}
