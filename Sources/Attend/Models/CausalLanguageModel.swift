// Decoder-only language models (GPT-2, Llama, Mistral, Qwen2): one protocol so that every
// family generates with the search, logits processors, sampling and streaming code the
// encoder-decoder models use (Generation.swift), plus the per-call cache. Prompts of different
// lengths are left-padded as transformers pads them: the attention mask hides the pads and
// each real token's position counts the real tokens before it (`cumsum(mask) - 1`), so each
// row generates exactly what it would alone.

import Foundation

/// What a decoder-only model remembers between calls: per layer the keys and values of every
/// position so far (only the `kvHeads` stored heads: grouped-query attention never stores a
/// copy per query head), which positions are real tokens (false: left padding), and each
/// row's next position. A value the caller owns: keep it to continue a conversation
/// (``CausalLanguageModel/generate(continuing:appending:cache:config:compute:onStep:)``), copy it to
/// branch. Memory: `layers * rows * capacity * 2 * kvHeads * headDim` floats; capacity doubles
/// as it fills.
public struct CausalLMCache: DecodingCache {
    /// Per layer: keys and values, batch = ``rows``, width `kvHeads * headDim`.
    public internal(set) var layers: [AttentionKV]
    /// `[rows][length]`: true where the cached position holds a real token, false for padding.
    public internal(set) var realPositions: [[Bool]]
    /// Per row, the position the next real token takes (the real tokens cached so far).
    public internal(set) var nextPosition: [Int]
    /// Per row, which of the next appended tokens are real (a left-padded prompt); consumed by
    /// the next append. nil: all real.
    var pendingReal: [[Bool]]? = nil

    /// An empty cache for `rows` rows of a model with `layers` layers and `kvWidth` =
    /// kvHeads x headDim, with room for `capacity` positions before it grows (below 1 counts
    /// as 1). Throws ``GenerationError/invalidInput(_:)`` naming a `layers`, `rows` or
    /// `kvWidth` below 1. Generation checks that the sizes are the model's
    /// (``CausalLanguageModel``'s `checkCache(_:appending:)`). Cost: `layers * rows * capacity
    /// * 2 * kvWidth` zeroed floats.
    public init(layers: Int, rows: Int, kvWidth: Int, capacity: Int = 32) throws {
        guard layers >= 1 && rows >= 1 && kvWidth >= 1 else {
            throw GenerationError.invalidInput("CausalLMCache: layers \(layers), rows \(rows) and kvWidth \(kvWidth) must be at least 1")
        }
        self.init(layers: layers, rows: rows, kvWidth: kvWidth, headDim: 0, capacity: capacity)
    }

    /// The same cache storing each layer's keys and values head by head when `headDim` > 0
    /// (heads of `headDim` floats; see `AttentionKV`'s
    /// `init(batch:modelDim:capacity:appendingHeadMajor:)`): a decoding step reads every head's
    /// cached keys and values as one sequential run. `headDim` 0: position by position.
    init(layers: Int, rows: Int, kvWidth: Int, headDim: Int, capacity: Int) {
        precondition(layers >= 1 && rows >= 1 && kvWidth >= 1, "CausalLMCache: layers \(layers), rows \(rows), width \(kvWidth) must be positive")
        let cap = max(capacity, 1)
        self.layers = (0..<layers).map { _ in
            headDim > 0
                ? AttentionKV(batch: rows, modelDim: kvWidth, capacity: cap, appendingHeadMajor: headDim)
                : AttentionKV(rows: rows, width: kvWidth, capacity: cap)
        }
        self.realPositions = [[Bool]](repeating: [], count: rows)
        self.nextPosition = [Int](repeating: 0, count: rows)
    }

    /// Rows (sequences) the cache holds.
    public var rows: Int { nextPosition.count }
    /// Positions cached so far (pads included), the same for every row.
    public var length: Int { layers[0].count }

    /// Keeps, as new row `i`, old row `indices[i]` (beam expansion and reordering; any rows).
    /// Throws ``GenerationError/invalidInput(_:)`` (the cache unchanged) for an empty
    /// `indices` or an index outside `0..<rows`. Cost: one copy of the cache
    /// (`layers * rows * length * 2 * kvWidth` floats) unless `indices` is the identity.
    public mutating func selectRows(_ indices: [Int]) throws {
        guard !indices.isEmpty else { throw GenerationError.invalidInput("CausalLMCache.selectRows: no rows selected (the cache has \(rows) rows)") }
        if let bad = indices.firstIndex(where: { $0 < 0 || $0 >= rows }) {
            throw GenerationError.invalidInput("CausalLMCache.selectRows: new row \(bad) takes old row \(indices[bad]), outside the cache's \(rows) rows")
        }
        if indices.count == rows && indices.enumerated().allSatisfy({ $0.offset == $0.element }) { return }
        for l in layers.indices { layers[l] = layers[l].selectingRows(indices) }
        realPositions = indices.map { realPositions[$0] }
        nextPosition = indices.map { nextPosition[$0] }
        pendingReal = pendingReal.map { p in indices.map { p[$0] } }
    }

