/// Absolute position vectors added to token embeddings before the first layer: the paper's
/// sinusoids (§3.5), a learned table (BERT, BART), or none (T5, which uses a relative bias).
///
/// Shapes: ``rows(_:)`` gives `[count, d]` for a range of positions. Cost: a copy of the rows
/// (sinusoids past the precomputed table are computed on demand, O(count * d) sin/cos).
public enum AbsolutePositions: Sendable {
    /// No absolute positions.
    case none
    /// The sinusoidal table of ``sinusoidalPositions(count:dim:offset:base:interleaved:)``,
    /// precomputed for the first `table.shape[0]` positions.
    case sinusoidal(table: Tensor, base: Double, interleaved: Bool)
    /// A learned table `[maxPositions + offset, d]`; position p reads row `p + offset`
    /// (BART and its relatives store 2 extra leading rows).
    case learned(Embedding, offset: Int)

    /// The paper's sinusoids for width `dim`, precomputed for `precomputed` positions.
    /// `interleaved: true` puts sines at even and cosines at odd dimensions (the paper,
    /// PyTorch tutorials); false puts sines in the first half (Marian, fairseq).
    /// Cost: O(precomputed * dim) once.
    public static func sinusoidal(dim: Int, precomputed: Int = 512, base: Double = 10000, interleaved: Bool = true) -> AbsolutePositions {
        .sinusoidal(
            table: sinusoidalPositions(count: precomputed, dim: dim, base: base, interleaved: interleaved),
            base: base, interleaved: interleaved)
    }

    /// The vectors of positions `range` (`[range.count, d]`), or nil for `.none`. A learned
    /// table must cover the range (a longer input is a programming error of the caller, who
    /// knows the model's maximum length).
    public func rows(_ range: Range<Int>) -> Tensor? {
        precondition(range.lowerBound >= 0, "AbsolutePositions: negative position range \(range)")
        switch self {
        case .none:
            return nil
        case .sinusoidal(let table, let base, let interleaved):
            if range.upperBound <= table.shape[0] { return table.rows(range) }
            return sinusoidalPositions(count: range.count, dim: table.shape[1], offset: range.lowerBound, base: base, interleaved: interleaved)
        case .learned(let embedding, let offset):
            precondition(
                range.upperBound + offset <= embedding.count,
                "AbsolutePositions: positions \(range) exceed the learned table of \(embedding.count - offset) positions (offset \(offset))")
            return embedding(Array(range.lowerBound + offset..<range.upperBound + offset))
        }
    }
}

/// Token embeddings scaled by `scale`, plus absolute positions `offset ..< offset + n`:
/// `ids` `[batch][n]` (equal lengths) to `[batch, n, d]`. Cost: O(batch * n * d).
func embed(_ ids: [[Int]], table: Embedding, scale: Float, positions: AbsolutePositions, offset: Int) -> Tensor {
    let b = ids.count, n = ids.first?.count ?? 0, d = table.dim
    precondition(ids.allSatisfy { $0.count == n }, "embed: rows of unequal lengths \(ids.map(\.count))")
    var x = table(ids.flatMap { $0 }, scale: scale).reshaped([b, n, d])  // [b, n, d]
    if let pe = positions.rows(offset..<(offset + n)) {  // [n, d]
        precondition(pe.shape == [n, d], "embed: position vectors \(pe.shape) do not fit embeddings of width \(d)")
        x.addBroadcasting(pe)  // every row of the batch gets positions offset ..< offset + n
    }
    return x
}
