// Loading decoder-only checkpoints from Hugging Face folders: config.json (model_type picks
// the family), generation_config.json, and the weights (model.safetensors or a sharded
// checkpoint; F32, F16 and BF16 tensors are widened to float32 at load).

import Foundation

/// The sizes and options of a decoder-only checkpoint, read from `config.json` with
/// transformers' defaults for absent keys (`GPT2Config`, `LlamaConfig`, `MistralConfig`,
/// `Qwen2Config`).
public struct CausalLMConfig: Sendable, Equatable {
    /// The family.
    public var architecture: CausalLMArchitecture
    /// `vocab_size`.
    public var vocabSize: Int
    /// Model width d (`n_embd`, `hidden_size`).
    public var hiddenSize: Int
    /// Feed-forward width (`n_inner` (4d when null), `intermediate_size`).
    public var intermediateSize: Int
    /// Blocks (`n_layer`, `num_hidden_layers`).
    public var layers: Int
    /// Query heads (`n_head`, `num_attention_heads`).
    public var heads: Int
    /// Key/value heads (`num_key_value_heads`, defaults to heads).
    public var kvHeads: Int
    /// Head size (`head_dim`, defaults to d / heads).
    public var headDim: Int
    /// Feed-forward activation (`activation_function`, `hidden_act`).
    public var activation: Activation
    /// Norm epsilon (`layer_norm_epsilon`, `rms_norm_eps`).
    public var normEpsilon: Float
    /// GPT-2's position table size (`n_positions`); nil for RoPE models.
    public var learnedPositions: Int?
    /// RoPE (nil for GPT-2).
    public var rotary: RotaryFrequencies?
    /// Biases on q, k, v (Qwen2 always; Llama/Mistral `attention_bias`; GPT-2 always).
    public var qkvBias: Bool
    /// Bias on the output projection (GPT-2; Llama `attention_bias`).
    public var outBias: Bool
    /// Biases in the feed-forward (GPT-2; Llama `mlp_bias`).
    public var mlpBias: Bool
    /// `tie_word_embeddings`.
    public var tieWordEmbeddings: Bool
    /// GPT-2: `scale_attn_weights` (true) and `scale_attn_by_inverse_layer_idx` (false).
    public var scaleAttentionWeights: Bool, scaleByInverseLayerIndex: Bool
    /// Mistral's (or Qwen2's, with `use_sliding_window`) attention window
    /// (`sliding_window`, 4096 when absent as in transformers, null for none): in a windowed
    /// layer query position i sees key position j only if `0 <= i - j < slidingWindow`.
    public var slidingWindow: Int?
    /// Which layers use ``slidingWindow`` (transformers' `layer_types` "sliding_attention"),
    /// one flag per layer, all false without a window: every layer for Mistral; for Qwen2 the
    /// layers `config.json`'s `layer_types` marks, else layers `i >= max_window_layers` (28
    /// when absent).
    public var slidingWindowLayers: [Bool]

    /// Reads a Hugging Face `config.json`. Throws `ModelFileError` naming the file and key
    /// (a missing or unknown `model_type`, values out of range, unsupported options).
    public init(contentsOf url: URL) throws {
        try self.init(fields: try JSONFields(try readModelJSON(url), path: url.path))
    }

