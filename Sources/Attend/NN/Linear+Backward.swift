// Backward passes of Linear and Embedding. A training forward is the inference forward (its
// input is all the backward needs: the caller keeps it); the backward returns the input's
// gradient and adds the parameters' gradients into a ParameterSet under their Hugging Face
// names. Every product is one Tensor.gemm: dX = dY·W, dW += dYᵀ·X (beta = 1, in place).

/// The Hugging Face names of a ``Linear``'s parameters. A fused weight (the `[3 inner, d]`
/// query/key/value projection) is stored under several names, one block of rows each, so
/// `parts` lists them top to bottom with their row counts.
package struct LinearParameterNames: Sendable {
    /// Weight name, bias name (nil: no bias) and rows of each block, in order.
    package var parts: [(weight: String, bias: String?, rows: Int)]

    /// One weight `prefix.weight` of `rows` rows, with `prefix.bias` when `bias`.
    package init(_ prefix: String, rows: Int, bias: Bool = true) {
        parts = [(prefix + ".weight", bias ? prefix + ".bias" : nil, rows)]
    }

    /// Blocks stacked top to bottom.
    package init(parts: [(weight: String, bias: String?, rows: Int)]) { self.parts = parts }

    /// Every name, weights and biases.
    var all: [String] { parts.flatMap { [$0.weight] + ($0.bias.map { [$0] } ?? []) } }
}

extension Linear {
    /// The backward of `y = x Wᵀ + b` restricted to the weight rows `outputs` (all by
    /// default): `x` `[T, in]` the forward's input, `dY` `[T, outputs.count]`. Adds `dYᵀ x`
    /// and the column sums of `dY` into `grads` under `names` (into the rows of each stored
    /// block that `outputs` covers) and returns `dX = dY W[outputs]`
    /// `[T, in]` (nil when `inputGradient` is false). Cost: `4 T in outputs.count` flops.
    @discardableResult
    package func backward(
        input x: Tensor, outputGradient dY: Tensor, outputs: Range<Int>? = nil, names: LinearParameterNames,
        into grads: inout ParameterSet, inputGradient: Bool = true, compute: Compute
    ) -> Tensor? {
        let outputs = outputs ?? 0..<outFeatures
        let rows = x.count / max(inFeatures, 1)
        precondition(x.shape.last == inFeatures, "Linear.backward: input \(x.shape) does not end in \(inFeatures)")
        precondition(dY.count == rows * outputs.count, "Linear.backward: gradient \(dY.shape) does not match \(rows) rows x \(outputs.count) outputs")
        let x2 = x.reshaped([rows, inFeatures]), g2 = dY.reshaped([rows, outputs.count])
        let width = outputs.count
        var start = 0
        for part in names.parts {
            let block = start..<(start + part.rows)
            start += part.rows
            let lo = max(block.lowerBound, outputs.lowerBound), hi = min(block.upperBound, outputs.upperBound)
            if lo >= hi { continue }
            let local = (lo - outputs.lowerBound)..<(hi - outputs.lowerBound)  // columns of dY
            let inBlock = (lo - block.lowerBound)..<(hi - block.lowerBound)  // rows of this parameter
            // dW[inBlock] += dY[:, local]ᵀ x, read in place (columns of dY at its row stride;
            // rows of one stored weight, as cross-attention's query or key/value rows of a
            // fused in_proj_weight).
            if rows > 0 {
                grads.modify(part.weight) { w in
                    g2.withUnsafeBufferPointer { g in
                        x2.withUnsafeBufferPointer { xp in
                            w.withUnsafeMutableBufferPointer { wp in
                                Attend.gemm(
                                    alpha: 1, a: UnsafeBufferPointer(rebasing: g[local.lowerBound...]),
                                    MatrixOperand(rows: hi - lo, cols: rows, ld: max(width, 1), transposed: true),
                                    b: xp, MatrixOperand(rows: rows, cols: inFeatures, ld: max(inFeatures, 1), transposed: false),
                                    beta: 1, c: UnsafeMutableBufferPointer(rebasing: wp[(inBlock.lowerBound * inFeatures)...]),
                                    ldc: max(inFeatures, 1), compute: compute)
                            }
                        }
                    }
                }
            }
            if let bias = part.bias {
                grads.modify(bias) { b in
                    g2.withUnsafeBufferPointer { g in
                        b.withUnsafeMutableBufferPointer { bp in
                            guard rows > 0, let gb = g.baseAddress else { return }
                            TrainingOps.addColumnSums(
                                gb + local.lowerBound, rows: rows, n: hi - lo, ld: width, into: bp.baseAddress! + inBlock.lowerBound, compute: compute)
                        }
                    }
                }
            }
        }
        precondition(start == outFeatures, "Linear.backward: names cover \(start) rows of a \(outFeatures)-row weight")
        guard inputGradient else { return nil }
        let w = outputs == 0..<outFeatures ? weight : weight.rows(outputs)
        var dX = Tensor.uninitialized([rows, inFeatures])
        dX.gemm(g2, w, compute: compute)  // beta 0: written, not read
        return dX.reshaped(x.shape)
    }
}

extension Embedding {
    /// The backward of a lookup: adds row `i` of `dY` `[ids.count, dim]` into row `ids[i]` of
    /// the gradient `name` (scatter-add), except for `paddingIndex` (PyTorch's `padding_idx`,
    /// whose row gets no gradient). Cost: O(ids.count * dim).
    package func backward(ids: [Int], outputGradient dY: Tensor, name: String, paddingIndex: Int? = nil, into grads: inout ParameterSet, compute: Compute) {
        grads.modify(name) { TrainingOps.embeddingBackward(ids: ids, outputGradient: dY, paddingIndex: paddingIndex, into: &$0, compute: compute) }
    }
}
