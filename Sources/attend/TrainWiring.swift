// The model and optimizer of a training run.
import Attend
import Foundation

/// The trainable model of `folder` by its config.json's `model_type` (BERT for pre-training,
/// T5 for conditional generation) and AdamW (torch's betas and epsilon, `options`' weight
/// decay, none for biases and LayerNorm weights, as the Hugging Face Trainer groups them).
/// Throws the loaders' errors for a folder they cannot train.
func makeTrainingRun(folder: URL, modelType: String, options: TrainingOptions) throws -> TrainingRun {
    let model: any TrainableModel
    switch modelType {
    case "bert": model = try BERTForPreTraining(directory: folder)
    case "t5": model = try T5ForConditionalGeneration(directory: folder)
    default: throw TrainingError("\(folder.path): model_type \"\(modelType)\" cannot be trained here (bert, t5)")
    }
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
