// The fused attention kernel of every kernel table against the Swift SIMD backend (the Double
// oracle), and against `materializedAttention` where that applies (no padding, no bias). Each
// case also runs on 1 and 2 threads, which must agree bitwise. Sizes sweep the boundaries of
// each table's tiling: the query block (scalar 8, AVX2 32, AVX-512 layout 32), the key block
// (64, 384, 392) and the micro-tile row panel mr (4, 6, 14). Dimensions stay small so that the
// debug build (C at -O0) stays fast. See `checkAttentionCase` and `AttentionTolerance`.
import CKernels
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

/// Runs every case and reports the number of cases and the worst error/tolerance ratio seen.
func runAttentionCases(_ table: KernelTable, _ name: String, _ cases: [AttentionCase]) {
    var worst = 0.0
    for c in cases { worst = max(worst, checkAttentionCase(table, c)) }
    print("attention \(name) \(table): \(cases.count) cases, worst error/tolerance \(String(format: "%.3g", worst))")
}

@Suite("Fused attention")
struct FusedAttentionTests {
    /// Sequence lengths at every tiling edge: 1 and 2; query block - 1, block, block + 1; key
    /// block - 1, block, block + 1 and 2 * block + 1 (several key blocks, so the online
    /// softmax rescales earlier blocks); mr - 1 and mr + 1 (padded key panels); primes; cross
    /// attention with seqQ != seqK both ways; several batch rows and heads in both layouts.
    @Test("sequence lengths around the query and key blocks", arguments: KernelTable.all)
    func sequenceLengths(_ table: KernelTable) {
        let qb = table.queryBlock, kb = table.keyBlock, mr = table.mr
        var cases = [AttentionCase]()
        for (n, s) in [1, 2, qb - 1, qb, qb + 1, 13, 37].enumerated() {
            cases.append(.square(s, headDim: s == 13 || s == 37 ? 7 : 16, layout: n % 2 == 0 ? .bshd : .bhsd))
        }
        for (n, sk) in [kb - 1, kb, kb + 1, 2 * kb + 1].enumerated() {
            cases.append(AttentionCase(seqQ: 5, seqK: sk, headDim: 8, layout: n % 2 == 0 ? .bshd : .bhsd))
        }
        cases.append(AttentionCase(seqQ: qb + 1, seqK: kb + 1, headDim: 4))  // two query and two key blocks
        for sk in Set([max(1, mr - 1), mr + 1]).sorted() { cases.append(AttentionCase(seqQ: 3, seqK: sk, headDim: 5)) }
        cases.append(AttentionCase(seqQ: 11, seqK: 23, headDim: 16))
        cases.append(AttentionCase(seqQ: 23, seqK: 11, headDim: 16, layout: .bhsd))
        cases.append(AttentionCase(seqQ: qb + 1, seqK: 2, headDim: 3))
        for layout in [AttentionLayout.bshd, .bhsd] {
            cases.append(AttentionCase(batch: 2, heads: 3, seqQ: 19, seqK: 17, headDim: 16, layout: layout))
        }
        cases.append(AttentionCase(batch: 2, heads: 2, seqQ: 9, seqK: 9, headDim: 16, scale: 0.3))
        runAttentionCases(table, "sequence lengths", cases)
    }

    /// Head sizes 1, 7, 32, 64, 80 and 128 (1 and 7 below any vector, 80 not a multiple of
    /// any mr), in both layouts, with batch 2 and 2 heads.
    @Test("head sizes 1 to 128, both layouts", arguments: KernelTable.all)
    func headSizes(_ table: KernelTable) {
        var cases = [AttentionCase]()
        for d in [1, 7, 32, 64, 80, 128] {
            for layout in [AttentionLayout.bshd, .bhsd] {
                cases.append(AttentionCase(batch: 2, heads: 2, seqQ: 19, seqK: 21, headDim: d, layout: layout))
            }
        }
        runAttentionCases(table, "head sizes", cases)
    }

