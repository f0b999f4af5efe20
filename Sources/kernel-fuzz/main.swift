// kernel-fuzz: differential fuzzing of every C kernel on every variant this CPU can run
// against the Swift oracle. See `kernel-fuzz --help`.
import CKernels
import Dispatch
import Foundation
import KernelFuzz

let usage = """
    usage: kernel-fuzz [--seconds N] [--cases N] [--seed S] [--case N] [--kernel K[,K...]|all]
                       [--variant V[,V...]|all] [--threads T] [--list]
      --seconds N   time budget (default 10; with --cases, whichever ends first)
      --cases N     run at most N cases per kernel and variant
      --seed S      session seed (default: random, printed)
      --case N      run only case N (of the seed) of each selected kernel and variant, verbosely
      --kernel K    \(FuzzRegistry.kernels.map(\.name).joined(separator: "|"))|all (default all)
      --variant V   \(FuzzTable.allNames.joined(separator: "|"))|all (default: every one this CPU runs)
      --threads T   worker threads, round-robin over kernel x variant pairs (default 1)
      --list        list kernels and the variants this CPU runs, then exit
    exit status: 0 no mismatch, 1 mismatches found, 2 bad arguments or unsupported variant
    """

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("kernel-fuzz: \(message)\n\(usage)\n".utf8))
    exit(2)
}

var seconds: Double?
var maxCases: UInt64?
var seed: UInt64?
var caseIndex: UInt64?
var kernelNames = "all", variantNames = "all"
var threads = 1
var list = false
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    func value() -> String {
        guard let v = args.popFirst() else { fail("\(a) needs a value") }
        return v
    }
    switch a {
    case "--seconds":
        guard let v = Double(value()), v > 0, v.isFinite else { fail("--seconds needs a positive number") }
        seconds = v
    case "--cases":
        guard let v = UInt64(value()), v > 0 else { fail("--cases needs a positive integer") }
        maxCases = v
    case "--seed":
        guard let v = UInt64(value()) else { fail("--seed needs an unsigned 64-bit integer") }
        seed = v
    case "--case":
        guard let v = UInt64(value()) else { fail("--case needs an unsigned integer") }
        caseIndex = v
    case "--kernel": kernelNames = value()
    case "--variant": variantNames = value()
    case "--threads":
        guard let v = Int(value()), v >= 1, v <= 256 else { fail("--threads needs an integer in 1...256") }
        threads = v
    case "--list": list = true
    case "-h", "--help":
        print(usage)
        exit(0)
    default: fail("unknown argument '\(a)'")
    }
}

var kernels: [AnyFuzzKernel] = []
for name in kernelNames.split(separator: ",").map(String.init) {
    if name == "all" {
        kernels += FuzzRegistry.kernels
    } else if let k = FuzzRegistry.kernel(named: name) {
        kernels.append(k)
    } else {
        fail("unknown kernel '\(name)' (known: \(FuzzRegistry.kernels.map(\.name).joined(separator: ", ")), all)")
    }
}
var tables: [FuzzTable] = []
for name in variantNames.split(separator: ",").map(String.init) {
    if name == "all" {
        tables += FuzzTable.available
        continue
    }
    let (table, reason) = FuzzTable.named(name)
    guard let table else {
        FileHandle.standardError.write(Data("kernel-fuzz: \(reason ?? name)\n".utf8))
        exit(2)
    }
    tables.append(table)
}
if kernels.isEmpty || tables.isEmpty { fail("no kernel or no variant selected") }

if list {
    print("kernels: \(FuzzRegistry.kernels.map(\.name).joined(separator: ", "))")
    print("variants this CPU runs: \(FuzzTable.available.map(\.name).joined(separator: ", "))")
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
