internal import CKernels

/// Element-wise activations: the functions a feed-forward block applies between its two
/// projections.
public enum Activation: String, Sendable, CaseIterable {
    /// `max(x, 0)`: the original Transformer's.
    case relu
    /// `x/2 * (1 + erf(x/√2))`: exact GELU (BERT's `gelu`, PyTorch's default).
    case gelu
    /// `x/2 * (1 + tanh(√(2/π) (x + 0.044715 x³)))`: GPT-2's `gelu_new` / `gelu_pytorch_tanh`.
    case geluTanh
    /// `x * sigmoid(x)`: SiLU, also called swish (Marian).
    case silu

    var cKind: Int32 {
        switch self {
        case .relu: return Int32(CK_ACT_RELU)
        case .gelu: return Int32(CK_ACT_GELU)
        case .geluTanh: return Int32(CK_ACT_GELU_TANH)
        case .silu: return Int32(CK_ACT_SILU)
        }
    }

    /// Parses the names Hugging Face configs and PyTorch use (`relu`, `gelu`, `gelu_new`,
    /// `gelu_pytorch_tanh`, `silu`, `swish`); nil for an unknown name.
    public init?(configName: String) {
        switch configName.lowercased() {
        case "relu": self = .relu
        case "gelu", "gelu_exact": self = .gelu
        case "gelu_new", "gelu_pytorch_tanh", "gelu_tanh", "gelu_fast": self = .geluTanh
        case "silu", "swish": self = .silu
        default: return nil
        }
    }
}

extension Tensor {
    /// `activation` applied to every scalar. Cost: O(count), one exp per scalar except ReLU;
    /// parallel over chunks.
    public func applying(_ activation: Activation, compute: Compute = .default) -> Tensor {
        guard case .native(let v) = compute.backend, count > 0 else {
            var out = self
            out.apply(activation, compute: compute)
            return out
        }
        // Out of place: the kernel reads these scalars and writes fresh storage (no copy first).
        var out = Tensor.uninitialized(shape)
        let n = count
        withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                let fn = v.kernels.pointee.activation!
                let x = src.baseAddress!, y = dst.baseAddress!
                let chunk = 1 << 16
                parallelFor((n + chunk - 1) / chunk, threads: compute.threads) { c in
                    let lo = c * chunk
                    fn(activation.cKind, min(chunk, n - lo), x + lo, y + lo)
                }
            }
        }
        return out
    }

    /// In place: every scalar replaced by `activation` of it. Cost: O(count).
    public mutating func apply(_ activation: Activation, compute: Compute = .default) {
        let n = count
        withUnsafeMutableBufferPointer { buf in
            guard let base = buf.baseAddress else { return }
            switch compute.backend {
            case .native(let v):
                let fn = v.kernels.pointee.activation!
                let chunk = 1 << 16
                parallelFor((n + chunk - 1) / chunk, threads: compute.threads) { c in
                    let lo = c * chunk
                    fn(activation.cKind, min(chunk, n - lo), base + lo, base + lo)
                }
            case .swiftSIMD:
                for i in 0..<n { base[i] = SwiftSIMDKernels.activation(activation, base[i]) }
            }
        }
    }
}

/// Normalizes rows of `x` (optionally `x + residual`) into `out`: layer norm, or RMS norm
/// when `gamma`/`beta` say so. Shapes: x, residual, out `[rows, n]` (any leading axes);
/// gamma, beta `[n]`. Parallel over rows.
func normRows(
    rms: Bool, _ x: Tensor, residual: Tensor?, gamma: Tensor, beta: Tensor?, eps: Float,
    into out: inout Tensor, compute: Compute
) {
    let n = gamma.count
    precondition(x.rank >= 1 && x.shape.last == n, "norm: input \(x.shape) does not end in the normalized size \(n)")
    precondition(residual == nil || residual!.shape == x.shape, "norm: residual \(residual?.shape ?? []) differs from input \(x.shape)")
    precondition(beta == nil || beta!.count == n, "norm: bias \(beta?.shape ?? []) differs from weight \(gamma.shape)")
    precondition(out.shape == x.shape, "norm: output \(out.shape) differs from input \(x.shape)")
    let rows = n == 0 ? 0 : x.count / n
    if rows == 0 { return }
    let none = Tensor.zeros([1])
    x.withUnsafeBufferPointer { xp in
        (residual ?? none).withUnsafeBufferPointer { rp in
            gamma.withUnsafeBufferPointer { gp in
                (beta ?? none).withUnsafeBufferPointer { bp in
                    out.withUnsafeMutableBufferPointer { op in
                        let xb = xp.baseAddress!, gb = gp.baseAddress!, ob = op.baseAddress!
                        let rb = residual == nil ? nil : rp.baseAddress!
                        let bb = beta == nil ? nil : bp.baseAddress!
                        switch compute.backend {
                        case .native(let v):
                            let fn = v.kernels.pointee.norm_rows!
                            let per = max(1, (1 << 15) / n)
                            parallelFor((rows + per - 1) / per, threads: compute.threads) { c in
                                let r0 = c * per, cnt = min(per, rows - r0)
                                fn(rms ? 1 : 0, cnt, n, xb + r0 * n, n, rb.map { $0 + r0 * n }, n, gb, bb, eps, ob + r0 * n, n)
                            }
                        case .swiftSIMD:
                            SwiftSIMDKernels.normRows(rms: rms, rows: rows, n: n, x: xb, residual: rb, gamma: gb, beta: bb, eps: eps, y: ob)
                        }
                    }
                }
            }
        }
    }
}
