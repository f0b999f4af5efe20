import Foundation

extension SwiftSIMDKernels {
    /// The activations in Double with Foundation's erf/tanh/exp: the oracle for the C ones.
    static func activation(_ a: Activation, _ x: Float) -> Float {
        let d = Double(x)
        switch a {
        case .relu: return x < 0 ? 0 : x
        case .gelu: return Float(d / 2 * (1 + erf(d / 2.0.squareRoot())))
        case .geluTanh: return Float(d / 2 * (1 + tanh((2 / Double.pi).squareRoot() * (d + 0.044715 * d * d * d))))
        case .silu: return Float(d / (1 + Foundation.exp(-d)))
        }
    }

    /// Layer norm / RMS norm of `x + residual` per row, in Double (two passes), on packed rows
    /// (every row stride is `n`).
    static func normRows(
        rms: Bool, rows: Int, n: Int, x: UnsafePointer<Float>, residual: UnsafePointer<Float>?,
        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>?, eps: Float, y: UnsafeMutablePointer<Float>
    ) {
        normRows(
            rms: rms, rows: rows, n: n, x: x, ldx: n, residual: residual, ldr: n, gamma: gamma, beta: beta,
            eps: eps, y: y, ldy: n)
    }

    /// Layer norm / RMS norm of `x + residual` per row, in Double (two passes), with row
    /// strides `ldx`, `ldr`, `ldy` (in floats). `y` may alias `x` or `residual` with the same
    /// stride: each row is read completely before it is written.
    static func normRows(
        rms: Bool, rows: Int, n: Int, x: UnsafePointer<Float>, ldx: Int, residual: UnsafePointer<Float>?, ldr: Int,
        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>?, eps: Float, y: UnsafeMutablePointer<Float>, ldy: Int
    ) {
        var t = [Double](repeating: 0, count: n)
        for r in 0..<rows {
            for i in 0..<n { t[i] = Double(x[r * ldx + i]) + (residual.map { Double($0[r * ldr + i]) } ?? 0) }
            let mean = rms ? 0 : t.reduce(0, +) / Double(n)
            let variance = t.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)
            let rstd = 1 / (variance + Double(eps)).squareRoot()
            for i in 0..<n {
                let b = rms ? 0 : (beta.map { Double($0[i]) } ?? 0)
                y[r * ldy + i] = Float((t[i] - mean) * rstd * Double(gamma[i]) + b)
            }
        }
    }
}
