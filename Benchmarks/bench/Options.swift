import Foundation

struct BenchError: Error, CustomStringConvertible {
    let description: String
}

/// Command-line options of `bench`.
struct BenchOptions {
    static let sections = ["peak", "parallel", "gemm", "softmax", "attention", "attention-backward", "encoder", "decoder", "bert", "seq2seq", "tokenizers", "lm", "train"]
    static let usage = """
        usage: swift run bench [--seq N] [--only SECTION[,SECTION...]] [--json] [--threads N] [--quick] [--svg DIR]
          --seq N        sequence length for attention / model sections (default 4096)
          --only S       run only these sections: \(sections.joined(separator: ", "))
          --json         one JSON object per line on stdout (progress stays on stderr)
          --threads N    the multi-threaded rows use N threads (default: active cores)
          --quick        fewer repetitions and sizes (a smoke run)
          --svg DIR      also draw one SVG chart per section that ran into DIR (created if
                         needed): SECTION.svg, bars of GFLOP/s (with % of peak) per kernel, or of
                         the section's rate or time; time against sequence length when a section
                         measured several lengths
        """

    var seq = 4096
    var only: Set<String> = []
    var json = false
    var threads = ProcessInfo.processInfo.activeProcessorCount
    var quick = false
    var help = false
    /// `--svg DIR`: where to write one chart per section.
    var svg: String? = nil

    func wants(_ section: String) -> Bool { only.isEmpty || only.contains(section) }

    static func parse(_ args: [String]) throws -> BenchOptions {
        var o = BenchOptions()
        var i = 0
        func value(_ flag: String) throws -> String {
            i += 1
            guard i < args.count else { throw BenchError(description: "\(flag) needs a value") }
            return args[i]
        }
        func positive(_ flag: String) throws -> Int {
            let s = try value(flag)
            guard let n = Int(s), n > 0 else { throw BenchError(description: "\(flag) needs a positive integer, got '\(s)'") }
            return n
        }
        while i < args.count {
            switch args[i] {
            case "--seq": o.seq = try positive("--seq")
            case "--threads": o.threads = try positive("--threads")
            case "--json": o.json = true
            case "--quick": o.quick = true
            case "--svg": o.svg = try value("--svg")
            case "--help", "-h": o.help = true
            case "--only":
                let names = try value("--only").split(separator: ",").map(String.init)
                for n in names where !sections.contains(n) {
                    throw BenchError(description: "unknown section '\(n)' (known: \(sections.joined(separator: ", ")))")
                }
                o.only.formUnion(names)
            default: throw BenchError(description: "unknown argument '\(args[i])'")
            }
            i += 1
        }
        return o
    }
}
