// GPT-2 and the Llama family (Llama, Mistral, Qwen2) as one pre-LN decoder stack:
//
//                  GPT-2                                Llama / Mistral / Qwen2
//   positions      learned table added to embeddings    RoPE on queries and keys (rope_theta, scaling)
//   norms          LayerNorm with bias                  RMSNorm
//   attention      fused c_attn (Conv1D [in, out],      q/k/v (fused at load), grouped K/V heads,
//                  transposed once at load), biases     biases: Qwen2 q/k/v, Llama attention_bias
//   feed-forward   gelu_new(c_fc x) -> c_proj           down(silu(gate x) * up x)
//   head           tied to wte                          lm_head, or tied to embed_tokens
//
//   x = embed(ids) (+ wpe[pos]);  per layer: x += attn(norm1(x));  x += ffn(norm2(x));
//   logits = head(norm_f(x at the last position))
//
// Sliding-window layers (Mistral, Qwen2 with use_sliding_window) attend to the last
// `sliding_window` cache positions only (the kernels skip the rest). The cache keeps every
// position (windowed or not): simpler, and layers without a window (Qwen2's first
// max_window_layers) need them anyway; memory grows with the whole sequence.

import Foundation

/// The published architecture a ``DecoderOnlyModel`` was loaded as (`model_type`).
public enum CausalLMArchitecture: String, Sendable, Hashable {
    /// `GPT2LMHeadModel`.
    case gpt2
    /// `LlamaForCausalLM`.
    case llama
    /// `MistralForCausalLM`.
    case mistral
    /// `Qwen2ForCausalLM`.
    case qwen2
}

/// One pre-LN decoder block without cross-attention: `x += attention(norm1(x))`,
/// `x += feedForward(norm2(x))`, with a fused QKV projection whose rows are the query heads,
/// then the key heads, then the value heads (`kvHeads` <= heads: grouped-query attention).
/// Shapes: token rows `[T, d]`. Cost per token: `2 d (heads + 2 kvHeads) dh + 2 heads dh d`
/// flops of projections, `4 heads dh t` of attention over t cached positions (t at most
/// ``slidingWindow``), and the feed-forward's.
public struct CausalDecoderLayer: Sendable {
    /// Before attention.
    public let attentionNorm: Norm
    /// `[(heads + 2 kvHeads) * headDim, d]`: queries, keys, values.
    public let qkv: Linear
    /// `[d, heads * headDim]`.
    public let out: Linear
    /// Before the feed-forward.
    public let feedForwardNorm: Norm
    /// The feed-forward (gated for the Llama family).
    public let feedForward: FeedForward
    /// Score scale (`1/sqrt(headDim)`, GPT-2 may divide by the layer index too).
    public let scale: Float
    /// The attention window (Mistral's `sliding_window`), nil for none: the query at cache
    /// position i sees the keys at positions j with `0 <= i - j < slidingWindow`.
    public let slidingWindow: Int?

    /// A block from its parts (shapes are checked by ``DecoderOnlyModel``; `slidingWindow`
    /// must be at least 1 when given).
    public init(
        attentionNorm: Norm, qkv: Linear, out: Linear, feedForwardNorm: Norm, feedForward: FeedForward, scale: Float,
        slidingWindow: Int? = nil
    ) {
        precondition(slidingWindow.map { $0 >= 1 } ?? true, "CausalDecoderLayer: sliding window \(slidingWindow!) must be at least 1")
        self.slidingWindow = slidingWindow
        self.attentionNorm = attentionNorm
        self.qkv = qkv
        self.out = out
        self.feedForwardNorm = feedForwardNorm
        self.feedForward = feedForward
        self.scale = scale
    }
}

