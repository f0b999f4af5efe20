// swift-tools-version: 6.0
// Example programs for Attend, kept in their own package so that Attend itself has no
// dependencies and its `swift build` / `swift test` never build them. They depend on the
// Attend checkout one folder up, by path:
//
//   cd Examples && swift build -c release
//   .build/release/semantic-search --model ../.cache/minilm --file notes.txt --query "..."
//   .build/release/translate --model path/to/opus-mt-en-de "How are you?"
//   .build/release/tiny-training --steps 60
import Foundation
import PackageDescription

// A path dependency is identified by its folder's name (the checkout may be called "Attend",
// "attend", "main", ...), so the product's package is named after the parent folder.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
let attend = Target.Dependency.product(name: "Attend", package: root.lastPathComponent)

let package = Package(
    name: "AttendExamples",
    products: [
        .executable(name: "semantic-search", targets: ["semantic-search"]),
        .executable(name: "translate", targets: ["translate"]),
        .executable(name: "tiny-training", targets: ["tiny-training"]),
    ],
    dependencies: [.package(path: "..")],
    targets: [
        // Argument parsing and error reporting shared by the examples.
        .target(name: "ExampleSupport", path: "Sources/ExampleSupport"),
        .executableTarget(
            name: "semantic-search", dependencies: [attend, "ExampleSupport"],
            path: "Sources/semantic-search"),
        .executableTarget(
            name: "translate", dependencies: [attend, "ExampleSupport"],
            path: "Sources/translate"),
        .executableTarget(
            name: "tiny-training", dependencies: [attend, "ExampleSupport"],
            path: "Sources/tiny-training"),
    ],
    swiftLanguageModes: [.v6]
)
