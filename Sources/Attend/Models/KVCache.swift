// The per-call state of incremental decoding: what a decoder stack remembers between steps.

/// The keys and values a ``TransformerDecoder`` keeps while generating: per layer, the
/// self-attention keys/values of every position generated so far (appended one step at a
/// time), and the cross-attention keys/values of the encoder memory (computed once per
/// source by ``TransformerDecoder/makeCache(memory:memoryPadding:rows:capacity:memoryPrecision:compute:)``).
///
/// A value the caller owns: copy it to branch a generation, discard it when done. Rows are
/// grouped by source: rows `s * rowsPerSource ..< (s + 1) * rowsPerSource` continue source `s`
/// (the beams of one input), and all of them read that source's single copy of the memory
/// keys/values. Memory (``bytes``): `layers * rows * capacity * 2 * inner` floats for
/// self-attention plus, for the memory, `layers * sources * seqMemory * 2 * inner` floats (and,
/// on a native backend, their copy packed for the fused kernel once a step of three or more
/// queries per source has needed it: beams, teacher forcing; greedy decoding never does), or
/// as many bfloat16 values alone when held in bfloat16 (inner = heads x head size).
public struct KVCache: Sendable {
    /// Per layer: self-attention keys/values, batch = ``rows``.
    public internal(set) var selfAttention: [AttentionKV]
    /// Per layer: the memory's keys/values, batch = ``sources``; nil for a decoder-only stack.
    public let crossAttention: [AttentionKV]?
    /// Memory padding per source, `[sources][seqMemory]`, true = real token (nil: none).
    public let memoryPadding: [[Bool]]?
    /// Inputs (encoder memories) the rows continue.
    public let sources: Int
    /// Rows per source (1, or the beam width once beam search has expanded the cache).
    public internal(set) var rowsPerSource: Int
    /// Positions cached so far (the position of the next token).
    public internal(set) var length: Int = 0
    /// Width of each cached key (and value): the attention's inner width, heads x head size
    /// (the model width d in most models).
    public let modelDim: Int

    init(layers: Int, sources: Int, modelDim: Int, cross: [AttentionKV]?, memoryPadding: [[Bool]]?, capacity: Int) {
        precondition(layers >= 1 && sources >= 1, "KVCache: \(layers) layers, \(sources) sources must be positive")
        self.selfAttention = (0..<layers).map { _ in AttentionKV(rows: sources, width: modelDim, capacity: max(capacity, 1)) }
        self.crossAttention = cross
        self.memoryPadding = memoryPadding
        self.sources = sources
        self.rowsPerSource = 1
        self.modelDim = modelDim
    }

    /// Rows the cache holds: `sources * rowsPerSource`.
    public var rows: Int { sources * rowsPerSource }

    /// Bytes held for the encoder memory's keys and values (``AttentionKV/bytes`` over the
    /// layers; 0 for a decoder-only stack): float32, plus its copy packed for the fused kernel
    /// once beams or teacher forcing needed it, or bfloat16 alone (``MemoryPrecision``).
    /// Cost: O(layers).
    public var memoryBytes: Int { crossAttention?.reduce(0) { $0 + $1.bytes } ?? 0 }

    /// Bytes held in all: ``memoryBytes`` plus every layer's self-attention keys and values
    /// (their capacity, grown as needed). Cost: O(layers).
    public var bytes: Int { memoryBytes + selfAttention.reduce(0) { $0 + $1.bytes } }

    /// Keeps, as new row `i`, old row `indices[i]`: expands rows for beam search
    /// (`[0, 0, 0, 1, 1, 1]`) or reorders beams after a step. Each new row must continue a row
    /// of the same source (`indices[i] / rowsPerSource == i / newRowsPerSource`), so the
    /// memory keys/values are shared, never copied. Throws ``GenerationError/invalidInput(_:)``
    /// (the cache unchanged) for an empty `indices`, a count that is not a multiple of
    /// ``sources``, or an index that is not a row of its new row's source. Cost: one copy of
    /// the self-attention cache (`layers * rows * length * 2d` floats); nothing when `indices`
    /// is the identity.
    public mutating func selectRows(_ indices: [Int]) throws {
        guard !indices.isEmpty && indices.count % sources == 0 else {
            throw GenerationError.invalidInput("KVCache.selectRows: \(indices.count) rows cannot be split over \(sources) sources")
        }
        let newPer = indices.count / sources
        for (i, r) in indices.enumerated() where !(r >= 0 && r < rows && r / rowsPerSource == i / newPer) {
            throw GenerationError.invalidInput(
                "KVCache.selectRows: new row \(i) takes old row \(r), which is not a row of source \(i / newPer) (rows per source: \(rowsPerSource) before, \(newPer) after; \(rows) rows)"
            )
        }
        if newPer == rowsPerSource && indices.enumerated().allSatisfy({ $0.offset == $0.element }) { return }
        for l in selfAttention.indices { selfAttention[l] = selfAttention[l].selectingRows(indices) }
        rowsPerSource = newPer
    }
}