/// A Hugging Face decoder-only language model (GPT-2, Llama, Mistral, Qwen2) ready to generate
/// what `transformers`' `model.generate` does. Load with ``init(directory:)``; generate with
/// ``CausalLanguageModel/generate(prompts:config:compute:)`` (greedy, sampling, beam search;
/// left-padded batches), stream with ``CausalLanguageModel/stream(prompt:config:compute:)``,
/// continue a conversation with ``CausalLanguageModel/generate(continuing:appending:cache:config:compute:onStep:)``.
/// Immutable and `Sendable`; the ``CausalLMCache`` belongs to the caller.
///
/// Shapes: ids `[rows][n]`; logits `[rows, V]` (the last position of each row).
/// Cost per token: about `2 * parameters` flops (the weights are read once per step while
/// decoding, once per prefill pass for a whole prompt) plus attention over the cache (over
/// the last `sliding_window` positions in windowed layers, so sequences may run past the
/// window at a cost per token that stops growing; the cache keeps every position).
public struct DecoderOnlyModel: CausalLanguageModel {
    /// What the checkpoint is.
    public let architecture: CausalLMArchitecture
    /// Token embeddings `[V, d]`.
    public let embedding: Embedding
    /// GPT-2's learned positions `[maxPositions, d]` (nil with RoPE).
    public let learnedPositions: Embedding?
    /// RoPE frequencies (nil for GPT-2).
    public let rotary: RotaryFrequencies?
    /// The blocks.
    public let layers: [CausalDecoderLayer]
    /// After the last block.
    public let finalNorm: Norm
    /// `d -> V` (the embedding itself when tied).
    public let lmHead: Linear
    /// Query heads.
    public let heads: Int
    /// Stored key/value heads (`num_key_value_heads`; heads for GPT-2).
    public let kvHeads: Int
    /// Head size.
    public let headDim: Int
    /// Hard position limit and the setting naming it: GPT-2's `n_positions` (its learned
    /// position table); nil for RoPE models (a sliding window is no limit: see
    /// ``CausalDecoderLayer/slidingWindow``).
    public let positionLimit: (limit: Int, setting: String)?
    /// The checkpoint's generation settings (`generation_config.json`, else `config.json`),
    /// with `maxNewTokens` from `max_new_tokens`, else `max_length` (20) minus 1 (see
    /// ``defaultMaxLength``).
    public let generationDefaults: GenerationConfig
    /// `max_length` (which counts the prompt) when the checkpoint gives no `max_new_tokens`.
    public let defaultMaxLength: Int?
    /// Generation settings of the checkpoint this library does not implement (ignored).
    public let ignoredGenerationSettings: [String]

    /// Model width d.
    public var modelDim: Int { embedding.dim }
    /// Vocabulary size V.
    public var vocabularySize: Int { lmHead.outFeatures }

    /// A model from its parts; widths must agree (a precondition naming them).
    public init(
        architecture: CausalLMArchitecture, embedding: Embedding, learnedPositions: Embedding?, rotary: RotaryFrequencies?,
        layers: [CausalDecoderLayer], finalNorm: Norm, lmHead: Linear, heads: Int, kvHeads: Int, headDim: Int,
        positionLimit: (limit: Int, setting: String)?, generationDefaults: GenerationConfig, defaultMaxLength: Int? = nil,
        ignoredGenerationSettings: [String] = []
    ) {
        let d = embedding.dim, w = (heads + 2 * kvHeads) * headDim
        precondition(
            !layers.isEmpty && heads >= 1 && kvHeads >= 1 && heads % kvHeads == 0 && lmHead.inFeatures == d
                && layers.allSatisfy { $0.qkv.weightShape == [w, d] && $0.out.weightShape == [d, heads * headDim] },
            "DecoderOnlyModel: \(layers.count) layers of \(heads) heads / \(kvHeads) KV heads of \(headDim) do not fit d = \(d), head \(lmHead.weightShape)"
        )
        precondition(rotary.map { $0.dim == headDim } ?? true, "DecoderOnlyModel: rotary dim \(rotary!.dim) differs from head size \(headDim)")
        precondition(learnedPositions.map { $0.dim == d } ?? true, "DecoderOnlyModel: position table of width \(learnedPositions!.dim) for d = \(d)")
        self.architecture = architecture
        self.embedding = embedding
        self.learnedPositions = learnedPositions
        self.rotary = rotary
        self.layers = layers
        self.finalNorm = finalNorm
        self.lmHead = lmHead
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.positionLimit = positionLimit
        self.generationDefaults = generationDefaults
        self.defaultMaxLength = defaultMaxLength
        self.ignoredGenerationSettings = ignoredGenerationSettings
    }

