/// Anything that hands out named tensors: a safetensors file or a (sharded) checkpoint.
public protocol TensorSource: Sendable {
    /// Every tensor name the source holds.
    var tensorNames: [String] { get }
    /// The named tensor as float32; throws when absent or unreadable.
    func tensor(_ name: String) throws -> Tensor
}

extension SafeTensorsFile: TensorSource {}
extension SafeTensorsCheckpoint: TensorSource {}

/// A checkpoint that does not fit the model it is loaded into.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    /// A parameter the model needs is not in the checkpoint.
    case missingTensor(name: String)
    /// A parameter has another shape than the model's configuration implies.
    case wrongShape(name: String, expected: [Int], found: [Int])
    /// The checkpoint holds tensors the model does not use (and that are not known buffers).
    case unexpectedTensors([String])
    /// A configuration value is missing or out of range.
    case invalidConfig(String)

    /// One line naming the tensor or setting at fault.
    public var description: String {
        switch self {
        case .missingTensor(let n): return "checkpoint is missing tensor '\(n)'"
        case .wrongShape(let n, let e, let f): return "tensor '\(n)' has shape \(f), the model expects \(e)"
        case .unexpectedTensors(let names):
            let shown = names.prefix(5).map { "'\($0)'" }.joined(separator: ", ")
            return "checkpoint has \(names.count) tensor(s) the model does not use: \(shown)\(names.count > 5 ? ", ..." : "")"
        case .invalidConfig(let s): return "invalid model configuration: \(s)"
        }
    }
}

/// A tensor source whose weight matrices a model loads in a given precision (what the model
/// loaders' `weightPrecision` argument makes; ``ParameterLoader`` reads it).
struct WeightPrecisionSource: TensorSource {
    let base: TensorSource
    let precision: WeightPrecision?
    var tensorNames: [String] { base.tensorNames }
    func tensor(_ name: String) throws -> Tensor { try base.tensor(name) }

    /// `source` with `precision` (nil: as stored), or `source` itself.
    static func wrap(_ source: TensorSource, _ precision: WeightPrecision?) -> TensorSource {
        precision == nil ? source : WeightPrecisionSource(base: source, precision: precision)
    }
}

/// Reads a model's parameters by name with shape checks, and remembers which names were
/// used so that `finish()` can report checkpoint tensors nobody asked for.
public final class ParameterLoader {
    private let source: TensorSource
    private let available: Set<String>
    private var used: Set<String> = []
    private let ignored: (String) -> Bool
    /// The precision `Linear` and `Embedding` weights are held in; nil keeps each as stored
    /// (F16 and BF16 matrices of a safetensors file stay 16-bit, borrowed from the map).
    public var weightPrecision: WeightPrecision?

    /// A loader over `source`. Names for which `ignoring` is true (non-parameter buffers such
    /// as `embeddings.position_ids`) never count as unexpected.
    public init(_ source: TensorSource, ignoring: @escaping (String) -> Bool = { _ in false }) {
        if let wrapped = source as? WeightPrecisionSource {
            self.source = wrapped.base
            self.weightPrecision = wrapped.precision
        } else {
            self.source = source
        }
        self.available = Set(self.source.tensorNames)
        self.ignored = ignoring
    }

    /// The weight matrix `name` (shape `shape`), held in ``weightPrecision``: a 16-bit F16 or
    /// BF16 matrix of a safetensors source stays 16-bit when that is nil (or its own type)
    /// and is converted otherwise; other tensors are read as float32 and rounded to 16 bits
    /// when asked. Throws `CheckpointError` naming it. Cost: O(1) for a 16-bit matrix kept
    /// (borrowed from the map), one pass when converted.
    func loadMatrix(_ name: String, shape: [Int]) throws -> WeightStorage {
        guard available.contains(name) else { throw CheckpointError.missingTensor(name: name) }
        let half = (source as? SafeTensorsCheckpoint)?.halfMatrix(name) ?? (source as? SafeTensorsFile)?.halfMatrix(name)
        if let half {
            guard [half.rows, half.cols] == shape else {
                throw CheckpointError.wrongShape(name: name, expected: shape, found: [half.rows, half.cols])
            }
            used.insert(name)
            return WeightStorage.half(half).converted(to: weightPrecision ?? half.type.precision)
        }
        let t = try load(name, shape: shape)
        return weightPrecision.map { WeightStorage.float32(t).converted(to: $0) } ?? .float32(t)
    }

    /// The weight matrix `name` (see ``loadMatrix(_:shape:)``) if present, nil if absent.
    func optionalMatrix(_ name: String, shape: [Int]) throws -> WeightStorage? {
        available.contains(name) ? try loadMatrix(name, shape: shape) : nil
    }

