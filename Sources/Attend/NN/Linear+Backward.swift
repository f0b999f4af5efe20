// Backward passes of Linear and Embedding. A training forward is the inference forward (its
// input is all the backward needs: the caller keeps it); the backward returns the input's
// gradient and adds the parameters' gradients into a ParameterSet under their Hugging Face
// names. Every product is one Tensor.gemm: dX = dY·W, dW += dYᵀ·X (beta = 1, in place).

/// The Hugging Face names of a ``Linear``'s parameters. A fused weight (the `[3 inner, d]`
/// query/key/value projection) is stored under several names, one block of rows each, so
/// `parts` lists them top to bottom with their row counts.
struct LinearParameterNames: Sendable {
    /// Weight name, bias name (nil: no bias) and rows of each block, in order.
    var parts: [(weight: String, bias: String?, rows: Int)]

    /// One weight `prefix.weight` of `rows` rows, with `prefix.bias` when `bias`.
    init(_ prefix: String, rows: Int, bias: Bool = true) {
        parts = [(prefix + ".weight", bias ? prefix + ".bias" : nil, rows)]
    }

    /// Blocks stacked top to bottom.
    init(parts: [(weight: String, bias: String?, rows: Int)]) { self.parts = parts }

    /// Every name, weights and biases.
    var all: [String] { parts.flatMap { [$0.weight] + ($0.bias.map { [$0] } ?? []) } }
}

extension Linear {
    /// The backward of `y = x Wᵀ + b` restricted to the weight rows `outputs` (all by
    /// default): `x` `[T, in]` the forward's input, `dY` `[T, outputs.count]`. Adds `dYᵀ x`
    /// and the column sums of `dY` into `grads` under `names` (the blocks `outputs` covers;
    /// a block must lie wholly inside or outside `outputs`) and returns `dX = dY W[outputs]`
    /// `[T, in]` (nil when `inputGradient` is false). Cost: `4 T in outputs.count` flops.
    @discardableResult
    func backward(
        input x: Tensor, outputGradient dY: Tensor, outputs: Range<Int>? = nil, names: LinearParameterNames,
        into grads: inout ParameterSet, inputGradient: Bool = true, compute: Compute
    ) -> Tensor? {
        let outputs = outputs ?? 0..<outFeatures
        let rows = x.count / max(inFeatures, 1)
        precondition(x.shape.last == inFeatures, "Linear.backward: input \(x.shape) does not end in \(inFeatures)")
        precondition(dY.count == rows * outputs.count, "Linear.backward: gradient \(dY.shape) does not match \(rows) rows x \(outputs.count) outputs")
        let x2 = x.reshaped([rows, inFeatures]), g2 = dY.reshaped([rows, outputs.count])
        var start = 0
        for part in names.parts {
            let block = start..<(start + part.rows)
            start += part.rows
            if block.upperBound <= outputs.lowerBound || block.lowerBound >= outputs.upperBound { continue }
            precondition(
                block.lowerBound >= outputs.lowerBound && block.upperBound <= outputs.upperBound,
                "Linear.backward: parameter block \(block) straddles the outputs \(outputs)")
            let local = (block.lowerBound - outputs.lowerBound)..<(block.upperBound - outputs.lowerBound)
            let gBlock = local == 0..<outputs.count ? g2 : g2.columns(local)  // [T, rows]
            grads.modify(part.weight) { $0.gemm(gBlock, transposeA: true, x2, beta: 1, compute: compute) }
            if let bias = part.bias {
                grads.modify(bias) { b in
                    gBlock.withUnsafeBufferPointer { g in
                        b.withUnsafeMutableBufferPointer { bp in
                            let n = part.rows
                            for r in 0..<rows { for c in 0..<n { bp[c] += g[r * n + c] } }
                        }
                    }
                }
            }
        }
        precondition(start == outFeatures, "Linear.backward: names cover \(start) rows of a \(outFeatures)-row weight")
        guard inputGradient else { return nil }
        let w = outputs == 0..<outFeatures ? weight : weight.rows(outputs)
        var dX = Tensor.zeros([rows, inFeatures])
        dX.gemm(g2, w, compute: compute)
        return dX.reshaped(x.shape)
    }
}

extension Embedding {
    /// The backward of a lookup: adds row `i` of `dY` `[ids.count, dim]` into row `ids[i]` of
    /// the gradient `name` (scatter-add), except for `paddingIndex` (PyTorch's `padding_idx`,
    /// whose row gets no gradient). Cost: O(ids.count * dim).
    func backward(ids: [Int], outputGradient dY: Tensor, name: String, paddingIndex: Int? = nil, into grads: inout ParameterSet, compute: Compute) {
        grads.modify(name) { TrainingOps.embeddingBackward(ids: ids, outputGradient: dY, paddingIndex: paddingIndex, into: &$0, compute: compute) }
    }
}
