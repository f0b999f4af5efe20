import Foundation

/// A model that learns: it computes a loss on a batch, keeping what its backward pass needs,
/// and gives the gradient of that loss with respect to every parameter.
///
/// The loop a user writes (the optimizer owns its moments; the model owns its parameters):
///
/// ```swift
/// let model = try BERTForPreTraining(directory: folder)
/// var optimizer = try AdamW(parameters: model.parameters, learningRate: 1e-3)
/// for batch in batches {
///     let loss = try model.loss(batch)          // forward, activations kept
///     let grads = try model.backward()          // gradients by parameter name, activations freed
///     try optimizer.step(&model.parameters, gradients: grads)
/// }
/// try model.save(to: output)
/// ```
///
/// Parameters are named and ordered as `transformers`' `named_parameters()` names them, so a
/// gradient or a parameter can be compared with PyTorch by name. A tied weight (BERT's MLM
/// decoder and word embeddings, T5's head and shared embedding) is one parameter whose
/// gradient is the sum of both uses.
public protocol TrainableModel: AnyObject {
    /// The trainable parameters by Hugging Face name. Setting them replaces the model's weights
    /// (same names and shapes; the model checks and traps on a programmer error here, since a
    /// set taken from `parameters` always matches).
    var parameters: ParameterSet { get set }

    /// Whether ``loss(_:)`` applies the configuration's dropout probabilities (train mode, the
    /// default) or none (as `model.eval()`), and the seed of the masks. Setting it restarts
    /// the mask stream at the seed: the same seed and batches give the same bits.
    var dropout: TrainingDropout { get set }

    /// The mean loss of `batch` (as the `transformers` model's forward returns it with
    /// `labels`), keeping the activations `backward()` needs. Throws `TrainingError` for a batch
    /// the model cannot take (ids outside the vocabulary, ragged rows, missing labels).
    /// Cost: one forward pass.
    func loss(_ batch: TrainingBatch) throws(TrainingError) -> Float

    /// The gradient of the last `loss(_:)` with respect to every parameter (same names, order
    /// and shapes as `parameters`), then frees the kept activations. Throws when no loss was
    /// computed since the last backward. Cost: about twice the forward pass.
    func backward() throws(TrainingError) -> ParameterSet

    /// Writes a folder `transformers` and Attend load: `config.json` and `model.safetensors`
    /// (tied weights stored as `transformers` stores them). Written to a temporary name and
    /// renamed, so a failed save leaves no partial file.
    func save(to directory: URL) throws
}
