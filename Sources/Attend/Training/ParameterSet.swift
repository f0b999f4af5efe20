/// A model's trainable tensors (or their gradients, or an optimizer's moments) by their
/// Hugging Face names, in a fixed order.
///
/// The order is the order of insertion (a model lists its parameters as `transformers`'
/// `named_parameters()` does), so walking a set, summing norms or writing a file is
/// deterministic. Tensors are float32 values with copy-on-write storage: a set handed out
/// shares storage with the model until either side writes.
///
/// Cost: lookups are dictionary lookups; `insert` is O(1) amortized.
public struct ParameterSet: Sendable {
    /// The names, in order.
    public private(set) var names: [String] = []
    private var tensors: [String: Tensor] = [:]

    /// An empty set.
    public init() {}

    /// A set holding `entries` in their order; a repeated name keeps its last tensor at its
    /// first position.
    public init(_ entries: [(String, Tensor)]) {
        for (n, t) in entries { self[n] = t }
    }

    /// Number of tensors.
    public var count: Int { names.count }

    /// Total scalars over every tensor.
    public var scalarCount: Int { names.reduce(0) { $0 + tensors[$1]!.count } }

    /// Whether `name` is in the set.
    public func contains(_ name: String) -> Bool { tensors[name] != nil }

    /// The tensor named `name`, or nil. Setting a new name appends it; setting nil removes it.
    public subscript(name: String) -> Tensor? {
        get { tensors[name] }
        set {
            if let newValue {
                if tensors.updateValue(newValue, forKey: name) == nil { names.append(name) }
            } else if tensors.removeValue(forKey: name) != nil {
                names.removeAll { $0 == name }
            }
        }
    }

    /// Calls `body` with in-place access to the tensor named `name`, which must be in the set
    /// (no copy of its scalars unless their storage is shared). For optimizers and clipping.
    package mutating func modify<R>(_ name: String, _ body: (inout Tensor) throws -> R) rethrows -> R {
        precondition(tensors[name] != nil, "ParameterSet.modify: no tensor named \(name)")
        return try body(&tensors[name]!)
    }

    /// `(name, tensor)` pairs in order.
    public var entries: [(name: String, tensor: Tensor)] { names.map { ($0, tensors[$0]!) } }

    /// A set with the same names and shapes, every scalar zero (gradient accumulators,
    /// optimizer moments). Cost: one allocation per tensor.
    public func zerosLike() -> ParameterSet {
        ParameterSet(names.map { ($0, Tensor.zeros(tensors[$0]!.shape)) })
    }
}

extension ParameterSet: TensorSource {
    /// The names, in order (``TensorSource`` conformance: a model builds its layers from a set
    /// as from a checkpoint).
    public var tensorNames: [String] { names }

    /// The tensor `name`; throws `CheckpointError.missingTensor` when absent.
    public func tensor(_ name: String) throws -> Tensor {
        guard let t = tensors[name] else { throw CheckpointError.missingTensor(name: name) }
        return t
    }
}

extension ParameterSet {
    /// Throws unless the set holds exactly `layout`'s names, in its order, with its shapes: a
    /// trainable model's check, before a step or a save, of parameters its user may have
    /// replaced. The message names the first difference and the model (`owner`).
    /// Cost: one dictionary lookup per parameter.
    func checkLayout(_ layout: [(String, [Int])], owner: String) throws(TrainingError) {
        for (i, (name, shape)) in layout.enumerated() {
            guard let t = tensors[name] else {
                throw TrainingError("\(owner) parameters: '\(name)' is missing (the model needs shape \(shape))")
            }
            guard t.shape == shape else {
                throw TrainingError("\(owner) parameters: '\(name)' has shape \(t.shape), the model needs \(shape)")
            }
            guard i < names.count, names[i] == name else {
                throw TrainingError(
                    "\(owner) parameters: position \(i) holds '\(i < names.count ? names[i] : "nothing")', the model lists '\(name)' there (keep the names in their order)")
            }
        }
        if names.count > layout.count {
            throw TrainingError("\(owner) parameters: '\(names[layout.count])' is not a parameter of this model")
        }
    }
}
