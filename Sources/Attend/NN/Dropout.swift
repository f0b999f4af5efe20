// Inverted dropout for training (Srivastava et al., 2014): each scalar is zeroed with
// probability p and the rest scaled by 1/(1 - p), so the expectation is unchanged and
// inference is the identity. The mask comes from a seeded SplitMix64 stream (deterministic
// for a seed on every platform, not PyTorch's generator); at p = 0 it is the identity and
// draws nothing.

/// Dropout with probability `probability` and its backward.
///
/// Shapes: any tensor in, the same out. Cost: one random number and one multiply per scalar
/// (none at p = 0); memory: the mask (nil at p = 0).
struct Dropout: Sendable {
    /// The probability of zeroing a scalar, in [0, 1).
    let probability: Float

    init(probability: Float) {
        precondition(probability >= 0 && probability < 1, "Dropout: probability \(probability) must be in [0, 1)")
        self.probability = probability
    }

    /// `x` with each scalar zeroed with probability p, the others scaled by 1/(1 - p), and
    /// the scale mask (0 or 1/(1 - p) per scalar; nil at p = 0, where `x` is returned as is).
    func trainingForward(_ x: Tensor, generator: inout SplitMix64) -> (Tensor, mask: Tensor?) {
        guard probability > 0 else { return (x, nil) }
        let keep = 1 / (1 - probability), p = Double(probability)
        let mask = Tensor(shape: x.shape, generating: { _ in Double(generator.next() >> 11) * 0x1p-53 < p ? 0 : keep })
        return (x * mask, mask)
    }

    /// The input's gradient: `dY` times the forward's mask (the identity at p = 0).
    func backward(mask: Tensor?, outputGradient dY: Tensor) -> Tensor {
        guard let mask else { return dY }
        return dY * mask
    }
}

/// Dropout while a trainable model trains: whether its training forward applies the
/// probabilities of its configuration (as `transformers` models do in train mode), and the
/// seed of the masks.
///
/// The masks come from one seeded stream per model, drawn in a fixed order by each
/// ``TrainableModel/loss(_:)`` call, so the same seed and the same batches give the same bits
/// on any thread count. Setting a model's `dropout` restarts its stream at the seed. Turning
/// dropout off (or a configuration whose probabilities are 0) trains as `model.eval()` would.
public struct TrainingDropout: Sendable, Hashable {
    /// Whether the configuration's dropout probabilities are applied (false: none is).
    public var enabled: Bool
    /// The seed of the masks' stream.
    public var seed: UInt64

    /// Dropout `enabled` (default: on, as `transformers`' Trainer trains), masks seeded by `seed`.
    public init(enabled: Bool = true, seed: UInt64 = 0) {
        self.enabled = enabled
        self.seed = seed
    }

    /// No dropout.
    public static let off = TrainingDropout(enabled: false)
}

/// A model's dropout probabilities by place, as its configuration gives them.
struct DropoutRates: Sendable, Equatable {
    /// On the embeddings and on each residual branch's output (attention, feed-forward).
    var hidden: Float = 0
    /// On the attention probabilities.
    var attention: Float = 0
    /// Inside the feed-forward, after the activation (and the gate).
    var activation: Float = 0

    static let zero = DropoutRates()

    /// Reads `key` of a `config.json` (`fallback` when absent, as the `transformers`
    /// configuration's default), checking it is a probability in [0, 1).
    static func read(_ fields: JSONFields, _ key: String, default fallback: Double) throws -> Float {
        let p = try fields.double(key) ?? fallback
        guard p >= 0 && p < 1 else { throw fields.fail(key, "\(p) must be a dropout probability in [0, 1)") }
        return Float(p)
    }
}

/// The dropout of one training forward: the model's probabilities and the stream its masks
/// are drawn from (in the forward's order, so a seed fixes every mask). A class, so every
/// layer of the forward draws from the one stream.
package final class DropoutSampler {
    let hidden: Dropout, attention: Float, activation: Dropout
    var generator: SplitMix64

    init(_ rates: DropoutRates, generator: SplitMix64) {
        hidden = Dropout(probability: rates.hidden)
        attention = rates.attention
        activation = Dropout(probability: rates.activation)
        self.generator = generator
    }

    /// `x` after the hidden dropout, and its mask (nil at p = 0).
    func hidden(_ x: Tensor) -> (Tensor, Tensor?) { hidden.trainingForward(x, generator: &generator) }

    /// `x` after the activation dropout, and its mask (nil at p = 0).
    func activation(_ x: Tensor) -> (Tensor, Tensor?) { activation.trainingForward(x, generator: &generator) }

    /// The dropout of one attention call's probabilities (its own seed from the stream; nil
    /// at p = 0, drawing nothing).
    func attentionProbabilities() -> AttentionDropout? {
        attention > 0 ? AttentionDropout(probability: attention, seed: generator.next()) : nil
    }
}

/// `sampler`'s hidden dropout of `x` (the identity without a sampler).
func hiddenDropout(_ x: Tensor, _ sampler: DropoutSampler?) -> (Tensor, Tensor?) {
    sampler.map { $0.hidden(x) } ?? (x, nil)
}

/// `dY` times `mask` (the identity without one): a dropout's backward.
func dropoutBackward(_ dY: Tensor, _ mask: Tensor?) -> Tensor {
    mask.map { dY * $0 } ?? dY
}

/// A trainable model's dropout: the user's setting, the configuration's probabilities and the
/// model's mask stream (restarted at the seed when the setting changes). Each training
/// forward draws one seed from the stream for its own sampler.
struct ModelDropout {
    var setting = TrainingDropout() {
        didSet { stream = SplitMix64(state: setting.seed) }
    }
    let rates: DropoutRates
    private var stream = SplitMix64(state: 0)

    init(rates: DropoutRates) { self.rates = rates }

    /// The sampler of the next training forward; nil when dropout is off or every
    /// probability is 0 (the forward is then exactly the inference-mode one).
    mutating func nextSampler() -> DropoutSampler? {
        guard setting.enabled, rates != .zero else { return nil }
        return DropoutSampler(rates, generator: SplitMix64(state: stream.next()))
    }
}
