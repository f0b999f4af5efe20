// Generation: greedy search, beam search and a token stream, written against a small
// protocol (a step function giving the logits of the last position, and a cache whose rows
// can be selected) so that every decoder in the package - the paper's TransformerModel, T5,
// Marian - generates with the same code. The semantics follow Hugging Face transformers'
// `generate` (greedy `_sample` and the vectorized `_beam_search`), so that ids match it.

import Foundation

/// Per-call decoding state that generation can duplicate and reorder by rows (the beams).
public protocol DecodingCache: Sendable {
    /// Rows the cache holds (batch, or batch x beams).
    var rows: Int { get }
    /// Positions already cached (the same for every row): generation feeds a prompt from
    /// this position on, so a kept cache continues without recomputing its history.
    var length: Int { get }
    /// Keeps, as new row `i`, old row `indices[i]`. Generation calls it to expand a batch into
    /// beams (`[0, 0, 0, 1, 1, 1]` for 2 inputs x 3 beams) and to reorder beams after each
    /// step; every index it passes keeps a row within its input's group of beams. Throws
    /// (``GenerationError/invalidInput(_:)`` for Attend's caches) for indices that are not rows
    /// of the cache, leaving it unchanged.
    mutating func selectRows(_ indices: [Int]) throws
}

extension KVCache: DecodingCache {}

/// A model that decodes one step at a time against a cache it extends: all the generation
/// code needs from a decoder (the paper's seq2seq model, T5, Marian, a decoder-only LM).
public protocol AutoregressiveDecoder: Sendable {
    /// The per-call state (keys and values of the positions decoded so far).
    associatedtype Cache: DecodingCache
    /// The number of logits per position (V).
    var vocabularySize: Int { get }
    /// Appends `tokens` (`cache.rows` rows of n >= 1 ids each, the same n for every row) to
    /// the cache at positions `cache.length ..< cache.length + n` and returns the logits of
    /// the last new position of each row: `[cache.rows, V]`. The ids must lie in the
    /// vocabulary, the positions within the model's limit and the cache must be this model's
    /// (generation checks all of them before it calls this; anything else is a precondition
    /// failure): a caller stepping with tokens or a cache it was handed calls
    /// ``checkedNextTokenLogits(appending:to:compute:)``, which checks them and throws.
    func nextTokenLogits(appending tokens: [[Int]], to cache: inout Cache, compute: Compute) -> Tensor
    /// The most positions a row may hold, prompt and generated tokens together (a stored
    /// position table: GPT-2's `n_positions`, Marian's `max_position_embeddings`), with the
    /// configuration key that sets it; nil when unlimited (the default). Generation throws
    /// ``GenerationError/exceedsPositionLimit(setting:limit:requested:)`` for a prompt plus
    /// `maxNewTokens` past it, before any work.
    var positionLimit: (limit: Int, setting: String)? { get }
    /// Throws ``GenerationError/invalidInput(_:)`` when `cache` cannot take the next
    /// `appending` tokens per row: a cache another model made (other layer count or widths),
    /// or one prepared for other prompts. Generation calls it before any work, so that such
    /// a cache is a thrown error rather than a precondition failure in
    /// ``nextTokenLogits(appending:to:compute:)``. The default accepts every cache. Cost: O(layers + rows).
    func checkCache(_ cache: Cache, appending: Int) throws
}

extension AutoregressiveDecoder {
    /// No position limit: a decoder without a stored position table (RoPE, relative
    /// positions, sinusoids computed on demand).
    public var positionLimit: (limit: Int, setting: String)? { nil }

    /// Accepts every cache (a decoder whose caches cannot disagree with it).
    public func checkCache(_ cache: Cache, appending: Int) throws {}
}

/// When beam search stops (Hugging Face's `early_stopping`).
public enum EarlyStopping: Sendable, Hashable {
    /// `True`: stop an input as soon as it has `numBeams` finished hypotheses.
    case whenBeamsFinished
    /// `False` (the default): stop when the best running beam, at its current length, can no
    /// longer beat the worst finished hypothesis.
    case heuristic
    /// `"never"`: as `heuristic`, but with a positive length penalty assume the running beam
    /// could grow to the maximum length (the canonical beam search with `lengthPenalty` 0).
    case never
}

/// A hook that edits the scores of the next token before selection: `scores` is `[rows,
/// V]` (raw logits in greedy search, log-probabilities in beam search, as in Hugging Face),
/// `sequences` the tokens of each row so far (prompt included). Set a score to `-infinity`
/// to forbid a token.
public typealias LogitsProcessor = @Sendable (_ scores: inout Tensor, _ sequences: [[Int]]) -> Void

