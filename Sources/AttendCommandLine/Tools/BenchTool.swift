// The command line of `bench` (Benchmarks/bench): one command, its flags.

/// The flag table of `bench`.
package enum BenchCommandLine {
    /// The sections `--only` selects, in the order they run.
    package static let sections = [
        "peak", "parallel", "gemm", "gemv", "softmax", "attention", "attention-backward", "encoder", "decoder", "bert", "seq2seq", "quantized", "tokenizers", "lm",
        "train",
    ]

    /// The decoder-only shapes of the `lm` section, `--lm-model` picks one.
    package static let lmModels = ["gpt2-small", "tinyllama"]

    /// The tool.
    package static let tool = ToolSpec(
        name: "bench",
        summary: "Attend's benchmark: every figure measured in this run, next to this machine's FMA peak measured in the same run.",
        commands: [
            CommandSpec(
                "",
                summary:
                    "Attend's benchmark: every figure measured in this run, next to this machine's FMA peak measured in the same run. A debug build rebuilds itself in release and re-executes, so the numbers are release-speed.",
                flags: [
                    Flag("--seq", .int(1...Int.max), "N", help: "sequence length for the attention and model sections (default 4096)"),
                    Flag(
                        "--only", .list(.choice(sections)), "S[,S...]", repeatable: true,
                        help: "run only these sections: \(sections.joined(separator: ", "))"),
                    Flag.switch("--json", help: "one JSON object per line on stdout (progress stays on stderr); non-finite numbers are null"),
                    Flag("--threads", .int(1...1024), "N", help: "the multi-threaded rows use N threads (default: the active cores)"),
                    Flag.switch("--quick", help: "fewer repetitions and sizes (a smoke run)"),
                    Flag(
                        "--gemm-sizes", .list(.int(1...16384)), "N[,N...]",
                        help: "gemm: only the square products of these sizes (N x N x N), instead of 512-4096 and the model-shaped products"),
                    Flag.switch("--fused-only", help: "attention: only the fused non-causal rows (no causal rows, no materialized path)"),
                    Flag(
                        "--lm-model", .choice(lmModels), "NAME",
                        help: "lm: only this model shape, \(lmModels.joined(separator: " or ")) (default: gpt2-small, and tinyllama too with --only lm)"),
                    Flag(
                        "--svg", .nonEmptyString, "DIR",
                        help:
                            "also draw one SVG chart per section that ran into DIR (created if needed): SECTION.svg, bars of GFLOP/s (with % of peak) per kernel, or of the section's rate or time; time against sequence length when a section measured several lengths"
                    ),
                ]),
        ],
        failureMeaning: "runtime failure (a measurement that could not run)")
}