    init(fields c: JSONFields) throws {
        let big = 1 << 24
        let type = try c.string("model_type")
        func need(_ key: String) throws -> Int {
            guard let v = try c.int(key, in: 1...big) else { throw c.fail(key, "missing (a positive integer is required)") }
            return v
        }
        func epsilon(_ key: String, _ fallback: Float) throws -> Float {
            guard let e = try c.double(key) else { return fallback }
            guard e > 0, Float(e).isNormal else { throw c.fail(key, "\(e) must be a positive float32") }
            return Float(e)
        }
        func activationNamed(_ key: String, _ fallback: String) throws -> Activation {
            let name = try c.string(key) ?? fallback
            guard let a = Activation(configName: name) else { throw ModelFileError.unsupported(path: c.path, what: "\(key) \"\(name)\"") }
            return a
        }
        switch type {
        case "gpt2":
            architecture = .gpt2
            vocabSize = try c.int("vocab_size", in: 1...big) ?? 50257
            hiddenSize = try c.int("n_embd", in: 1...big) ?? 768
            layers = try c.int("n_layer", in: 1...4096) ?? 12
            heads = try c.int("n_head", in: 1...4096) ?? 12
            kvHeads = heads
            guard hiddenSize % heads == 0 else { throw c.fail("n_head", "\(heads) does not divide n_embd \(hiddenSize)") }
            headDim = hiddenSize / heads
            intermediateSize = try c.int("n_inner", in: 1...big) ?? 4 * hiddenSize
            self.activation = try activationNamed("activation_function", "gelu_new")
            normEpsilon = try epsilon("layer_norm_epsilon", 1e-5)
            learnedPositions = try c.int("n_positions", in: 1...big) ?? 1024
            rotary = nil
            (qkvBias, outBias, mlpBias) = (true, true, true)
            tieWordEmbeddings = try c.bool("tie_word_embeddings") ?? true
            scaleAttentionWeights = try c.bool("scale_attn_weights") ?? true
            scaleByInverseLayerIndex = try c.bool("scale_attn_by_inverse_layer_idx") ?? false
            slidingWindow = nil
            slidingWindowLayers = [Bool](repeating: false, count: layers)
            if try c.bool("add_cross_attention") == true {
                throw ModelFileError.unsupported(
                    path: c.path, what: "add_cross_attention true (a GPT-2 with cross-attention is an encoder-decoder's decoder)")
            }
        case "llama", "mistral", "qwen2":
            architecture = type == "llama" ? .llama : type == "mistral" ? .mistral : .qwen2
            vocabSize = try need("vocab_size")
            hiddenSize = try need("hidden_size")
            intermediateSize = try need("intermediate_size")
            layers = try c.int("num_hidden_layers", in: 1...4096) ?? 32
            heads = try c.int("num_attention_heads", in: 1...4096) ?? 32
            kvHeads = try c.int("num_key_value_heads", in: 1...4096) ?? heads
            guard heads % kvHeads == 0 else { throw c.fail("num_key_value_heads", "\(kvHeads) does not divide num_attention_heads \(heads)") }
            if let hd = try c.int("head_dim", in: 1...big) {
                headDim = hd
            } else {
                guard hiddenSize % heads == 0 else {
                    throw c.fail("num_attention_heads", "\(heads) does not divide hidden_size \(hiddenSize) (and no head_dim is given)")
                }
                headDim = hiddenSize / heads
            }
            guard headDim % 2 == 0 else { throw c.fail("head_dim", "\(headDim) must be even for rotary positions") }
            self.activation = try activationNamed("hidden_act", "silu")
            normEpsilon = try epsilon("rms_norm_eps", 1e-6)
            learnedPositions = nil
            let maxPositions = try c.int("max_position_embeddings", in: 1...(1 << 30)) ?? 2048
            rotary = try Self.rotary(c, headDim: headDim, maxPositions: maxPositions)
            let attentionBias = try c.bool("attention_bias") ?? false
            qkvBias = architecture == .qwen2 || attentionBias
            outBias = architecture != .qwen2 && attentionBias
            mlpBias = try c.bool("mlp_bias") ?? false
            tieWordEmbeddings = try c.bool("tie_word_embeddings") ?? false
            (scaleAttentionWeights, scaleByInverseLayerIndex) = (true, false)
            // sliding_window: absent means transformers' default 4096, null means none.
            let window = c.value["sliding_window"] == nil ? 4096 : try c.int("sliding_window", in: 1...(1 << 30))
            switch architecture {
            case .mistral:
                // MistralModel masks every layer with the window (it ignores layer_types).
                slidingWindow = window
                slidingWindowLayers = [Bool](repeating: window != nil, count: layers)
            case .qwen2:
                slidingWindow = try c.bool("use_sliding_window") == true ? window : nil
                slidingWindowLayers = try Self.qwen2WindowLayers(c, layers: layers, windowed: slidingWindow != nil)
            default:
                slidingWindow = nil
                slidingWindowLayers = [Bool](repeating: false, count: layers)
            }
        default:
            throw ModelFileError.unsupported(
                path: c.path,
                what: "model_type \(type.map { "\"\($0)\"" } ?? "(absent)") (decoder-only models: \"gpt2\", \"llama\", \"mistral\", \"qwen2\")")
        }
    }

    /// Checks what building a ``DecoderOnlyModel`` relies on, for a configuration built or
    /// edited in code (``init(contentsOf:)`` gives only valid ones): sizes in range, query
    /// heads a multiple of the key/value heads, GPT-2's heads x head size = width with a
    /// position table and no RoPE or window, the Llama family's RoPE over the whole head
    /// without a position table, a window of at least 1 and one window flag per layer.
    /// Throws `CheckpointError.invalidConfig` naming the first setting at fault. Cost: O(1).
    public func validate() throws {
        func check(_ ok: Bool, _ what: @autoclosure () -> String) throws { if !ok { throw CheckpointError.invalidConfig(what()) } }
        let big = 1 << 24
        try check((1...big).contains(vocabSize), "vocabSize \(vocabSize) out of range 1...\(big)")
        try check((1...big).contains(hiddenSize), "hiddenSize \(hiddenSize) out of range 1...\(big)")
        try check((1...(4 * big)).contains(intermediateSize), "intermediateSize \(intermediateSize) out of range 1...\(4 * big)")
        try check((1...4096).contains(layers), "layers \(layers) out of range 1...4096")
        try check((1...4096).contains(heads), "heads \(heads) out of range 1...4096")
        try check(
            (1...heads).contains(kvHeads) && heads % kvHeads == 0, "kvHeads \(kvHeads) must divide heads \(heads)")
        try check((1...big).contains(headDim), "headDim \(headDim) out of range 1...\(big)")
        try check(normEpsilon > 0 && normEpsilon.isFinite, "normEpsilon \(normEpsilon) must be a positive number")
        try check(
            slidingWindowLayers.count == layers,
            "slidingWindowLayers has \(slidingWindowLayers.count) flags for \(layers) layers")
        if let w = slidingWindow { try check(w >= 1, "slidingWindow \(w) must be at least 1 (nil for none)") }
        if architecture == .gpt2 {
            try check(kvHeads == heads, "kvHeads \(kvHeads) must equal heads \(heads) for GPT-2")
            try check(
                heads * headDim == hiddenSize, "heads \(heads) x headDim \(headDim) must equal hiddenSize \(hiddenSize) for GPT-2")
            guard let n = learnedPositions else {
                throw CheckpointError.invalidConfig("learnedPositions is nil; GPT-2 needs its table size (n_positions)")
            }
            try check((1...big).contains(n), "learnedPositions \(n) out of range 1...\(big)")
            try check(rotary == nil, "rotary must be nil for GPT-2 (learned positions)")
            try check(slidingWindow == nil, "slidingWindow must be nil for GPT-2")
        } else {
            try check(learnedPositions == nil, "learnedPositions must be nil for \(architecture.rawValue) (RoPE positions)")
            guard let r = rotary else { throw CheckpointError.invalidConfig("rotary is nil; \(architecture.rawValue) needs RoPE frequencies") }
            try check(r.dim == headDim, "rotary dim \(r.dim) must equal headDim \(headDim)")
        }
    }

    /// Qwen2's windowed layers as `Qwen2Config` derives them: none without a window; else
    /// `layer_types` when given ("sliding_attention" or "full_attention", legacy "attention",
    /// one per layer), else the layers `i >= max_window_layers`.
    static func qwen2WindowLayers(_ c: JSONFields, layers: Int, windowed: Bool) throws -> [Bool] {
        guard windowed else { return [Bool](repeating: false, count: layers) }
        if let types = try c.array("layer_types") {
            guard types.count == layers else {
                throw c.fail("layer_types", "\(types.count) entries for num_hidden_layers \(layers)")
            }
            return try types.map { t in
                switch t.stringValue {
                case "sliding_attention": return true
                case "full_attention", "attention": return false
                default:
                    throw ModelFileError.unsupported(
                        path: c.path, what: "layer_types entry \(t.stringValue.map { "\"\($0)\"" } ?? t.typeName) (known: \"full_attention\", \"sliding_attention\")")
                }
            }
        }
        let first = try c.int("max_window_layers", in: 0...(1 << 30)) ?? 28
        return (0..<layers).map { $0 >= first }
    }

    /// `rope_parameters` (transformers 5) or `rope_theta` + `rope_scaling` (older files).
    static func rotary(_ c: JSONFields, headDim: Int, maxPositions: Int) throws -> RotaryFrequencies {
        let params = try c.object("rope_parameters") ?? c.object("rope_scaling")
        let theta = try params?.double("rope_theta") ?? c.double("rope_theta") ?? 10000
        guard theta > 1 else { throw (params ?? c).fail("rope_theta", "\(theta) must be above 1") }
        let partial = try params?.double("partial_rotary_factor") ?? c.double("partial_rotary_factor") ?? 1
        guard partial == 1 else { throw ModelFileError.unsupported(path: c.path, what: "partial_rotary_factor \(partial) (only full rotary heads)") }
        guard let p = params else { return RotaryFrequencies(dim: headDim, base: theta) }
        let kind = try p.string("rope_type") ?? p.string("type") ?? "default"
        func factor() throws -> Double {
            guard let f = try p.double("factor") else { throw p.fail("factor", "missing (rope_type \(kind) needs it)") }
            guard f >= 1 else { throw p.fail("factor", "\(f) must be at least 1") }
            return f
        }
        let original =
            try p.int("original_max_position_embeddings", in: 1...(1 << 30))
            ?? c.int("original_max_position_embeddings", in: 1...(1 << 30)) ?? maxPositions
        let scaling: RotaryScaling
        switch kind {
        case "default": scaling = .none
        case "linear": scaling = .linear(factor: try factor())
        case "dynamic": scaling = .dynamic(factor: try factor(), maxPositions: maxPositions)
        case "llama3":
            guard let low = try p.double("low_freq_factor"), let high = try p.double("high_freq_factor"), high > low, low > 0 else {
                throw p.fail("low_freq_factor", "llama3 scaling needs low_freq_factor > 0 and high_freq_factor above it")
            }
            scaling = .llama3(factor: try factor(), lowFrequencyFactor: low, highFrequencyFactor: high, originalMaxPositions: original)
        case "yarn":
            let f = try p.double("factor") ?? Double(maxPositions) / Double(original)
            func mscale(_ scale: Double, _ m: Double) -> Double { scale <= 1 ? 1 : 0.1 * m * log(scale) + 1 }
            var attention = try p.double("attention_factor")
            if attention == nil {
                if let m = try p.double("mscale"), let all = try p.double("mscale_all_dim"), m != 0, all != 0 {
                    attention = mscale(f, m) / mscale(f, all)
                } else {
                    attention = mscale(f, 1)
                }
            }
            let fast = try p.double("beta_fast") ?? 32, slow = try p.double("beta_slow") ?? 1
            scaling = .yarn(
                factor: f, attentionFactor: attention!, betaFast: fast == 0 ? 32 : fast, betaSlow: slow == 0 ? 1 : slow,
                originalMaxPositions: original, truncate: try p.bool("truncate") ?? true)
        default:
            throw ModelFileError.unsupported(path: c.path, what: "rope_type \"\(kind)\" (known: default, linear, dynamic, llama3, yarn)")
        }
        return RotaryFrequencies(dim: headDim, base: theta, scaling: scaling)
    }
}

