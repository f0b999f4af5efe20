import AttendCommandLine
import Experiments
import Foundation

// `swift run -c release experiment positions [options]`: the experiments behind the claims the
// documentation measures. The commands and their flags are the table of `experimentTool`
// (Sources/AttendCommandLine/Tools/ExperimentTool.swift), read with the grammar attend, bench
// and kernel-fuzz share (--flag value or --flag=value, -- ends the options, --help, --version).
// Exit status: 0 success, 1 a run or a file that failed, 2 a wrong command line.

let arguments = Array(CommandLine.arguments.dropFirst())
let parsed = experimentTool.parseOrExit(arguments)
let options = PositionExperimentOptions(parsed)
do {
    let report = try runPositionExperiment(options, command: (["experiment"] + arguments).joined(separator: " "))
    print(report.markdown())
    for file in try report.write(to: options.output) { print("wrote \(file.path)") }
} catch {
    experimentTool.exitWithFailure("\(error)")
}