    /// A fresh cache for `rows` sequences (kv heads only, stored head by head so that each
    /// decoding step reads every head's keys and values sequentially). `rows` and `capacity`
    /// below 1 count as 1 (generation then throws for prompts of another row count).
    public func makeCache(rows: Int, capacity: Int = 32) -> CausalLMCache {
        CausalLMCache(layers: layers.count, rows: max(rows, 1), kvWidth: kvHeads * headDim, headDim: headDim, capacity: capacity)
    }

    /// Throws ``GenerationError/invalidInput(_:)`` unless `cache` has this model's layer
    /// count and key/value width (``makeCache(rows:capacity:)`` or
    /// ``CausalLMCache/init(layers:rows:kvWidth:capacity:)`` with `layers.count` and
    /// `kvHeads * headDim`), stores its heads as this model reads them, and, when prepared for
    /// left-padded prompts, for `appending` new tokens per row. Cost: O(layers + rows).
    public func checkCache(_ cache: CausalLMCache, appending: Int) throws {
        let width = kvHeads * headDim
        guard cache.layers.count == layers.count,
            cache.layers.allSatisfy({
                $0.modelDim == width && $0.batch == cache.rows && [0, headDim].contains($0.appendHeadDim) && $0.headMajorHeadDim == 0
            })
        else {
            throw GenerationError.invalidInput(
                "the cache has \(cache.layers.count) layers of key/value width \(cache.layers.first.map { String($0.modelDim) } ?? "-"); this model has \(layers.count) layers of width \(width) (a cache of another model?)"
            )
        }
        if let marks = cache.pendingReal, let bad = marks.firstIndex(where: { $0.count != appending }) {
            throw GenerationError.invalidInput(
                "the cache was prepared for \(marks[bad].count) new tokens per row (left-padded prompts), not \(appending): prepare it for these prompts"
            )
        }
    }

    /// The generation defaults for prompts of `promptLength` tokens: when the checkpoint sets
    /// `max_length` rather than `max_new_tokens`, it counts the prompt (as in transformers).
    public func generationDefaults(promptLength: Int) -> GenerationConfig {
        var c = generationDefaults
        if let m = defaultMaxLength { c.maxNewTokens = max(1, m - promptLength) }
        return c
    }

    /// One step (``AutoregressiveDecoder``): appends `tokens` (`cache.rows` rows of n >= 1
    /// ids) at the cache's positions (n > 1 is a batched prefill pass), and returns the logits
    /// of each row's last new position, `[rows, V]`. Positions follow the cache's padding
    /// marks (a left-padded row's first real token is at position 0).
    /// Token ids outside the vocabulary, rows that do not match the cache, another model's
    /// cache or a length past ``positionLimit`` are precondition failures (generation checks
    /// them first); for tokens or a cache handed in, call
    /// ``AutoregressiveDecoder/checkedNextTokenLogits(appending:to:compute:)``, which throws.
    public func nextTokenLogits(appending tokens: [[Int]], to cache: inout CausalLMCache, compute: Compute = .default) -> Tensor {
        let r = tokens.count, n = tokens.first?.count ?? 0, v = vocabularySize
        precondition(
            r == cache.rows && n >= 1 && tokens.allSatisfy { $0.count == n },
            "DecoderOnlyModel: \(r) rows of lengths \(tokens.map(\.count).prefix(4)) for a cache of \(cache.rows) rows")
        precondition(tokens.allSatisfy { $0.allSatisfy { (0..<v).contains($0) } }, "DecoderOnlyModel: token ids must lie in 0..<\(v)")
        let start = cache.length
        let positions = cache.advance(steps: n).flatMap { $0 }  // [r * n], row-major
        var x = embedding(tokens.flatMap { $0 })  // [r*n, d]
        if let table = learnedPositions {
            precondition(
                positions.allSatisfy { $0 < table.count },
                "DecoderOnlyModel: positions up to \(positions.max()!) pass the \(table.count) learned positions")
            x += table(positions)
        }
        let keyPadding = cache.keyPadding
        for (l, layer) in layers.enumerated() {
            x =
                attention(
                    layer, x, rows: r, steps: n, start: start, positions: positions, kv: &cache.layers[l],
                    keyPadding: keyPadding, compute: compute
                ).output
            x = layer.feedForward.forward(layer.feedForwardNorm(x, compute: compute), residual: x, compute: compute)
        }
        let last = n == 1 ? x : x.gatherRows((0..<r).map { $0 * n + n - 1 })  // [r, d]
        return lmHead(finalNorm(last, compute: compute), compute: compute)  // [r, V]
    }