/// How to generate: lengths, special tokens, beam search, repetition controls and sampling,
/// with Hugging Face's meaning and defaults (`max_new_tokens`, `min_new_tokens`,
/// `eos_token_id`, `pad_token_id`, `num_beams`, `length_penalty`, `early_stopping`,
/// `num_return_sequences`, `forced_bos_token_id`, `forced_eos_token_id`, `suppress_tokens`,
/// `repetition_penalty`, `no_repeat_ngram_size`, `do_sample`, `temperature`, `top_k`,
/// `top_p`, `min_p`).
public struct GenerationConfig: Sendable {
    /// Tokens to generate at most, after the prompt.
    public var maxNewTokens: Int
    /// While fewer tokens than this have been generated, end-of-sequence is forbidden.
    public var minNewTokens: Int = 0
    /// Tokens that end a sequence (empty: only the length limit stops).
    public var eosTokenIDs: [Int] = []
    /// Filler after a sequence ends (greedy) or past a shorter hypothesis (beam search).
    /// nil: the first end-of-sequence token, as Hugging Face does.
    public var padTokenID: Int? = nil
    /// Beams per input; 1 means greedy search; at most ``maxBeams``.
    public var numBeams: Int = 1
    /// The most beams a search may keep per input (4096): far past any useful width, and low
    /// enough that `inputs * 2 * numBeams` candidates and their caches cannot overflow.
    public static let maxBeams = 4096
    /// Beam scores are `sum of log-probabilities / generatedLength ^ lengthPenalty`.
    public var lengthPenalty: Float = 1
    /// When beam search stops.
    public var earlyStopping: EarlyStopping = .heuristic
    /// Hypotheses returned per input by beam search (at most `numBeams`).
    public var numReturnSequences: Int = 1
    /// Forced as the first generated token (mBART's language code).
    public var forcedBOSTokenID: Int? = nil
    /// Forced as the last token when the maximum length is reached (Marian, BART).
    public var forcedEOSTokenID: Int? = nil
    /// Tokens never generated (Hugging Face `suppress_tokens`, or single-token `bad_words_ids`).
    public var suppressedTokenIDs: [Int] = []
    /// A model-specific score edit, applied after the built-in ones (before the sampling
    /// warpers).
    public var logitsProcessor: LogitsProcessor? = nil
    /// Hugging Face `repetition_penalty`: each token already in a row (prompt included) has
    /// its score divided by this when positive, multiplied when negative (1: off; > 1
    /// discourages repeats, < 1 encourages them).
    public var repetitionPenalty: Float = 1
    /// Hugging Face `no_repeat_ngram_size`: no n-gram of this many tokens occurs twice in a
    /// row's sequence (prompt included); 0: off.
    public var noRepeatNGramSize: Int = 0
    /// Hugging Face `do_sample`: draw each token from the processed distribution instead of
    /// taking the argmax (greedy search only: `numBeams` must be 1).
    public var doSample: Bool = false
    /// Sampling: logits are divided by this first (`temperature`, > 0).
    public var temperature: Float = 1
    /// Sampling: only the `topK` most probable tokens (and ties with the last) are kept;
    /// 0: off. Hugging Face's default is 50.
    public var topK: Int = 50
    /// Sampling: only the most probable tokens whose probabilities sum to `topP` are kept
    /// (nucleus sampling, in [0, 1]; 1: off). A Double, as transformers' `top_p`: the cut
    /// compares float32 running sums with `Float(1 - topP)`, which a Float `topP` would shift.
    public var topP: Double = 1
    /// Sampling: tokens less probable than `minP` x the most probable one are dropped (in
    /// [0, 1]; nil: off).
    public var minP: Float? = nil
    /// Sampling: the seed of the random draws. Row r draws from its own stream of this seed,
    /// so the same seed gives the same ids for any thread count.
    public var seed: UInt64 = 0
    /// Strings that end a row when its text comes to contain one (transformers'
    /// `stop_strings`; greedy search and sampling only). A row that stops continues with the
    /// pad token when there is one (``padTokenID`` or an end token), as transformers pads it.
    public var stopStrings: StopStrings? = nil