    /// Causal masks (self-attention across query and key blocks, where whole key blocks are
    /// skipped; decoding with queryStart: 1 query against 50 keys at position 49, 3 queries at
    /// 47; more queries than keys), key padding that differs per batch row, a batch row where
    /// every key is padding (its outputs must be exactly 0, never NaN), and causal + padding
    /// such that the first queries of a row see nothing.
    @Test("causal masks, queryStart, key padding, queries that see nothing", arguments: KernelTable.all)
    func masks(_ table: KernelTable) {
        let qb = table.queryBlock, kb = table.keyBlock
        let cases: [AttentionCase] = [
            AttentionCase(batch: 2, heads: 2, seqQ: qb + 3, seqK: qb + 3, headDim: 16, causal: true),
            AttentionCase(seqQ: kb + 5, seqK: kb + 5, headDim: 8, layout: .bhsd, causal: true),
            AttentionCase(heads: 2, seqQ: 1, seqK: 50, headDim: 16, causal: true, queryStart: 49),
            AttentionCase(heads: 2, seqQ: 3, seqK: 50, headDim: 16, layout: .bhsd, causal: true, queryStart: 47),
            AttentionCase(seqQ: qb + 1, seqK: qb + 11, headDim: 8, causal: true, queryStart: 10),
            AttentionCase(seqQ: 4, seqK: kb + 9, headDim: 8, causal: true, queryStart: kb + 5),
            AttentionCase(seqQ: 10, seqK: 6, headDim: 8, causal: true),
            AttentionCase(batch: 3, heads: 2, seqQ: 9, seqK: 23, headDim: 16, padding: .mixed),
            AttentionCase(batch: 3, seqQ: 4, seqK: kb + 3, headDim: 8, layout: .bhsd, padding: .mixed),
            AttentionCase(batch: 2, heads: 2, seqQ: 17, seqK: 17, headDim: 16, padding: .lastRowAllPadded),
            AttentionCase(
                batch: 3, heads: 1, seqQ: qb + 2, seqK: qb + 2, headDim: 8, layout: .bhsd, causal: true,
                padding: .lastRowAllPadded),
            AttentionCase(batch: 2, seqQ: 12, seqK: 12, headDim: 8, causal: true, padding: .leading(3)),
            AttentionCase(
                batch: 2, heads: 2, seqQ: qb + 1, seqK: qb + 3, headDim: 8, layout: .bhsd, causal: true,
                queryStart: 2, padding: .leading(5)),
        ]
        runAttentionCases(table, "masks", cases)
    }

    /// Q and K with integer entries in [-100, 100] and scale 1: scores are exact integers of
    /// magnitude ~1e4, so exp(score) overflows unless the running max is subtracted, and the
    /// softmax is nearly one-hot (a key whose score jumps above the running max in a later
    /// key block rescales everything before it by exp(-1000) = 0).
    @Test("large-magnitude scores (~1e4) neither overflow nor lose accuracy", arguments: KernelTable.all)
    func largeScores(_ table: KernelTable) {
        let qb = table.queryBlock, kb = table.keyBlock
        let cases: [AttentionCase] = [
            AttentionCase(heads: 2, seqQ: 20, seqK: 20, headDim: 16, largeIntegerScores: true),
            AttentionCase(seqQ: 7, seqK: 2 * kb + 7, headDim: 16, layout: .bhsd, largeIntegerScores: true),
            AttentionCase(seqQ: qb + 2, seqK: qb + 2, headDim: 16, causal: true, largeIntegerScores: true),
            AttentionCase(batch: 3, seqQ: 5, seqK: 30, headDim: 16, padding: .lastRowAllPadded, largeIntegerScores: true),
        ]
        runAttentionCases(table, "large scores", cases)
    }

    /// Relative-position biases against the oracle (which evaluates the bias per (query, key)
    /// pair): ALiBi symmetric (encoder) and not (decoder, causal, with and without
    /// queryStart), T5 buckets bidirectional (with distances past maxDistance, so the last
    /// bucket is shared) and causal (with queryStart), and biases combined with key padding.
    @Test("ALiBi and T5 relative-position biases", arguments: KernelTable.all)
    func biases(_ table: KernelTable) {
        let qb = table.queryBlock, kb = table.keyBlock
        let t5bi = BiasKind.t5(bidirectional: true, buckets: 32, maxDistance: 128)
        let t5causal = BiasKind.t5(bidirectional: false, buckets: 32, maxDistance: 20)
        let cases: [AttentionCase] = [
            AttentionCase(heads: 4, seqQ: 23, seqK: 23, headDim: 16, bias: .alibi(symmetric: true)),
            AttentionCase(
                heads: 6, seqQ: qb + 1, seqK: qb + 1, headDim: 8, layout: .bhsd, causal: true,
                bias: .alibi(symmetric: false)),
            AttentionCase(heads: 3, seqQ: 3, seqK: 40, headDim: 8, causal: true, queryStart: 37, bias: .alibi(symmetric: false)),
            AttentionCase(heads: 2, seqQ: 9, seqK: 140, headDim: 8, bias: t5bi),
            AttentionCase(heads: 2, seqQ: 5, seqK: kb + 2, headDim: 4, layout: .bhsd, bias: t5bi),
            AttentionCase(heads: 2, seqQ: 40, seqK: 40, headDim: 8, causal: true, bias: t5causal),
            AttentionCase(heads: 2, seqQ: 3, seqK: 45, headDim: 8, layout: .bhsd, causal: true, queryStart: 42, bias: t5causal),
            AttentionCase(batch: 3, heads: 2, seqQ: 7, seqK: 19, headDim: 8, padding: .lastRowAllPadded, bias: t5bi),
            AttentionCase(
                batch: 3, heads: 2, seqQ: 11, seqK: 11, headDim: 8, causal: true, padding: .mixed,
                bias: .alibi(symmetric: false)),
        ]
        runAttentionCases(table, "biases", cases)
    }

