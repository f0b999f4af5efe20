// Linear layers with int8 weights (`attend quantize` folders): loading, the product on the
// int8 kernels, and fusing the parts of a QKV projection.

extension Linear {
    /// A layer over an int8 weight, held as is (no float copy): products on a native
    /// variant run on the int8 bytes, the Swift SIMD backend dequantizes blocks of rows per
    /// product. Cost: O(1).
    init(quantized: QuantizedWeight, bias: Tensor?) {
        self.init(storage: .int8(quantized), bias: bias)
    }

    /// The rows of several layers one after another (a fused QKV projection), biases joined
    /// (zeros for a layer without). int8 when every part is int8 of one scheme; when some
    /// part is int8 and the others are not (a value projection `attend quantize` kept
    /// 16-bit beside int8 query and key), the parts themselves, each product running per
    /// part (``weightFormat`` `.mixed`); else one matrix (16-bit when all are 16-bit of one
    /// type, else float32). Cost: one copy of the weights, none for `.mixed`.
    static func concatenatingRows(_ parts: [Linear]) -> Linear {
        let hasBias = parts.contains { $0.bias != nil }
        let bias = hasBias ? Tensor.concatenateRows(parts.map { $0.bias ?? Tensor.zeros([$0.outFeatures]) }) : nil
        let flat = parts.flatMap { p -> [Linear] in if case .parts(let ps) = p.storage { return ps } else { return [p] } }
        if flat.contains(where: { $0.storage.holdsInt8 }) {
            let int8s = flat.compactMap(\.quantized)
            if int8s.count == flat.count, let q = QuantizedWeight.concatenatingRows(int8s) { return Linear(storage: .int8(q), bias: bias) }
            return Linear(storage: .parts(flat), bias: bias)
        }
        return Linear(storage: WeightStorage.concatenateRows(flat.map(\.storage)), bias: bias)
    }
}

/// `act(x W[outputs]ᵀ + b) + residual` with an int8 weight on a native variant (see
/// `q8Product`): `[..., in]` to `[..., outputs.count]`; the activation and the residual are
/// separate passes. Cost: `2 * rows * in * outputs.count` multiply-adds.
func linearForwardInt8(
    _ x: Tensor, weight q: QuantizedWeight, bias: Tensor?, outputs: Range<Int>, activation: Activation?, residual: Tensor?,
    variant: KernelVariant, compute: Compute
) -> Tensor {
    let k = q.k, n = outputs.count
    let rows = k == 0 ? x.shape.dropLast().reduce(1, *) : x.count / k
    let outShape = Array(x.shape.dropLast()) + [n]
    if let residual {
        precondition(
            residual.count == rows * n && residual.shape.last == n,
            "Linear: residual \(residual.shape) must hold \(rows) rows of \(n) (output \(outShape))")
    }
    var out = Tensor.uninitialized(outShape)
    if rows == 0 || n == 0 { return out }
    if k == 0 {
        out = bias.map { b in Tensor(shape: outShape) { b.scalars[outputs.lowerBound + $0 % n] } } ?? Tensor.zeros(outShape)
    } else {
        x.withUnsafeBufferPointer { xp in
            (bias ?? Tensor.zeros([1])).withUnsafeBufferPointer { bp in
                out.withUnsafeMutableBufferPointer { op in
                    q8Product(
                        x: xp.baseAddress!, m: rows, weight: q, outputs: outputs,
                        bias: bias == nil ? nil : bp.baseAddress! + outputs.lowerBound, out: op.baseAddress!, variant: variant,
                        threads: compute.threads)
                }
            }
        }
    }
    if let activation { out.apply(activation, compute: compute) }
    if let residual { out += residual.reshaped(outShape) }
    return out
}

