// The model and optimizer of a training run.
import Attend
import Foundation

/// The model of `folder` and its optimizer (AdamW, with `options`' weight decay), as the loop
/// drives them.
func makeTrainingRun(folder: URL, options: TrainingOptions) throws -> TrainingRun {
    throw TrainingError("\(folder.path): this build has no trainable models yet (the loader is not part of it)")
}
