// Mutation tests of the training backward fuzz kernels (cross-entropy, norm-backward,
// act-backward, embedding-backward): a damaged result must be reported.
import Testing

@testable import KernelFuzz

@Suite("Training fuzz checks catch wrong results")
struct TrainingMutationTests {
    @Test func crossEntropyGradient() {
        #expect(
            checkAfterMutation(CrossEntropyFuzz()) { c, r in
                guard let g = r.grad, c.rows > 0, c.targets[0] != CrossEntropyFuzz.ignoreIndex, c.gradScale != 0, c.amplitude <= 5, c.vocab < 64
                else {
                    return false
                }
                for j in 0..<c.vocab where abs(g[0, j]) > 1e-3 * abs(c.gradScale) { return perturb(g, 0, j, rel: 1e-4) }
                return false
            } != nil)
    }

    @Test func crossEntropyLoss() {
        #expect(
            checkAfterMutation(CrossEntropyFuzz()) { c, r in
                c.rows > 0 && c.targets[0] != CrossEntropyFuzz.ignoreIndex && c.amplitude <= 20 && r.loss.base[0] > 0.1
                    && perturb(r.loss, 0, 0, rel: 1e-4)
            } != nil)
    }

    @Test func crossEntropyIgnoredRowGradient() {
        let why = checkAfterMutation(CrossEntropyFuzz()) { c, r in
            guard let g = r.grad, let row = c.targets.firstIndex(of: CrossEntropyFuzz.ignoreIndex) else { return false }
            g[row, c.vocab - 1] = 0x1p-149
            return true
        }
        #expect(why?.contains("ignored") == true)
    }

    @Test func normBackwardDx() {
        #expect(
            checkAfterMutation(NormBackwardFuzz()) { c, r in
                c.rows > 0 && c.n > 8 && c.scale == 1 && c.shift == 0 && !c.accumulate && abs(r.dx[0, 0]) > 1e-3 && perturb(r.dx, 0, 0, rel: 1e-4)
            } != nil)
    }

    @Test func normBackwardDGamma() {
        #expect(
            checkAfterMutation(NormBackwardFuzz()) { c, r in
                c.rows > 0 && c.wantDGamma && c.scale == 1 && c.shift == 0 && abs(r.dgamma.base[0]) > 1e-2 && perturb(r.dgamma, 0, 0, rel: 1e-4)
            } != nil)
    }

    @Test func normForwardNotInferenceBits() {
        let why = checkAfterMutation(NormBackwardFuzz()) { c, r in
            guard c.rows > 0, r.y[0, 0].isNormal else { return false }
            r.y[0, 0] = r.y[0, 0].nextUp  // 1 ulp: close, but not the inference kernel's bits
            return true
        }
        #expect(why?.contains("same bits") == true)
    }

    @Test func activationBackward() {
        #expect(
            checkAfterMutation(ActivationBackwardFuzz()) { c, r in
                guard c.n > 0, c.kind != 0, !c.gated, c.x.base[0] > 0.5, c.x.base[0] < 4, abs(c.dy.base[0]) > 1e-2 else { return false }
                return perturb(r.outA, 0, 0, rel: 1e-5)
            } != nil)
    }

    @Test func gatedBackwardDb() {
        #expect(
            checkAfterMutation(ActivationBackwardFuzz()) { c, r in
                guard c.n > 0, c.gated, let ob = r.outB, c.x.base[0] > 0.5, c.x.base[0] < 4, abs(c.dy.base[0]) > 1e-2 else { return false }
                return perturb(ob, 0, 0, rel: 1e-5)
            } != nil)
    }

    @Test func reluBackwardBitwise() {
        #expect(
            checkAfterMutation(ActivationBackwardFuzz()) { c, r in
                guard c.n > 0, c.kind == 0, !c.gated, r.outA.base[0].isNormal else { return false }
                r.outA.base[0] = r.outA.base[0].nextUp
                return true
            } != nil)
    }

    @Test func embeddingBackward() {
        #expect(
            checkAfterMutation(EmbeddingBackwardFuzz()) { c, r in
                guard c.dim > 0, r.whole[0, 0].isNormal else { return false }
                r.whole[0, 0] = r.whole[0, 0].nextUp
                return true
            } != nil)
    }

    @Test func embeddingBackwardSplit() {
        let why = checkAfterMutation(EmbeddingBackwardFuzz()) { c, r in
            guard c.dim > 0, r.split[0, c.dim - 1].isNormal else { return false }
            r.split[0, c.dim - 1] = r.split[0, c.dim - 1].nextDown
            return true
        }
        #expect(why?.contains("split") == true)
    }
}