    /// Seeded random combinations of everything above: sizes up to two query blocks and past
    /// one key block, head sizes from 1 to 33, batch and heads 1 to 3, either layout, causal or
    /// not with a random queryStart, each padding kind, each bias kind with random bucket
    /// counts and distances, Shaw clips, and default, small, large or negative scales.
    @Test("random combinations of sizes, layouts, masks, biases and scales", arguments: KernelTable.all)
    func randomCombinations(_ table: KernelTable) {
        let qb = table.queryBlock, kb = table.keyBlock
        var rng = SeededRNG(seed: caseSeed(0xA77E, 1))
        func pick<T>(_ xs: [T]) -> T { xs[Int(rng.next() % UInt64(xs.count))] }
        var cases = [AttentionCase]()
        for _ in 0..<30 {
            let seqQ = 1 + Int(rng.next() % UInt64(2 * qb + 3))
            let seqK = 1 + Int(rng.next() % UInt64(kb + 20))
            let causal = rng.next() % 2 == 0
            let queryStart = causal && seqK > seqQ ? Int(rng.next() % UInt64(seqK - seqQ + 1)) : 0
            let padding: PaddingKind = pick([.none, .mixed, .lastRowAllPadded, .leading(1 + Int(rng.next() % UInt64(seqK)))])
            // T5: a maxDistance above the exact buckets (numBuckets/4 bidirectional, /2 causal), as
            // in most real configs, or equal to them (every farther key takes the last bucket).
            let buckets = pick([8, 16, 32])
            let bidirectional = rng.next() % 2 == 0
            let maxExact = bidirectional ? buckets / 4 : buckets / 2
            let bias: BiasKind = pick([
                .none, .alibi(symmetric: true), .alibi(symmetric: false),
                .t5(bidirectional: bidirectional, buckets: buckets, maxDistance: pick([maxExact, 2 * maxExact, 20, 128])),
                .shaw(clip: pick([1, 3, 8])),
            ])
            let scale: Float? = pick([nil, 0.05, 1.5, -0.7])
            cases.append(
                AttentionCase(
                    batch: 1 + Int(rng.next() % 3), heads: 1 + Int(rng.next() % 3), seqQ: seqQ, seqK: seqK,
                    headDim: pick([1, 2, 3, 5, 8, 16, 24, 33]), layout: pick([.bshd, .bhsd]), causal: causal,
                    queryStart: queryStart, padding: padding, bias: bias, scale: scale))
        }
        runAttentionCases(table, "random combinations", cases)
    }

