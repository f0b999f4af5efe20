import Foundation

// The training benchmark's two jobs (`bench --only train`), shared by the bench and the tests
// so the measured code path is the tested one:
//
//   EncoderStackTraining   a stack of PyTorch nn.TransformerEncoderLayer blocks (the paper's
//                          base encoder: 6 post-LN layers, d 512, 8 heads, dFF 2048, ReLU) on
//                          already-embedded rows, loss = mean squared error to a target, as
//                          torch.nn.functional.mse_loss(encoder(x), target).
//   randomBERTForPreTraining   a BERTForPreTraining of a given shape with seeded random weights
//                          (written to a temporary folder and loaded, as a user's would be).
//
// One step is the forward with activations kept, the backward, and an optimizer update.

/// A stack of `nn.TransformerEncoderLayer` blocks (no final norm), trainable against a mean
/// squared error: `loss = mean((encoder(x) - target)²)` over every scalar.
///
/// Parameters are named as `nn.TransformerEncoder`'s `named_parameters()`:
/// `layers.i.self_attn.in_proj_weight`, `in_proj_bias`, `out_proj.weight`, `out_proj.bias`,
/// `linear1.*`, `linear2.*`, `norm1.*`, `norm2.*`. Dropout is not applied (probability 0).
/// Cost per step: forward `(8 d² + 4 d dFF) T + 4 T seq d` flops per layer (T = batch x seq),
/// backward about twice that; memory: every layer's activations.
package final class EncoderStackTraining {
    /// Large step buffers are recycled while this model lives (see `LargeBufferRecycler`).
    private let recycling = LargeBufferRecycler.Token()
    /// The blocks' hyperparameters.
    package let config: PyTorchLayerConfig
    /// Number of blocks.
    package let layerCount: Int
    /// The kernels and threads every step runs on.
    package let compute: Compute
    /// The parameters in `named_parameters()` order. Setting them (same names and shapes)
    /// replaces the weights the next `loss` uses.
    package var parameters: ParameterSet {
        didSet { built = nil }
    }
    private var built: [EncoderLayer]?
    private var saved: (layers: [EncoderLayerActivations], gradient: Tensor)?

    /// `layers` blocks with seeded random weights: every matrix uniform in
    /// `±1/sqrt(fan_in)` (PyTorch's `Linear` bound), biases 0, norm weights 1 and biases 0.
    /// Throws `CheckpointError.invalidConfig` for impossible sizes. Cost: O(parameters).
    package init(layers: Int, config: PyTorchLayerConfig, seed: UInt64, compute: Compute = .default) throws {
        try config.validate()
        guard layers >= 1 else { throw CheckpointError.invalidConfig("layers \(layers) must be at least 1") }
        self.config = config
        self.layerCount = layers
        self.compute = compute
        var rng = SplitMix64(state: seed)
        var set = ParameterSet()
        for (name, shape) in Self.parameterShapes(layers: layers, config) {
            if shape.count == 2 {
                let bound = 1 / Float(shape[1]).squareRoot()
                set[name] = Tensor(shape: shape, generating: { _ in Float.random(in: -bound...bound, using: &rng) })
            } else if name.contains(".norm") && name.hasSuffix("weight") {
                set[name] = Tensor(shape: shape, generating: { _ in 1 })
            } else {
                set[name] = Tensor.zeros(shape)
            }
        }
        parameters = set
    }

    /// The parameter names and shapes, in `named_parameters()` order.
    package static func parameterShapes(layers: Int, _ c: PyTorchLayerConfig) -> [(String, [Int])] {
        let d = c.modelDim, f = c.feedForwardDim
        var out: [(String, [Int])] = []
        for i in 0..<layers {
            let l = "layers.\(i)."
            out += [(l + "self_attn.in_proj_weight", [3 * d, d]), (l + "self_attn.in_proj_bias", [3 * d])]
            out += [(l + "self_attn.out_proj.weight", [d, d]), (l + "self_attn.out_proj.bias", [d])]
            out += [(l + "linear1.weight", [f, d]), (l + "linear1.bias", [f])]
            out += [(l + "linear2.weight", [d, f]), (l + "linear2.bias", [d])]
            out += [(l + "norm1.weight", [d]), (l + "norm1.bias", [d]), (l + "norm2.weight", [d]), (l + "norm2.bias", [d])]
        }
        return out
    }

    /// The blocks over the current parameters (rebuilt after they change).
    private var layers: [EncoderLayer] {
        if let built { return built }
        do {
            let loader = ParameterLoader(parameters)
            let l = try (0..<layerCount).map { try EncoderLayer(loadingPyTorch: loader, "layers.\($0)", config) }
            built = l
            return l
        } catch {
            preconditionFailure("EncoderStackTraining: the parameter set no longer builds the layers: \(error)")
        }
    }

    /// Block `i`'s parameter names.
    private func layerNames(_ i: Int) -> EncoderLayerParameterNames {
        let l = "layers.\(i).", d = config.modelDim
        var attention = AttentionParameterNames(query: "", key: "", value: "", out: l + "self_attn.out_proj", inner: d, modelDim: d, bias: true)
        attention.input = LinearParameterNames(parts: [(l + "self_attn.in_proj_weight", l + "self_attn.in_proj_bias", 3 * d)])
        return EncoderLayerParameterNames(
            attention: attention, attentionNorm: NormParameterNames(l + "norm1"),
            feedForward: FeedForwardParameterNames(
                up: LinearParameterNames(l + "linear1", rows: config.feedForwardDim), gate: nil, down: LinearParameterNames(l + "linear2", rows: d)),
            feedForwardNorm: NormParameterNames(l + "norm2"))
    }

    /// The mean squared error of the stack's output on `input` `[batch, seq, d]` against
    /// `target` (same shape), keeping the activations for `backward()`. The sum is taken in
    /// double precision. Throws `TrainingError` for shapes that do not match.
    /// Cost: one forward pass.
    package func loss(input: Tensor, target: Tensor) throws(TrainingError) -> Float {
        let d = config.modelDim
        guard input.shape.count == 3, input.shape[2] == d, input.shape[0] > 0, input.shape[1] > 0 else {
            throw TrainingError("EncoderStackTraining: input \(input.shape) is not [batch, seq, \(d)]")
        }
        guard target.shape == input.shape else {
            throw TrainingError("EncoderStackTraining: target \(target.shape) does not match the input \(input.shape)")
        }
        saved = nil
        let (b, s) = (input.shape[0], input.shape[1])
        let visibility = AttentionVisibility(batch: b, seqQ: s, seqK: s, keyPadding: nil, causal: false)
        var x = input.reshaped([b * s, d])
        var kept: [EncoderLayerActivations] = []
        kept.reserveCapacity(layerCount)
        for layer in layers {
            let (y, a) = layer.trainingForward(x, visibility, compute: compute)
            kept.append(a)
            x = y
        }
        // loss = Σ (y - t)² / n; dLoss/dy = 2 (y - t) / n. Per piece of fixed size a Double
        // partial sum, the partials then added in piece order (the same bits on any thread count).
        let n = x.count
        let scale = 2 / Float(n)
        var gradient = Tensor.uninitialized([b * s, d])
        let pieces = (n + Tensor.trainingChunk - 1) / Tensor.trainingChunk
        var partial = [Double](repeating: 0, count: pieces)
        x.withUnsafeBufferPointer { y in
            target.withUnsafeBufferPointer { t in
                gradient.withUnsafeMutableBufferPointer { g in
                    partial.withUnsafeMutableBufferPointer { part in
                        let (yp, tp, gp, pp) = (y.baseAddress!, t.baseAddress!, g.baseAddress!, part.baseAddress!)
                        Tensor.forTrainingChunks(n, compute.threads) { lo, count in
                            var sum = 0.0
                            for i in lo..<(lo + count) {
                                let e = yp[i] - tp[i]
                                sum += Double(e) * Double(e)
                                gp[i] = scale * e
                            }
                            pp[lo / Tensor.trainingChunk] = sum
                        }
                    }
                }
            }
        }
        let sum = partial.reduce(0, +)
        saved = (kept, gradient)
        return Float(sum / Double(n))
    }

    /// The gradient of the last `loss` for every parameter (`parameters`' names, order and
    /// shapes), then frees the activations. Throws when no loss is pending.
    /// Cost: about twice the forward.
    package func backward() throws(TrainingError) -> ParameterSet {
        guard let s = saved else { throw TrainingError("EncoderStackTraining.backward: no loss was computed since the last backward") }
        saved = nil
        var grads = parameters.zerosLike(compute: compute)
        var dX = s.gradient
        let l = layers
        for i in stride(from: l.count - 1, through: 0, by: -1) {
            dX = l[i].backward(s.layers[i], outputGradient: dX, names: layerNames(i), into: &grads, compute: compute).input
        }
        return grads
    }

    /// One training step: `loss`, `backward`, then `optimizer` updates the parameters in place
    /// (the built layers are dropped first, so the weights are not copied). Returns the loss
    /// before the update.
    package func step(input: Tensor, target: Tensor, optimizer: inout some Optimizer) throws(TrainingError) -> Float {
        let value = try loss(input: input, target: target)
        let grads = try backward()
        built = nil
        try optimizer.step(&parameters, gradients: grads)
        return value
    }
}

