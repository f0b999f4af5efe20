import Foundation

/// Writes a model folder as `save_pretrained` does for float32 weights: `config.json`,
/// `model.safetensors` (metadata `format: pt`) holding `parameters` under their names, and
/// `extraFiles` (name, bytes: `generation_config.json`), in `directory` (created when
/// missing). Each file is written to a temporary name and renamed over the final one, so a
/// failed save leaves no partial file. Throws `SafeTensorsError.unwritable` or the file
/// system's error, naming the path.
func saveTrainingFolder(to directory: URL, configJSON: Data, parameters: ParameterSet, extraFiles: [(String, Data)] = []) throws {
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    try SafeTensorsWriter.write(parameters, metadata: ["format": "pt"], to: directory.appendingPathComponent("model.safetensors"))
    for (name, data) in extraFiles { try data.write(to: directory.appendingPathComponent(name), options: .atomic) }
    try configJSON.write(to: directory.appendingPathComponent("config.json"), options: .atomic)
}