    /// A configuration that generates up to `maxNewTokens` tokens, stopping at `eosTokenID`.
    public init(maxNewTokens: Int, eosTokenID: Int? = nil, numBeams: Int = 1) {
        self.maxNewTokens = maxNewTokens
        self.eosTokenIDs = eosTokenID.map { [$0] } ?? []
        self.numBeams = numBeams
    }

    /// The filler token: `padTokenID`, else the first end-of-sequence token.
    var pad: Int? { padTokenID ?? eosTokenIDs.first }

    /// Throws ``GenerationError/invalidConfig(_:)`` naming the first setting out of range for a
    /// vocabulary of `v` tokens.
    public func validate(vocabularySize v: Int) throws {
        func fail(_ message: String) -> GenerationError { .invalidConfig(message) }
        guard maxNewTokens >= 1 else { throw fail("maxNewTokens \(maxNewTokens) must be at least 1") }
        guard minNewTokens >= 0 else { throw fail("minNewTokens \(minNewTokens) must not be negative") }
        guard numBeams >= 1 && numBeams <= Self.maxBeams else { throw fail("numBeams \(numBeams) must lie in 1...\(Self.maxBeams)") }
        if stopStrings != nil && numBeams > 1 { throw fail("stop strings apply to greedy search and sampling, not to beam search (numBeams \(numBeams))") }
        guard numReturnSequences >= 1 && numReturnSequences <= numBeams else {
            throw fail("numReturnSequences \(numReturnSequences) must lie in 1...numBeams (\(numBeams))")
        }
        guard numBeams == 1 || v >= 2 else { throw fail("beam search needs a vocabulary of at least 2 tokens, got \(v)") }
        guard lengthPenalty.isFinite else { throw fail("lengthPenalty \(lengthPenalty) must be finite") }
        guard repetitionPenalty.isFinite && repetitionPenalty > 0 else {
            throw fail("repetitionPenalty \(repetitionPenalty) must be a positive number")
        }
        guard noRepeatNGramSize >= 0 else { throw fail("noRepeatNGramSize \(noRepeatNGramSize) must not be negative") }
        if doSample {
            guard numBeams == 1 else {
                throw fail("sampling with beams (numBeams \(numBeams)) is not supported: set numBeams to 1 or doSample to false")
            }
            guard temperature.isFinite && temperature > 0 else { throw fail("temperature \(temperature) must be a positive number") }
            guard topK >= 0 else { throw fail("topK \(topK) must not be negative (0 turns it off)") }
            guard topP >= 0 && topP <= 1 else { throw fail("topP \(topP) must lie in [0, 1]") }
            if let minP { guard minP >= 0 && minP <= 1 else { throw fail("minP \(minP) must lie in [0, 1]") } }
        }
        let named: [(String, [Int])] = [
            ("eosTokenIDs", eosTokenIDs), ("suppressedTokenIDs", suppressedTokenIDs),
            ("padTokenID", padTokenID.map { [$0] } ?? []),
            ("forcedBOSTokenID", forcedBOSTokenID.map { [$0] } ?? []),
            ("forcedEOSTokenID", forcedEOSTokenID.map { [$0] } ?? []),
        ]
        for (name, ids) in named {
            if let bad = ids.first(where: { $0 < 0 || $0 >= v }) {
                throw fail("\(name): token id \(bad) is outside the vocabulary of \(v)")
            }
        }
    }

    /// The length generation stops at: `promptLength + maxNewTokens`, saturating at `Int.max`
    /// (a limit meant as "until the end token" must not overflow).
    func maxLength(promptLength: Int) -> Int {
        let (sum, overflow) = promptLength.addingReportingOverflow(maxNewTokens)
        return overflow ? Int.max : sum
    }
}

/// A generation request that cannot be carried out, found before any work is done.
public enum GenerationError: Error, Equatable, CustomStringConvertible {
    /// A ``GenerationConfig`` setting out of range (the message names it).
    case invalidConfig(String)
    /// A prompt, source or start token the model cannot take (the message says which).
    case invalidInput(String)
    /// The requested length passes a hard limit of the model: `limit` positions (the stored
    /// position table, named by `setting`, e.g. `max_position_embeddings`), `requested`
    /// positions asked for (prompt plus `maxNewTokens`).
    case exceedsPositionLimit(setting: String, limit: Int, requested: Int)

