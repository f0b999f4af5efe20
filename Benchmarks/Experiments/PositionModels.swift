import Attend
import Foundation

// The models of the position-encoding experiment: one small causal Transformer (token
// embedding, pre-LN blocks, final norm, output projection) whose only difference from run to
// run is how it learns where tokens are. Every other choice (sizes, initialization, optimizer,
// data) is shared, so accuracy differences are the encodings'.
//
//   sinusoidal  the paper's fixed sin/cos vectors (§3.5), added to the token embeddings;
//               defined for every position, so longer inputs simply get new vectors.
//   learned     a trained vector per position, added (BERT, GPT-2). Only the `trainLength`
//               positions seen in training have vectors; a longer input reuses the last one
//               (positions are clamped to trainLength - 1): every later token looks to the
//               model as if it stood at the last trained position.
//   shaw        Shaw et al. (2018): trained key and value vectors per clipped distance
//               (`shawClip`), per layer, shared by the heads; distances beyond the clip share
//               the last vector, so any length works.
//   t5          T5's trained scalar bias per head and distance bucket (causal buckets: exact
//               up to 16, logarithmic up to 128, one bucket beyond), shared by the layers.
//   alibi       ALiBi (Press et al.): a fixed per-head linear penalty on distance, nothing
//               trained, no vector added.
//   rope        RoPE (Su et al.): queries and keys rotated by angles proportional to their
//               positions, so scores depend on the distance only; nothing trained.

/// How a model encodes positions.
package enum PositionEncoding: String, CaseIterable, Sendable {
    case sinusoidal, learned, shaw, t5, alibi, rope
}

/// The shared sizes of the experiment's models.
package struct PositionModelConfig: Sendable {
    /// Model width.
    package var modelDim = 64
    /// Attention heads.
    package var heads = 4
    /// Transformer blocks.
    package var layers = 2
    /// Feed-forward width.
    package var feedForwardDim = 128
    /// The length trained on (the learned table's size).
    package var trainLength = 64
    /// Shaw's clip distance.
    package var shawClip = 16
    /// T5's buckets and the distance of its last bucket.
    package var t5Buckets = 32
    package var t5MaxDistance = 128

    package var headDim: Int { modelDim / heads }

    package init() {}
}

