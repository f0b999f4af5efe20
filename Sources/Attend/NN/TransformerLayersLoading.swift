// Loading encoder/decoder blocks and stacks from PyTorch state dicts
// (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer, nn.TransformerEncoder/Decoder,
// nn.Transformer), by the names PyTorch writes. Every missing tensor, or one of the wrong
// shape, is a thrown CheckpointError naming it; ParameterLoader.finish() reports the rest.

/// The hyperparameters of PyTorch's `nn.TransformerEncoderLayer` / `nn.TransformerDecoderLayer`
/// (what their constructors take), which the state dict alone does not say.
public struct PyTorchLayerConfig: Sendable, Hashable {
    /// `d_model`.
    public var modelDim: Int
    /// `nhead`.
    public var heads: Int
    /// `dim_feedforward`.
    public var feedForwardDim: Int
    /// `activation` (`relu` or `gelu`; any ``Activation`` is accepted).
    public var activation: Activation
    /// `norm_first`: pre-LN when true.
    public var normFirst: Bool
    /// `layer_norm_eps`.
    public var eps: Float
    /// `bias`: whether the linear layers and norms have biases (PyTorch's default true).
    public var bias: Bool

    /// PyTorch's defaults except for the sizes: ReLU, post-LN, eps 1e-5, with biases.
    public init(
        modelDim: Int, heads: Int, feedForwardDim: Int = 2048, activation: Activation = .relu,
        normFirst: Bool = false, eps: Float = 1e-5, bias: Bool = true
    ) {
        self.modelDim = modelDim
        self.heads = heads
        self.feedForwardDim = feedForwardDim
        self.activation = activation
        self.normFirst = normFirst
        self.eps = eps
        self.bias = bias
    }

    /// Throws `.invalidConfig` unless the sizes are positive and `heads` divides `modelDim`.
    public func validate() throws {
        guard modelDim >= 1, heads >= 1, feedForwardDim >= 1 else {
            throw CheckpointError.invalidConfig("d_model \(modelDim), nhead \(heads), dim_feedforward \(feedForwardDim) must be positive")
        }
        guard modelDim % heads == 0 else {
            throw CheckpointError.invalidConfig("nhead \(heads) does not divide d_model \(modelDim)")
        }
        guard eps.isFinite && eps >= 0 else { throw CheckpointError.invalidConfig("layer_norm_eps \(eps) must be finite and non-negative") }
    }

    var placement: NormPlacement { normFirst ? .pre : .post }
}

extension Norm {
    /// A PyTorch `nn.LayerNorm` under `prefix` (`weight`, and `bias` when `bias`).
    static func loadingLayerNorm(_ p: ParameterLoader, _ prefix: String, size: Int, eps: Float, bias: Bool) throws -> Norm {
        let j = { ParameterLoader.join(prefix, $0) }
        let w = try p.load(j("weight"), shape: [size])
        let b = bias ? try p.load(j("bias"), shape: [size]) : nil
        return .layer(LayerNorm(weight: w, bias: b, eps: eps))
    }
}

extension FeedForward {
    /// PyTorch's `linear1` (d -> dFF) and `linear2` (dFF -> d) under `prefix`.
    static func loadingPyTorch(_ p: ParameterLoader, _ prefix: String, _ c: PyTorchLayerConfig) throws -> FeedForward {
        let j = { ParameterLoader.join(prefix, $0) }
        return FeedForward(
            up: try Linear(loading: p, j("linear1"), in: c.modelDim, out: c.feedForwardDim, bias: c.bias),
            down: try Linear(loading: p, j("linear2"), in: c.feedForwardDim, out: c.modelDim, bias: c.bias),
            activation: c.activation)
    }
}

