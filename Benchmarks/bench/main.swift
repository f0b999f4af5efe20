// `swift run bench [--seq N] [--only SECTION[,SECTION]] [--json] [--threads N]`
//
// Attend's benchmark: every figure is measured in this run, next to this machine's FMA peak
// measured in the same run. `swift run` builds debug, whose C kernels are compiled at -O0; in
// that case the bench rebuilds itself in release and re-executes, so the numbers are always
// release-speed.
import Attend
import Foundation

let options: BenchOptions
do {
    options = try BenchOptions.parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    FileHandle.standardError.write("bench: \(error)\n\(BenchOptions.usage)\n".data(using: .utf8)!)
    exit(2)
}
if options.help {
    print(BenchOptions.usage)
    exit(0)
}

ReleaseRelauncher.relaunchIfNotOptimized()
TrainChild.runIfRequested()  // a `train` configuration measured in its own process

var bench = Bench(options: options)
bench.run()