    /// One line saying what is wrong, for logs and command-line errors.
    public var description: String {
        switch self {
        case .invalidConfig(let m): return "generation settings: \(m)"
        case .invalidInput(let m): return "generation input: \(m)"
        case .exceedsPositionLimit(let setting, let limit, let requested):
            if limit < 2 {
                return "the model's position table holds \(limit) position (\(setting) = \(limit)): no room to generate after the start token"
            }
            let asked = requested == Int.max ? "more positions than an Int holds" : "\(requested) positions"
            return
                "the model's position table holds \(limit) positions (\(setting) = \(limit)), and prompt plus maxNewTokens ask for \(asked); lower maxNewTokens"
        }
    }
}

/// What generation returns: one row per input (greedy) or `numReturnSequences` rows per
/// input (beam search, best first), each starting with its prompt. Rows are padded to one
/// length with the pad token, as Hugging Face returns them.
public struct GenerationOutput: Sendable, Equatable {
    /// Prompt plus generated tokens, `[rows][length]`.
    public var sequences: [[Int]]
    /// Beam search: each returned hypothesis's length-penalized score; nil for greedy search.
    public var scores: [Float]?
}

extension AutoregressiveDecoder {
    /// One step as ``nextTokenLogits(appending:to:compute:)`` takes it (`tokens`:
    /// `cache.rows` rows of n >= 1 ids; returns the logits of each row's last new position,
    /// `[cache.rows, V]`), for tokens and a cache a caller was handed: throws
    /// ``GenerationError/invalidInput(_:)`` unless there is one row per cache row, all of one
    /// length n >= 1, with ids in `0..<vocabularySize`, and the cache fits the model
    /// (``checkCache(_:appending:)``); throws
    /// ``GenerationError/exceedsPositionLimit(setting:limit:requested:)`` when
    /// `cache.length + n` passes ``positionLimit``. All is checked before any work: after a
    /// throw the cache is as it was. Cost: the step's, plus O(n * rows + layers) for the checks.
    public func checkedNextTokenLogits(appending tokens: [[Int]], to cache: inout Cache, compute: Compute = .default) throws -> Tensor {
        let n = try checkTokenRows(tokens, count: cache.rows, what: "token", against: "a cache of \(cache.rows) rows", vocabulary: vocabularySize)
        try checkCache(cache, appending: n)
        let (end, overflow) = cache.length.addingReportingOverflow(n)
        try checkPositionLimit(overflow ? .max : end)
        return nextTokenLogits(appending: tokens, to: &cache, compute: compute)
    }

    /// Greedy search or beam search (`config.numBeams > 1`) from `prompt` (one row per input,
    /// all of one length; for an encoder-decoder model the decoder start token) using `cache`,
    /// which must hold `prompt.count` rows (beam search expands it). Throws
    /// `CancellationError` when the surrounding task is cancelled (checked every step).
    /// Throws ``GenerationError`` for settings or a prompt out of range, or a prompt plus
    /// `maxNewTokens` past ``positionLimit``.
    /// Cost: `maxNewTokens` decoder steps of `rows` (x beams) tokens each at most; memory
    /// grows with the tokens actually generated, never with `maxNewTokens`.
    public func generate(prompt: [[Int]], cache: Cache, config: GenerationConfig, compute: Compute = .default) throws -> GenerationOutput {
        var cache = cache
        if config.numBeams > 1 { return try beamSearch(prompt: prompt, cache: &cache, config: config, compute: compute) }
        return GenerationOutput(sequences: try greedySearch(prompt: prompt, cache: &cache, config: config, compute: compute), scores: nil)
    }

