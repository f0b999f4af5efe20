// `swift test` side of the kernel fuzzer: replays the regression cases, runs a small fixed
// budget of every kernel on every table this CPU runs, and checks that the fuzzer's checks
// do catch wrong results and stray writes (mutation tests).
import CKernels
import Foundation
import Testing

@testable import KernelFuzz

/// The fixed budget per kernel and table (cases 0..<budget of seed 2024).
let smokeBudget: UInt64 = 150
let smokeSeed: UInt64 = 2024

@Suite("Kernel fuzzer")
struct KernelFuzzTests {
    @Test("regression cases replay clean")
    func regressions() {
        for rc in regressionCases {
            guard let kernel = FuzzRegistry.kernel(named: rc.kernel) else {
                Issue.record("regression case \(rc): no kernel named \(rc.kernel)")
                continue
            }
            guard let table = FuzzTable.named(rc.variant).table else { continue }  // not runnable here
            let outcome = kernel.runCase(seed: rc.seed, caseIndex: rc.caseIndex, table: table)
            if let f = outcome.failure {
                Issue.record("\(rc) (\(rc.note)): \(f)\n  case: \(outcome.caseDescription ?? "")")
            }
        }
    }

    @Test("a fixed budget of every kernel on every table", arguments: FuzzRegistry.kernels.map(\.name))
    func smoke(_ name: String) {
        let kernel = FuzzRegistry.kernel(named: name)!
        #expect(!FuzzTable.available.isEmpty)
        for table in FuzzTable.available {
            for index in 0..<smokeBudget {
                let outcome = kernel.runCase(seed: smokeSeed, caseIndex: index, table: table)
                if let f = outcome.failure {
                    Issue.record(
                        "\(name) on \(table): \(f)\n  case: \(outcome.caseDescription ?? "")\n  reproduce: swift run kernel-fuzz --seed \(smokeSeed) --case \(index) --kernel \(name) --variant \(table)"
                    )
                    break
                }
            }
        }
    }

    @Test("cases are reproducible from (seed, kernel, case) alone")
    func reproducible() {
        let table = FuzzTable.available[0]
        for kernel in FuzzRegistry.kernels {
            let a = kernel.runCase(seed: 7, caseIndex: 12345, table: table, describe: true)
            let b = kernel.runCase(seed: 7, caseIndex: 12345, table: table, describe: true)
            #expect(a.caseDescription == b.caseDescription, "\(kernel.name)")
            #expect(a.caseDescription != nil)
        }
        var r1 = FuzzRNG(seed: 1, kernel: "gemm", caseIndex: 0), r2 = FuzzRNG(seed: 1, kernel: "gemm", caseIndex: 1)
        var r3 = FuzzRNG(seed: 1, kernel: "softmax", caseIndex: 0)
        let x = r1.next()
        #expect(x != r2.next() && x != r3.next())
    }

    @Test("unknown and unsupported variants are refused with a reason")
    func tables() {
        #expect(FuzzTable.named("sse9").table == nil)
        #expect(FuzzTable.named("sse9").reason?.contains("unknown") == true)
        for name in FuzzTable.allNames where !FuzzTable.available.map(\.name).contains(name) {
            #expect(FuzzTable.named(name).reason != nil)
        }
        #expect(FuzzTable.available.contains { $0.name == "scalar" })
    }
}

/// Runs cases of `kernel` until one where `mutate` applies (returns true after damaging the
/// run), then returns what the check says about the damaged run (nil would mean the damage
/// went unnoticed). Fails the test if no case in the first 500 applies.
func checkAfterMutation<K: FuzzKernel>(_ kernel: K, _ mutate: (K.Case, K.Run) -> Bool) -> String? {
    let table = FuzzTable.available.last!
    for index in UInt64(0)..<500 {
        var rng = FuzzRNG(seed: 99, kernel: kernel.name, caseIndex: index)
        let c = kernel.makeCase(&rng, table: table)
        let r = kernel.run(c, on: table)
        guard kernel.check(c, r, table: table) == nil else { continue }
        if mutate(c, r) { return kernel.check(c, r, table: table) }
    }
    Issue.record("no case of \(kernel.name) allowed the mutation")
    return "no case"
}