extension EncoderLayer {
    /// Loads an `nn.TransformerEncoderLayer` state dict under `prefix`: `self_attn.*`
    /// (``MultiHeadAttention/init(loadingPyTorch:_:modelDim:heads:)``), `linear1`, `linear2`,
    /// `norm1`, `norm2`. Throws `CheckpointError` naming a missing or misshapen tensor, or
    /// `.invalidConfig` for impossible sizes.
    public init(loadingPyTorch p: ParameterLoader, _ prefix: String, _ c: PyTorchLayerConfig) throws {
        try c.validate()
        let j = { ParameterLoader.join(prefix, $0) }
        self.init(
            selfAttention: try MultiHeadAttention(loadingPyTorch: p, j("self_attn"), modelDim: c.modelDim, heads: c.heads),
            attentionNorm: try .loadingLayerNorm(p, j("norm1"), size: c.modelDim, eps: c.eps, bias: c.bias),
            feedForward: try .loadingPyTorch(p, prefix, c),
            feedForwardNorm: try .loadingLayerNorm(p, j("norm2"), size: c.modelDim, eps: c.eps, bias: c.bias),
            placement: c.placement)
    }
}

extension DecoderLayer {
    /// Loads an `nn.TransformerDecoderLayer` state dict under `prefix`: `self_attn.*`,
    /// `multihead_attn.*`, `linear1`, `linear2`, `norm1`, `norm2`, `norm3`. Throws
    /// `CheckpointError` naming a missing or misshapen tensor.
    public init(loadingPyTorch p: ParameterLoader, _ prefix: String, _ c: PyTorchLayerConfig) throws {
        try c.validate()
        let j = { ParameterLoader.join(prefix, $0) }
        self.init(
            selfAttention: try MultiHeadAttention(loadingPyTorch: p, j("self_attn"), modelDim: c.modelDim, heads: c.heads),
            selfAttentionNorm: try .loadingLayerNorm(p, j("norm1"), size: c.modelDim, eps: c.eps, bias: c.bias),
            crossAttention: try MultiHeadAttention(loadingPyTorch: p, j("multihead_attn"), modelDim: c.modelDim, heads: c.heads),
            crossAttentionNorm: try .loadingLayerNorm(p, j("norm2"), size: c.modelDim, eps: c.eps, bias: c.bias),
            feedForward: try .loadingPyTorch(p, prefix, c),
            feedForwardNorm: try .loadingLayerNorm(p, j("norm3"), size: c.modelDim, eps: c.eps, bias: c.bias),
            placement: c.placement)
    }
}

extension TransformerEncoder {
    /// Loads an `nn.TransformerEncoder` state dict under `prefix`: `layers.0` ...
    /// `layers.{count-1}` and, when `finalNorm`, `norm` (the `norm` argument of
    /// `nn.TransformerEncoder`; `nn.Transformer` always has one). Throws `CheckpointError`
    /// naming a missing or misshapen tensor.
    public init(
        loadingPyTorch p: ParameterLoader, _ prefix: String, layers count: Int, _ c: PyTorchLayerConfig,
        finalNorm: Bool
    ) throws {
        guard count >= 1 else { throw CheckpointError.invalidConfig("num_encoder_layers \(count) must be at least 1") }
        let j = { ParameterLoader.join(prefix, $0) }
        let layers = try (0..<count).map { try EncoderLayer(loadingPyTorch: p, j("layers.\($0)"), c) }
        let norm = finalNorm ? try Norm.loadingLayerNorm(p, j("norm"), size: c.modelDim, eps: c.eps, bias: c.bias) : nil
        self.init(layers: layers, finalNorm: norm)
    }
}

extension TransformerDecoder {
    /// Loads an `nn.TransformerDecoder` state dict under `prefix`: `layers.0` ...
    /// `layers.{count-1}` and, when `finalNorm`, `norm`. Throws `CheckpointError` naming a
    /// missing or misshapen tensor.
    public init(
        loadingPyTorch p: ParameterLoader, _ prefix: String, layers count: Int, _ c: PyTorchLayerConfig,
        finalNorm: Bool
    ) throws {
        guard count >= 1 else { throw CheckpointError.invalidConfig("num_decoder_layers \(count) must be at least 1") }
        let j = { ParameterLoader.join(prefix, $0) }
        let layers = try (0..<count).map { try DecoderLayer(loadingPyTorch: p, j("layers.\($0)"), c) }
        let norm = finalNorm ? try Norm.loadingLayerNorm(p, j("norm"), size: c.modelDim, eps: c.eps, bias: c.bias) : nil
        self.init(layers: layers, finalNorm: norm)
    }
}
