// Rotary position embedding for decoder-only language models, with the frequencies and the
// attention factor transformers computes for each `rope_type` (modeling_rope_utils.py):
// "default", "linear", "dynamic" (NTK), "llama3", "yarn". The rotation is applied in place to
// the query and key heads of a fused QKV projection at each token's own position (a left-padded
// batch has a position per row), in the rotate-half layout of Llama/GPT-NeoX.

import Foundation

/// How the rotary frequencies are scaled (`rope_parameters` / `rope_scaling` of a Hugging Face
/// config), with transformers' meaning.
public enum RotaryScaling: Sendable, Equatable {
    /// `"default"`: `θ_i = base^(-2i/dim)`.
    case none
    /// `"linear"`: every frequency divided by `factor` (positions interpolated).
    case linear(factor: Double)
    /// `"dynamic"` (NTK-aware): once a call reaches `seqLen` > `maxPositions` positions, the
    /// base becomes `base * (factor * seqLen / maxPositions - (factor - 1))^(dim / (dim - 2))`.
    case dynamic(factor: Double, maxPositions: Int)
    /// `"llama3"`: long wavelengths (beyond `originalMaxPositions / lowFrequencyFactor`)
    /// divided by `factor`, short ones (below `originalMaxPositions / highFrequencyFactor`)
    /// kept, the ones between blended smoothly.
    case llama3(factor: Double, lowFrequencyFactor: Double, highFrequencyFactor: Double, originalMaxPositions: Int)
    /// `"yarn"`: frequencies blended between interpolated (`/ factor`) and kept along a linear
    /// ramp between the correction dimensions of `betaFast` and `betaSlow` rotations, and
    /// cos/sin multiplied by `attentionFactor` (default `0.1 ln(factor) + 1`, or the
    /// `mscale`/`mscale_all_dim` ratio).
    case yarn(factor: Double, attentionFactor: Double, betaFast: Double, betaSlow: Double, originalMaxPositions: Int, truncate: Bool)
}

/// The rotary frequencies of one model: `dim / 2` inverse frequencies (float32, as
/// transformers computes them) and a factor on cos/sin. Cost of `rotate(_:columns:heads:positions:)`:
/// O(rows * heads * dim) plus `dim / 2` cos/sin per distinct position.
public struct RotaryFrequencies: Sendable, Equatable {
    /// Rotated head size (even).
    public let dim: Int
    /// `rope_theta`.
    public let base: Double
    /// The scaling kind.
    public let scaling: RotaryScaling
    /// `dim / 2` inverse frequencies at the original scale.
    public let inverseFrequencies: [Float]
    /// Multiplies cos and sin (YaRN's attention factor; 1 otherwise).
    public let attentionFactor: Float

    /// Frequencies for heads of `dim` (even) with base `base` and `scaling`, as transformers'
    /// `ROPE_INIT_FUNCTIONS` compute them.
    public init(dim: Int, base: Double, scaling: RotaryScaling = .none) {
        precondition(dim >= 2 && dim % 2 == 0 && base > 1, "RotaryFrequencies: dim \(dim) must be even and positive, base \(base) above 1")
        self.dim = dim
        self.base = base
        self.scaling = scaling
        let plain = Self.defaultFrequencies(dim: dim, base: base)
        switch scaling {
        case .none, .dynamic:
            inverseFrequencies = plain
            attentionFactor = 1
        case .linear(let factor):
            inverseFrequencies = plain.map { $0 / Float(factor) }
            attentionFactor = 1
        case .llama3(let factor, let low, let high, let original):
            let f = Float(factor), lowWave = Float(Double(original) / low), highWave = Float(Double(original) / high)
            inverseFrequencies = plain.map { inv in
                let wavelength = 2 * Float.pi / inv
                let scaled = wavelength > lowWave ? inv / f : inv
                let smooth = (Float(original) / wavelength - Float(low)) / (Float(high) - Float(low))
                let medium = !(wavelength < highWave) && !(wavelength > lowWave)
                return medium ? (1 - smooth) * scaled / f + smooth * scaled : scaled
            }
            attentionFactor = 1
        case .yarn(let factor, let attention, let betaFast, let betaSlow, let original, let truncate):
            func correctionDim(_ rotations: Double) -> Double {
                Double(dim) * log(Double(original) / (rotations * 2 * Double.pi)) / (2 * log(base))
            }
            var low = correctionDim(betaFast), high = correctionDim(betaSlow)
            if truncate { (low, high) = (low.rounded(.down), high.rounded(.up)) }
            low = max(low, 0)
            high = min(high, Double(dim - 1))
            if low == high { high += 0.001 }
            inverseFrequencies = (0..<(dim / 2)).map { i in
                let pos = Float(pow(Float(base), Float(2 * i) / Float(dim)))
                let extrapolation = 1 / pos, interpolation = 1 / (Float(factor) * pos)
                let ramp = min(max((Float(i) - Float(low)) / (Float(high) - Float(low)), 0), 1)
                let keep = 1 - ramp
                return interpolation * (1 - keep) + extrapolation * keep
            }
            attentionFactor = Float(attention)
        }
    }

