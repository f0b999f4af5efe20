internal import CKernels
import Foundation

/// One operand of a matrix product as it lies in memory: a row-major buffer, the logical
/// (post-transpose) size, the row stride and whether it is read transposed.
///
/// `op(X)` is `rows x cols`. Stored untransposed it occupies `rows` rows of `ld` scalars
/// (`ld >= cols`); stored transposed (`transposed == true`) it occupies `cols` rows of `ld`
/// scalars (`ld >= rows`), and `op(X)[i][j] = X[j*ld + i]`.
struct MatrixOperand {
    var rows: Int
    var cols: Int
    var ld: Int
    var transposed: Bool

    /// Scalars the operand reaches into: the last row's start plus its used width.
    var requiredCount: Int {
        let (storedRows, storedCols) = transposed ? (cols, rows) : (rows, cols)
        if storedRows == 0 || storedCols == 0 { return 0 }
        return (storedRows - 1) * ld + storedCols
    }

    func validate(_ what: String, count: Int) {
        let storedCols = transposed ? rows : cols
        precondition(rows >= 0 && cols >= 0, "gemm: \(what) has negative size \(rows) x \(cols)")
        precondition(
            ld >= max(storedCols, 1),
            "gemm: \(what) (\(rows) x \(cols)\(transposed ? ", transposed" : "")) has row stride \(ld) < \(max(storedCols, 1))")
        precondition(
            requiredCount <= count,
            "gemm: \(what) (\(rows) x \(cols), ld \(ld)\(transposed ? ", transposed" : "")) needs \(requiredCount) scalars, buffer has \(count)")
    }
}

/// `C = alpha * op(A) * op(B) + beta * C` on buffers, validated, dispatched to the backend
/// and split over `compute.threads`. `beta == 0` means C is written without being read.
///
/// This is the audited boundary between Swift and the C GEMM: every size, stride and buffer
/// length is checked here (a violation is a precondition failure naming the shapes), so the C
/// side can trust its arguments. Cost: 2*m*n*k flops.
func gemm(
    alpha: Float, a: UnsafeBufferPointer<Float>, _ opA: MatrixOperand,
    b: UnsafeBufferPointer<Float>, _ opB: MatrixOperand,
    beta: Float, c: UnsafeMutableBufferPointer<Float>, ldc: Int,
    compute: Compute
) {
    let m = opA.rows, k = opA.cols, n = opB.cols
    precondition(
        opB.rows == k,
        "gemm: inner dimensions differ: op(A) is \(opA.rows) x \(opA.cols), op(B) is \(opB.rows) x \(opB.cols)")
    opA.validate("A", count: a.count)
    opB.validate("B", count: b.count)
    MatrixOperand(rows: m, cols: n, ld: ldc, transposed: false).validate("C", count: c.count)
    if m == 0 || n == 0 { return }
    // An empty operand (k == 0) has no base address; the kernels never read it then.
    let pa = a.baseAddress ?? emptyOperand, pb = b.baseAddress ?? emptyOperand
    let pc = c.baseAddress!
    switch compute.backend {
    case .swiftSIMD:
        SwiftSIMDKernels.gemm(
            m: m, n: n, k: k, alpha: alpha, a: pa, lda: opA.ld, transA: opA.transposed,
            b: pb, ldb: opB.ld, transB: opB.transposed, beta: beta, c: pc, ldc: ldc, threads: compute.threads)
    case .native(let variant):
        nativeGEMM(
            kernels: variant.kernels, m: m, n: n, k: k, alpha: alpha, a: pa, lda: opA.ld,
            transA: opA.transposed, b: pb, ldb: opB.ld, transB: opB.transposed, beta: beta,
            c: pc, ldc: ldc, threads: compute.threads)
    }
}

/// Stands in for the address of an empty operand, which no kernel reads.
nonisolated(unsafe) private let emptyOperand = UnsafePointer(UnsafeMutablePointer<Float>.allocate(capacity: 1))

