// What every encoder-decoder model of the package shares (the paper's TransformerModel, T5,
// Marian): a batch of sources of any lengths is right-padded and encoded once; the decoder
// then generates against a cache that holds the memory's keys and values.

import Foundation

/// The encoder's output for a batch of sources, with what the decoder needs to read it.
public struct EncodedSource: Sendable {
    /// `[batch, maxLength, d]`; rows past a source's length are padding.
    public let memory: Tensor
    /// `[batch][maxLength]`, true = real token; nil when every source has the same length.
    public let padding: [[Bool]]?
    /// Each source's length.
    public let lengths: [Int]

    /// An encoded batch from its parts: `memory` `[batch >= 1, maxLength, d]`, one length in
    /// `1...maxLength` per batch row, and `padding`, when given, `[batch][maxLength]`. Throws
    /// ``GenerationError/invalidInput(_:)`` naming the part that does not fit the others
    /// (a model's `decode` and its ``EncoderDecoderModel/makeCache(for:capacity:compute:)``
    /// then also check that `d` is the decoder's width). Cost: O(batch * maxLength) for the padding.
    public init(memory: Tensor, padding: [[Bool]]?, lengths: [Int]) throws {
        guard memory.rank == 3 else {
            throw GenerationError.invalidInput("EncodedSource: memory \(memory.shape) must be [batch, maxLength, d]")
        }
        let (batch, s) = (memory.shape[0], memory.shape[1])
        guard batch >= 1 else { throw GenerationError.invalidInput("EncodedSource: memory \(memory.shape) has no rows") }
        guard lengths.count == batch else {
            throw GenerationError.invalidInput("EncodedSource: \(lengths.count) lengths for a memory of \(batch) rows \(memory.shape)")
        }
        if let bad = lengths.firstIndex(where: { $0 < 1 || $0 > s }) {
            throw GenerationError.invalidInput(
                "EncodedSource: lengths[\(bad)] = \(lengths[bad]) is outside 1...\(s), the positions of memory \(memory.shape)")
        }
        if let padding, let bad = padding.count == batch ? padding.firstIndex(where: { $0.count != s }) : padding.count {
            throw GenerationError.invalidInput(
                "EncodedSource: padding of \(padding.count) rows of lengths \(padding.map(\.count).prefix(8)) (row \(bad) is off) for memory \(memory.shape)"
            )
        }
        self.init(encoded: memory, padding: padding, lengths: lengths)
    }

    /// An encoder's own output (Attend's invariant: the parts agree).
    init(encoded memory: Tensor, padding: [[Bool]]?, lengths: [Int]) {
        precondition(
            memory.rank == 3 && lengths.count == memory.shape[0] && lengths.allSatisfy { $0 >= 1 && $0 <= memory.shape[1] }
                && (padding.map { $0.count == lengths.count && $0.allSatisfy { $0.count == memory.shape[1] } } ?? true),
            "EncodedSource: memory \(memory.shape) does not fit source lengths \(lengths) and padding")
        self.memory = memory
        self.padding = padding
        self.lengths = lengths
    }
}

/// What a teacher-forced forward pass of an encoder-decoder model returns: the logits and,
/// for the layers asked for, the attention probabilities (`transformers`' `Seq2SeqLMOutput`
/// with `output_attentions=True`: `encoder_attentions`, `decoder_attentions`,
/// `cross_attentions`, here by layer index). Every map is `[batch, heads, query, key]`, each
/// row summing to 1 over the keys it may see; padded source keys and future target keys get
/// exactly 0.
public struct EncoderDecoderOutput: Sendable {
    /// `[batch, T, V]`: the logits after every target position.
    public let logits: Tensor
    /// `[batch, S, d]`: the encoder's output (rows past a source's length are padding).
    public let encoderLastHiddenState: Tensor
    /// Encoder self-attention, `[batch, heads, S, S]`, by encoder layer.
    public let encoderAttentions: [Int: Tensor]
    /// Decoder (causal) self-attention, `[batch, heads, T, T]`, by decoder layer.
    public let decoderAttentions: [Int: Tensor]
    /// Decoder attention over the encoder's output, `[batch, heads, T, S]`, by decoder layer.
    public let crossAttentions: [Int: Tensor]
}