    /// `1 / base^(2i/dim)` in float32 (`torch.arange(0, dim, 2).float() / dim`, then a float32 power).
    static func defaultFrequencies(dim: Int, base: Double) -> [Float] {
        (0..<(dim / 2)).map { i in 1 / Float(pow(Double(Float(base)), Double(Float(2 * i) / Float(dim)))) }
    }

    /// The inverse frequencies for a call whose largest position is `maxPosition` (only
    /// `dynamic` scaling depends on it).
    func frequencies(maxPosition: Int) -> [Float] {
        guard case .dynamic(let factor, let maxPositions) = scaling, maxPosition + 1 > maxPositions else { return inverseFrequencies }
        let seqLen = Double(maxPosition + 1)
        let scaledBase = base * pow(factor * seqLen / Double(maxPositions) - (factor - 1), Double(dim) / Double(dim - 2))
        return Self.defaultFrequencies(dim: dim, base: scaledBase)
    }

    /// Rotates, in place, `heads` head vectors of `dim` floats starting at column `columns` of
    /// each row of `x` (`[rows, width]`), row r at position `positions[r]`:
    /// `x1 cos - x2 sin`, `x2 cos + x1 sin` over the two halves, with `cos = cos(p θ_i) *
    /// attentionFactor` computed as transformers does (float32 angle `p * θ_i`).
    func rotate(_ x: inout Tensor, columns: Int, heads: Int, positions: [Int]) {
        let rows = x.shape[0], width = x.shape[1], half = dim / 2
        precondition(
            x.rank == 2 && positions.count == rows && columns + heads * dim <= width,
            "RotaryFrequencies.rotate: \(heads) heads of \(dim) at column \(columns) do not fit \(x.shape) with \(positions.count) positions")
        if rows == 0 { return }
        let inv = frequencies(maxPosition: positions.max()!)
        var table: [Int: (cos: [Float], sin: [Float])] = [:]
        for p in Set(positions) {
            var c = [Float](repeating: 0, count: half), s = c
            for i in 0..<half {
                let angle = Float(p) * inv[i]
                c[i] = Float(Foundation.cos(Double(angle))) * attentionFactor
                s[i] = Float(Foundation.sin(Double(angle))) * attentionFactor
            }
            table[p] = (c, s)
        }
        x.withUnsafeMutableBufferPointer { buf in
            let base = buf.baseAddress!
            for r in 0..<rows {
                let (c, s) = table[positions[r]]!
                for h in 0..<heads {
                    let v = base + r * width + columns + h * dim
                    for i in 0..<half {
                        let x1 = v[i], x2 = v[i + half]
                        v[i] = x1 * c[i] - x2 * s[i]
                        v[i + half] = x2 * c[i] + x1 * s[i]
                    }
                }
            }
        }
    }
}