/// Adds a relative error of `rel` (and 1e-30 absolute) to a finite element.
func perturb(_ m: GuardedMatrix, _ i: Int, _ j: Int, rel: Float) -> Bool {
    guard m.rows > i, m.cols > j, m[i, j].isFinite, m[i, j] != 0 else { return false }
    m[i, j] += m[i, j] * rel
    return true
}

/// Whether every value of the head is in [-1, 1] (no 1e20: the bound scales with max|V|).
func plainValues(_ c: AttentionFuzz.Case) -> Bool {
    (0..<c.seqK).allSatisfy { j in (0..<c.d).allSatisfy { abs(c.v[j, $0]) <= 1 } }
}

@Suite("Kernel fuzzer checks catch wrong results")
struct MutationTests {
    @Test func gemmElement() {
        let why = checkAfterMutation(GEMMFuzz()) { c, r in
            c.k >= 2 && c.mixA == .uniform && c.alpha != 0 && perturb(r.out, c.m - 1, c.n - 1, rel: 1e-3)
        }
        #expect(why != nil)
    }

    @Test func gemmStrayWrite() {
        let why = checkAfterMutation(GEMMFuzz()) { c, r in
            guard c.c.ld > c.n && c.m >= 2 else { return false }
            r.out[0, c.n] = 0  // a gap between rows of C
            return true
        }
        #expect(why?.contains("outside") == true)
    }

    @Test func gemmGuardBand() {
        let why = checkAfterMutation(GEMMFuzz()) { c, r in
            guard c.m > 0 && c.n > 0 else { return false }
            r.out.base[(c.m - 1) * r.out.ld + c.n] = 1  // just past the last element
            return true
        }
        #expect(why?.contains("outside") == true)
    }