    /// Greedy search or sampling (Hugging Face `_sample`): each step feeds one token per
    /// row, applies the logits processors to the logits, takes the argmax (the first on
    /// ties) or, with `config.doSample`, draws from the processed distribution (row r with
    /// its own generator seeded by `config.seed` and r); a row that produced end-of-sequence
    /// (or completed one of `config.stopStrings`) continues with the pad token; stops when every row has ended or `maxNewTokens` tokens
    /// are generated. `onStep` receives each step's tokens (one per row). Returns the rows,
    /// prompt included. Throws ``GenerationError`` for settings or a prompt out of range, a
    /// prompt plus `maxNewTokens` past ``positionLimit`` (or
    /// a sampling step with every token forbidden), `CancellationError` when the task is
    /// cancelled, or what `onStep` throws.
    public func greedySearch(
        prompt: [[Int]], cache: inout Cache, config: GenerationConfig, compute: Compute = .default,
        onStep: ([Int]) throws -> Void = { _ in }
    ) throws -> [[Int]] {
        let v = vocabularySize
        try config.validate(vocabularySize: v)
        let promptLength = try checkPrompt(prompt, cache: cache)
        let maxLength = config.maxLength(promptLength: promptLength)
        try checkPositionLimit(maxLength)
        let eos = Set(config.eosTokenIDs)
        var sequences = prompt
        var unfinished = [Bool](repeating: true, count: prompt.count)
        var feed = prompt.map { Array($0[cache.length...]) }  // what the cache does not hold yet
        var rngs = (0..<prompt.count).map { SamplingRNG(seed: config.seed, row: $0) }
        while true {
            try Task.checkCancellation()
            var scores = nextTokenLogits(appending: feed, to: &cache, compute: compute)  // [rows, V]
            precondition(
                scores.shape == [prompt.count, v], "greedySearch: the model returned logits \(scores.shape), expected [\(prompt.count), \(v)]")
            applyProcessors(&scores, sequences: sequences, promptLength: promptLength, maxLength: maxLength, config: config)
            var next = try config.doSample ? sampleRows(scores, rngs: &rngs, step: sequences[0].count - promptLength) : argmaxRows(scores)  // [rows]
            if let pad = config.pad {
                for r in next.indices where !unfinished[r] { next[r] = pad }
            }
            for r in next.indices { sequences[r].append(next[r]) }
            try onStep(next)
            let atMax = sequences[0].count >= maxLength
            for r in next.indices where atMax || eos.contains(next[r]) { unfinished[r] = false }
            if let stop = config.stopStrings {
                for r in next.indices where unfinished[r] && stop.endsWithStop(sequences[r]) { unfinished[r] = false }
            }
            if !unfinished.contains(true) { break }
            feed = next.map { [$0] }
        }
        return sequences
    }