/// The attention layers a forward pass is asked for, checked against the stacks: throws
/// ``ModelInputError`` naming the first index out of range.
func checkAttentionLayers(
    _ model: String, encoder: Set<Int>, decoder: Set<Int>, cross: Set<Int>, encoderLayers: Int, decoderLayers: Int
) throws(ModelInputError) {
    try checkAttentionLayers(encoder, count: encoderLayers, "\(model).forward: outputEncoderAttentions")
    try checkAttentionLayers(decoder, count: decoderLayers, "\(model).forward: outputDecoderAttentions")
    try checkAttentionLayers(cross, count: decoderLayers, "\(model).forward: outputCrossAttentions")
}

/// Sources of different lengths right-padded into one batch.
struct PaddedSources {
    /// `[batch][maxLength]`.
    let ids: [[Int]]
    /// nil when every source has the same length, else `[batch][maxLength]` (true = real).
    let padding: [[Bool]]?
    let lengths: [Int]

    init(_ sources: [[Int]], pad: Int, caller: String) {
        precondition(
            !sources.isEmpty && sources.allSatisfy { !$0.isEmpty },
            "\(caller): give at least one source, each of at least one token (lengths \(sources.map(\.count)))")
        lengths = sources.map(\.count)
        let s = lengths.max()!
        ids = sources.map { $0 + [Int](repeating: pad, count: s - $0.count) }
        padding = lengths.allSatisfy { $0 == s } ? nil : lengths.map { n in (0..<s).map { $0 < n } }
    }
}

/// An encoder-decoder model: it encodes a batch of sources once, then decodes one step at a
/// time against a ``KVCache`` holding the memory's keys and values. Generation
/// (``generate(sources:startTokenID:config:compute:)``, ``stream(source:startTokenID:config:compute:)``)
/// comes with the conformance.
public protocol EncoderDecoderModel: AutoregressiveDecoder where Cache == KVCache {
    /// Encodes sources of any lengths (at least 1 token each), right-padded into one batch
    /// with the padding masked out of every attention. Throws
    /// ``GenerationError/invalidInput(_:)`` for sources ``checkSources(_:)`` rejects.
    func encode(_ sources: [[Int]], compute: Compute) throws -> EncodedSource
    /// A fresh decoding cache for `encoded` (the memory's keys and values computed once per
    /// layer), with room for `capacity` positions before it grows (it doubles as needed).
    /// Throws ``GenerationError/invalidInput(_:)``, naming what differs, for an `encoded` this
    /// model cannot read (another model's encoding, of another width).
    func makeCache(for encoded: EncodedSource, capacity: Int, compute: Compute) throws -> KVCache
    /// Source vocabulary size (ids a source may hold: `0..<sourceVocabularySize`).
    var sourceVocabularySize: Int { get }
    /// The longest source, and the most decoder positions, the model can take (a stored
    /// position table such as Marian's `max_position_embeddings`); nil when unlimited.
    var maxPositions: Int? { get }
}

extension EncoderDecoderModel {
    /// ``maxPositions`` as generation's limit on a decoder row (the start token and the
    /// generated tokens), named `max_position_embeddings`; nil when unlimited.
    public var positionLimit: (limit: Int, setting: String)? { maxPositions.map { ($0, "max_position_embeddings") } }

    /// Throws ``GenerationError/invalidInput(_:)`` unless there is at least one source, each
    /// of at least one token, with ids in `0..<sourceVocabularySize`, none longer than
    /// ``maxPositions``: what ``encode(_:compute:)`` requires.
    /// Cost: O(total tokens).
    public func checkSources(_ sources: [[Int]]) throws {
        guard !sources.isEmpty else { throw GenerationError.invalidInput("no sources given") }
        let v = sourceVocabularySize
        for (i, source) in sources.enumerated() {
            guard !source.isEmpty else { throw GenerationError.invalidInput("source \(i) is empty") }
            if let bad = source.firstIndex(where: { $0 < 0 || $0 >= v }) {
                throw GenerationError.invalidInput("source \(i), item \(bad): token id \(source[bad]) is outside the source vocabulary of \(v)")
            }
            if let m = maxPositions, source.count > m {
                throw GenerationError.invalidInput(
                    "source \(i) has \(source.count) tokens; the model's position table holds \(m) (max_position_embeddings)")
            }
        }
    }