extension DecoderOnlyModel {
    /// Loads a Hugging Face model folder: `config.json` (`model_type` "gpt2", "llama",
    /// "mistral" or "qwen2"), `generation_config.json` when present, and the weights
    /// (`model.safetensors` or a sharded checkpoint with `model.safetensors.index.json`;
    /// F32, F16 or BF16, the weight matrices held as stored: see
    /// ``init(directory:weightPrecision:)``). Throws `ModelFileError` (a configuration file:
    /// missing, invalid JSON, a value out of range or unsupported, naming the file and key),
    /// `SafeTensorsError` (a weights file) or `CheckpointError` (a tensor missing, misshapen
    /// or unused). Cost: one read of every tensor, plus the fused QKV copies and GPT-2's
    /// transposes (each weight once).
    public init(directory: URL) throws {
        try self.init(directory: directory, weightPrecision: nil)
    }

    /// Loads a Hugging Face model folder as ``init(directory:)`` does, with its weight
    /// matrices held in `weightPrecision`.
    /// `weightPrecision` is the element type the `Linear` and `Embedding` weights are held in
    /// (see ``WeightPrecision``): nil keeps each as the checkpoint stores it (an F16 or BF16
    /// file stays 16-bit, mapped, never widened in memory: about half the memory and decoding
    /// time of float32), `.float32` widens 16-bit weights at load, `.float16` / `.bfloat16`
    /// round float32 weights to 16 bits at load (one pass). Biases and norms stay float32.
    public init(directory: URL, weightPrecision: WeightPrecision?) throws {
        let directory = try resolveModelDirectory(directory)  // a Hub cache folder: its snapshot of main
        let (fields, _, generation) = try readHFModelConfigs(directory)
        let config = try CausalLMConfig(fields: fields)
        let settings = try HFGenerationSettings(config: fields, generation: generation, vocabularySize: config.vocabSize, decoderOnly: true)
        try self.init(
            config: config, weights: WeightPrecisionSource.wrap(try ModelQuantization.checkpoint(directory: directory), weightPrecision),
            generation: settings)
    }