    /// Shaw et al. relative positions (key and value embeddings per clipped distance, looked
    /// up inside the kernel's tile loop): encoder, causal, decoding with queryStart, several
    /// key blocks (with a running max that moves), a clip longer than the sequence, and with
    /// key padding.
    @Test("Shaw relative positions", arguments: KernelTable.all)
    func shawRelativePositions(_ table: KernelTable) {
        let qb = table.queryBlock, kb = table.keyBlock
        let cases: [AttentionCase] = [
            AttentionCase(heads: 2, seqQ: 23, seqK: 23, headDim: 16, bias: .shaw(clip: 4)),
            AttentionCase(heads: 2, seqQ: qb + 1, seqK: qb + 1, headDim: 8, layout: .bhsd, causal: true, bias: .shaw(clip: 2)),
            AttentionCase(heads: 2, seqQ: 3, seqK: 40, headDim: 8, causal: true, queryStart: 37, bias: .shaw(clip: 3)),
            AttentionCase(seqQ: 5, seqK: kb + 2, headDim: 4, bias: .shaw(clip: 16)),
            // Several key blocks with widely spread scores, so that the running max moves in
            // later blocks and the bucket weights gathered so far must be rescaled with it.
            AttentionCase(seqQ: 4, seqK: 3 * kb + 5, headDim: 4, bias: .shaw(clip: 3), scale: 4),
            AttentionCase(heads: 2, seqQ: 4, seqK: 3 * kb + 5, headDim: 4, bias: .shaw(clip: 2), largeIntegerScores: true),
            AttentionCase(seqQ: 5, seqK: 5, headDim: 7, layout: .bhsd, bias: .shaw(clip: 8)),
            AttentionCase(
                batch: 3, heads: 2, seqQ: 7, seqK: 19, headDim: 8, causal: true, padding: .lastRowAllPadded,
                bias: .shaw(clip: 1)),
        ]
        runAttentionCases(table, "shaw", cases)
    }

    /// Sliding windows (Mistral's `sliding_window`: query i sees key j iff j <= i + queryStart
    /// and i + queryStart - j < window) on every attention path the native backend picks:
    /// fused (sequences past 128), short (a sentence) and few-query (decoding). Windows of 1
    /// (a query sees only itself), a few positions, around the query block (so a block's
    /// queries start their windows in different key panels), around the key block, and longer
    /// than the sequence (nothing hidden); a prefill that continues a cache (queryStart > 0);
    /// a window without the causal mask; with key padding, ALiBi and Shaw positions. Windowed
    /// cases without padding or bias also check `materializedAttention` with the window.
    @Test("sliding windows on the fused, short and few-query paths", arguments: KernelTable.all)
    func slidingWindows(_ table: KernelTable) {
        let qb = table.queryBlock, kb = table.keyBlock, mr = table.mr
        var cases = [AttentionCase]()
        for w in Set([1, 3, mr + 1, qb - 1, qb + 3, kb / 2, kb + 5, 1000]).sorted() {
            cases.append(AttentionCase(seqQ: 300, seqK: 300, headDim: 8, causal: true, window: w))
        }
        cases.append(AttentionCase(heads: 2, seqQ: 40, seqK: 40, headDim: 16, causal: true, window: 8))  // short path
        cases.append(AttentionCase(heads: 2, seqQ: 40, seqK: 40, headDim: 16, causal: true, window: 41))
        cases.append(AttentionCase(heads: 2, seqQ: 1, seqK: 300, headDim: 16, causal: true, queryStart: 299, window: 8))  // decoding
        cases.append(AttentionCase(seqQ: 2, seqK: 50, headDim: 16, layout: .bhsd, causal: true, queryStart: 48, window: 1))
        cases.append(AttentionCase(seqQ: 20, seqK: 300, headDim: 8, causal: true, queryStart: 280, window: 33))  // prefill on a cache
        cases.append(AttentionCase(seqQ: 200, seqK: 200, headDim: 8, window: 50))  // no causal mask
        cases.append(AttentionCase(seqQ: 30, seqK: 30, headDim: 8, window: 4))
        cases.append(AttentionCase(batch: 2, seqQ: 12, seqK: 12, headDim: 8, causal: true, padding: .leading(3), window: 4))
        cases.append(AttentionCase(batch: 2, seqQ: 150, seqK: 150, headDim: 8, causal: true, padding: .mixed, window: 20))
        cases.append(
            AttentionCase(heads: 3, seqQ: 140, seqK: 140, headDim: 8, causal: true, bias: .alibi(symmetric: false), window: 30))
        cases.append(AttentionCase(heads: 2, seqQ: 140, seqK: 140, headDim: 8, causal: true, bias: .shaw(clip: 3), window: 9))
        runAttentionCases(table, "sliding windows", cases)
    }