/// A `BERTForPreTraining` of `config`'s shape with seeded random weights (matrices and
/// embeddings uniform in ±0.04, about `transformers`' normal(0, 0.02); biases 0; norm weights
/// 1), loaded from a folder written to a temporary directory and removed afterwards. The
/// configuration is written with dropout 0, absolute positions and tied word embeddings.
/// Cost: O(parameters), plus writing and reading them once.
package func randomBERTForPreTraining(
    vocabSize: Int, hiddenSize: Int, layers: Int, heads: Int, intermediateSize: Int, maxPositions: Int = 512,
    activation: String = "gelu", seed: UInt64, compute: Compute = .default
) throws -> BERTForPreTraining {
    let json: [String: Any] = [
        "architectures": ["BertForPreTraining"], "model_type": "bert", "vocab_size": vocabSize, "hidden_size": hiddenSize,
        "num_hidden_layers": layers, "num_attention_heads": heads, "intermediate_size": intermediateSize, "hidden_act": activation,
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "max_position_embeddings": maxPositions,
        "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
        "position_embedding_type": "absolute", "tie_word_embeddings": true,
    ]
    let configJSON = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
    let configURL = FileManager.default.temporaryDirectory.appendingPathComponent("attend-config-\(UUID().uuidString).json")
    try configJSON.write(to: configURL)
    defer { try? FileManager.default.removeItem(at: configURL) }
    let config = try BERTConfig(contentsOf: configURL)
    var rng = SplitMix64(state: seed)
    var set = ParameterSet()
    for (name, shape) in BERTForPreTraining.parameterShapes(config) {
        if shape.count == 2 {
            set[name] = Tensor(shape: shape, generating: { _ in Float.random(in: -0.04...0.04, using: &rng) })
        } else if name.contains("LayerNorm.weight") {
            set[name] = Tensor(shape: shape, generating: { _ in 1 })
        } else {
            set[name] = Tensor.zeros(shape)
        }
    }
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("attend-bert-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: folder) }
    try saveTrainingFolder(to: folder, configJSON: configJSON, parameters: set)
    return try BERTForPreTraining(directory: folder, compute: compute)
}
