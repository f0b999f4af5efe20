// The model and optimizer of a training run.
import Attend
import AttendCommandLine
import Foundation

/// The trainable model of `folder` (``TrainableModels/load(directory:compute:)``: BERT for
/// pre-training, T5 for conditional generation) and AdamW (torch's betas and epsilon,
/// `options`' weight decay, none for biases and LayerNorm weights, as the Hugging Face Trainer
/// groups them); dropout as `--dropout` and `--seed` say. Throws the loader's errors for a
/// folder it cannot train.
func makeTrainingRun(folder: URL, options: TrainingOptions) throws -> TrainingRun {
    let model = try TrainableModels.load(directory: folder)
    model.dropout = TrainingDropout(enabled: options.dropout, seed: options.seed)
    var optimizer = try AdamW(
        parameters: model.parameters, learningRate: Float(options.learningRate(at: 0)), weightDecay: Float(options.weightDecay))
    return TrainingRun(
        model: model,
        clip: { gradients, maxNorm in
            guard let maxNorm else { return globalNorm(gradients) }
            return Double(try clipGradientNorm(&gradients, maxNorm: Float(maxNorm)))
        },
        update: { parameters, gradients, lr in
            optimizer.learningRate = Float(lr)
            try optimizer.step(&parameters, gradients: gradients)
        })
}