    /// Key blocks left of every query's window are never read: with keys and values of NaN
    /// there (a read would poison the output, even times a zero weight), a block of 20 queries
    /// at the end of a 400-key cache with a window of 10 matches the oracle, on the fused
    /// kernel (20 queries, 400 keys) and on the few-query path (the last 2 queries alone).
    @Test("sliding window: keys left of the window are never read", arguments: KernelVariant.supported)
    func windowSkipsKeys(_ variant: KernelVariant) throws {
        let (seqK, d, w) = (400, 8, 10)
        var rng = SeededRNG(seed: caseSeed(400, 10, 8))
        let keys = (0..<seqK * d).map { $0 < 336 * d ? Float.nan : rng.nextFloat(in: -1...1) }
        let values = (0..<seqK * d).map { $0 < 336 * d ? Float.nan : rng.nextFloat(in: -1...1) }
        let k = Tensor(shape: [1, seqK, 1, d], scalars: keys), v = Tensor(shape: [1, seqK, 1, d], scalars: values)
        for seqQ in [20, 2] {
            let q = Tensor(shape: [1, seqQ, 1, d], scalars: rng.floats(seqQ * d, in: -1...1))
            let mask = AttentionMask(causal: true, queryStart: seqK - seqQ, window: w)
            let got = scaledDotProductAttention(query: q, key: k, value: v, mask: mask, compute: try Compute(backend: .native(variant), threads: 2))
            let want = scaledDotProductAttention(query: q, key: k, value: v, mask: mask, compute: try Compute(backend: .swiftSIMD, threads: 1))
            let worst = zip(got.scalars, want.scalars).map { abs(Double($0) - Double($1)) }.max() ?? .nan
            #expect(worst <= 1e-5, "\(variant) \(seqQ) queries, window \(w): max |fused - oracle| = \(worst) (NaN: a key left of the window was read)")
        }
    }

    /// The fused kernel packs K/V into a buffer kept between calls. Filled with NaN first (what
    /// a previous, larger call could leave there is anything), it must give the bits of a call
    /// on a buffer of its own (made while the kept one is held): every packed scalar the kernel
    /// reads, padding included, is written by this call's packing. Sizes not multiples of any
    /// tile, above the short-sequence path's 128, on 1 and 2 threads.
    @Test("the kept K/V packing buffer: stale contents never reach the output", arguments: KernelVariant.supported)
    func keptPackingBuffer(_ variant: KernelVariant) throws {
        let (seqQ, seqK, heads, d) = (131, 197, 3, 20)
        var rng = SeededRNG(seed: caseSeed(131, 197, 20))
        let q = Tensor(shape: [1, seqQ, heads, d], scalars: rng.floats(seqQ * heads * d, in: -1...1))
        let k = Tensor(shape: [1, seqK, heads, d], scalars: rng.floats(seqK * heads * d, in: -1...1))
        let v = Tensor(shape: [1, seqK, heads, d], scalars: rng.floats(seqK * heads * d, in: -1...1))
        for threads in [1, 2] {
            let compute = try Compute(backend: .native(variant), threads: threads)
            let poison = 1 << 20
            SharedPackingBuffer.shared.withBuffer(floats: poison) { p in p.update(repeating: .nan, count: poison) }
            let shared = scaledDotProductAttention(query: q, key: k, value: v, compute: compute)
            var own: Tensor? = nil
            SharedPackingBuffer.shared.withBuffer(floats: 1) { _ in
                own = scaledDotProductAttention(query: q, key: k, value: v, compute: compute)
            }
            #expect(shared.scalars.allSatisfy { $0.isFinite }, "\(variant), \(threads) thread(s): NaN from the kept buffer")
            #expect(shared.scalars == own?.scalars, "\(variant), \(threads) thread(s): kept and own buffers differ")
        }
    }

    /// A long causal sequence (600 queries and keys, several query and key blocks on every
    /// table): the fused kernel, which skips the key blocks a causal query block cannot see
    /// and never holds more than one score tile, gives what the materialized seq x seq path
    /// gives. (That it skips work and saves memory is a performance matter, left to the
    /// benchmark.) The oracle is computed once for all tables.
    @Test("long causal sequence: fused matches materialized", arguments: KernelTable.all)
    func longCausal(_ table: KernelTable) {
        let c = Self.longCase
        let worst = checkAttentionCase(table, c, oracleCache: Self.longOracle)
        print("attention long causal \(table): worst error/tolerance \(String(format: "%.3g", worst))")
    }

    static let longCase = AttentionCase(heads: 1, seqQ: 600, seqK: 600, headDim: 16, causal: true)
    static let longOracle: Tensor = {
        let inp = longCase.makeInputs()
        return scaledDotProductAttention(
            query: inp.q, key: inp.k, value: inp.v, mask: inp.mask, scale: inp.scale, layout: inp.layout,
            compute: testCompute(.swiftSIMD, threads: 2))
    }()
}