    /// Throws ``GenerationError/invalidInput(_:)`` unless `targets` (teacher forcing) has
    /// one row per encoded source, all of one length >= 1, ids in `0..<vocabularySize`, and
    /// fits ``maxPositions``. Cost: O(total tokens).
    public func checkTargets(_ targets: [[Int]], encoded: EncodedSource) throws {
        let n = try checkTokenRows(
            targets, count: encoded.lengths.count, what: "target", against: "\(encoded.lengths.count) sources",
            vocabulary: vocabularySize)
        if let m = maxPositions, n > m {
            throw GenerationError.invalidInput("targets of \(n) tokens; the model's position table holds \(m) (max_position_embeddings)")
        }
    }
}

/// Positions a generation cache reserves up front: enough for short outputs without
/// growing, never more (a cache doubles as it fills, so a large `maxNewTokens` meant as
/// "until the end token" costs only what is generated).
let initialGenerationCacheCapacity = 32

extension EncoderDecoderModel {
    /// Validates a request and prepares it: the sources encoded, a cache sized for what is
    /// generated (not for `maxNewTokens`), the one-token prompts. Throws ``GenerationError``
    /// for a bad start token, sources, settings, or a length past ``maxPositions``.
    func startGeneration(
        sources: [[Int]], startTokenID: Int, config: GenerationConfig,
        compute: Compute
    ) throws -> (prompt: [[Int]], cache: KVCache) {
        guard startTokenID >= 0 && startTokenID < vocabularySize else {
            throw GenerationError.invalidInput("start token \(startTokenID) is outside the vocabulary of \(vocabularySize)")
        }
        try config.validate(vocabularySize: vocabularySize)
        try checkSources(sources)
        try checkPositionLimit(config.maxLength(promptLength: 1))
        let encoded = try encode(sources, compute: compute)
        let capacity = min(initialGenerationCacheCapacity, config.maxLength(promptLength: 1))
        return (sources.map { _ in [startTokenID] }, try makeCache(for: encoded, capacity: capacity, compute: compute))
    }

    /// Generates from each source, starting the decoder at `startTokenID`: greedy search, or
    /// beam search when `config.numBeams > 1` (see ``AutoregressiveDecoder/generate(prompt:cache:config:compute:)``).
    /// Sources may differ in length; each result equals generating from that source alone.
    /// Returns one row per source (`numReturnSequences` per source with beams), start token
    /// included. Throws ``GenerationError`` for a request the model cannot carry out (checked
    /// before any work), `CancellationError` when the task is cancelled.
    /// Cost: one encoder pass over the batch, the memory keys/values once per layer, then
    /// `config.maxNewTokens` decoder steps at most. Memory grows with the tokens generated
    /// (the self-attention cache doubles as it fills), not with `config.maxNewTokens`.
    public func generate(
        sources: [[Int]], startTokenID: Int, config generation: GenerationConfig,
        compute: Compute = .default
    ) throws -> GenerationOutput {
        let (prompt, cache) = try startGeneration(sources: sources, startTokenID: startTokenID, config: generation, compute: compute)
        return try generate(prompt: prompt, cache: cache, config: generation, compute: compute)
    }

    /// Greedy generation for a batch, calling `onStep` with each step's tokens (one per
    /// source) as soon as they are chosen; a source that has ended receives the pad token.
    /// Returns the rows as ``generate(sources:startTokenID:config:compute:)`` does.
    /// Throws ``GenerationError``, `CancellationError`, or what `onStep` throws.
    public func greedy(
        sources: [[Int]], startTokenID: Int, config generation: GenerationConfig,
        compute: Compute = .default, onStep: ([Int]) throws -> Void
    ) throws -> [[Int]] {
        var (prompt, cache) = try startGeneration(sources: sources, startTokenID: startTokenID, config: generation, compute: compute)
        return try greedySearch(prompt: prompt, cache: &cache, config: generation, compute: compute, onStep: onStep)
    }

    /// Greedy generation from one source as a stream of token ids, each delivered as soon as
    /// it is computed (the end-of-sequence token, if produced, is the last element). Encoding
    /// and decoding run in a detached task; cancelling the consuming task, breaking out of the
    /// loop or dropping the stream stops them at the next step (tokens computed before that
    /// are still delivered, then the iteration ends).
    public func stream(
        source: [Int], startTokenID: Int, config generation: GenerationConfig,
        compute: Compute = .default
    ) -> AsyncThrowingStream<Int, Error> {
        tokenStream(eosTokenIDs: generation.eosTokenIDs) { onStep in
            _ = try self.greedy(sources: [source], startTokenID: startTokenID, config: generation, compute: compute, onStep: onStep)
        }
    }
}
