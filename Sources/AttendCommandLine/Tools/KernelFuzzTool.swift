// The command line of `kernel-fuzz` (Sources/kernel-fuzz): one command, its flags.

/// The flag table of `kernel-fuzz`.
package enum KernelFuzzCommandLine {
    /// The tool, given the kernel names (`--kernel`) and the variant names (`--variant`) it
    /// knows; "all" is added to both.
    package static func tool(kernels: [String], variants: [String]) -> ToolSpec {
        ToolSpec(
            name: "kernel-fuzz",
            summary: "Differential fuzzing of every C kernel on every variant this CPU can run against the Swift SIMD oracle.",
            commands: [
                CommandSpec(
                    "",
                    summary:
                        "Differential fuzzing of every C kernel on every variant this CPU can run against the Swift SIMD oracle: random cases per kernel and variant, each mismatch printed with the command line that replays it.",
                    flags: [
                        Flag("--seconds", .double(.positive), "N", help: "time budget in seconds (default 10; with --cases, whichever ends first)"),
                        Flag("--cases", .int(1...Int.max), "N", help: "run at most N cases per kernel and variant"),
                        Flag("--seed", .uint64, "S", help: "session seed (default: random, printed)"),
                        Flag("--case", .uint64, "N", help: "run only case N (of the seed) of each selected kernel and variant, verbosely"),
                        Flag(
                            "--kernel", .list(.choice(kernels + ["all"])), "K[,K...]",
                            help: "the kernels: \(kernels.joined(separator: ", ")) or all (default all)"),
                        Flag(
                            "--variant", .list(.choice(variants + ["all"])), "V[,V...]",
                            help: "the variants: \(variants.joined(separator: ", ")) or all (default: every one this CPU runs; one it cannot run is a usage error)"),
                        Flag("--threads", .int(1...256), "T", help: "worker threads, round-robin over kernel x variant pairs (default 1)"),
                        Flag.switch("--list", help: "list the kernels, the variants this CPU runs and their GEMM blocking, then exit"),
                    ]),
            ],
            failureMeaning: "mismatches found (each printed with the command line that reproduces it)")
    }
}
