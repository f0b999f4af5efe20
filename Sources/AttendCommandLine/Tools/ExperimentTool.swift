// The command line of `experiment` (Benchmarks/experiment): its commands and their flags.

/// The flag tables of `experiment`.
package enum ExperimentCommandLine {
    /// The tool, given the task names (`--task`) and the position encoding names
    /// (`--encodings`) the experiment knows.
    package static func tool(tasks: [String], encodings: [String]) -> ToolSpec {
        ToolSpec(
            name: "experiment",
            summary: "The experiments behind the claims the documentation measures (build it in release: swift run -c release experiment ...).",
            commands: [
                CommandSpec(
                    "positions",
                    summary:
                        "trains tiny causal Transformers that differ only in their position encoding on synthetic tasks that need positions (copy the token k places back, find the matching bracket, recall a value across a gap) at length 64, and measures their accuracy at longer lengths: a Markdown table (mean ± spread over the seeds per encoding and length), the numbers as JSON and one SVG chart of accuracy against length per task",
                    flags: [
                        Flag.switch("--quick", help: "one seed, 40 steps, lengths 64 and 128 (for CI; still writes the table and charts)"),
                        Flag(
                            "--task", .list(.choice(tasks)), "T[,T...]",
                            help: "the tasks: \(tasks.joined(separator: ", ")) (default all)"),
                        Flag(
                            "--encodings", .list(.choice(encodings)), "E[,E...]",
                            help: "the position encodings: \(encodings.joined(separator: ", ")) (default all)"),
                        Flag("--seeds", .int(1...Int.max), "N", help: "seeds 1...N per task and encoding (default 3; overrides --quick's)"),
                        Flag("--steps", .int(1...Int.max), "N", help: "training steps per run (overrides --quick's)"),
                        Flag(
                            "--out", .nonEmptyString, "DIR",
                            help: "write the table (positions.md), the numbers (positions.json) and the charts into DIR (default experiment-results)"),
                        Flag("--threads", .int(1...1024), "N", help: "runs trained at once, one thread each (default: the active cores)"),
                        Flag.switch("--quiet", help: "no progress line per finished run"),
                    ],
                    details: "positions prints the table on stdout, then one line per file written (\"wrote PATH\").")
            ],
            failureMeaning: "runtime failure (a run that could not train, or a file that could not be written)")
    }
}