    /// Marks which of the next appended tokens are real per row (`[rows][n]`).
    mutating func markNext(real: [[Bool]]) {
        precondition(real.count == rows, "CausalLMCache.markNext: \(real.count) rows for \(rows)")
        pendingReal = real
    }

    /// Takes `n` new tokens per row into the bookkeeping (the keys and values are appended by
    /// the layers): their positions, as transformers computes them from the attention mask
    /// (a real token at the count of real tokens before it, a pad at 0).
    mutating func advance(steps n: Int) -> [[Int]] {
        let real = pendingReal ?? [[Bool]](repeating: [Bool](repeating: true, count: n), count: rows)
        precondition(real.allSatisfy { $0.count == n }, "CausalLMCache: padding marks of lengths \(real.map(\.count)) for \(n) new tokens")
        pendingReal = nil
        var positions = [[Int]]()
        positions.reserveCapacity(rows)
        for r in 0..<rows {
            var row = [Int]()
            row.reserveCapacity(n)
            for isReal in real[r] {
                row.append(isReal ? nextPosition[r] : 0)
                if isReal { nextPosition[r] += 1 }
            }
            realPositions[r] += real[r]
            positions.append(row)
        }
        return positions
    }

    /// Key padding for attention over the whole cache, or nil when every position is real.
    var keyPadding: [[Bool]]? {
        realPositions.contains { $0.contains(false) } ? realPositions : nil
    }
}

/// A decoder-only (causal) language model: token ids in, next-token logits out, one step at a
/// time against a ``CausalLMCache``. Greedy and beam search, sampling, logits processors and
/// streaming come from ``AutoregressiveDecoder`` (the code the encoder-decoder models use);
/// this protocol adds left-padded batches, prompt checks and kept caches.
public protocol CausalLanguageModel: AutoregressiveDecoder where Cache == CausalLMCache {
    /// A fresh cache for `rows` sequences with room for `capacity` positions (it grows).
    func makeCache(rows: Int, capacity: Int) -> CausalLMCache
    /// The most positions the model can take (GPT-2's learned table), with the config key
    /// that sets it; nil when unlimited (RoPE models, sliding windows included).
    var positionLimit: (limit: Int, setting: String)? { get }
    /// The checkpoint's generation settings (`generation_config.json`).
    var generationDefaults: GenerationConfig { get }
}

extension CausalLanguageModel {
    /// Left-pads `prompts` (any lengths >= 1) with the pad token (`config.padTokenID`, else the
    /// first end token, else 0) into one batch, as transformers' tokenizers pad for
    /// generation, and returns the padded rows with a fresh cache that knows which positions
    /// are pads. Throws ``GenerationError`` for empty prompts, ids outside the vocabulary or a
    /// length past ``positionLimit``.
    public func prepare(prompts: [[Int]], config: GenerationConfig) throws -> (prompt: [[Int]], cache: CausalLMCache) {
        try config.validate(vocabularySize: vocabularySize)
        guard !prompts.isEmpty else { throw GenerationError.invalidInput("no prompts given") }
        try checkTokens(prompts, what: "prompt")
        let width = prompts.map(\.count).max()!
        try checkPositionLimit(config.maxLength(promptLength: width))
        let pad = config.pad ?? 0
        let padded = prompts.map { [Int](repeating: pad, count: width - $0.count) + $0 }
        var cache = makeCache(
            rows: prompts.count, capacity: min(max(initialGenerationCacheCapacity, width + 1), config.maxLength(promptLength: width)))
        if prompts.contains(where: { $0.count != width }) {
            cache.markNext(real: prompts.map { [Bool](repeating: false, count: width - $0.count) + [Bool](repeating: true, count: $0.count) })
        }
        return (padded, cache)
    }

    private func checkTokens(_ rows: [[Int]], what: String) throws {
        let v = vocabularySize
        for (i, row) in rows.enumerated() {
            guard !row.isEmpty else { throw GenerationError.invalidInput("\(what) \(i) is empty") }
            if let bad = row.firstIndex(where: { $0 < 0 || $0 >= v }) {
                throw GenerationError.invalidInput("\(what) \(i), item \(bad): token id \(row[bad]) is outside the vocabulary of \(v)")
            }
        }
    }

