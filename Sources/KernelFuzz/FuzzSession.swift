// The runner: round-robins (kernel, table) pairs over worker threads for a time budget or a
// number of cases, collects counts and failures, and reports progress.
import Dispatch
import Foundation

/// One failing case, with everything needed to replay it.
public struct FuzzFailure: Sendable, CustomStringConvertible {
    /// The kernel's name.
    public let kernel: String
    /// The table's name (`scalar`, `avx2`, ..., `avx512-layout`).
    public let variant: String
    /// The session seed.
    public let seed: UInt64
    /// The case index within (seed, kernel).
    public let caseIndex: UInt64
    /// The case's sizes and settings.
    public let caseDescription: String
    /// The first problem found.
    public let message: String

    /// The one-line command that replays exactly this case.
    public var reproducer: String {
        "swift run kernel-fuzz --seed \(seed) --case \(caseIndex) --kernel \(kernel) --variant \(variant)"
    }

    /// The failure, the case and the reproducer, on three lines.
    public var description: String {
        "MISMATCH \(kernel) on \(variant), case \(caseIndex): \(message)\n  case: \(caseDescription)\n  reproduce: \(reproducer)"
    }
}

/// Per (kernel, table) pair: cases run, mismatches, time spent.
public struct FuzzPairStats: Sendable {
    /// The kernel's name.
    public let kernel: String
    /// The table's name.
    public let variant: String
    /// Cases generated, run and checked.
    public var cases: UInt64 = 0
    /// Cases that failed (the pair stops at its first failure).
    public var mismatches: UInt64 = 0
    /// Thread time spent in this pair's cases, in seconds.
    public var seconds: Double = 0
}

/// A fuzzing session over kernels x tables: every pair runs case indices 0, 1, 2, ... in
/// batches, pairs taken round-robin (least-run first) by `threads` worker threads, until the
/// time budget ends or every pair has run `maxCases`. A pair stops at its first failure; the
/// others go on. Cost: the budget (seconds) on `threads` threads.
public final class FuzzSession: @unchecked Sendable {
    /// The pairs' statistics, in (kernel, table) order.
    public private(set) var stats: [FuzzPairStats]
    /// Every failure found, in the order found.
    public private(set) var failures: [FuzzFailure] = []

    private let kernels: [AnyFuzzKernel]
    private let tables: [FuzzTable]
    private let seed: UInt64
    private let lock = NSLock()
    private var next: [UInt64]
    private var stopped: [Bool]
    private let batch: UInt64 = 8

    /// A session of every kernel in `kernels` on every table in `tables` (neither empty).
    public init(kernels: [AnyFuzzKernel], tables: [FuzzTable], seed: UInt64) {
        precondition(!kernels.isEmpty && !tables.isEmpty, "FuzzSession: \(kernels.count) kernels x \(tables.count) tables: both must be non-empty")
        self.kernels = kernels
        self.tables = tables
        self.seed = seed
        stats = kernels.flatMap { k in tables.map { FuzzPairStats(kernel: k.name, variant: $0.name) } }
        next = Array(repeating: 0, count: kernels.count * tables.count)
        stopped = Array(repeating: false, count: kernels.count * tables.count)
    }

    /// Total cases run so far and failures so far (thread-safe).
    public var totals: (cases: UInt64, failures: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (stats.reduce(0) { $0 + $1.cases }, failures.count)
    }

    /// The least-run pair still going and a batch of its case indices; nil when none is left.
    private func claim(maxCases: UInt64?) -> (pair: Int, range: Range<UInt64>)? {
        lock.lock()
        defer { lock.unlock() }
        var best = -1
        for p in 0..<next.count where !stopped[p] && (maxCases.map { next[p] < $0 } ?? true) {
            if best < 0 || next[p] < next[best] { best = p }
        }
        guard best >= 0 else { return nil }
        let start = next[best]
        let end = maxCases.map { min($0, start + batch) } ?? start + batch
        next[best] = end
        return (best, start..<end)
    }

    /// Runs until `seconds` pass (nil: no limit) or every pair has run `maxCases` (nil: no
    /// limit; at least one of the two must be set). `progress` is called on the calling thread
    /// about every `progressInterval` seconds while workers run; `onFailure` as soon as a
    /// failure is found (from a worker thread, serialized).
    public func run(
        seconds: Double?, maxCases: UInt64?, threads: Int, progressInterval: Double = 1,
        progress: (FuzzSession, Double) -> Void = { _, _ in }, onFailure: @escaping @Sendable (FuzzFailure) -> Void = { _ in }
    ) {
        precondition(seconds != nil || maxCases != nil, "FuzzSession.run: give a time budget or a case count")
        precondition(threads >= 1, "FuzzSession.run: threads \(threads) must be >= 1")
        let start = DispatchTime.now().uptimeNanoseconds
        let deadline = seconds.map { start + UInt64($0 * 1e9) }
        let group = DispatchGroup()
        for _ in 0..<threads {
            group.enter()
            Thread.detachNewThread { [self] in
                defer { group.leave() }
                while let (pair, range) = claim(maxCases: maxCases) {
                    if let deadline, DispatchTime.now().uptimeNanoseconds >= deadline { return }
                    let kernel = kernels[pair / tables.count], table = tables[pair % tables.count]
                    var done: UInt64 = 0
                    var failure: FuzzFailure?
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    for index in range {
                        let outcome = kernel.runCase(seed: seed, caseIndex: index, table: table)
                        done += 1
                        if let message = outcome.failure {
                            failure = FuzzFailure(
                                kernel: kernel.name, variant: table.name, seed: seed, caseIndex: index,
                                caseDescription: outcome.caseDescription ?? "", message: message)
                            break
                        }
                        if let deadline, DispatchTime.now().uptimeNanoseconds >= deadline { break }
                    }
                    let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
                    lock.lock()
                    stats[pair].cases += done
                    stats[pair].seconds += dt
                    if let failure {
                        stats[pair].mismatches += 1
                        stopped[pair] = true
                        failures.append(failure)
                        onFailure(failure)
                    }
                    lock.unlock()
                }
            }
        }
        while group.wait(timeout: .now() + progressInterval) == .timedOut {
            progress(self, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        }
    }

    /// The summary table: one line per (kernel, table) with cases, mismatches and seconds,
    /// then the totals.
    public func summary() -> String {
        lock.lock()
        defer { lock.unlock() }
        let kw = max(6, stats.map(\.kernel.count).max() ?? 0), vw = max(7, stats.map(\.variant.count).max() ?? 0)
        func pad(_ s: String, _ w: Int, right: Bool = false) -> String {
            let p = String(repeating: " ", count: max(0, w - s.count))
            return right ? p + s : s + p
        }
        var lines = [
            "\(pad("kernel", kw))  \(pad("variant", vw))  \(pad("cases", 10, right: true))  \(pad("mismatches", 10, right: true))  \(pad("seconds", 8, right: true))"
        ]
        for s in stats {
            lines.append(
                "\(pad(s.kernel, kw))  \(pad(s.variant, vw))  \(pad(String(s.cases), 10, right: true))  \(pad(String(s.mismatches), 10, right: true))  \(pad(String(format: "%.1f", s.seconds), 8, right: true))"
            )
        }
        let total = stats.reduce(0) { $0 + $1.cases }, bad = stats.reduce(0) { $0 + $1.mismatches }
        lines.append(
            "total: \(total) cases, \(bad) mismatches, \(stats.count) kernel x variant pairs, min \(stats.map(\.cases).min() ?? 0) cases per pair")
        return lines.joined(separator: "\n")
    }
}