extension AttentionKV {
    /// A cache whose row `i` is this cache's row `indices[i]`, with the same capacity.
    /// Cost: O(indices.count * count * 2 * modelDim).
    func selectingRows(_ indices: [Int]) -> AttentionKV {
        if appendHeadDim != 0 { return selectingHeadMajorRows(indices) }
        var out = AttentionKV(rows: indices.count, width: modelDim, capacity: capacity)
        if count == 0 { return out }
        precondition(headMajorHeadDim == 0, "AttentionKV.selectingRows: a fixed memory's keys/values are shared, never selected")
        let w = 2 * modelDim, n = count, cap = capacity
        for r in indices {
            precondition(r >= 0 && r < batch, "AttentionKV.selectingRows: row \(r) out of range for batch \(batch)")
        }
        // [new rows * filled, 2d]: row i's positions 0 ..< n, taken from row indices[i].
        let rows = storage.reshaped([batch * cap, w]).gatherRows(indices.flatMap { r in (0..<n).map { r * cap + $0 } })
        out.append(rows, steps: n)
        return out
    }
}

extension TransformerDecoder {
    /// Throws ``GenerationError/invalidInput(_:)`` unless `cache` is one this stack can
    /// extend: as many layers, self-attention keys/values of each layer's inner width for
    /// ``KVCache/rows`` rows, and, for a stack with cross-attention, an encoder memory (keys
    /// and values of each layer's cross-attention width for ``KVCache/sources`` sources,
    /// stored in heads of the size the layer reads) — what
    /// ``makeCache(memory:memoryPadding:rows:capacity:memoryPrecision:compute:)`` makes. A cache another
    /// model or stack made fails here instead of at a precondition of the layers.
    /// Cost: O(layers).
    func checkCache(_ cache: KVCache) throws {
        let another = "(a cache of another model?)"
        func layerCount(_ n: Int) -> String { "\(n) decoder layer\(n == 1 ? "" : "s")" }
        guard cache.selfAttention.count == layers.count else {
            throw GenerationError.invalidInput(
                "the cache holds keys/values for \(layerCount(cache.selfAttention.count)), this model has \(layers.count) \(another)")
        }
        for (l, (kv, layer)) in zip(cache.selfAttention, layers).enumerated() {
            let inner = layer.selfAttention.innerDim
            guard kv.modelDim == inner && kv.batch == cache.rows && kv.appendHeadDim == 0 && kv.headMajorHeadDim == 0 else {
                throw GenerationError.invalidInput(
                    "the cache's layer \(l) holds self-attention keys/values of width \(kv.modelDim) for \(kv.batch) rows; this model's layer \(l) has attention width \(inner) \(another)"
                )
            }
        }
        guard hasCrossAttention else {
            if cache.crossAttention != nil {
                throw GenerationError.invalidInput("the cache holds an encoder memory; this decoder has no cross-attention \(another)")
            }
            return
        }
        guard let memory = cache.crossAttention, memory.count == layers.count else {
            throw GenerationError.invalidInput(
                "the cache holds no encoder memory (a decoder-only stack's cache?); this model attends to its encoder's output: make the cache with makeCache(for:)"
            )
        }
        for (l, (kv, layer)) in zip(memory, layers).enumerated() {
            let attention = layer.crossAttention!
            guard kv.modelDim == attention.innerDim && kv.batch == cache.sources && kv.appendHeadDim == 0 else {
                throw GenerationError.invalidInput(
                    "the cache's layer \(l) holds encoder-memory keys/values of width \(kv.modelDim) for \(kv.batch) sources; this model's layer \(l) has cross-attention width \(attention.innerDim) \(another)"
                )
            }
            guard [0, attention.headDim].contains(kv.headMajorHeadDim) else {
                throw GenerationError.invalidInput(
                    "the cache's layer \(l) stores its encoder memory in heads of \(kv.headMajorHeadDim); this model's layer \(l) reads heads of \(attention.headDim) \(another)"
                )
            }
        }
    }
}

extension TransformerDecoder {
    /// Throws ``GenerationError/invalidInput(_:)`` naming both widths unless this stack can
    /// read `encoded`: a stack with cross-attention reads a memory of its width d (the width
    /// of the encoder that goes with it; another model's encoding can have another).
    /// Cost: O(1).
    func checkMemory(_ encoded: EncodedSource) throws {
        let width = encoded.memory.shape[2]
        if !hasCrossAttention || width == modelDim { return }
        throw GenerationError.invalidInput(
            "the encoder output \(encoded.memory.shape) has width \(width); this model's decoder reads width \(modelDim) (another model's encoding?)")
    }
}