/// Products with at most this many rows of A against a transposed B run, with `kernels`, as
/// matrix-vector products (`ck_f32_gemv_rows`) that share one pass over the weight from
/// memory; more rows run the packed GEMM (a ``Linear``'s float32 weight packed once, ahead).
/// The variant's GEMV group: 4 where one pass serves 4 rows (AVX-512, NEON), else 2.
/// Measured on Zen 5 (`bench --only seq2seq`, products of a few rows against t5-small's
/// weights, 1 thread): at 4 rows the GEMV took 55-68 us against the packed GEMM's 115-126 on
/// the [2048, 512] and [512, 2048] weights, 1.96 ms against 2.5-2.6 on the [32128, 512] head,
/// and beam-4 decoding 9.1 ms per step against 10.9; at 8 rows it was no faster (2x slower on
/// rows of 2048 inputs). AVX2 reads 4 rows in two passes: mixed there (0.8-1.4x), so 2.
/// NEON's group is 4 as well; it takes 4 rows unmeasured (no ARM machine here).
/// (Zen 4 had the multi-row GEMV win at 4 rows on rows of 2048 inputs and beam-4 decoding no
/// faster.) `ATTEND_GEMV_MAX_ROWS` (0 to 8, read once) overrides it and
/// ``halfGEMVMaxRows``, so the benchmark can compare both paths.
func gemvMaxRows(_ kernels: UnsafePointer<ck_kernels>) -> Int {
    gemvRowsOverride ?? (kernels.pointee.gemv_group >= 4 ? 4 : 2)
}

/// The same switch for a 16-bit weight (``halfWeightGEMM``): up to this many rows run
/// `ck_w16_gemv` (one pass over the 16-bit weight, widened in registers once per group of
/// rows), more the 16-bit GEMM, which widens and packs the weight on every call. Eight is
/// measured: BF16 beam-4 decoding of t5-small's shape ran 3-7x faster per step than through
/// the 16-bit GEMM, and 4 or 8 rows against its weights 2-5x.
let halfGEMVMaxRows = gemvRowsOverride ?? 8

/// `ATTEND_GEMV_MAX_ROWS` when it is set to a whole number in 0...8 (else nil).
let gemvRowsOverride: Int? = {
    guard let s = ProcessInfo.processInfo.environment["ATTEND_GEMV_MAX_ROWS"], let v = Int(s), (0...8).contains(v) else { return nil }
    return v
}()

/// Work below this many flops per thread is not worth waking another thread for.
let minimumFlopsPerThread = 1 << 22

/// The same for a matrix-vector product, which streams its weight from memory at a few GB/s:
/// 2^17 flops read 256 KB, tens of microseconds against a few for a warm wake-up.
let minimumGEMVFlopsPerThread = 1 << 17

/// Runs `body(j0, count)` on the column blocks of a GEMV-shaped product (a few rows against
/// an `[n, k]` weight, `flops` in all) in parallel: the `n` output features split evenly over
/// as many threads as pay (each share at least 64 features and
/// ``minimumGEMVFlopsPerThread``). Memory-bound: each thread streams its own rows of the
/// weight, so splitting pays as soon as a share is worth more than a wake-up. Each output is
/// one dot product computed by one thread, so the split changes no sum.
func parallelGEMVColumns(n: Int, flops: Int, threads: Int, _ body: (_ j0: Int, _ count: Int) -> Void) {
    let parts = max(1, min(threads, n / 64, flops / minimumGEMVFlopsPerThread))
    let chunk = (n + parts - 1) / parts
    parallelFor(parts, threads: parts) { part in
        let j0 = part * chunk, j1 = min(n, j0 + chunk)
        guard j0 < j1 else { return }
        body(j0, j1 - j0)
    }
}

