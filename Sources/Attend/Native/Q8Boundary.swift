internal import CKernels

// Products with an int8 weight (`ck_q8_gemv`, `ck_q8_quantize_rows`, `ck_q8_gemm`): Swift
// validates, chooses the path and splits the work over threads; the C contracts are in
// attend_kernels.h ("int8 weights").

/// Rows of activations a product with an int8 weight runs as `ck_q8_gemv` (one pass over the
/// weight per two rows, split over output features); above it, `ck_q8_gemm` over tiles of
/// rows: decoding's one or two rows. (At 4 rows the two paths measured alike on Zen 5, 35-45
/// us against t5-small's [2048, 512] and [512, 2048] weights and ~0.9 ms against its head:
/// the integer GEMM reads the weight once too.) `ATTEND_GEMV_MAX_ROWS` overrides it.
let q8GEMVMaxRows = gemvRowsOverride ?? 2

/// `out = x W[outputs]ᵀ + bias[outputs]` for `m` rows of `x` (row stride `k`) with an int8
/// weight on a native kernel variant; `out` is `[m, outputs.count]`. The rows are quantized
/// once per call, per row and 32 inputs to uint8 with a scale and an offset
/// (`ck_q8_quantize_rows`; in parallel above 64 rows), then: up to ``q8GEMVMaxRows`` rows,
/// `ck_q8_gemv` split over output features (each thread streams its rows of the weight once);
/// more rows, `ck_q8_gemm` over blocks of 64 rows x about 32 KiB of weight rows, spread over
/// the threads. Every output is computed by one call whatever the split, so results do not
/// depend on the thread count. A blocked weight (`QuantizedWeight.blocked`) gets its rows
/// rearranged into the blocked layout after quantization (one more pass over `m * k` bytes).
/// Cost: `2 m n k` multiply-adds; `m * ceil(k/64)*64` bytes of quantized rows (twice that for
/// a blocked weight) and `8 m ceil(k/32)` of scales and offsets.
func q8Product(
    x: UnsafePointer<Float>, m: Int, weight w: QuantizedWeight, outputs: Range<Int>, bias: UnsafePointer<Float>?,
    out: UnsafeMutablePointer<Float>, variant: KernelVariant, threads: Int
) {
    let k = w.k, n = outputs.count
    precondition(
        outputs.lowerBound >= 0 && outputs.upperBound <= w.n, "q8Product: outputs \(outputs) out of range for weight [\(w.n), \(k)]")
    if m == 0 || n == 0 { return }
    let kern = variant.kernels.pointee
    let flops = 2 * m * n * max(k, 1)
    let ldaq = ck_q8_row_stride(k), lds = max(1, (k + 31) / 32)
    let aq = UnsafeMutableRawPointer.allocate(byteCount: max(1, m * ldaq), alignment: 64).bindMemory(to: UInt8.self, capacity: max(1, m * ldaq))
    let sa = UnsafeMutablePointer<Float>.allocate(capacity: 2 * m * lds)
    defer {
        aq.deallocate()
        sa.deallocate()
    }
    let offsets = sa + m * lds
    // A blocked weight takes its rows blocked too: quantized row-major, then rearranged.
    let ldb = w.blocked ? ck_q8_blocked_stride(k) : 0
    // 64-byte aligned, as aq: the kernels load each row 64 bytes at a time, and a load split
    // over two cache lines halved the blocked GEMV's speed on Zen 5 (kernel harness, 2048 x 512
    // group32: 21 us aligned, 45 us at a 16-byte offset, which a UInt8 allocation gets).
    let ab: UnsafeMutablePointer<UInt8>? =
        w.blocked ? UnsafeMutableRawPointer.allocate(byteCount: max(1, m * ldb), alignment: 64).bindMemory(to: UInt8.self, capacity: max(1, m * ldb)) : nil
    defer { ab?.deallocate() }
    let rowBlock = 64, qParts = max(1, min(threads, (m + rowBlock - 1) / rowBlock))
    let qChunk = (m + qParts - 1) / qParts
    parallelFor(qParts, threads: qParts) { part in
        let i0 = part * qChunk, i1 = min(m, i0 + qChunk)
        guard i0 < i1 else { return }
        ck_q8_quantize_rows(i1 - i0, k, x + i0 * k, k, aq + i0 * ldaq, ldaq, sa + i0 * lds, offsets + i0 * lds, lds)
        if let ab { ck_q8_to_blocked(i1 - i0, k, aq + i0 * ldaq, ldaq, ab + i0 * ldb, ldb) }
    }
    let (qRows, ldq) = ab.map { (UnsafePointer($0), ldb) } ?? (UnsafePointer(aq), ldaq)
    let rows = ck_q8_rows(q: qRows, ldq: ldq, scale: sa, offset: offsets, lds: lds)
    withExtendedLifetime(w) {
        if m <= q8GEMVMaxRows {
            let gemv = kern.q8_gemv!
            let parts = max(1, min(threads, n / 64, flops / minimumGEMVFlopsPerThread))
            let chunk = (n + parts - 1) / parts
            parallelFor(parts, threads: parts) { part in
                let j0 = part * chunk, j1 = min(n, j0 + chunk)
                guard j0 < j1 else { return }
                var view = w.kernelView(rows: (outputs.lowerBound + j0)..<(outputs.lowerBound + j1))
                var a = rows
                gemv(m, &a, &view, bias.map { $0 + j0 }, out + j0, n)
            }
            return
        }
        let gemm = kern.q8_gemm!
        let colBlock = max(4, (32 * 1024 / max(k, 1)) / 4 * 4)
        let mBlocks = (m + rowBlock - 1) / rowBlock, nBlocks = (n + colBlock - 1) / colBlock
        let useThreads = max(1, min(threads, flops / (1 << 20)))
        parallelFor(mBlocks * nBlocks, threads: useThreads) { item in
            let (mb, nb) = (item / nBlocks, item % nBlocks)
            let i0 = mb * rowBlock, i1 = min(m, i0 + rowBlock)
            let j0 = nb * colBlock, j1 = min(n, j0 + colBlock)
            var view = w.kernelView(rows: (outputs.lowerBound + j0)..<(outputs.lowerBound + j1))
            var a = ck_q8_rows(q: rows.q + i0 * ldq, ldq: ldq, scale: rows.scale + i0 * lds, offset: rows.offset + i0 * lds, lds: lds)
            gemm(i1 - i0, &a, &view, bias.map { $0 + j0 }, out + i0 * n + j0, n)
        }
    }
}

/// The int8 instructions a variant's GEMM runs on this CPU (e.g. "vpdpbusd (AVX-512 VNNI)").
package func q8Instructions(_ variant: KernelVariant) -> String { String(cString: ck_q8_gemm_instructions(variant.kernels)) }
