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