    /// Whether `config.json` in `directory` names a decoder-only model this type loads (its
    /// `model_type`); false when the file is missing or names another kind.
    public static func handles(directory: URL) -> Bool {
        guard let directory = try? resolveModelDirectory(directory) else { return false }
        let url = directory.appendingPathComponent("config.json")
        guard let json = try? readModelJSON(url), let fields = try? JSONFields(json, path: url.path),
            let type = try? fields.string("model_type")
        else { return false }
        return ["gpt2", "llama", "mistral", "qwen2"].contains(type)
    }

    /// Builds a model from `config` and weights named as transformers names them
    /// (`transformer.h.{i}.*` for GPT-2, with or without the `transformer.` prefix;
    /// `model.layers.{i}.*` for the Llama family). Throws `CheckpointError` naming a missing,
    /// misshapen or unused tensor, or a setting of `config` out of range
    /// (``CausalLMConfig/validate()``, checked first).
    public init(config: CausalLMConfig, weights: TensorSource, generation: GenerationConfig? = nil) throws {
        try self.init(config: config, weights: weights, generation: generation, weightPrecision: nil)
    }

    /// The model as ``init(config:weights:generation:)`` builds it, with its weight matrices
    /// held in `weightPrecision`.
    /// `weightPrecision` is the element type the `Linear` and `Embedding` weights are held in
    /// (see ``WeightPrecision``): nil keeps each as the checkpoint stores it (an F16 or BF16
    /// file stays 16-bit, mapped, never widened in memory: about half the memory and decoding
    /// time of float32), `.float32` widens 16-bit weights at load, `.float16` / `.bfloat16`
    /// round float32 weights to 16 bits at load (one pass). Biases and norms stay float32.
    public init(
        config: CausalLMConfig, weights: TensorSource, generation: GenerationConfig? = nil, weightPrecision: WeightPrecision?
    ) throws {
        var settings = HFGenerationSettings.defaults(maxNewTokens: 20)
        if let generation { settings.config = generation }
        try self.init(config: config, weights: WeightPrecisionSource.wrap(weights, weightPrecision), generation: settings)
    }