/// A small causal Transformer with one position encoding, trained with Attend's layer
/// forward and backward passes, its fused attention kernels and AdamW.
///
/// Parameters are in a `ParameterSet` (so the optimizer and gradient clipping see one set);
/// the layers are rebuilt from it after each update (building a layer copies no weights).
package final class PositionModel {
    package let encoding: PositionEncoding
    package let config: PositionModelConfig
    package let vocabularySize: Int
    package let compute: Compute
    package var parameters: ParameterSet

    /// A model with seeded random weights (matrices uniform in ±1/sqrt(fan_in), token
    /// embeddings in ±1, learned positions and T5's table in ±0.1, Shaw's tables in
    /// ±1/sqrt(headDim); biases 0, norm weights 1).
    package init(encoding: PositionEncoding, vocabularySize: Int, config: PositionModelConfig = .init(), seed: UInt64, compute: Compute) {
        self.encoding = encoding
        self.config = config
        self.vocabularySize = vocabularySize
        self.compute = compute
        var rng = SplitMix64(state: seed)
        var set = ParameterSet()
        func uniform(_ name: String, _ shape: [Int], _ bound: Float) {
            set[name] = Tensor(shape: shape, generating: { _ in Float.random(in: -bound...bound, using: &rng) })
        }
        let d = config.modelDim, f = config.feedForwardDim, dh = config.headDim
        uniform("embedding.weight", [vocabularySize, d], 1)
        if encoding == .learned { uniform("positions.weight", [config.trainLength, d], 0.1) }
        if encoding == .t5 { uniform("t5.relative_attention_bias", [config.t5Buckets, config.heads], 0.1) }
        for i in 0..<config.layers {
            let l = "layers.\(i)."
            set[l + "norm1.weight"] = Tensor(shape: [d], generating: { _ in 1 })
            set[l + "norm1.bias"] = Tensor.zeros([d])
            uniform(l + "attention.qkv.weight", [3 * d, d], 1 / Float(d).squareRoot())
            set[l + "attention.qkv.bias"] = Tensor.zeros([3 * d])
            uniform(l + "attention.out.weight", [d, d], 1 / Float(d).squareRoot())
            set[l + "attention.out.bias"] = Tensor.zeros([d])
            if encoding == .shaw {
                uniform(l + "shaw.keys", [2 * config.shawClip + 1, dh], 1 / Float(dh).squareRoot())
                uniform(l + "shaw.values", [2 * config.shawClip + 1, dh], 1 / Float(dh).squareRoot())
            }
            set[l + "norm2.weight"] = Tensor(shape: [d], generating: { _ in 1 })
            set[l + "norm2.bias"] = Tensor.zeros([d])
            uniform(l + "ffn.up.weight", [f, d], 1 / Float(d).squareRoot())
            set[l + "ffn.up.bias"] = Tensor.zeros([f])
            uniform(l + "ffn.down.weight", [d, f], 1 / Float(f).squareRoot())
            set[l + "ffn.down.bias"] = Tensor.zeros([d])
        }
        set["norm.weight"] = Tensor(shape: [d], generating: { _ in 1 })
        set["norm.bias"] = Tensor.zeros([d])
        uniform("head.weight", [vocabularySize, d], 1 / Float(d).squareRoot())
        set["head.bias"] = Tensor.zeros([vocabularySize])
        parameters = set
    }

    // MARK: Building the layers from the parameters

    private func p(_ name: String) -> Tensor { parameters[name]! }
    private func linear(_ prefix: String) -> Linear { Linear(weight: p(prefix + ".weight"), bias: p(prefix + ".bias")) }
    private func norm(_ prefix: String) -> Norm { .layer(LayerNorm(weight: p(prefix + ".weight"), bias: p(prefix + ".bias"))) }

    private func layer(_ i: Int) -> EncoderLayer {
        let l = "layers.\(i)."
        return EncoderLayer(
            selfAttention: MultiHeadAttention(heads: config.heads, inProjection: linear(l + "attention.qkv"), outProjection: linear(l + "attention.out")),
            attentionNorm: norm(l + "norm1"),
            feedForward: FeedForward(up: linear(l + "ffn.up"), down: linear(l + "ffn.down"), activation: .gelu),
            feedForwardNorm: norm(l + "norm2"), placement: .pre)
    }

    private func layerNames(_ i: Int) -> EncoderLayerParameterNames {
        let l = "layers.\(i).", d = config.modelDim
        var attention = AttentionParameterNames(query: "", key: "", value: "", out: l + "attention.out", inner: d, modelDim: d, bias: true)
        attention.input = LinearParameterNames(l + "attention.qkv", rows: 3 * d)
        return EncoderLayerParameterNames(
            attention: attention, attentionNorm: NormParameterNames(l + "norm1"),
            feedForward: FeedForwardParameterNames(
                up: LinearParameterNames(l + "ffn.up", rows: config.feedForwardDim), gate: nil, down: LinearParameterNames(l + "ffn.down", rows: d)),
            feedForwardNorm: NormParameterNames(l + "norm2"))
    }

    /// What layer `i` adds to its attention scores for this encoding.
    private func attentionBias(layer i: Int) -> AttentionBias {
        switch encoding {
        case .shaw:
            return .shaw(keys: p("layers.\(i).shaw.keys"), values: p("layers.\(i).shaw.values"), clip: config.shawClip)
        case .t5:
            return .t5(table: p("t5.relative_attention_bias"), bidirectional: false, maxDistance: config.t5MaxDistance)
        case .alibi:
            return .alibi(slopes: alibiSlopes(heads: config.heads), symmetric: false)
        case .sinusoidal, .learned, .rope:
            return .none
        }
    }

    /// The learned table's row for each position of a sequence of `length`: the position
    /// itself, clamped to the last trained one.
    package func learnedPositionRows(length: Int) -> [Int] {
        (0..<length).map { min($0, config.trainLength - 1) }
    }

    // MARK: Forward and backward

    /// What `backward` needs from a forward pass.
    package struct Activations {
        var ids: [Int]
        var batch: Int, length: Int
        var layers: [EncoderLayerActivations]
        var finalNorm: NormRowStatistics
        var normalized: Tensor
    }

    /// The logits `[batch * length, vocabulary]` for `tokens` (`batch` rows of `length`
    /// ids), and the activations the backward needs.
    package func forward(_ tokens: [[Int]]) -> (logits: Tensor, activations: Activations) {
        let b = tokens.count, n = tokens.first?.count ?? 0, d = config.modelDim
        precondition(b > 0 && n > 0 && tokens.allSatisfy { $0.count == n }, "PositionModel: rows of unequal or zero length")
        let ids = tokens.flatMap { $0 }

        // 1. Token embeddings, plus absolute position vectors for the additive encodings.
        var x = Embedding(weight: p("embedding.weight"))(ids).reshaped([b, n, d])
        switch encoding {
        case .sinusoidal:
            x.addBroadcasting(sinusoidalPositions(count: n, dim: d))  // every sequence gets positions 0..<n
        case .learned:
            x.addBroadcasting(Embedding(weight: p("positions.weight"))(learnedPositionRows(length: n)))
        default:
            break
        }
        x = x.reshaped([b * n, d])  // token rows

        // 2. The blocks: causal self-attention (with this encoding's bias or rotation) and a
        //    feed-forward network, each pre-normed with a residual connection.
        let visibility = AttentionVisibility(batch: b, seqQ: n, seqK: n, causal: true)
        let rotary = encoding == .rope ? RotaryEmbedding(headDim: config.headDim) : nil
        var kept: [EncoderLayerActivations] = []
        for i in 0..<config.layers {
            let (y, a) = layer(i).trainingForward(x, visibility, bias: attentionBias(layer: i), rotary: rotary, compute: compute)
            kept.append(a)
            x = y
        }

        // 3. Final norm and the output projection to one logit per vocabulary entry.
        let (h, stats) = norm("norm").trainingForward(x, compute: compute)
        let logits = linear("head")(h, compute: compute)
        return (logits, Activations(ids: ids, batch: b, length: n, layers: kept, finalNorm: stats, normalized: h))
    }

    /// The gradient of every parameter from the logits' gradient `[batch * length, vocabulary]`.
    package func backward(_ s: Activations, logitsGradient: Tensor) -> ParameterSet {
        var grads = parameters.zerosLike()
        let dH = linear("head").backward(
            input: s.normalized, outputGradient: logitsGradient, names: LinearParameterNames("head", rows: vocabularySize), into: &grads,
            compute: compute)!
        var dX = norm("norm").backward(s.finalNorm, outputGradient: dH, names: NormParameterNames("norm"), into: &grads, compute: compute)
        for i in stride(from: config.layers - 1, through: 0, by: -1) {
            let (dIn, positions) = layer(i).backward(s.layers[i], outputGradient: dX, names: layerNames(i), into: &grads, compute: compute)
            dX = dIn
            if let table = positions.biasTable { grads.modify("t5.relative_attention_bias") { $0 += table } }
            if let keys = positions.shawKeys, let values = positions.shawValues {
                grads.modify("layers.\(i).shaw.keys") { $0 += keys }
                grads.modify("layers.\(i).shaw.values") { $0 += values }
            }
        }
        // The embedding's input gradient is dX itself (x = E[id] + position vector).
        Embedding(weight: p("embedding.weight")).backward(ids: s.ids, outputGradient: dX, name: "embedding.weight", into: &grads, compute: compute)
        if encoding == .learned {
            let rows = Array(repeating: learnedPositionRows(length: s.length), count: s.batch).flatMap { $0 }
            Embedding(weight: p("positions.weight")).backward(ids: rows, outputGradient: dX, name: "positions.weight", into: &grads, compute: compute)
        }
        return grads
    }
}