    @Test func microKernel() {
        #expect(
            checkAfterMutation(MicroKernelFuzz()) { c, r in c.kc > 4 && c.mix == .uniform && c.alpha != 0 && perturb(r.out, 0, 0, rel: 1e-4) } != nil)
    }

    @Test func gemv() {
        #expect(
            checkAfterMutation(GEMVFuzz()) { c, r in c.k > 8 && c.mix == .uniform && c.alpha != 0 && perturb(r.out, 0, c.n - 1, rel: 1e-4) } != nil)
    }

    @Test func gemmPackedElement() {
        #expect(
            checkAfterMutation(GEMMPackedFuzz()) { c, r in
                c.k >= 2 && c.mixA == .uniform && !c.partial && c.activation == nil && perturb(r.out, c.m - 1, c.n - 1, rel: 1e-3)
            } != nil)
    }

    @Test func gemmPackedEpilogueSkipped() {
        // The residual left out of one element (an epilogue applied to the wrong tile, say).
        #expect(
            checkAfterMutation(GEMMPackedFuzz()) { c, r in
                guard let res = c.residual, !c.partial, c.m > 0, c.n > 0, abs(res[0, 0]) > 0.1, r.out[0, 0].isFinite else { return false }
                r.out[0, 0] -= res[0, 0]
                return true
            } != nil)
    }

    @Test func gemmPackedWriteOutsideBlock() {
        let why = checkAfterMutation(GEMMPackedFuzz()) { c, r in
            guard c.partial, c.m > 0, c.n > 0 else { return false }
            let nr = FuzzTable.available.last!.nr
            let rows = c.rowRanges[0], cols = (c.panelRanges[0].lowerBound * nr)..<min(c.n, c.panelRanges[0].upperBound * nr)
            for i in 0..<c.m { for j in 0..<c.n where !(rows.contains(i) && cols.contains(j)) { r.out[i, j] = 12345; return true } }
            return false
        }
        #expect(why?.contains("outside the block") == true)
    }

    @Test func gemvT() {
        #expect(
            checkAfterMutation(GEMVTFuzz()) { c, r in c.v.k > 8 && c.v.mix == .uniform && c.v.alpha != 0 && perturb(r.out, 0, c.v.n - 1, rel: 1e-4) }
                != nil)
    }

    @Test func gemvTBlockIndependence() {
        let why = checkAfterMutation(GEMVTFuzz()) { c, r in
            guard c.v.n > 0, r.part.base[0].isNormal else { return false }
            r.part.base[0] = r.part.base[0].nextUp  // 1 ulp: within tolerance, but not bitwise the same sum
            return true
        }
        #expect(why?.contains("alone") == true)
    }

    @Test func attentionShort() {
        #expect(
            checkAfterMutation(AttentionShortFuzz()) { c, r in
                c.head.seqK > 2 && c.head.magnitude == 1 && !c.head.integers && !c.head.causal && c.head.keyBias == nil
                    && plainValues(c.head) && perturb(r.o, 0, 0, rel: 1e-3) && abs(r.o[0, 0]) > 0.05
            } != nil)
    }

    @Test func attentionFew() {
        #expect(
            checkAfterMutation(AttentionFewFuzz()) { c, r in
                c.head.seqK > 2 && c.head.magnitude == 1 && !c.head.integers && !c.head.causal && c.head.keyBias == nil
                    && plainValues(c.head) && c.calls[0].lowerBound == 0 && perturb(r.o, 0, 0, rel: 1e-3) && abs(r.o[0, 0]) > 0.05
            } != nil)
    }

    @Test func attentionFewWriteOutsideQueries() {
        let why = checkAfterMutation(AttentionFewFuzz()) { c, r in
            guard c.partial, c.head.seqQ > c.calls[0].count else { return false }
            let i = c.calls[0].lowerBound == 0 ? c.head.seqQ - 1 : 0
            r.o[i, 0] = 0
            return true
        }
        #expect(why?.contains("outside the queries") == true)
    }

    @Test func exp() {
        #expect(
            checkAfterMutation(ExpFuzz()) { c, r in
                // 4 ulp above the correctly rounded value (either neighbour of a near-midpoint
                // is accepted, so 3 from it is the least the 2-ulp bound must refuse), not
                // above the kernel's own result, which may be 1 ulp low.
                guard c.n > 0 else { return false }
                let exact = Float(Foundation.exp(Double(r.input[0])))
                guard exact.isNormal, exact < Float.greatestFiniteMagnitude / 2 else { return false }
                r.out.base[0] = exact.nextUp.nextUp.nextUp.nextUp
                return true
            } != nil)
    }

    @Test func softmax() {
        #expect(checkAfterMutation(SoftmaxFuzz()) { c, r in c.n < 50 && c.rows > 0 && perturb(r.out, 0, 0, rel: 1e-5) && r.out[0, 0] > 1e-3 } != nil)
    }

    @Test func softmaxMaskedTermNotZero() {
        #expect(
            checkAfterMutation(SoftmaxFuzz()) { c, r in
                guard c.rows > 0, c.profile == 5 else { return false }
                for j in 0..<c.n where c.x[0, j] == -.infinity && c.scale > 0 {
                    r.out[0, j] = 0x1p-149
                    return true
                }
                return false
            } != nil)
    }

    @Test func activation() {
        #expect(checkAfterMutation(ActivationFuzz()) { c, r in c.n > 0 && c.range == 4 && perturb(r.out, 0, 0, rel: 1e-5) } != nil)
    }

    @Test func norm() {
        #expect(
            checkAfterMutation(NormFuzz()) { c, r in c.rows > 0 && c.n > 8 && c.scale == 1 && c.shift == 0 && perturb(r.out, 0, 0, rel: 1e-4) } != nil
        )
    }

    @Test func attentionStep() {
        #expect(
            checkAfterMutation(AttentionStepFuzz()) { c, r in
                guard r.l.base[0] > 0 else { return false }
                r.l.base[0] *= 1 + 1e-4
                return true
            } != nil)
    }

    @Test func attention() {
        #expect(
            checkAfterMutation(AttentionFuzz()) { c, r in
                c.seqK > 2 && c.seqK < 100 && c.magnitude == 1 && !c.integers && c.causal == false && c.keyBias == nil
                    && plainValues(c) && abs(r.o[0, 0]) > 0.05 && perturb(r.o, 0, 0, rel: 1e-3)
            } != nil)
    }
}