    /// Beam search as Hugging Face's vectorized `_beam_search` does it, so that its ids are
    /// reproduced: per input, running beams start as `numBeams` copies of the prompt (only the
    /// first with score 0, the others -1e9); each step adds the log-softmax of the logits
    /// (after the logits processors) to the running scores, keeps the top `2 * numBeams`
    /// (more with several end tokens) continuations over all beams, moves those among the top
    /// `numBeams` that end (end token or maximum length) into the finished set with score
    /// `sum / generatedLength ^ lengthPenalty` when they beat its worst, and continues the
    /// best `numBeams` that did not end. Stops as ``EarlyStopping`` says, at the maximum
    /// length, or when no continuation is possible. Scores are float32 with the reference's
    /// -1e9 sentinels; ties keep the lower index. Returns the best `numReturnSequences`
    /// finished hypotheses per input, best first, padded to one length.
    /// Throws ``GenerationError`` for settings or a prompt out of range, or a prompt plus
    /// `maxNewTokens` past ``positionLimit``; `CancellationError` when the task is cancelled.
    /// Cost: `maxNewTokens` steps of `inputs * numBeams` tokens, plus per step a copy of the
    /// self-attention cache to reorder the beams and O(numBeams * V) selection per input.
    public func beamSearch(prompt: [[Int]], cache: inout Cache, config: GenerationConfig, compute: Compute = .default) throws -> GenerationOutput {
        let v = vocabularySize
        try config.validate(vocabularySize: v)
        let promptLength = try checkPrompt(prompt, cache: cache)
        let batch = prompt.count, beams = config.numBeams
        let maxLength = config.maxLength(promptLength: promptLength)
        try checkPositionLimit(maxLength)
        let eos = Set(config.eosTokenIDs)
        // Candidates kept per step: as transformers, one more beam's worth per end token
        // (distinct ones: a repeated id adds no hit), never more than there are continuations.
        let keep = min(max(2, 1 + eos.count) * beams, beams * v)
        let lp = config.lengthPenalty
        let sentinel: Float = -1.0e9
        let byLength = { (length: Int) -> Float in Float(pow(Double(length), Double(lp))) }

        try cache.selectRows((0..<(batch * beams)).map { $0 / beams })
        var running = prompt.map { p in [[Int]](repeating: p, count: beams) }  // [batch][beams][len]
        var runningScores = [[Float]](repeating: [0] + [Float](repeating: sentinel, count: beams - 1), count: batch)
        var finished = running  // [batch][beams][len]: hypotheses that ended
        var finishedScores = [[Float]](repeating: [Float](repeating: sentinel, count: beams), count: batch)
        var isFinished = [[Bool]](repeating: [Bool](repeating: false, count: beams), count: batch)
        var improvable = [Bool](repeating: true, count: batch)  // HF: is_early_stop_heuristic_unsatisfied
        var length = promptLength
        var feed = running.flatMap { $0.map { Array($0[cache.length...]) } }  // the prompt (what is not cached) on the first step

        while true {
            try Task.checkCancellation()
            let logits = nextTokenLogits(appending: feed, to: &cache, compute: compute)  // [batch*beams, V]
            precondition(
                logits.shape == [batch * beams, v], "beamSearch: the model returned logits \(logits.shape), expected [\(batch * beams), \(v)]")
            var logProbs = logSoftmaxRows(logits)  // [batch*beams, V]
            applyProcessors(&logProbs, sequences: running.flatMap { $0 }, promptLength: promptLength, maxLength: maxLength, config: config)
            var allHit = true
            var reorder: [Int] = []
            reorder.reserveCapacity(batch * beams)
            let lpb = logProbs.scalars  // [batch*beams * V]
            do {
                for b in 0..<batch {
                    // c. The top `keep` continuations over every beam of this input.
                    let top = topCandidates(
                        lpb, rowOffset: b * beams, beams: beams, vocabulary: v,
                        runningScores: runningScores[b], keep: keep)
                    let candidates = top.map { (score: $0.score, beam: $0.index / v, token: $0.index % v) }
                    let hits = candidates.map { eos.contains($0.token) || length + 1 >= maxLength }
                    if hits.contains(false) { allHit = false }
                    // e. The best `beams` continuations that did not end keep running.
                    let runningCandidateScores = zip(candidates, hits).map { $0.score + ($1 ? sentinel : 0) }
                    let next = topIndices(runningCandidateScores, count: beams)
                    var newRunning: [[Int]] = []
                    for c in next {
                        newRunning.append(running[b][candidates[c].beam] + [candidates[c].token])
                        reorder.append(b * beams + candidates[c].beam)
                    }
                    // f. Hypotheses among the top `beams` that just ended join the finished set.
                    let full = config.earlyStopping == .whenBeamsFinished && !isFinished[b].contains(false)
                    var mergedScores = finishedScores[b]
                    var mergedFinished = isFinished[b]
                    for (c, cand) in candidates.enumerated() {
                        let justFinished = hits[c] && c < beams
                        var s = cand.score / byLength(length + 1 - promptLength)
                        if full { s += sentinel }
                        if !improvable[b] { s += sentinel }
                        if !justFinished { s += sentinel }
                        mergedScores.append(s)
                        mergedFinished.append(justFinished)
                    }
                    let best = topIndices(mergedScores, count: beams)
                    let oldFinished = finished[b]
                    finished[b] = best.map { i in
                        i < beams ? oldFinished[i] : running[b][candidates[i - beams].beam] + [candidates[i - beams].token]
                    }
                    finishedScores[b] = best.map { mergedScores[$0] }
                    isFinished[b] = best.map { mergedFinished[$0] }
                    running[b] = newRunning
                    runningScores[b] = next.map { runningCandidateScores[$0] }
                }
            }
            // g. Reorder the cache to the surviving beams; decide whether to go on.
            try cache.selectRows(reorder)
            length += 1
            for b in 0..<batch {
                let bestLength = config.earlyStopping == .never && lp > 0 ? maxLength - promptLength : length - promptLength
                let bestPossible = runningScores[b][0] / byLength(bestLength)
                let worst = finishedScores[b].min()!
                improvable[b] = improvable[b] && isFinished[b].contains { bestPossible > ($0 ? worst : sentinel) }
            }
            let allFinished = !isFinished.joined().contains(false)
            let goOn = improvable.contains(true) && !(allFinished && config.earlyStopping == .whenBeamsFinished) && !allHit
            if !goOn { break }
            feed = running.flatMap { $0.map { [$0.last!] } }
        }

        // The best hypotheses, padded to the longest returned one.
        let fill = config.eosTokenIDs.isEmpty ? -1 : (config.padTokenID.flatMap { $0 != 0 ? $0 : nil } ?? config.eosTokenIDs[0])
        let chosen = finished.flatMap { $0.prefix(config.numReturnSequences) }
        let width = chosen.map(\.count).max()!
        return GenerationOutput(
            sequences: chosen.map { $0 + [Int](repeating: fill, count: width - $0.count) },
            scores: finishedScores.flatMap { $0.prefix(config.numReturnSequences) })
    }

