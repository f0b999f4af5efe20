// swift-tools-version: 6.0
// Attend: transformers on the CPU. No package dependencies and no unsafe compiler flags: ISA-specific C
// uses per-function target attributes and runtime dispatch, so any package can depend on
// Attend by version.
import PackageDescription

let package = Package(
    name: "Attend",
    products: [
        .library(name: "Attend", targets: ["Attend"]),
        .executable(name: "bench", targets: ["bench"]),
        .executable(name: "attend", targets: ["attend"]),
        .executable(name: "kernel-fuzz", targets: ["kernel-fuzz"]),
        .executable(name: "experiment", targets: ["experiment"]),
    ],
    targets: [
        // The C kernels: dispatch.c, ref/, core/, x86/, arm/ under CKernels; public header in include/.
        .target(
            name: "CKernels",
            path: ".",
            exclude: ["CKernels/README.md"],
            sources: ["CKernels"],
            publicHeadersPath: "include"
        ),
        .target(
            name: "Attend",
            dependencies: ["CKernels"],
            path: "Sources/Attend"
        ),
        // The command-line grammar of attend, bench, kernel-fuzz and experiment (flag tables,
        // parser, help texts, exit statuses) and their JSON-lines writer: package-internal, not a product.
        .target(
            name: "AttendCommandLine",
            dependencies: ["Attend"],
            path: "Sources/AttendCommandLine"
        ),
        .executableTarget(
            name: "attend",
            dependencies: ["Attend", "AttendCommandLine"],
            path: "Sources/attend"
        ),
        .executableTarget(
            name: "bench",
            dependencies: ["Attend", "AttendCommandLine"],
            path: "Benchmarks/bench",
            exclude: ["tokenizer_sentences.txt"]
        ),
        // Differential fuzzing of every C kernel on every variant against the Swift SIMD oracle:
        // the case generators and checks (a library, so `swift test` replays regression cases)
        // and the `kernel-fuzz` command line around them.
        .target(
            name: "KernelFuzz",
            dependencies: ["Attend", "CKernels"],
            path: "Sources/KernelFuzz"
        ),
        .executableTarget(
            name: "kernel-fuzz",
            dependencies: ["KernelFuzz", "AttendCommandLine"],
            path: "Sources/kernel-fuzz"
        ),
        // The experiments that measure the documentation's claims (`experiment positions`): the
        // tasks, models, training loop and report (a library, so tests run them) and the command line.
        .target(
            name: "Experiments",
            dependencies: ["Attend", "AttendCommandLine"],
            path: "Benchmarks/Experiments"
        ),
        .executableTarget(
            name: "experiment",
            dependencies: ["Experiments", "AttendCommandLine"],
            path: "Benchmarks/experiment"
        ),
        .target(
            name: "AttendTestSupport",
            dependencies: ["Attend"],
            path: "Tests/AttendTestSupport"
        ),
        .testTarget(
            name: "KernelTests",
            dependencies: ["Attend", "AttendTestSupport"],
            path: "Tests/KernelTests",
            exclude: ["make_training_kernel_fixtures.py"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "VisualizationTests",
            dependencies: ["Attend", "AttendTestSupport"],
            path: "Tests/VisualizationTests",
            exclude: ["make_attention_fixture.py"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "TensorTests",
            dependencies: ["Attend", "AttendTestSupport"],
            path: "Tests/TensorTests"
        ),
        .testTarget(
            name: "TrainingTests",
            dependencies: ["Attend", "AttendTestSupport"],
            path: "Tests/TrainingTests",
            exclude: [
                "golden_training.py", "make_marian_training_fixture.py", "make_transformer_training_fixture.py", "make_bert_mlm_fixture.py",
                "make_t5v11_training_fixture.py",
            ],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "AttentionTests",
            dependencies: ["Attend", "AttendTestSupport"],
            path: "Tests/AttentionTests",
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "CheckpointTests",
            dependencies: ["Attend", "AttendTestSupport"],
            path: "Tests/CheckpointTests",
            exclude: ["make_fixtures.py"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "TransformerTests",
            dependencies: ["Attend", "AttendTestSupport"],
            path: "Tests/TransformerTests",
            exclude: [
                "make_hf_fixtures.py", "make_processor_fixtures.py", "make_lm_fixtures.py", "make_lm_window_fixtures.py",
                "make_stop_strings_fixture.py", "make_attention_fixtures.py", "make_half_fixtures.py",
            ],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "CommandLineTests",
            dependencies: ["Attend", "AttendCommandLine"],
            path: "Tests/CommandLineTests"
        ),
        .testTarget(
            name: "ExperimentTests",
            dependencies: ["Experiments", "Attend", "AttendCommandLine", "AttendTestSupport"],
            path: "Tests/ExperimentTests"
        ),
        .testTarget(
            name: "KernelFuzzTests",
            dependencies: ["KernelFuzz"],
            path: "Tests/KernelFuzzTests"
        ),
        // The hostile-input harness: generated command lines and mutated folders for every
        // `attend` command, and hostile calls of the library's entry points.
        .testTarget(
            name: "HostileInputTests",
            dependencies: ["Attend", "AttendCommandLine", "AttendTestSupport"],
            path: "Tests/HostileInputTests",
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "TokenizerTests",
            dependencies: ["Attend", "AttendTestSupport"],
            path: "Tests/TokenizerTests",
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "BERTTests",
            dependencies: ["Attend", "AttendTestSupport"],
            path: "Tests/BERTTests",
            exclude: ["make_fill_mask_fixture.py"],
            resources: [.copy("Fixtures")]
        ),
        // Downloads from the Hugging Face Hub against a local HTTP server that answers as the
        // Hub does (no test touches the internet), the cache layout, and SHA-256 / SHA-1.
        .testTarget(
            name: "HubTests",
            dependencies: ["Attend", "AttendTestSupport"],
            path: "Tests/HubTests",
            resources: [.copy("Fixtures")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
