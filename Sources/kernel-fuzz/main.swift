// kernel-fuzz: differential fuzzing of every C kernel on every variant this CPU can run
// against the Swift oracle. See `kernel-fuzz --help`; the flags are the table in
// Sources/AttendCommandLine/Tools/KernelFuzzTool.swift.
//
// Exit status: 0 no mismatch, 1 mismatches found, 2 a wrong command line or a variant this CPU
// cannot run.
import AttendCommandLine
import CKernels
import Dispatch
import Foundation
import KernelFuzz

let tool = KernelFuzzCommandLine.tool(kernels: FuzzRegistry.kernels.map(\.name), variants: FuzzTable.allNames)
let options = tool.parseOrExit(Array(CommandLine.arguments.dropFirst()))

/// A usage error: one line and the pointer to --help on stderr, exit status 2.
func fail(_ message: String) -> Never { tool.exitWithUsageError(message, command: options.command) }

var seconds = options.double("--seconds")
let maxCases = options.int("--cases").map(UInt64.init)
let seed = options.uint64("--seed")
let caseIndex = options.uint64("--case")
let threads = options.int("--threads") ?? 1
let list = options.has("--list")
let kernelNames = options.lists("--kernel").last ?? ["all"]
let variantNames = options.lists("--variant").last ?? ["all"]

var kernels: [AnyFuzzKernel] = []
for name in kernelNames {
    if name == "all" {
        kernels += FuzzRegistry.kernels
    } else if let k = FuzzRegistry.kernel(named: name) {
        kernels.append(k)
    } else {
        fail("unknown kernel '\(name)' (known: \(FuzzRegistry.kernels.map(\.name).joined(separator: ", ")), all)")
    }
}
var tables: [FuzzTable] = []
for name in variantNames {
    if name == "all" {
        tables += FuzzTable.available
        continue
    }
    let (table, reason) = FuzzTable.named(name)
    guard let table else { fail(reason ?? "--variant \(name) cannot run here") }
    tables.append(table)
}
if kernels.isEmpty || tables.isEmpty { fail("no kernel or no variant selected") }

if list {
    print("kernels: \(FuzzRegistry.kernels.map(\.name).joined(separator: ", "))")
    print("variants this CPU runs: \(FuzzTable.available.map(\.name).joined(separator: ", "))")
    for t in FuzzTable.available {
        let g = t.gemm
        print("gemm blocking \(t.name): mr \(g.mr) nr \(g.nr) mc \(g.mc) kc \(g.kc) nc \(g.nc)")
    }
    exit(0)
}

let sessionSeed = seed ?? UInt64.random(in: 0...UInt64(UInt32.max))
if ck_build_optimized() == 0 {
    FileHandle.standardError.write(
        Data("kernel-fuzz: note: the C kernels are a debug (-O0) build; use `swift build -c release` for throughput\n".utf8))
}

// --case N: one case per selected pair, described.
if let caseIndex {
    var bad = 0
    for k in kernels {
        for t in tables {
            let o = k.runCase(seed: sessionSeed, caseIndex: caseIndex, table: t, describe: true)
            if let f = o.failure {
                bad += 1
                print("MISMATCH \(k.name) on \(t.name), seed \(sessionSeed) case \(caseIndex): \(f)\n  case: \(o.caseDescription ?? "")")
            } else {
                print("ok \(k.name) on \(t.name), seed \(sessionSeed) case \(caseIndex): \(o.caseDescription ?? "")")
            }
        }
    }
    exit(bad == 0 ? 0 : 1)
}

if seconds == nil && maxCases == nil { seconds = 10 }
let tty = isatty(2) != 0
let banner =
    "kernel-fuzz: seed \(sessionSeed), \(kernels.count) kernels x \(tables.count) variants (\(tables.map(\.name).joined(separator: ", "))), "
    + "\(seconds.map { "\($0) s" } ?? "no time limit")\(maxCases.map { ", at most \($0) cases per pair" } ?? ""), \(threads) thread(s)\n"
FileHandle.standardError.write(Data(banner.utf8))
let session = FuzzSession(kernels: kernels, tables: tables, seed: sessionSeed)
var lastLine = 0.0
session.run(
    seconds: seconds, maxCases: maxCases, threads: threads, progressInterval: tty ? 1 : 1,
    progress: { s, elapsed in
        guard tty || elapsed - lastLine >= 10 else { return }
        lastLine = elapsed
        let (cases, failures) = s.totals
        let line = String(format: "[%6.0f s] %llu cases (%.0f/s), %d mismatches", elapsed, cases, Double(cases) / max(elapsed, 1e-9), failures)
        FileHandle.standardError.write(Data((tty ? "\r" + line : line + "\n").utf8))
    },
    onFailure: { f in
        FileHandle.standardError.write(Data("\(tty ? "\n" : "")\(f)\n".utf8))
    })
if tty { FileHandle.standardError.write(Data("\n".utf8)) }
print(session.summary())
let failures = session.failures
if !failures.isEmpty {
    print("\(failures.count) mismatch(es); reproduce with:")
    for f in failures { print("  \(f.reproducer)") }
}
exit(failures.isEmpty ? 0 : 1)