    init(config c: CausalLMConfig, weights: TensorSource, generation: HFGenerationSettings) throws {
        try c.validate()
        let d = c.hiddenSize, dh = c.headDim, q = c.heads * dh, kv = c.kvHeads * dh, f = c.intermediateSize
        let layers: [CausalDecoderLayer]
        let embedding: Embedding, positions: Embedding?, finalNorm: Norm
        var head: Linear? = nil
        var p: ParameterLoader
        if c.architecture == .gpt2 {
            // Buffers older GPT-2 files carry (the causal mask), never parameters.
            p = ParameterLoader(weights) { $0.hasSuffix(".attn.bias") && !$0.contains("c_attn") || $0.hasSuffix(".attn.masked_bias") }
            let root = p.has("transformer.wte.weight") ? "transformer." : ""
            // Conv1D stores [in, out]: transposed once here to Linear's [out, in].
            func conv(_ name: String, in i: Int, out o: Int) throws -> Linear {
                Linear(storage: try p.loadMatrix(name + ".weight", shape: [i, o]).transposed(), bias: try p.load(name + ".bias", shape: [o]))
            }
            func ln(_ name: String) throws -> Norm { .layer(try LayerNorm(loading: p, name, size: d, eps: c.normEpsilon)) }
            embedding = try p.loadEmbedding(root + "wte.weight", shape: [c.vocabSize, d])
            positions = try p.loadEmbedding(root + "wpe.weight", shape: [c.learnedPositions!, d])
            layers = try (0..<c.layers).map { i in
                let b = "\(root)h.\(i)"
                var scale: Float = c.scaleAttentionWeights ? 1 / Float(dh).squareRoot() : 1
                if c.scaleByInverseLayerIndex { scale /= Float(i + 1) }
                return CausalDecoderLayer(
                    attentionNorm: try ln(b + ".ln_1"), qkv: try conv(b + ".attn.c_attn", in: d, out: 3 * d),
                    out: try conv(b + ".attn.c_proj", in: d, out: d), feedForwardNorm: try ln(b + ".ln_2"),
                    feedForward: FeedForward(
                        up: try conv(b + ".mlp.c_fc", in: d, out: f),
                        down: try conv(b + ".mlp.c_proj", in: f, out: d), activation: c.activation),
                    scale: scale)
            }
            finalNorm = try ln(root + "ln_f")
        } else {
            p = ParameterLoader(weights) { $0.hasSuffix("rotary_emb.inv_freq") }
            func rms(_ name: String) throws -> Norm { .rms(RMSNorm(weight: try p.load(name + ".weight", shape: [d]), eps: c.normEpsilon)) }
            embedding = try p.loadEmbedding("model.embed_tokens.weight", shape: [c.vocabSize, d])
            positions = nil
            layers = try (0..<c.layers).map { i in
                let b = "model.layers.\(i)"
                let parts = try [("q_proj", q), ("k_proj", kv), ("v_proj", kv)].map {
                    try Linear(loading: p, "\(b).self_attn.\($0.0)", in: d, out: $0.1, bias: c.qkvBias)
                }
                let qkv = Linear.concatenatingRows(parts)
                let mlp = "\(b).mlp"
                return CausalDecoderLayer(
                    attentionNorm: try rms(b + ".input_layernorm"), qkv: qkv,
                    out: try Linear(loading: p, b + ".self_attn.o_proj", in: q, out: d, bias: c.outBias),
                    feedForwardNorm: try rms(b + ".post_attention_layernorm"),
                    feedForward: FeedForward(
                        up: try Linear(loading: p, mlp + ".gate_proj", in: d, out: f, bias: c.mlpBias),
                        down: try Linear(loading: p, mlp + ".down_proj", in: f, out: d, bias: c.mlpBias),
                        activation: c.activation,
                        gate: try Linear(loading: p, mlp + ".up_proj", in: d, out: f, bias: c.mlpBias)),
                    scale: 1 / Float(dh).squareRoot(), slidingWindow: c.slidingWindowLayers[i] ? c.slidingWindow : nil)
            }
            finalNorm = try rms("model.norm")
        }
        // The head: tied to the embedding (a stored copy is skipped), else lm_head.weight.
        // An int8 lm_head.weight (attend quantize) is used even when tied: the table stays
        // float for the lookups, the head reads the int8 copy.
        if p.has("lm_head.weight" + ModelQuantization.scaleSuffix) {
            head = try p.optionalHead("lm_head.weight", shape: [c.vocabSize, d], bias: nil)
        } else if c.tieWordEmbeddings {
            p.skip("lm_head.weight")
        } else {
            head = Linear(storage: try p.loadMatrix("lm_head.weight", shape: [c.vocabSize, d]), bias: nil)
        }
        try p.finish()
        let limit: (Int, String)? = c.learnedPositions.map { ($0, "n_positions") }
        self.init(
            architecture: c.architecture, embedding: embedding, learnedPositions: positions, rotary: c.rotary,
            layers: layers, finalNorm: finalNorm, lmHead: head ?? Linear(tiedTo: embedding),
            heads: c.heads, kvHeads: c.kvHeads, headDim: dh, positionLimit: limit, generationDefaults: generation.config,
            defaultMaxLength: generation.maxLength, ignoredGenerationSettings: generation.ignored)
    }
}

extension Tensor {
    /// The transpose of a matrix: `[m, n]` to `[n, m]`. Cost: one copy.
    func transposed2D() -> Tensor {
        precondition(rank == 2, "transposed2D: \(shape) is not a matrix")
        let (m, n) = (shape[0], shape[1])
        var out = Tensor.uninitialized([n, m])
        withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<m {
                    for j in 0..<n { dst[j * m + i] = src[i * n + j] }
                }
            }
        }
        return out
    }
}