    /// A forward pass over whole prompts, as `transformers`' `model(input_ids,
    /// attention_mask, output_attentions=True)`: the logits after every position, and the
    /// attention probabilities of the layers asked for.
    ///
    /// - `inputIDs`: `[batch][seq]` token ids in `0..<vocabularySize`, rows of one length
    ///   (at most ``positionLimit``).
    /// - `attentionMask`: the same shape, 1 = real token, 0 = padding (a key no query sees);
    ///   nil means all 1. Positions are `0..<seq` in every row, as transformers' forward
    ///   numbers them when given no `position_ids` (pad on the right to keep real tokens at
    ///   their own positions).
    /// - `outputAttentions`: the layers (0-based) whose probabilities to return,
    ///   `[batch, heads, seq, seq]` (query heads; grouped-query heads read their shared key
    ///   head), row = query, column = key, 0 for future and padded keys; a query that sees no
    ///   key gets a row of zeros. Each asked layer forms them from the queries and keys its
    ///   fused kernel reads (after RoPE), `2 batch heads seq² headDim` flops and `batch heads
    ///   seq²` floats more; the logits are the same bits whatever is asked.
    ///
    /// Throws ``ModelInputError`` naming what and where for ragged rows, ids out of range, a
    /// mask of other values than 0/1 or another shape, too long a sequence, or a layer index
    /// out of range. Cost: one prefill pass (about `2 * parameters * batch * seq` flops, plus
    /// attention) and the head on every position (`2 batch seq d V`).
    public func forward(
        inputIDs: [[Int]], attentionMask: [[Int]]? = nil, outputAttentions: Set<Int> = [], compute: Compute = .default
    ) throws(ModelInputError) -> CausalLMOutput {
        let r = inputIDs.count, n = inputIDs.first?.count ?? 0, v = vocabularySize
        func check(_ ok: Bool, _ message: @autoclosure () -> String) throws(ModelInputError) {
            if !ok { throw ModelInputError("DecoderOnlyModel.forward: " + message()) }
        }
        try check(r >= 1 && n >= 1, "give at least one row of at least one token (got \(r) rows of \(n))")
        try check(
            inputIDs.allSatisfy { $0.count == n },
            "inputIDs rows have different lengths \(Set(inputIDs.map(\.count)).sorted()) (pad them)")
        for (b, row) in inputIDs.enumerated() {
            if let i = row.firstIndex(where: { !(0..<v).contains($0) }) {
                throw ModelInputError("DecoderOnlyModel.forward: token id \(row[i]) at [\(b)][\(i)] out of range 0..<\(v)")
            }
        }
        if let (limit, setting) = positionLimit {
            try check(n <= limit, "sequence length \(n) exceeds \(setting) \(limit)")
        }
        if let m = attentionMask {
            try check(
                m.count == r && m.allSatisfy { $0.count == n },
                "attentionMask \(m.count) x \(Set(m.map(\.count)).sorted()) must be [\(r)][\(n)] like inputIDs")
            try check(m.allSatisfy { $0.allSatisfy { $0 == 0 || $0 == 1 } }, "attentionMask values must be 0 or 1")
        }
        try checkAttentionLayers(outputAttentions, count: layers.count, "DecoderOnlyModel.forward: outputAttentions")
        let keyPadding: [[Bool]]? = attentionMask.flatMap { m in m.contains { $0.contains(0) } ? m.map { $0.map { $0 != 0 } } : nil }
        let positions = (0..<r).flatMap { _ in 0..<n }  // [r * n], row-major
        var cache = makeCache(rows: r, capacity: n)
        var x = embedding(inputIDs.flatMap { $0 })  // [r*n, d]
        if let table = learnedPositions { x += table(positions) }
        var attentions: [Int: Tensor] = [:]
        for (l, layer) in layers.enumerated() {
            let a = attention(
                layer, x, rows: r, steps: n, start: 0, positions: positions, kv: &cache.layers[l],
                keyPadding: keyPadding, probabilities: outputAttentions.contains(l), compute: compute)
            x = a.output
            attentions[l] = a.probabilities
            x = layer.feedForward.forward(layer.feedForwardNorm(x, compute: compute), residual: x, compute: compute)
        }
        let logits = lmHead(finalNorm(x, compute: compute), compute: compute)  // [r*n, V]
        return CausalLMOutput(logits: logits.reshaped([r, n, v]), attentions: attentions)
    }

