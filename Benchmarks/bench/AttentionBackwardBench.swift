import Attend
import Foundation

extension Bench {
    /// Training attention at batch 8, 8 heads, head size 64, seq 512 (`--seq` is not used: this
    /// is the training shape), read in place from one fused QKV projection `[8*512, 3*512]`:
    /// the forward that saves the log-sum-exp, and the backward (dQKV, one tensor), non-causal
    /// and causal, 1 thread and all threads. Flops count the visible (query, key) pairs only:
    /// forward 4, backward 10 (five products) x pairs x head size; "% of peak" is against the
    /// FMA peak measured at the start of this run. Each row also shows the process CPU time per
    /// call (on a shared machine the 1-thread CPU time is the work's own cost).
    func attentionBackward() {
        let (b, s, heads, dh) = (8, 512, 8, 64)
        let d = heads * dh
        let qkv = randomTensor([b * s, 3 * d], seed: 21)
        let dOut = randomTensor([b * s, d], seed: 22)
        if !options.json {
            out("\nAttention backward (training), batch \(b), \(heads) heads, head size \(dh), seq \(s), fused QKV, \(variantName)")
            out("name                                 threads        ms    GFLOP/s  % of peak")
        }
        let threadCounts = options.threads > 1 ? [1, options.threads] : [1]
        for causal in [false, true] {
            let t = AttentionTrainingProblem(
                q: AttentionOperand(qkv, column: 0), k: AttentionOperand(qkv, column: d), v: AttentionOperand(qkv, column: 2 * d),
                batch: b, heads: heads, kvHeads: heads, headDim: dh, seqQ: s, seqK: s, mask: AttentionMask(causal: causal))
            let pairs = Double(b * heads) * (causal ? Double(s) * Double(s + 1) / 2 : Double(s) * Double(s))
            for threads in threadCounts {
                let compute = benchCompute(threads: threads)
                let peak = threads == 1 ? peak1 : peakN
                var saved: (out: Tensor, lse: Tensor)?
                for pass in ["forward+lse", "backward"] {
                    let name = "attention \(pass)\(causal ? " causal" : "") seq \(s)"
                    progress("\(name), \(threads) thread(s)...")
                    let times: (wall: [Double], cpu: [Double])
                    if pass == "forward+lse" {
                        times = measureWithCPU(minReps: options.quick ? 1 : 3, minSeconds: options.quick ? 0 : 1.0) {
                            saved = attentionForwardTraining(t, compute: compute)
                        }
                    } else {
                        let (o, l) = saved!
                        times = measureWithCPU(minReps: options.quick ? 1 : 3, minSeconds: options.quick ? 0 : 1.0) {
                            _ = Attend.attentionBackward(t, out: o, lse: l, dOut: dOut, compute: compute)
                        }
                    }
                    let sec = median(times.wall), cpu = median(times.cpu)
                    let flops = (pass == "backward" ? 10.0 : 4.0) * pairs * Double(dh)
                    let gf = flops / sec * 1e-9
                    emit(
                        [
                            ("name", name), ("variant", variantName), ("threads", threads), ("batch", b), ("seq", s), ("heads", heads),
                            ("head_dim", dh), ("causal", causal), ("ms", sec * 1e3), ("gflops", gf), ("peak_gflops", peak),
                            ("cpu_ms", cpu * 1e3), ("reps", times.wall.count),
                        ],
                        row: pad(name, 36)
                            + String(
                                format: " %7d %9.1f %10.1f %9.1f%%   (cpu %.1f ms)", threads, sec * 1e3, gf, peak > 0 ? gf / peak * 100 : 0, cpu * 1e3
                            ))
                }
            }
        }
    }
}
