internal import CKernels

// Products with a weight packed once, at load time, into the GEMM micro-kernel's B layout.
//
// The general driver (ck_f32_gemm) packs B on every call. For a model's weights, used as Bᵀ
// with B stored [out, in], that packing is a strided scatter of the whole weight: for a short
// input (a dozen tokens) it costs more than the product itself. Packing each weight once per
// kernel variant removes it; a call then packs only its activations (A) and streams the
// packed weight through the same micro-kernel, with the same loop order as the driver
// (k block, then B micro-panels, then A micro-panels).
//
// Packed layout, for blocking (mr, nr, kc) of the variant: k is cut into blocks of kc rows;
// block `pc` (kcb rows) holds `panels = ceil(n / nr)` micro-panels, each kcb rows of nr floats
// (`panel[p * nr + j] = W[j0 + j][pc + p]`, zero past n); blocks follow each other, so block
// `pc` starts at `pc * panels * nr`.

/// A `[n, k]` weight (PyTorch `Linear` layout) packed for one native kernel variant.
struct PackedWeight: @unchecked Sendable {
    let variant: KernelVariant
    let n: Int
    let k: Int
    let nr: Int
    let kc: Int
    let panels: Int
    /// 64-byte aligned, `panels * nr * k` floats (at least 1).
    let storage: TensorStorage

    /// Packs `weight` `[n, k]` for `variant`, parallel over micro-panels. Cost: one read and
    /// one write of the weight.
    init(_ weight: Tensor, variant: KernelVariant, threads: Int) {
        precondition(weight.rank == 2, "PackedWeight: weight \(weight.shape) must be [out, in]")
        let g = variant.kernels.pointee.gemm
        let (n, k, nr) = (weight.shape[0], weight.shape[1], Int(g.nr))
        let kc = Int(g.kc)
        let panels = (n + nr - 1) / nr
        let storage = TensorStorage(uninitializedCount: max(1, panels * nr * k))
        weight.withUnsafeBufferPointer { w in
            let dst = storage.base
            parallelFor(panels, threads: threads) { j in
                var pc = 0
                while pc < k {
                    let kcb = min(kc, k - pc)
                    let panel = dst + pc * panels * nr + j * kcb * nr
                    for jj in 0..<nr {
                        let col = j * nr + jj
                        if col < n {
                            let src = w.baseAddress! + col * k + pc
                            for p in 0..<kcb { panel[p * nr + jj] = src[p] }
                        } else {
                            for p in 0..<kcb { panel[p * nr + jj] = 0 }
                        }
                    }
                    pc += kcb
                }
            }
        }
        (self.variant, self.n, self.k, self.nr, self.kc, self.panels, self.storage) = (variant, n, k, nr, kc, panels, storage)
    }
}