/// Runs `body(byRows, lo, hi)` on the blocks of a GEMM's output `[m, n]` in parallel: split
/// along the longer side (`byRows`: rows `lo..<hi`, in whole MR-row tiles; else columns
/// `lo..<hi`, in whole NR-column panels, of `kernels`' micro-kernel) into as many blocks as
/// threads pay for (each at least ``minimumFlopsPerThread`` of the `flops`). Each output is
/// computed by one thread in the one-thread order, so the split changes no sum.
func parallelGEMMBlocks(
    kernels: UnsafePointer<ck_kernels>, m: Int, n: Int, flops: Int, threads: Int, _ body: (_ byRows: Bool, _ lo: Int, _ hi: Int) -> Void
) {
    let byRows = m >= n
    let unit = Int(byRows ? kernels.pointee.gemm.mr : kernels.pointee.gemm.nr)
    let extent = byRows ? m : n
    let units = (extent + unit - 1) / unit
    let parts = max(1, min(threads, units, flops / minimumFlopsPerThread))
    let unitsPerPart = (units + parts - 1) / parts
    parallelFor(parts, threads: parts) { part in
        let lo = part * unitsPerPart * unit
        let hi = min(extent, lo + unitsPerPart * unit)
        if lo < hi { body(byRows, lo, hi) }
    }
}

/// Splits C into `parts` blocks along its longer side (rows in multiples of MR, columns in
/// multiples of NR) and runs the C driver on each block in parallel. Each block is computed
/// by one thread in the same order as a 1-thread run, so results do not depend on the
/// thread count (only the split of C changes, never the order of a sum).
func nativeGEMM(
    kernels: UnsafePointer<ck_kernels>, m: Int, n: Int, k: Int, alpha: Float,
    a: UnsafePointer<Float>, lda: Int, transA: Bool,
    b: UnsafePointer<Float>, ldb: Int, transB: Bool,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int
) {
    let flops = 2 * m * n * max(k, 1)
    if m <= gemvMaxRows(kernels) && !transA && transB && k > 0 && alpha != 0 {
        // A few rows against a [n, k] weight (decoding: one token, beams, a small batch): a
        // direct pass over the weight beats packing it. The kernel reads each weight vector
        // once for a group of rows, and gives every row its one-row bits.
        let gemvRows = kernels.pointee.gemv_rows!
        parallelGEMVColumns(n: n, flops: flops, threads: threads) { j0, count in
            gemvRows(m, count, k, alpha, a, lda, b + j0 * ldb, ldb, beta, c + j0, ldc)
        }
        return
    }
    if alpha == 1 && threads > 1 && flops / minimumFlopsPerThread >= 2 && k > 0 {
        sharedPackedGEMM(
            kernels: kernels, m: m, n: n, k: k, a: a, lda: lda, transA: transA, b: b, ldb: ldb, transB: transB, beta: beta, c: c,
            ldc: ldc, threads: threads)
        return
    }
    parallelGEMMBlocks(kernels: kernels, m: m, n: n, flops: flops, threads: threads) { byRows, lo, hi in
        let (mm, nn) = byRows ? (hi - lo, n) : (m, hi - lo)
        let pa = byRows ? (transA ? a + lo : a + lo * lda) : a
        let pb = byRows ? b : (transB ? b + lo * ldb : b + lo)
        let pc = byRows ? c + lo * ldc : c + lo
        let wsCount = ck_f32_gemm_workspace(kernels, mm, nn, k)
        let ws = UnsafeMutablePointer<Float>.allocate(capacity: wsCount)
        defer { ws.deallocate() }
        ck_f32_gemm(
            kernels, transA ? 1 : 0, transB ? 1 : 0, mm, nn, k, alpha, pa, lda, pb, ldb, beta, pc, ldc, ws)
    }
}

