import Experiments
import Foundation

// `swift run -c release experiment positions [options]`: the experiments behind the claims the
// documentation measures. See PositionExperimentOptions.usage.

let arguments = Array(CommandLine.arguments.dropFirst())
guard let name = arguments.first, name == "positions" else {
    FileHandle.standardError.write(Data("usage: experiment positions [options]\n\(PositionExperimentOptions.usage)\n".utf8))
    exit(2)
}
do {
    let options = try PositionExperimentOptions(arguments: Array(arguments.dropFirst()))
    let report = try runPositionExperiment(options, command: (["experiment"] + arguments).joined(separator: " "))
    print(report.markdown())
    for file in try report.write(to: options.output) { print("wrote \(file.path)") }
} catch let error as ExperimentUsageError {
    FileHandle.standardError.write(Data("experiment: \(error)\n".utf8))
    exit(2)
} catch {
    FileHandle.standardError.write(Data("experiment: \(error)\n".utf8))
    exit(1)
}