/// `C = A · Wᵀ` (or `C += A · Wᵀ` when `accumulate`) with A `[m, k]` (row stride `lda`), the
/// packed weight W `[n, k]`, and C `[m, n]` (row stride `ldc`). Work is split over blocks of
/// rows (mc) and groups of weight micro-panels, so a short A still uses every thread; each C
/// element is summed by one thread in the same order whatever the split. When several items
/// share a row block, A is packed once, up front; otherwise each item packs its own rows.
/// Epilogue, applied by each item to its block of C while it is in cache: `C += bias` (a
/// vector of n), then `activation` on every element.
/// Cost: `2 m n k` flops plus one packing of A.
func packedGEMM(a: UnsafePointer<Float>, lda: Int, m: Int, weight w: PackedWeight,
                c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool,
                bias: UnsafePointer<Float>? = nil, activation: Activation? = nil, threads: Int) {
    let kern = w.variant.kernels
    let g = kern.pointee.gemm
    let mr = Int(g.mr), nr = w.nr, mc = Int(g.mc)
    let (n, k) = (w.n, w.k)
    if m == 0 || n == 0 { return }
    precondition(lda >= k && ldc >= n, "packedGEMM: lda \(lda) < k \(k) or ldc \(ldc) < n \(n)")
    if k == 0 {
        if !accumulate { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
        return
    }
    let ukr = kern.pointee.gemm_ukr!
    let mBlocks = (m + mc - 1) / mc
    let flops = 2 * m * n * k
    // The packed path has no B packing to amortize, so smaller products are worth splitting.
    let useThreads = max(1, min(threads, flops / (1 << 20)))
    // Enough items for every thread (a few per thread for balance), never splitting a panel.
    let nChunks = useThreads == 1 ? 1 : max(1, min(w.panels, (4 * useThreads + mBlocks - 1) / mBlocks))
    let panelsPerChunk = (w.panels + nChunks - 1) / nChunks
    let base = w.storage.base
    let mPadded = (m + mr - 1) / mr * mr

    /// Packs A rows i0 ..< i0 + rows (rows <= mc), columns pc ..< pc + kcb, into mr-row
    /// micro-panels at dst (panel ir at dst + ir * kcb; rows past m are zero).
    func packA(_ i0: Int, _ rows: Int, _ pc: Int, _ kcb: Int, _ dst: UnsafeMutablePointer<Float>) {
        var ir = 0
        while ir < rows {
            let r = min(mr, rows - ir)
            let panel = dst + ir * kcb
            let src = a + (i0 + ir) * lda + pc
            if r == 6 && mr == 6 {
                // The AVX2 tile, unrolled: six row streams in, one contiguous stream out.
                let (s0, s1, s2, s3, s4, s5) = (src, src + lda, src + 2 * lda, src + 3 * lda, src + 4 * lda, src + 5 * lda)
                for p in 0..<kcb {
                    let d = panel + p * 6
                    d[0] = s0[p]; d[1] = s1[p]; d[2] = s2[p]; d[3] = s3[p]; d[4] = s4[p]; d[5] = s5[p]
                }
            } else {
                for p in 0..<kcb {
                    let d = panel + p * mr
                    for i in 0..<r { d[i] = src[i * lda + p] }
                    for i in r..<mr { d[i] = 0 }
                }
            }
            ir += mr
        }
    }

    /// The micro-tiles of rows i0 ..< i0 + rows against weight panels j0 ..< j1 of k block pc.
    func tiles(_ i0: Int, _ rows: Int, _ pc: Int, _ kcb: Int, _ pa: UnsafePointer<Float>, _ j0: Int, _ j1: Int,
               _ tile: UnsafeMutablePointer<Float>) {
        let beta: Float = pc == 0 && !accumulate ? 0 : 1
        let block = base + pc * w.panels * nr
        for j in j0..<j1 {
            let bp = UnsafePointer(block + j * kcb * nr)
            let cols = min(nr, n - j * nr)
            var ir = 0
            while ir < rows {
                let r = min(mr, rows - ir)
                let cij = c + (i0 + ir) * ldc + j * nr
                let ap = pa + ir * kcb
                if r == mr && cols == nr {
                    ukr(kcb, ap, bp, cij, ldc, 1, beta)
                } else {
                    // Edge tile: the full tile into the buffer, then merge its valid part.
                    ukr(kcb, ap, bp, tile, nr, 1, 0)
                    for i in 0..<r {
                        for jj in 0..<cols {
                            let t = tile[i * nr + jj]
                            cij[i * ldc + jj] = beta == 0 ? t : t + cij[i * ldc + jj]
                        }
                    }
                }
                ir += mr
            }
        }
    }

    let act = kern.pointee.activation!
    /// Bias and activation on rows i0 ..< i0 + rows, columns of panels j0 ..< j1.
    func epilogue(_ i0: Int, _ rows: Int, _ j0: Int, _ j1: Int) {
        if bias == nil && activation == nil { return }
        let c0 = j0 * nr, c1 = min(n, j1 * nr)
        for i in i0..<(i0 + rows) {
            let row = c + i * ldc
            if let bias {
                for j in c0..<c1 { row[j] += bias[j] }
            }
            if let activation { act(activation.cKind, c1 - c0, row + c0, row + c0) }
        }
    }

    withExtendedLifetime(w.storage) {
        if nChunks > 1 {
            // Few rows: pack all of A once (k block pc at offset pc * mPadded), then split the
            // weight panels (and row blocks) over the threads.
            let shared = UnsafeMutableRawPointer.allocate(byteCount: mPadded * k * 4, alignment: 64)
                .bindMemory(to: Float.self, capacity: mPadded * k)
            defer { shared.deallocate() }
            var pc = 0
            while pc < k {
                let kcb = min(w.kc, k - pc)
                packA(0, m, pc, kcb, shared + pc * mPadded)
                pc += kcb
            }
            parallelFor(mBlocks * nChunks, threads: useThreads) { item in
                let mb = item / nChunks, chunk = item % nChunks
                let i0 = mb * mc, rows = min(mc, m - i0)
                let j0 = chunk * panelsPerChunk, j1 = min(w.panels, j0 + panelsPerChunk)
                if j0 >= j1 { return }
                let tile = UnsafeMutableRawPointer.allocate(byteCount: mr * nr * 4, alignment: 64).bindMemory(to: Float.self, capacity: mr * nr)
                defer { tile.deallocate() }
                var pc = 0
                while pc < k {
                    let kcb = min(w.kc, k - pc)
                    tiles(i0, rows, pc, kcb, shared + pc * mPadded + i0 * kcb, j0, j1, tile)
                    pc += kcb
                }
                epilogue(i0, rows, j0, j1)
            }
            return
        }
        // Many rows: each item packs its own row block per k block (kept in L2) and runs all
        // weight panels against it.
        let packedA = ((min(m, mc) + mr - 1) / mr) * mr * min(k, w.kc)
        parallelFor(mBlocks, threads: useThreads) { mb in
            let i0 = mb * mc, rows = min(mc, m - i0)
            let raw = UnsafeMutableRawPointer.allocate(byteCount: (packedA + mr * nr) * 4, alignment: 64)
            defer { raw.deallocate() }
            let pa = raw.bindMemory(to: Float.self, capacity: packedA + mr * nr)
            var pc = 0
            while pc < k {
                let kcb = min(w.kc, k - pc)
                packA(i0, rows, pc, kcb, pa)
                tiles(i0, rows, pc, kcb, pa, 0, w.panels, pa + packedA)
                pc += kcb
            }
            epilogue(i0, rows, 0, w.panels)
        }
    }
}
