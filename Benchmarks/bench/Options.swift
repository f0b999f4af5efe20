import AttendCommandLine
import Foundation

/// Command-line options of `bench`: the table is `BenchCommandLine.tool`
/// (Sources/AttendCommandLine/Tools/BenchTool.swift).
struct BenchOptions {
    static let sections = BenchCommandLine.sections

    var seq = 4096
    var only: Set<String> = []
    var json = false
    var threads = ProcessInfo.processInfo.activeProcessorCount
    var quick = false
    /// `--svg DIR`: where to write one chart per section.
    var svg: String? = nil
    /// `--gemm-sizes`: the square GEMM sizes to run alone (empty: the default set).
    var gemmSizes: [Int] = []
    /// `--fused-only`: the attention section runs only its fused non-causal rows.
    var fusedOnly = false
    /// `--lm-model`: the one decoder-only shape the lm section runs (nil: its default set).
    var lmModel: String? = nil

    func wants(_ section: String) -> Bool { only.isEmpty || only.contains(section) }

    /// The options of a parsed command line (values already checked by the table).
    init(_ parsed: ParsedArguments) {
        seq = parsed.int("--seq") ?? seq
        threads = parsed.int("--threads") ?? threads
        json = parsed.has("--json")
        quick = parsed.has("--quick")
        svg = parsed.string("--svg")
        only = Set(parsed.lists("--only").joined())
        gemmSizes = parsed.intLists("--gemm-sizes").flatMap { $0 }
        fusedOnly = parsed.has("--fused-only")
        lmModel = parsed.string("--lm-model")
    }
}