/// The multi-threaded product of ``nativeGEMM`` (alpha 1): op(B) is packed once into the
/// micro-kernel's panel layout (`ck_f32_pack_b`), split by panels over the threads, instead of
/// once by every thread; then items of whole mr-row tiles (a few per thread, claimed
/// dynamically, so a thread slowed by other work on the machine does not hold the others up)
/// run `ck_f32_gemm_packed` over every column, each packing its own rows of op(A). The sums
/// run in the order of `ck_f32_gemm` (kc blocks in order, the same micro-kernel arithmetic,
/// edge tiles merged the same way), so the result is bitwise a one-thread product's.
/// Memory: the packed B (`ck_f32_packed_weight_size` floats, kept between calls up to
/// ``SharedPackingBuffer/keptFloats``) and one A block per thread.
func sharedPackedGEMM(
    kernels: UnsafePointer<ck_kernels>, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, transA: Bool,
    b: UnsafePointer<Float>, ldb: Int, transB: Bool, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int
) {
    let g = kernels.pointee.gemm
    let mr = Int(g.mr), nr = Int(g.nr)
    let panels = (n + nr - 1) / nr
    let size = ck_f32_packed_weight_size(kernels, n, k)
    SharedPackingBuffer.shared.withBuffer(floats: size) { packed in
        let packParts = min(panels, 4 * threads)
        let panelsPerPart = (panels + packParts - 1) / packParts
        parallelFor(packParts, threads: threads) { part in
            ck_f32_pack_b(kernels, transB ? 1 : 0, n, k, b, ldb, part * panelsPerPart, min(panels, (part + 1) * panelsPerPart), packed)
        }
        var args = ck_gemm_packed(
            m: m, n: n, k: k, a: a, lda: lda, packed_a: nil, packed_w: UnsafePointer(packed), weight_n: n, weight_col0: 0, c: c, ldc: ldc,
            beta: beta, epilogue: ck_gemm_epilogue(bias: nil, activation: Int32(CK_ACT_NONE), residual: nil, ldr: 0),
            trans_a: transA ? 1 : 0)
        // Items of equal whole tiles (sizes differ by at most one tile), a multiple of the
        // threads where the tiles allow: 74 tiles (m = 1024) as 8 items of 9 or 10 tiles run
        // 37 + 37 on 2 threads; items of ceil(74 / 8) = 10 tiles, the last of 4, ended 40 + 34
        // (the claims alternate), 8% of the product on one thread alone.
        let items = PackedGEMMRowBlocks(m: m, mr: mr, count: 4 * threads)
        let wsCount = ck_f32_gemm_packed_workspace(kernels, items.maxRows, k)
        withUnsafePointer(to: &args) { ap in
            parallelFor(items.count, threads: threads) { item in
                let (i0, i1) = items.rows(item)
                let ws = UnsafeMutablePointer<Float>.allocate(capacity: wsCount)
                defer { ws.deallocate() }
                ck_f32_gemm_packed(kernels, ap, i0, i1, 0, panels, ws)
            }
        }
    }
}

/// Packing scratch kept between calls: the packed right operand of
/// ``sharedPackedGEMM(kernels:m:n:k:a:lda:transA:b:ldb:transB:beta:c:ldc:threads:)`` and the
/// packed keys and values of `fusedAttention` (when not prepacked), so that a training step's
/// many products, or repeated attention calls outside a model, do not map and fault in fresh
/// pages each time. One caller at a time uses it; another one meanwhile (a nested or
/// concurrent caller) gets a buffer of its own. Memory: at most ``keptFloats`` floats, held
/// for the life of the process once the largest request below that size was made.
final class SharedPackingBuffer: @unchecked Sendable {
    static let shared = SharedPackingBuffer()
    /// The largest buffer kept between calls (64 MiB); larger ones are allocated per call.
    static let keptFloats = 1 << 24

    private let lock = NSLock()
    private var buffer: UnsafeMutablePointer<Float>?
    private var capacity = 0

    private static func allocate(_ floats: Int) -> UnsafeMutablePointer<Float> {
        OwnedMemory.allocate(bytes: max(floats, 1) * 4).bindMemory(to: Float.self, capacity: max(floats, 1))
    }

    private static func deallocate(_ p: UnsafeMutablePointer<Float>, floats: Int) {
        OwnedMemory.deallocate(UnsafeMutableRawPointer(p), bytes: max(floats, 1) * 4)
    }

    /// Calls `body` with at least `floats` floats of 64-byte aligned scratch.
    func withBuffer(floats: Int, _ body: (UnsafeMutablePointer<Float>) -> Void) {
        guard floats <= Self.keptFloats, lock.try() else {
            let p = Self.allocate(floats)
            defer { Self.deallocate(p, floats: floats) }
            body(p)
            return
        }
        defer { lock.unlock() }
        if capacity < floats {
            buffer.map { Self.deallocate($0, floats: capacity) }
            buffer = Self.allocate(floats)
            capacity = floats
        }
        body(buffer!)
    }
}