    /// A stream of single tokens from `run`, which generates for one row and calls the hook
    /// it is given with each step's tokens: each token is yielded as soon as it is chosen and
    /// the stream finishes after an end token (`eosTokenIDs`) or when `run` returns. `run`
    /// runs in a detached task; cancelling the consumer, breaking out of the loop or dropping
    /// the stream cancels it at the next step (tokens computed before that are still
    /// delivered). Shared by the encoder-decoder and decoder-only streams.
    func tokenStream(
        eosTokenIDs: [Int],
        _ run: @escaping @Sendable (_ onStep: ([Int]) throws -> Void) throws -> Void
    ) -> AsyncThrowingStream<Int, Error> {
        let eos = Set(eosTokenIDs)
        return AsyncThrowingStream { continuation in
            let task = detachedBlockingTask {
                do {
                    try run { tokens in
                        try Task.checkCancellation()
                        continuation.yield(tokens[0])
                        if eos.contains(tokens[0]) { continuation.finish() }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Greedy search as an asynchronous stream: each element is one step's tokens, one per
    /// row (pad for rows that have ended), as soon as it is computed. The work runs in a
    /// detached task that checks for cancellation before every step: cancelling the consuming
    /// task, breaking out of the loop or dropping the stream stops the work at the next step
    /// (tokens computed before that are still delivered, then the iteration ends). The stream
    /// finishes after the last step, or with the error ``greedySearch(prompt:cache:config:compute:onStep:)``
    /// throws (a ``GenerationError`` before the first step).
    public func greedyStream(
        prompt: [[Int]], cache: Cache, config: GenerationConfig,
        compute: Compute = .default
    ) -> AsyncThrowingStream<[Int], Error> {
        AsyncThrowingStream { continuation in
            let task = detachedBlockingTask {
                do {
                    var cache = cache
                    _ = try self.greedySearch(prompt: prompt, cache: &cache, config: config, compute: compute) { tokens in
                        continuation.yield(tokens)
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// The common prompt length; throws ``GenerationError/invalidInput(_:)`` unless the
    /// prompt has one row per cache row, all of one length >= 1 and longer than what the
    /// cache holds, with ids in the vocabulary, and the cache fits the model
    /// (``checkCache(_:appending:)``).
    private func checkPrompt(_ prompt: [[Int]], cache: Cache) throws -> Int {
        let n = try checkTokenRows(prompt, count: cache.rows, what: "prompt", against: "a cache of \(cache.rows) rows", vocabulary: vocabularySize)
        guard n > cache.length else {
            throw GenerationError.invalidInput("prompt rows of \(n) tokens add nothing to a cache of \(cache.length) positions")
        }
        try checkCache(cache, appending: n - cache.length)
        return n
    }

    /// Throws ``GenerationError/exceedsPositionLimit(setting:limit:requested:)`` when rows of
    /// `maxLength` tokens (prompt plus `maxNewTokens`, saturated) pass ``positionLimit``.
    func checkPositionLimit(_ maxLength: Int) throws {
        if let (limit, setting) = positionLimit, maxLength > limit {
            throw GenerationError.exceedsPositionLimit(setting: setting, limit: limit, requested: maxLength)
        }
    }
}

/// The common length of `rows` (token ids of a prompt or targets); throws
/// ``GenerationError/invalidInput(_:)`` unless there are `count` >= 1 rows, all of one
/// length >= 1, with ids in `0..<v`. `what` and `against` name them in the message.
/// Cost: O(total tokens).
func checkTokenRows(_ rows: [[Int]], count: Int, what: String, against: String, vocabulary v: Int) throws -> Int {
    guard !rows.isEmpty && rows.count == count else {
        throw GenerationError.invalidInput("\(rows.count) \(what) rows for \(against)")
    }
    let n = rows[0].count
    guard n >= 1 && rows.allSatisfy({ $0.count == n }) else {
        throw GenerationError.invalidInput("\(what) rows must be non-empty and of one length, got lengths \(rows.map(\.count))")
    }
    for (r, row) in rows.enumerated() {
        if let bad = row.firstIndex(where: { $0 < 0 || $0 >= v }) {
            throw GenerationError.invalidInput("\(what) row \(r), item \(bad): token id \(row[bad]) is outside the vocabulary of \(v)")
        }
    }
    return n
}

// MARK: - Score helpers

/// One token per row of `[rows, V]` processed scores, drawn from `softmax` of the row with
/// that row's generator. Throws ``GenerationError/invalidConfig(_:)`` when a row forbids
/// every token (nothing to draw), naming the step.
func sampleRows(_ scores: Tensor, rngs: inout [SamplingRNG], step: Int) throws -> [Int] {
    let rows = scores.shape[0]
    return try (0..<rows).map { r in
        guard let t = sampleToken(scores.row(r), rng: &rngs[r]) else {
            throw GenerationError.invalidConfig(
                "sampling step \(step), row \(r): the settings forbid every token (no-repeat n-grams, suppressed tokens, top-k/top-p/min-p), nothing to draw from"
            )
        }
        return t
    }
}

/// Index of the largest value of each row of `[rows, V]` (the first on ties; NaN counts as
/// largest, as `torch.argmax`: the first NaN of a row that has one). Cost: one pass over each
/// row in vectors of 16, then a scan up to the chosen index.
func argmaxRows(_ x: Tensor) -> [Int] {
    let (rows, v) = (x.shape[0], x.shape[1])
    return x.withUnsafeBufferPointer { p in
        (0..<rows).map { r in argmaxFirst(p.baseAddress! + r * v, v) }
    }
}

/// The index `argmaxRows` picks in the `n` floats at `p` (0 when `n` is 0): the first NaN if
/// there is one, else the first index holding the maximum.
private func argmaxFirst(_ p: UnsafePointer<Float>, _ n: Int) -> Int {
    typealias V = SIMD16<Float>
    let raw = UnsafeRawPointer(p)
    var top = V(repeating: -.infinity)
    var nan = SIMDMask<V.MaskStorage>(repeating: false)
    var j = 0
    while j + 16 <= n {
        let c = raw.loadUnaligned(fromByteOffset: 4 * j, as: V.self)
        nan .|= c .!= c
        top.replace(with: c, where: c .> top)
        j += 16
    }
    var hasNaN = any(nan), best = top.max()
    while j < n {
        hasNaN = hasNaN || p[j].isNaN
        best = Swift.max(best, p[j])
        j += 1
    }
    if hasNaN { return (0..<n).first { p[$0].isNaN }! }
    return (0..<n).first { p[$0] == best } ?? 0
}

/// `x - max - log(sum(exp(x - max)))` per row of `[rows, V]` (PyTorch's log_softmax), with
/// the sum accumulated in Double.
func logSoftmaxRows(_ x: Tensor) -> Tensor {
    let rows = x.shape[0]
    var out = x
    for r in 0..<rows {
        var row = out.row(r)  // [V]
        let m = row.max() ?? 0
        if !m.isFinite { continue }  // all -inf (or inf/NaN present): leave as is
        var sum = 0.0
        for value in row { sum += exp(Double(value - m)) }
        let logSum = Float(log(sum))
        for j in row.indices { row[j] = row[j] - m - logSum }
        out.setRow(r, row)
    }
    return out
}

/// Orders values for selection: NaN above everything (as `torch.topk`).
@inline(__always) private func selectionKey(_ x: Float) -> Float { x.isNaN ? .infinity : x }

/// The `count` largest of `values`, as indices, largest first; ties keep the lower index.
func topIndices(_ values: [Float], count: Int) -> [Int] {
    Array(
        values.indices.sorted { a, b in
            let (x, y) = (selectionKey(values[a]), selectionKey(values[b]))
            return x > y || (x == y && a < b)
        }.prefix(count))
}

/// The `keep` best continuations of one input's beams: for beam j and token t, score
/// `logProbs[rowOffset + j][t] + runningScores[j]` at flat index `j * V + t`. Largest
/// first; ties keep the lower flat index. Cost: O(beams * V) plus O(keep) per insertion.
func topCandidates(
    _ logProbs: [Float], rowOffset: Int, beams: Int, vocabulary v: Int,
    runningScores: [Float], keep: Int
) -> [(score: Float, index: Int)] {
    var top: [(score: Float, index: Int)] = []
    top.reserveCapacity(min(keep, beams * v) + 1)
    for j in 0..<beams {
        let base = (rowOffset + j) * v
        let running = runningScores[j]
        for t in 0..<v {
            let s = logProbs[base + t] + running
            let key = selectionKey(s)
            if top.count == keep, key <= selectionKey(top[keep - 1].score) { continue }
            // Insert after every entry with a key >= this one (they have lower indices).
            var lo = 0, hi = top.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if selectionKey(top[mid].score) >= key { lo = mid + 1 } else { hi = mid }
            }
            top.insert((s, j * v + t), at: lo)
            if top.count > keep { top.removeLast() }
        }
    }
    return top
}