    /// `x + out(attention(norm(x)))` for `rows x steps` token rows `x` `[rows*steps, d]`,
    /// appending the new keys and values to `kv` first; with `probabilities`, also the
    /// attention probabilities `[rows, heads, steps, cached]` of the queries and keys the
    /// kernel reads.
    private func attention(
        _ layer: CausalDecoderLayer, _ x: Tensor, rows r: Int, steps n: Int, start: Int, positions: [Int],
        kv: inout AttentionKV, keyPadding: [[Bool]]?, probabilities: Bool = false, compute: Compute
    ) -> (output: Tensor, probabilities: Tensor?) {
        let dh = headDim, q = heads * dh, kvw = kvHeads * dh, w = q + 2 * kvw
        var qkv = layer.qkv.forward(layer.attentionNorm(x, compute: compute), compute: compute)  // [r*n, w]
        if let rotary { rotary.rotate(&qkv, columns: 0, heads: heads + kvHeads, positions: positions) }
        kv.append(qkv, columns: q..<w, steps: n, threads: compute.threads)  // read in place
        var context = Tensor.uninitialized([r * n, q])
        var (kl, vl) = kv.layouts(headDim: dh)
        kl.headGroup = heads / kvHeads
        vl.headGroup = heads / kvHeads
        let ql = HeadLayout(base: 0, batchStride: n * w, headStride: dh, rowStride: w)
        let p = AttentionProblem(
            batch: r, seqQ: n, seqK: kv.count, heads: heads, headDim: dh, q: ql, k: kl, v: vl,
            o: HeadLayout(base: 0, batchStride: n * q, headStride: dh, rowStride: q),
            counts: (qkv.count, kv.storage.count, kv.storage.count, context.count),
            mask: AttentionMask(causal: true, queryStart: start, keyPadding: keyPadding, window: layer.slidingWindow ?? 0),
            bias: .none, scale: layer.scale)
        Attend.attention(p, query: qkv, key: kv.storage, value: kv.storage, into: &context, compute: compute)
        let maps = probabilities ? attentionProbabilities(p, query: qkv, key: kv.storage, threads: compute.threads) : nil
        return (layer.out.forward(context, residual: x, compute: compute), maps)
    }
}

/// What ``DecoderOnlyModel/forward(inputIDs:attentionMask:outputAttentions:compute:)``
/// returns (`transformers`' `CausalLMOutputWithPast` with `output_attentions=True`).
public struct CausalLMOutput: Sendable {
    /// `[batch, seq, V]`: the logits after every position.
    public let logits: Tensor
    /// The attention probabilities of the layers asked for, by layer index (0 = first
    /// block, transformers' `attentions[i]`): `[batch, heads, seq, seq]`, row = query,
    /// column = key; empty when none was asked for.
    public let attentions: [Int: Tensor]
}