    /// An embedding table (see ``loadMatrix(_:shape:)``).
    func loadEmbedding(_ name: String, shape: [Int]) throws -> Embedding {
        Embedding(storage: try loadMatrix(name, shape: shape))
    }

    /// Whether the checkpoint has `name`.
    public func has(_ name: String) -> Bool { available.contains(name) }

    /// The tensor `name`, which must have `shape`. Throws `CheckpointError` naming it.
    public func load(_ name: String, shape: [Int]) throws -> Tensor {
        guard available.contains(name) else { throw CheckpointError.missingTensor(name: name) }
        if available.contains(name + ModelQuantization.scaleSuffix) {
            throw CheckpointError.invalidConfig("'\(name)' is an int8 weight (it has a scale '\(name + ModelQuantization.scaleSuffix)'); this layer takes float weights only")
        }
        let t = try source.tensor(name)
        guard t.shape == shape else { throw CheckpointError.wrongShape(name: name, expected: shape, found: t.shape) }
        used.insert(name)
        return t
    }

    /// The tensor `name` if present (with `shape`), nil if absent.
    public func optional(_ name: String, shape: [Int]) throws -> Tensor? {
        available.contains(name) ? try load(name, shape: shape) : nil
    }

    /// Marks `name` as deliberately unused (e.g. a tied weight stored twice).
    public func skip(_ name: String) { used.insert(name) }

    /// Marks `name` as read (a tensor read other than through ``load(_:shape:)``).
    func markUsed(_ name: String) { used.insert(name) }

    /// The source's stored bytes are reached through it (int8 weights).
    var tensorSource: TensorSource { source }

    /// Throws `.unexpectedTensors` if the checkpoint holds tensors that were neither loaded,
    /// skipped nor ignored.
    public func finish() throws {
        let extra = available.subtracting(used).filter { !ignored($0) }.sorted()
        if !extra.isEmpty { throw CheckpointError.unexpectedTensors(extra) }
    }

    /// `prefix.name`, or `name` when the prefix is empty.
    static func join(_ prefix: String, _ name: String) -> String { prefix.isEmpty ? name : prefix + "." + name }
}

extension Linear {
    /// Loads `prefix.weight` `[out, in]` (held in the loader's ``ParameterLoader/weightPrecision``)
    /// and, when `bias`, `prefix.bias` `[out]`.
    public init(loading p: ParameterLoader, _ prefix: String, in inFeatures: Int, out outFeatures: Int, bias: Bool = true) throws {
        // The weight first: a wrong width is named on the weight, not on the bias.
        let name = ParameterLoader.join(prefix, "weight"), shape = [outFeatures, inFeatures]
        let q = try p.quantizedMatrix(name, shape: shape)
        let w = try q == nil ? p.loadMatrix(name, shape: shape) : nil
        let b = bias ? try p.load(ParameterLoader.join(prefix, "bias"), shape: [outFeatures]) : nil
        if let q {
            self.init(quantized: q, bias: b)
        } else {
            self.init(storage: w!, bias: b)
        }
    }
}

extension LayerNorm {
    /// Loads `prefix.weight` and `prefix.bias`, both `[n]` (also accepts the old BERT names
    /// `gamma`/`beta`).
    public init(loading p: ParameterLoader, _ prefix: String, size n: Int, eps: Float) throws {
        let j = { ParameterLoader.join(prefix, $0) }
        if !p.has(j("weight")) && p.has(j("gamma")) {
            self.init(weight: try p.load(j("gamma"), shape: [n]), bias: try p.load(j("beta"), shape: [n]), eps: eps)
        } else {
            self.init(weight: try p.load(j("weight"), shape: [n]), bias: try p.optional(j("bias"), shape: [n]), eps: eps)
        }
    }
}

extension MultiHeadAttention {
    /// Loads a PyTorch `nn.MultiheadAttention` state dict under `prefix`: `in_proj_weight`
    /// `[3d, d]`, `in_proj_bias` `[3d]` (optional), `out_proj.weight`, `out_proj.bias`.
    public init(loadingPyTorch p: ParameterLoader, _ prefix: String, modelDim d: Int, heads: Int) throws {
        let j = { ParameterLoader.join(prefix, $0) }
        let w = try p.loadMatrix(j("in_proj_weight"), shape: [3 * d, d])
        let b = try p.optional(j("in_proj_bias"), shape: [3 * d])
        self.init(
            heads: heads, inProjection: Linear(storage: w, bias: b),
            outProjection: try Linear(loading: p, j("out_proj"), in: d, out: d, bias: p.has(j("out_proj.bias"))))
    }
}
