import Foundation

/// Adam with decoupled weight decay, as `torch.optim.AdamW` computes it (single-tensor path,
/// `amsgrad=False`, `maximize=False`), scalar for scalar.
///
/// For each parameter `p` with gradient `g`, at step `t` (1 for the first step):
///
///     p *= 1 - lr * weightDecay                  (skipped for names excluded from decay)
///     m = lerp(m, g, 1 - beta1)                  (first moment)
///     v = v * beta2 + (1 - beta2) * g * g        (second moment)
///     p += -(lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + epsilon)
///
/// in float32, with the coefficients computed in double precision and the float32 operations
/// (including the fused multiply-adds of PyTorch's CPU `lerp` and `addcmul`) in PyTorch's
/// order, so given the same float32 hyperparameters the moments match PyTorch's bit for bit,
/// and so do the parameters wherever PyTorch's square root is correctly rounded (its CPU
/// `sqrt`, MKL's vector math in the usual builds, is 1 ulp off for some scalars; Attend's is
/// correctly rounded: the parameters then agree to about 1e-7 of the update). Weight decay
/// is skipped, as the Hugging Face `Trainer` groups parameters, for names ending in `bias` or
/// containing `LayerNorm` / `layer_norm` (or as a custom predicate says).
///
/// The moments `m` and `v` are created (zero) on the first step, one tensor per parameter:
/// twice the parameters' memory. `save(to:)` and `init(resumingFrom:)` store and restore them.
/// Cost of a step: O(parameter scalars), about 10 flops per scalar.
public struct AdamW: Optimizer {
    /// The learning rate of the next step (a schedule sets it). Default 1e-3.
    public var learningRate: Float
    /// Decay rate of the first moment (torch's `betas[0]`), in [0, 1).
    public let beta1: Float
    /// Decay rate of the second moment (torch's `betas[1]`), in [0, 1).
    public let beta2: Float
    /// Added to the denominator for stability; > 0.
    public let epsilon: Float
    /// Decoupled weight decay factor (torch's `weight_decay`), >= 0.
    public let weightDecay: Float
    /// True for a parameter name that gets no weight decay.
    public let excludesFromWeightDecay: @Sendable (String) -> Bool
    /// Steps taken so far.
    public internal(set) var stepCount: Int = 0
    /// The first moments (torch's `exp_avg`) by parameter name; nil before the first step.
    public internal(set) var firstMoments: ParameterSet?
    /// The second moments (torch's `exp_avg_sq`) by parameter name; nil before the first step.
    public internal(set) var secondMoments: ParameterSet?
    /// Names and shapes the moments were made for (from `init(parameters:)` or the first step).
    var layout: ParameterLayout?
    /// The kernels and threads a step runs on (`Compute.default` when the optimizer was made).
    /// Any thread count gives the same bits; so do the Swift oracle and the variants with fused
    /// multiply-add (AVX2, AVX-512, NEON). The portable `scalar` variant rounds the products
    /// PyTorch fuses, so it can differ from them in the last bit.
    public var compute: Compute = .default

    /// The Hugging Face `Trainer`'s rule: no weight decay for a name ending in `bias` or
    /// containing `LayerNorm` or `layer_norm`. Cost: O(name length).
    @Sendable public static func huggingFaceNoDecay(_ name: String) -> Bool {
        name.hasSuffix("bias") || name.contains("LayerNorm") || name.contains("layer_norm")
    }

