// swift-tools-version: 5.4
// libFuzzer targets for Attend's file readers, kept out of the root package so that its
// `swift build` / `swift test` never build them and it needs no sanitizer flags. The flags are
// given on the command line (scripts/ci-fuzz-files.sh), never in this manifest:
//
//   cd Tests/Fuzz
//   swift build -c release -Xswiftc -g -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
//   mkdir -p /tmp/corpus && cp Corpus/FuzzTokenizer/* /tmp/corpus/   # libFuzzer adds to it
//   SWIFT_BACKTRACE=enable=no .build/release/FuzzTokenizer /tmp/corpus -max_total_time=60
//   SWIFT_BACKTRACE=enable=no .build/release/FuzzSafeTensors Corpus/FuzzSafeTensors -runs=0  # replay
//
// (`-c debug` works too, at about a quarter of the speed.) scripts/ci-fuzz-files.sh does all
// of this for every target.
//
// Each target is one file defining `LLVMFuzzerTestOneInput`; libFuzzer supplies `main`.
//
// Why tools version 5.4: from 5.5 on, SwiftPM links every executable with
// `--defsym main=<Target>_main` (so tests can import executables), and a fuzz target has no
// such symbol (its `main` is libFuzzer's); 5.4 manifests are linked without the rename. The
// harness sources are therefore compiled in Swift 5 mode; Attend keeps its own settings.
import Foundation
import PackageDescription

// A path dependency is named after its folder (the checkout's name: "main", "Attend", ...).
let root = URL(fileURLWithPath: #file).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let attend = Target.Dependency.product(name: "Attend", package: root.lastPathComponent)

let package = Package(
    name: "AttendFuzz",
    dependencies: [.package(path: "../..")],
    targets: [
        // Safetensors bytes: the reader must throw `SafeTensorsError` or load, and every tensor
        // of a loaded file must read in every conversion.
        .executableTarget(name: "FuzzSafeTensors", dependencies: [attend]),
        // tokenizer.json / vocab.txt bytes, and arbitrary text through two small tokenizers.
        .executableTarget(name: "FuzzTokenizer", dependencies: [attend]),
        // tokenizer.json of every family, SentencePiece model files (protobuf), and text through
        // the golden T5, Marian, Llama and GPT-2 tokenizers.
        .executableTarget(name: "FuzzTokenizerFamilies", dependencies: [attend]),
    ]
)