    /// Generates from each prompt as transformers' `model.generate(input_ids, attention_mask)`
    /// does for a decoder-only model: greedy search, sampling, or beam search
    /// (`config.numBeams > 1`); `config` defaults to ``generationDefaults``. Prompts may differ
    /// in length: they are left-padded into one batch and each row equals generating that
    /// prompt alone. Returns the rows as `generate` returns them: the (left-padded) prompt
    /// followed by the new tokens, padded at the end with the pad token.
    /// Throws ``GenerationError`` (checked before any work) or `CancellationError`.
    /// Cost: one batched prefill pass over the prompts, then one token per row (and beam) per step.
    public func generate(prompts: [[Int]], config: GenerationConfig? = nil, compute: Compute = .default) throws -> GenerationOutput {
        let config = config ?? generationDefaults
        let (prompt, cache) = try prepare(prompts: prompts, config: config)
        return try generate(prompt: prompt, cache: cache, config: config, compute: compute)
    }

    /// Greedy generation (or sampling) for a batch that keeps its cache: `onStep` receives
    /// each step's tokens (one per row) as soon as they are chosen. Returns the rows (padded
    /// prompt + new tokens) and the cache, which holds every position but the last token's;
    /// pass both to ``generate(continuing:appending:cache:config:compute:onStep:)`` to go on (a
    /// multi-turn conversation) without recomputing the history.
    /// Throws ``GenerationError``, `CancellationError`, or what `onStep` throws.
    public func greedy(
        prompts: [[Int]], config: GenerationConfig? = nil, compute: Compute = .default,
        onStep: ([Int]) throws -> Void = { _ in }
    ) throws -> (sequences: [[Int]], cache: CausalLMCache) {
        let config = config ?? generationDefaults
        var (prompt, cache) = try prepare(prompts: prompts, config: config)
        let sequences = try greedySearch(prompt: prompt, cache: &cache, config: config, compute: compute, onStep: onStep)
        return (sequences, cache)
    }

    /// Continues a conversation: `history` (the rows a previous call returned, one per cache
    /// row) followed by `turn` (new tokens per row, any lengths >= 1; shorter turns are
    /// left-padded, the pads masked) is generated from with greedy search or sampling, reusing
    /// `cache` for the history (only the tokens not yet cached are computed). Returns the rows
    /// (history + turn + new tokens) and updates `cache`.
    /// Throws ``GenerationError`` when the cache does not fit the history, or as ``greedy(prompts:config:compute:onStep:)``.
    public func generate(
        continuing history: [[Int]], appending turn: [[Int]], cache: inout CausalLMCache,
        config: GenerationConfig? = nil, compute: Compute = .default,
        onStep: ([Int]) throws -> Void = { _ in }
    ) throws -> [[Int]] {
        let config = config ?? generationDefaults
        try config.validate(vocabularySize: vocabularySize)
        guard history.count == cache.rows, let h = history.first?.count, history.allSatisfy({ $0.count == h }),
            h >= cache.length, h - cache.length <= 1
        else {
            throw GenerationError.invalidInput(
                "history of \(history.count) rows (lengths \(history.map(\.count).prefix(4))) does not continue a cache of \(cache.rows) rows and \(cache.length) positions"
            )
        }
        guard turn.count == history.count else { throw GenerationError.invalidInput("\(turn.count) turns for \(history.count) rows") }
        try checkTokens(turn, what: "turn")
        let width = turn.map(\.count).max()!
        try checkPositionLimit(config.maxLength(promptLength: h + width))
        let pad = config.pad ?? 0
        let rows = zip(history, turn).map { $0 + [Int](repeating: pad, count: width - $1.count) + $1 }
        let uncached = h - cache.length  // the last token of a greedy call was never fed
        if turn.contains(where: { $0.count != width }) || uncached > 0 {
            cache.markNext(
                real: turn.map {
                    [Bool](repeating: true, count: uncached) + [Bool](repeating: false, count: width - $0.count)
                        + [Bool](repeating: true, count: $0.count)
                })
        }
        return try greedySearch(prompt: rows, cache: &cache, config: config, compute: compute, onStep: onStep)
    }

    /// Greedy generation (or sampling) from one prompt as a stream of token ids, each
    /// delivered as soon as it is computed (an end token, if produced, is the last element).
    /// Runs in a detached task; cancelling the consumer, breaking out or dropping the stream
    /// stops it at the next step.
    public func stream(prompt: [Int], config: GenerationConfig? = nil, compute: Compute = .default) -> AsyncThrowingStream<Int, Error> {
        let config = config ?? generationDefaults
        return tokenStream(eosTokenIDs: config.eosTokenIDs) { onStep in
            _ = try self.greedy(prompts: [prompt], config: config, compute: compute, onStep: onStep)
        }
    }
}