    /// An optimizer with these hyperparameters (torch's defaults, except that names excluded by
    /// `excludingFromWeightDecay` get none). Throws `TrainingError` for a negative or non-finite
    /// learning rate or weight decay, a beta outside [0, 1), or `epsilon <= 0`. Cost: O(1);
    /// the moments are made on the first step.
    public init(
        learningRate: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999), epsilon: Float = 1e-8,
        weightDecay: Float = 0.01,
        excludingFromWeightDecay: @escaping @Sendable (String) -> Bool = AdamW.huggingFaceNoDecay
    ) throws(TrainingError) {
        let name = "AdamW"
        try checkHyperparameter(learningRate, "learning rate", name, { $0 >= 0 }, "finite and >= 0")
        try checkHyperparameter(betas.0, "beta1", name, { $0 >= 0 && $0 < 1 }, "in [0, 1)")
        try checkHyperparameter(betas.1, "beta2", name, { $0 >= 0 && $0 < 1 }, "in [0, 1)")
        try checkHyperparameter(epsilon, "epsilon", name, { $0 > 0 }, "finite and > 0")
        try checkHyperparameter(weightDecay, "weight decay", name, { $0 >= 0 }, "finite and >= 0")
        self.learningRate = learningRate
        self.beta1 = betas.0
        self.beta2 = betas.1
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.excludesFromWeightDecay = excludingFromWeightDecay
    }

    /// An optimizer for `parameters` (their names and shapes are fixed now; every step checks
    /// against them). Same hyperparameters and errors as `init(learningRate:...)`.
    public init(
        parameters: ParameterSet, learningRate: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
        epsilon: Float = 1e-8, weightDecay: Float = 0.01,
        excludingFromWeightDecay: @escaping @Sendable (String) -> Bool = AdamW.huggingFaceNoDecay
    ) throws(TrainingError) {
        try self.init(
            learningRate: learningRate, betas: betas, epsilon: epsilon, weightDecay: weightDecay,
            excludingFromWeightDecay: excludingFromWeightDecay)
        layout = ParameterLayout(parameters)
    }

    /// Whether `name` gets weight decay (a non-zero `weightDecay` and not excluded).
    public func decays(_ name: String) -> Bool { weightDecay != 0 && !excludesFromWeightDecay(name) }

    /// One AdamW step over every parameter (see the type's description), creating the moments
    /// on the first step. Throws before changing anything for mismatched names or shapes, or a
    /// learning rate that is negative or not finite. Cost: O(parameter scalars).
    public mutating func step(_ parameters: inout ParameterSet, gradients: ParameterSet) throws(TrainingError) {
        try checkHyperparameter(learningRate, "learning rate", "AdamW", { $0 >= 0 }, "finite and >= 0")
        try checkOptimizerInputs(parameters, gradients: gradients, layout: layout, optimizer: "AdamW")
        if firstMoments == nil {
            layout = ParameterLayout(parameters)
            firstMoments = parameters.zerosLike()
            secondMoments = parameters.zerosLike()
        }
        stepCount += 1
        var hyper = TrainingKernels.AdamW(
            lr: Double(learningRate), beta1: Double(beta1), beta2: Double(beta2), eps: Double(epsilon),
            weightDecay: Double(weightDecay))
        let step = stepCount
        for name in parameters.names {
            hyper.weightDecay = decays(name) ? Double(weightDecay) : 0
            let g = gradients[name]!
            parameters.modify(name) { p in
                firstMoments!.modify(name) { m in
                    secondMoments!.modify(name) { v in AdamW.update(&p, g, &m, &v, step: step, hyper: hyper, compute: compute) }
                }
            }
        }
    }

    /// The update of one tensor: the fused AdamW kernel, in the order of torch's
    /// `_single_tensor_adam` on the CPU: `mul_` (decay), `lerp_` (a fused multiply-add, as
    /// ATen's vectorized lerp), `mul_` then `addcmul_` (ATen fuses its final multiply-add),
    /// `sqrt`, `/`, `add_`, `addcdiv_` (unfused: `p + (value * m) / denom`), with the scalars
    /// computed in double from the float32 settings as PyTorch computes them in Python.
    static func update(
        _ p: inout Tensor, _ g: Tensor, _ m: inout Tensor, _ v: inout Tensor, step: Int, hyper: TrainingKernels.AdamW,
        compute: Compute
    ) {
        TrainingKernels.adamW(param: &p, grad: g, m: &m, v: &v, step: step, hyper: hyper, compute: compute)
    }
}
