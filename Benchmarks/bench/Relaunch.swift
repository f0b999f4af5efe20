import Attend
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `swift run bench` builds in debug, where the C kernels are compiled at -O0 and Swift
/// without optimization. Benchmark numbers from such a build would be meaningless, so the
/// debug binary builds the release product of this package and replaces itself with it.
/// Needs no compiler flags in Package.swift.
enum ReleaseRelauncher {
    static func relaunchIfNotOptimized() {
        var swiftOptimized = true
        #if DEBUG
            swiftOptimized = false
        #endif
        if swiftOptimized && kernelsAreOptimized { return }
        let env = ProcessInfo.processInfo.environment
        if env["ATTEND_BENCH_RELAUNCHED"] != nil {
            stderr("bench: warning: still not an optimized build after relaunch; numbers will be slow")
            return
        }
        // This file is <root>/Benchmarks/bench/Relaunch.swift.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        stderr("bench: this is a debug build (C kernels at -O0); building the release bench first...")
        let build = Process()
        build.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        build.arguments = ["swift", "build", "-c", "release", "--product", "bench", "--package-path", root.path]
        build.standardOutput = FileHandle.standardError
        do {
            try build.run()
            build.waitUntilExit()
        } catch {
            stderr("bench: could not run 'swift build -c release' (\(error)); continuing with the debug build")
            return
        }
        guard build.terminationStatus == 0 else {
            stderr("bench: release build failed (exit \(build.terminationStatus)); continuing with the debug build")
            return
        }
        let binary = root.appendingPathComponent(".build/release/bench").path
        setenv("ATTEND_BENCH_RELAUNCHED", "1", 1)
        var argv: [UnsafeMutablePointer<CChar>?] = [strdup(binary)]
        argv += CommandLine.arguments.dropFirst().map { strdup($0) }
        argv.append(nil)
        execv(binary, argv)
        stderr("bench: could not execute \(binary): \(String(cString: strerror(errno))); continuing with the debug build")
    }
}

func stderr(_ s: String) {
    FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
}

/// Writes a line to standard output unbuffered, so rows appear as they are measured.
func out(_ s: String) {
    FileHandle.standardOutput.write((s + "\n").data(using: .utf8)!)
}
