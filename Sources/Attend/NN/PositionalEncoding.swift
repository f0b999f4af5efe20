import Foundation

/// The sinusoidal position table of "Attention Is All You Need" §3.5:
/// `PE(pos, 2i) = sin(pos / base^(2i/d))`, `PE(pos, 2i+1) = cos(pos / base^(2i/d))`.
///
/// With `interleaved: false` the sines fill the first half of each row and the cosines the
/// second (Marian's and fairseq's layout). Shapes: `[count, dim]` for positions
/// `offset ..< offset + count`. Angles are computed in Double, then rounded. Cost: O(count * dim).
public func sinusoidalPositions(count: Int, dim: Int, offset: Int = 0, base: Double = 10000, interleaved: Bool = true) -> Tensor {
    precondition(count >= 0 && dim >= 1 && offset >= 0, "sinusoidalPositions: count \(count), dim \(dim), offset \(offset)")
    let half = dim / 2
    return Tensor(shape: [count, dim]) { flat in
        let pos = Double(offset + flat / dim), c = flat % dim
        if interleaved {
            let i = c / 2
            let angle = pos / pow(base, Double(2 * i) / Double(dim))
            return Float(c % 2 == 0 ? sin(angle) : cos(angle))
        }
        // First half sines, second half cosines (for odd dim the last column stays 0).
        let i = c < half ? c : c - half
        if c >= 2 * half { return 0 }
        let angle = pos / pow(base, Double(2 * i) / Double(dim))
        return Float(c < half ? sin(angle) : cos(angle))
    }
}

/// Rotary position embedding (Su et al.), in the "half rotation" convention of GPT-NeoX and
/// Hugging Face Llama: for each head vector `x` at position p, with `h = headDim/2` and
/// `θ_i = base^(-2i/headDim)`, `x[i] <- x[i] cos(pθ_i) - x[i+h] sin(pθ_i)` and
/// `x[i+h] <- x[i+h] cos(pθ_i) + x[i] sin(pθ_i)`. Applied to queries and keys before
/// attention, it makes their dot product depend on the relative position only.
public struct RotaryEmbedding: Sendable {
    /// Head size (even).
    public let headDim: Int
    /// Frequency base (10000 in the paper).
    public let base: Double

    /// A rotation for heads of size `headDim` (even).
    public init(headDim: Int, base: Double = 10000) {
        precondition(headDim >= 2 && headDim % 2 == 0, "RotaryEmbedding: head size \(headDim) must be even and positive")
        self.headDim = headDim
        self.base = base
    }

    /// `x` rotated: `x` is `[batch, seq, heads, headDim]` (.bshd) or `[batch, heads, seq,
    /// headDim]` (.bhsd), position of row s is `positionOffset + s`. Cost: O(count).
    public func callAsFunction(_ x: Tensor, layout: AttentionLayout = .bshd, positionOffset: Int = 0) -> Tensor {
        precondition(x.rank == 4 && x.shape[3] == headDim, "RotaryEmbedding: input \(x.shape) must have 4 axes ending in \(headDim)")
        let (seqAxis, headAxis) = layout == .bshd ? (1, 2) : (2, 1)
        let (b, s, h) = (x.shape[0], x.shape[seqAxis], x.shape[headAxis])
        let half = headDim / 2
        let l = HeadLayout(layout, seq: s, heads: h, headDim: headDim)
        // cos/sin table per position and frequency, in Double then rounded (as HF computes
        // inv_freq in float32 and the angles in float32; the difference is below 1e-6 here).
        var cosT = [Float](repeating: 0, count: s * half), sinT = cosT
        for p in 0..<s {
            for i in 0..<half {
                let theta = Double(positionOffset + p) * pow(base, -Double(2 * i) / Double(headDim))
                cosT[p * half + i] = Float(cos(theta))
                sinT[p * half + i] = Float(sin(theta))
            }
        }
        var o = x.scalars
        for bi in 0..<b {
            for hi in 0..<h {
                for p in 0..<s {
                    let row = l.offset(bi, hi) + p * l.rowStride
                    for i in 0..<half {
                        let x1 = o[row + i], x2 = o[row + i + half]
                        let c = cosT[p * half + i], sn = sinT[p * half + i]
                        o[row + i] = x1 * c - x2 * sn
                        o[row + i + half] = x2 * c + x1 * sn
                    }
                }
            }
        }
        let out = Tensor(shape: x.shape, scalars: o)
        return out
    }

    /// The rotation applied in place to one operand of token rows, as the training forward
    /// needs it: `x` is `[batch * seq, width]` (row `b * seq + p` is position `p`, as
    /// `positionOffset + p`), and head h of a row is the `headDim` floats at
    /// `column + h * headDim` (`heads` of them; the queries or keys of a fused `[T, 3 inner]`
    /// projection). With `inverse` it applies the transposed rotation (angle `-pθ_i`): the
    /// rotation is orthogonal, so that is both its inverse and its backward (the gradient of
    /// the unrotated operand is the rotated operand's gradient rotated back).
    /// Cost: O(batch * seq * heads * headDim), plus a `seq x headDim/2` sin/cos table.
    package func rotate(
        rows x: inout Tensor, seq: Int, column: Int, heads: Int, positionOffset: Int = 0, inverse: Bool = false
    ) {
        precondition(x.rank == 2 && seq >= 1 && x.shape[0] % seq == 0, "RotaryEmbedding.rotate: rows \(x.shape) are not whole sequences of \(seq)")
        let width = x.shape[1], rows = x.shape[0], half = headDim / 2
        precondition(
            column >= 0 && column + heads * headDim <= width,
            "RotaryEmbedding.rotate: \(heads) heads of \(headDim) at column \(column) do not fit rows of \(width)")
        var cosT = [Float](repeating: 0, count: seq * half), sinT = cosT
        for p in 0..<seq {
            for i in 0..<half {
                let theta = Double(positionOffset + p) * pow(base, -Double(2 * i) / Double(headDim))
                cosT[p * half + i] = Float(cos(theta))
                sinT[p * half + i] = Float(inverse ? -sin(theta) : sin(theta))
            }
        }
        x.withUnsafeMutableBufferPointer { o in
            for r in 0..<rows {
                let p = r % seq
                for h in 0..<heads {
                    let base = r * width + column + h * headDim
                    for i in 0..<half {
                        let x1 = o[base + i], x2 = o[base + i + half]
                        let c = cosT[p * half + i], sn = sinT[p * half + i]
                        o[base + i] = x1 * c - x2 * sn
                        o[base + i + half] = x2 * c + x1 * sn
                    }
                }
            }
        }
    }
}
