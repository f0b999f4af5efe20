// `swift run bench [--seq N] [--only SECTION[,SECTION]] [--json] [--threads N] [--quick] [--svg DIR]`
//                  `[--gemm-sizes N[,N...]] [--fused-only] [--lm-model NAME]`
//
// Attend's benchmark: every figure is measured in this run, next to this machine's FMA peak
// measured in the same run. `swift run` builds debug, whose C kernels are compiled at -O0; in
// that case the bench rebuilds itself in release and re-executes, so the numbers are always
// release-speed. The flags are the table in Sources/AttendCommandLine/Tools/BenchTool.swift
// (`bench --help`). Exit status: 0 success, 1 a measurement that could not run, 2 a wrong
// command line.
import Attend
import AttendCommandLine
import Foundation

// --help, --version and usage errors exit here, before any rebuild.
let options = BenchOptions(BenchCommandLine.tool.parseOrExit(Array(CommandLine.arguments.dropFirst())))

ReleaseRelauncher.relaunchIfNotOptimized()
TrainChild.runIfRequested()  // a `train` configuration measured in its own process

var bench = Bench(options: options)
bench.run()
