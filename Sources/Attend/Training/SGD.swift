/// Stochastic gradient descent with momentum, dampening, Nesterov momentum and (coupled) weight
/// decay, as `torch.optim.SGD` computes it (single-tensor path, `maximize=False`).
///
/// For each parameter `p` with gradient `g`:
///
///     g = g + weightDecay * p                         (when weightDecay != 0)
///     b = g on the first step, else b * momentum + (1 - dampening) * g   (when momentum != 0)
///     g = nesterov ? g + momentum * b : b             (when momentum != 0)
///     p = p - lr * g
///
/// in float32 with PyTorch's CPU operations (`add` with `alpha` is a fused multiply-add), so the
/// parameters match PyTorch's bit for bit. The momentum buffers (one tensor per parameter) are
/// made on the first step when `momentum != 0`; `save(to:)` and `init(resumingFrom:)` store
/// and restore them. Cost of a step: O(parameter scalars).
public struct SGD: Optimizer {
    /// The learning rate of the next step (a schedule sets it).
    public var learningRate: Float
    /// Momentum factor, >= 0 (0: plain SGD, no buffers).
    public let momentum: Float
    /// Dampening of the momentum's gradient term, >= 0.
    public let dampening: Float
    /// L2 penalty added to the gradient (coupled, as torch's SGD), >= 0.
    public let weightDecay: Float
    /// Nesterov momentum (needs `momentum > 0` and `dampening == 0`, as torch requires).
    public let nesterov: Bool
    /// Steps taken so far.
    public internal(set) var stepCount: Int = 0
    /// The momentum buffers by parameter name; nil before the first step or with no momentum.
    public internal(set) var momentumBuffers: ParameterSet?
    var layout: ParameterLayout?
    /// The kernels and threads a step runs on (`Compute.default` when the optimizer was made).
    /// Any thread count gives the same bits; so do the Swift oracle and the variants with fused
    /// multiply-add (AVX2, AVX-512, NEON). The portable `scalar` variant rounds the products
    /// PyTorch fuses, so it can differ from them in the last bit.
    public var compute: Compute = .default

    /// An optimizer with these hyperparameters. Throws `TrainingError` for a negative or
    /// non-finite learning rate, momentum, dampening or weight decay, and for `nesterov` without
    /// momentum or with dampening. Cost: O(1).
    public init(
        learningRate: Float, momentum: Float = 0, dampening: Float = 0, weightDecay: Float = 0,
        nesterov: Bool = false
    ) throws(TrainingError) {
        try checkHyperparameter(learningRate, "learning rate", "SGD", { $0 >= 0 }, "finite and >= 0")
        try checkHyperparameter(momentum, "momentum", "SGD", { $0 >= 0 }, "finite and >= 0")
        try checkHyperparameter(dampening, "dampening", "SGD", { $0 >= 0 }, "finite and >= 0")
        try checkHyperparameter(weightDecay, "weight decay", "SGD", { $0 >= 0 }, "finite and >= 0")
        if nesterov && (momentum <= 0 || dampening != 0) {
            throw TrainingError("SGD: Nesterov momentum needs momentum > 0 and dampening 0 (momentum \(momentum), dampening \(dampening))")
        }
        self.learningRate = learningRate
        self.momentum = momentum
        self.dampening = dampening
        self.weightDecay = weightDecay
        self.nesterov = nesterov
    }

    /// One SGD step over every parameter (see the type's description). Throws before changing
    /// anything for mismatched names or shapes, or a negative or non-finite learning rate.
    /// Cost: O(parameter scalars).
    public mutating func step(_ parameters: inout ParameterSet, gradients: ParameterSet) throws(TrainingError) {
        try checkHyperparameter(learningRate, "learning rate", "SGD", { $0 >= 0 }, "finite and >= 0")
        try checkOptimizerInputs(parameters, gradients: gradients, layout: layout, optimizer: "SGD")
        let first = layout == nil || (momentum != 0 && momentumBuffers == nil)
        if layout == nil { layout = ParameterLayout(parameters) }
        if momentum != 0 && momentumBuffers == nil { momentumBuffers = parameters.zerosLike() }
        stepCount += 1
        let hyper = TrainingKernels.SGD(
            lr: Double(learningRate), momentum: Double(momentum), dampening: Double(dampening),
            weightDecay: Double(weightDecay), nesterov: nesterov)
        for name in parameters.names {
            let g = gradients[name]!
            parameters.modify(name) { p in
                if momentum != 0 {
                    momentumBuffers!.modify(name) { b in
                        b.withUnsafeMutableBufferPointer { bb in
                            SGD.update(&p, g, bb.baseAddress, firstStep: first, hyper: hyper, compute: compute)
                        }
                    }
                } else {
                    SGD.update(&p, g, nil, firstStep: first, hyper: hyper, compute: compute)
                }
            }
        }
    }

    /// The update of one tensor (and its momentum buffer `b`, same length, when the momentum
    /// is not 0): the fused SGD kernel, in torch's order (`add` with `alpha` is a fused
    /// multiply-add `fma(other, alpha, self)`, `mul_` a plain product).
    static func update(
        _ p: inout Tensor, _ g: Tensor, _ b: UnsafeMutablePointer<Float>?, firstStep: Bool, hyper: TrainingKernels.SGD,
        compute: Compute
    ) {
        let n = p.count
        guard n > 0 else { return }
        p.withUnsafeMutableBufferPointer { pb in
            g.withUnsafeBufferPointer { gb in
                TrainingKernels.sgd(
                    param: pb.baseAddress!, grad: gb.baseAddress!, buffer: b, count: n, firstStep: firstStep, hyper: hyper,
                    compute: compute)
            }
        }
    }
}