extension ParameterLoader {
    /// The int8 weight `name` (`[out, in]` I8 beside `name_scale`) when the checkpoint holds
    /// one, else nil (`name` is then an ordinary tensor). The scale's dtype (F32 or F16) and
    /// shape (`[out]` per channel, `[out, ceil(in/32)]` per group of 32) give the scheme.
    /// Throws `CheckpointError` naming the tensor: a wrong shape, a scale of another dtype or
    /// shape, an int8 weight without its scale, -128 in the values or a non-finite scale, or a
    /// source that cannot hand out stored bytes. Cost: one pass over the values (the check);
    /// the bytes stay in the mapped file.
    func quantizedMatrix(_ name: String, shape: [Int]) throws -> QuantizedWeight? {
        let scaleName = name + ModelQuantization.scaleSuffix
        let stored: (SafeTensorsInfo, RawBytes)?? = (tensorSource as? SafeTensorsCheckpoint).map { $0.storedTensor(name) }
            ?? (tensorSource as? SafeTensorsFile).map { $0.storedTensor(name) }
        let hasScale = has(scaleName)
        guard let found = stored, let (info, bytes) = found else {
            if hasScale { throw CheckpointError.invalidConfig("'\(scaleName)' needs an int8 weight from a safetensors file") }
            return nil
        }
        guard info.dtype == .I8 else {
            if hasScale { throw CheckpointError.invalidConfig("'\(name)' is \(info.dtype) but has a scale '\(scaleName)' (int8 weights are I8)") }
            return nil
        }
        guard hasScale else { throw CheckpointError.invalidConfig("int8 weight '\(name)' has no scale tensor '\(scaleName)'") }
        guard info.shape == shape else { throw CheckpointError.wrongShape(name: name, expected: shape, found: info.shape) }
        let (n, k) = (shape[0], shape[1])
        let sc: (SafeTensorsInfo, RawBytes)? = (tensorSource as? SafeTensorsCheckpoint)?.storedTensor(scaleName) ?? (tensorSource as? SafeTensorsFile)?.storedTensor(scaleName)
        guard let (sinfo, sbytes) = sc, sinfo.dtype == .F32 || sinfo.dtype == .F16 else {
            throw CheckpointError.invalidConfig("scale '\(scaleName)' must be F32 or F16")
        }
        let scheme: Int8Scheme
        if sinfo.shape == Int8Scheme.channel.scaleShape(n: n, k: k) {
            scheme = .channel
        } else if sinfo.shape == Int8Scheme.group32.scaleShape(n: n, k: k) {
            scheme = .group32
        } else {
            throw CheckpointError.wrongShape(name: scaleName, expected: Int8Scheme.channel.scaleShape(n: n, k: k), found: sinfo.shape)
        }
        let q = try QuantizedWeight(n: n, k: k, scheme: scheme, scalesF16: sinfo.dtype == .F16, q: bytes, scales: sbytes, name: name)
        markUsed(name)
        markUsed(scaleName)
        return q
    }

    /// An output head `name` (`lm_head.weight`) when stored: int8 when stored so, else
    /// float32; nil when absent (the head is then the embedding table).
    func optionalHead(_ name: String, shape: [Int], bias: Tensor?) throws -> Linear? {
        if let q = try quantizedMatrix(name, shape: shape) { return Linear(quantized: q, bias: bias) }
        return try optionalMatrix(name, shape: shape).map { Linear(storage: $0, bias: bias) }
    }
}

extension Linear {
    /// This layer with its weight quantized to int8 as `attend quantize` quantizes it
    /// (`.channel`: float32 scales per output; `.group32`: binary16 scales per 32 inputs).
    /// For benchmarks and tests that build models in memory. Throws `CheckpointError` for a
    /// weight `QuantizedWeight.quantize` refuses (a non-finite element, too many inputs).
    /// Cost: the scale search's passes over the weight.
    package func quantizedToInt8(_ scheme: Int8Scheme) throws -> Linear {
        Linear(quantized: try QuantizedWeight.quantize(weight, scheme: scheme, scalesF16: scheme == .group32), bias: bias)
    }

    /// This layer's rows `copies` times over, in new memory: weight `[copies * out, in]` in the
    /// same format (float32, 16-bit or int8 with its scales), bias repeated likewise. For
    /// benchmarks that must read a weight from memory rather than cache: cycling through the
    /// copies (`outputs: c * out ..< (c + 1) * out`) reads fresh bytes every call. Cost: one
    /// copy of the weight per copy.
    package func repeatingRows(_ copies: Int) -> Linear {
        precondition(copies >= 1, "Linear.repeatingRows: \(copies) copies")
        return Linear.concatenatingRows(Array(repeating: self, count: copies))
    }
}
