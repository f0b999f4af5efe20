// Shared machinery of the attention tests: which C kernel tables exist, how one attention case
// is described, generated (seeded), run and checked against the Swift SIMD oracle, and a
// driver that runs the fused attention on the test-only AVX-512-layout table.
import CKernels
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

/// The unit roundoff of float32, 2^-24.
let u = float32UnitRoundoff

// MARK: - Kernel tables under test

/// One C kernel table: a supported production variant, or the test-only table that compiles
/// the AVX-512 source (16-lane vectors, 14 x 32 tiles, 392-key blocks) for AVX2 so that its
/// logic runs on CPUs without AVX-512.
enum KernelTable: Sendable, Hashable, CustomStringConvertible, CustomTestStringConvertible {
    case native(KernelVariant)
    case avx512LayoutOnAVX2

    /// Every table this machine can run.
    static let all: [KernelTable] = {
        var list = KernelVariant.supported.map { KernelTable.native($0) }
        if ck_kernels_avx512_layout_on_avx2() != nil { list.append(.avx512LayoutOnAVX2) }
        return list
    }()

    var kernels: UnsafePointer<ck_kernels> {
        switch self {
        case .native(let v): return v.kernels
        case .avx512LayoutOnAVX2: return ck_kernels_avx512_layout_on_avx2()!
        }
    }

    var description: String {
        switch self {
        case .native(let v): return "native(\(v))"
        case .avx512LayoutOnAVX2: return "avx512-layout-on-avx2"
        }
    }
    var testDescription: String { description }

    /// Queries per block of the fused kernel (the unit of parallel work).
    var queryBlock: Int { ck_f32_attention_query_block(kernels) }
    /// Keys per block of the fused kernel's online softmax.
    var keyBlock: Int { Int(kernels.pointee.attn_key_block) }
    /// Keys per micro-tile row panel (keys are padded to a multiple of it).
    var mr: Int { Int(kernels.pointee.attn_mr) }

    /// exp of every scalar: through the library's `nativeExp(variant:_:)` for production
    /// variants, through the table's slot directly for the test-only table.
    func exp(_ x: [Float]) -> [Float] {
        switch self {
        case .native(let v):
            return nativeExp(variant: v, x)
        case .avx512LayoutOnAVX2:
            var y = [Float](repeating: 0, count: x.count)
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    if let xb = xp.baseAddress { kernels.pointee.exp(x.count, xb, yp.baseAddress!) }
                }
            }
            return y
        }
    }

    /// The fused attention: `scaledDotProductAttention` for production variants, the test
    /// driver below for the test-only table.
    func attention(_ inp: AttentionInputs, threads: Int) -> Tensor {
        switch self {
        case .native(let v):
            return scaledDotProductAttention(
                query: inp.q, key: inp.k, value: inp.v, mask: inp.mask, bias: inp.bias, scale: inp.scale,
                layout: inp.layout, compute: testCompute(.native(v), threads: threads))
        case .avx512LayoutOnAVX2:
            return fusedAttentionOnTable(kernels, inp, threads: threads)
        }
    }
}

/// The library's fused-attention driver (`fusedAttention`, which takes a `KernelVariant`),
/// restated for an arbitrary kernel table: pack K/V per head, build the key-padding and
/// relative-position tables and the Shaw key terms, run `ck_f32_attention_block` per (batch,
/// head, query block). (All heads at once: the test sizes are far below the library's
/// packing budget, so its waves would be a single wave anyway.)
func fusedAttentionOnTable(_ kern: UnsafePointer<ck_kernels>, _ inp: AttentionInputs, threads: Int) -> Tensor {
    let p = AttentionProblem(
        query: inp.q, key: inp.k, value: inp.v, mask: inp.mask, bias: inp.bias, scale: inp.scale, layout: inp.layout)
    var out = Tensor.zeros(inp.q.shape)
    let nHeads = p.batch * p.heads
    if nHeads == 0 || p.seqQ == 0 || p.seqK == 0 { return out }
    let headStride = (ck_f32_attention_packed_kv_size(kern, p.seqK, p.headDim) + 15) / 16 * 16
    let packed = UnsafeMutableRawPointer.allocate(byteCount: nHeads * headStride * 4, alignment: 64)
        .bindMemory(to: Float.self, capacity: nHeads * headStride)
    defer { packed.deallocate() }
    var keyBias = [Float]()
    if let pad = p.mask.keyPadding {
        for b in 0..<p.batch { for j in 0..<p.seqK { keyBias.append(pad[b][j] ? 0 : -.infinity) } }
    }
    let relLength = ck_f32_attention_rel_bias_length(kern, p.seqQ, p.seqK)
    let relZero = p.seqK - 1
    var relBias = [Float]()
    if p.bias.isDistanceTable {
        for h in 0..<p.heads {
            for t in 0..<relLength { relBias.append(p.bias.value(head: h, relative: relZero - t - p.mask.queryStart)) }
        }
    }
    let block = ck_f32_attention_query_block(kern)
    let blocks = (p.seqQ + block - 1) / block
    let shaw = p.bias.shaw
    let clip = shaw?.clip ?? 0, width = 2 * clip + 1
    let wsCount = ck_f32_attention_workspace(kern, p.headDim, clip)
    let ld = p.rowStrideQ
    // Shaw key term per head: qk[i][c] = scale * q_i . a^K_c.
    var shawQK = [Float](repeating: 0, count: shaw == nil ? 0 : nHeads * p.seqQ * width)
    if let shaw {
        inp.q.withUnsafeBufferPointer { q in
            shaw.keys.withUnsafeBufferPointer { ak in
                shawQK.withUnsafeMutableBufferPointer { qk in
                    for bh in 0..<nHeads {
                        let b = bh / p.heads, h = bh % p.heads
                        nativeGEMM(
                            kernels: kern, m: p.seqQ, n: width, k: p.headDim, alpha: p.scale,
                            a: q.baseAddress! + p.offsetQ(b, h), lda: ld, transA: false,
                            b: ak.baseAddress!, ldb: p.headDim, transB: true, beta: 0,
                            c: qk.baseAddress! + bh * p.seqQ * width, ldc: width, threads: 1)
                    }
                }
            }
        }
    }
    let shawValues = shaw?.values ?? Tensor.zeros([1])
    inp.q.withUnsafeBufferPointer { q in
        inp.k.withUnsafeBufferPointer { k in
            inp.v.withUnsafeBufferPointer { v in
                out.withUnsafeMutableBufferPointer { o in
                    keyBias.withUnsafeBufferPointer { kb in
                        relBias.withUnsafeBufferPointer { rb in
                            shawQK.withUnsafeBufferPointer { sqk in
                                shawValues.withUnsafeBufferPointer { sv in
                                    let qb = q.baseAddress!, kbase = k.baseAddress!, vbase = v.baseAddress!, ob = o.baseAddress!
                                    parallelFor(nHeads, threads: threads) { bh in
                                        let b = bh / p.heads, h = bh % p.heads
                                        ck_f32_attention_pack_kv(
                                            kern, p.seqK, p.headDim, kbase + p.offsetK(b, h), ld, vbase + p.offsetK(b, h), ld,
                                            packed + bh * headStride)
                                    }
                                    parallelFor(nHeads * blocks, threads: threads) { item in
                                        let bh = item / blocks, blk = item % blocks
                                        let b = bh / p.heads, h = bh % p.heads
                                        let ws = UnsafeMutableRawPointer.allocate(byteCount: wsCount * 4, alignment: 64)
                                            .bindMemory(to: Float.self, capacity: wsCount)
                                        defer { ws.deallocate() }
                                        var head = ck_attention_head(
                                            seq_q: p.seqQ, seq_k: p.seqK, head_dim: p.headDim,
                                            q: qb + p.offsetQ(b, h), ldq: ld, packed_kv: packed + bh * headStride,
                                            o: ob + p.offsetQ(b, h), ldo: ld, scale: p.scale,
                                            causal: p.mask.causal ? 1 : 0, causal_offset: p.mask.queryStart,
                                            key_bias: kb.isEmpty ? nil : kb.baseAddress! + b * p.seqK,
                                            rel_bias: rb.isEmpty ? nil : rb.baseAddress! + h * relLength,
                                            rel_bias_zero: relZero, shaw_clip: clip,
                                            shaw_qk: shaw == nil ? nil : sqk.baseAddress! + bh * p.seqQ * width,
                                            shaw_v: shaw == nil ? nil : sv.baseAddress!, dropout: nil,
                                            window: p.mask.window)
                                        let q0 = blk * block
                                        ck_f32_attention_block(kern, &head, q0, min(block, p.seqQ - q0), ws)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    return out
}

// MARK: - Attention cases

/// Which keys are padding, per batch row.
enum PaddingKind: Sendable, Hashable, CustomStringConvertible {
    case none
    /// Batch row b % 3 == 0: no padding; == 1: a random number of trailing keys padded;
    /// == 2: every key padded with probability 0.3. At least one key stays real per row.
    case mixed
    /// As `mixed`, but the last batch row is all padding: its outputs must be exactly 0.
    case lastRowAllPadded
    /// Batch row 0: no padding; every other row: the first `n` keys padded (with a causal
    /// mask, queries `i < n - queryStart` of those rows see nothing).
    case leading(Int)

    var description: String {
        switch self {
        case .none: return "none"
        case .mixed: return "mixed"
        case .lastRowAllPadded: return "mixed+lastRowAllPadded"
        case .leading(let n): return "leading(\(n))"
        }
    }
    var code: Int {
        switch self {
        case .none: return 0
        case .mixed: return 1
        case .lastRowAllPadded: return 2
        case .leading(let n): return 3 + 16 * n
        }
    }
}

/// The relative-position bias of a case.
enum BiasKind: Sendable, Hashable, CustomStringConvertible {
    case none
    /// `alibiSlopes(heads:)`, symmetric (encoder) or not (decoder).
    case alibi(symmetric: Bool)
    /// A random `[buckets, heads]` table in [-2, 2].
    case t5(bidirectional: Bool, buckets: Int, maxDistance: Int)
    /// Shaw et al.: random `[2*clip + 1, headDim]` key and value embeddings in [-1, 1].
    case shaw(clip: Int)

    var description: String {
        switch self {
        case .none: return "none"
        case .alibi(let s): return "alibi(symmetric: \(s))"
        case .t5(let b, let n, let d): return "t5(bidirectional: \(b), buckets: \(n), maxDistance: \(d))"
        case .shaw(let c): return "shaw(clip: \(c))"
        }
    }
    var code: Int {
        switch self {
        case .none: return 0
        case .alibi(let s): return s ? 1 : 2
        case .t5(let b, let n, let d): return 3 + (b ? 1 : 0) + 2 * n + 1000 * d
        case .shaw(let c): return 5 + 7 * c
        }
    }
}

/// One fused-attention test case. The data comes from a seed derived from every field, so a
/// failure is reproduced by the case alone (and the message prints the seed).
struct AttentionCase: Sendable, CustomStringConvertible {
    var batch = 1
    var heads = 1
    var seqQ: Int
    var seqK: Int
    var headDim: Int
    var layout: AttentionLayout = .bshd
    var causal = false
    var queryStart = 0
    var padding: PaddingKind = .none
    var bias: BiasKind = .none
    var scale: Float? = nil
    /// Q and K hold integers in [-100, 100] and the scale is 1: every score is an exact
    /// integer of magnitude ~1e4 in float32 (no rounding anywhere before the softmax), so a
    /// softmax that overflows shows as inf/NaN while the tolerance stays tight.
    var largeIntegerScores = false
    /// Sliding window (``AttentionMask/window``; 0: none).
    var window = 0

    init(
        batch: Int = 1, heads: Int = 1, seqQ: Int, seqK: Int, headDim: Int, layout: AttentionLayout = .bshd,
        causal: Bool = false, queryStart: Int = 0, padding: PaddingKind = .none, bias: BiasKind = .none,
        scale: Float? = nil, largeIntegerScores: Bool = false, window: Int = 0
    ) {
        self.window = window
        self.batch = batch
        self.heads = heads
        self.seqQ = seqQ
        self.seqK = seqK
        self.headDim = headDim
        self.layout = layout
        self.causal = causal
        self.queryStart = queryStart
        self.padding = padding
        self.bias = bias
        self.scale = scale
        self.largeIntegerScores = largeIntegerScores
    }

    /// Self-attention of one sequence.
    static func square(
        _ s: Int, headDim: Int, batch: Int = 1, heads: Int = 1, layout: AttentionLayout = .bshd,
        causal: Bool = false
    ) -> AttentionCase {
        AttentionCase(batch: batch, heads: heads, seqQ: s, seqK: s, headDim: headDim, layout: layout, causal: causal)
    }

    var seed: UInt64 {
        let s = caseSeed(
            batch, heads, seqQ, seqK, headDim, layout == .bshd ? 0 : 1, causal ? 1 : 0, queryStart,
            padding.code, bias.code, Int(scale?.bitPattern ?? 0), largeIntegerScores ? 1 : 0)
        return window == 0 ? s : s ^ caseSeed(window)
    }

    /// No padding and no bias: what `materializedAttention` supports.
    var materializable: Bool { padding == .none && bias == .none }

    var description: String {
        var s = "B\(batch) H\(heads) Sq\(seqQ) Sk\(seqK) D\(headDim) \(layout)"
        if causal { s += " causal(queryStart \(queryStart))" } else if queryStart != 0 { s += " queryStart \(queryStart)" }
        if padding != .none { s += " padding \(padding)" }
        if bias != .none { s += " bias \(bias)" }
        if let scale { s += " scale \(scale)" }
        if largeIntegerScores { s += " largeIntegerScores" }
        if window > 0 { s += " window \(window)" }
        return s + " seed 0x" + String(seed, radix: 16)
    }
}

extension AttentionLayout: CustomStringConvertible {
    public var description: String { self == .bshd ? "bshd" : "bhsd" }
}

/// The tensors and options of one case.
struct AttentionInputs {
    let q, k, v: Tensor
    let mask: AttentionMask
    let bias: AttentionBias
    let scale: Float?
    let layout: AttentionLayout
}

extension AttentionCase {
    func shape(seq: Int) -> [Int] {
        layout == .bshd ? [batch, seq, heads, headDim] : [batch, heads, seq, headDim]
    }

    /// Flat index of (batch b, position i, head h, component d) in a tensor of `seq` positions.
    func index(_ b: Int, _ i: Int, _ h: Int, _ d: Int, seq: Int) -> Int {
        layout == .bshd ? ((b * seq + i) * heads + h) * headDim + d : ((b * heads + h) * seq + i) * headDim + d
    }

    func makeInputs() -> AttentionInputs {
        var rng = SeededRNG(seed: seed)
        func qk(_ count: Int) -> [Float] {
            if !largeIntegerScores { return rng.floats(count, in: -1...1) }
            return (0..<count).map { _ in Float(Int(rng.next() % 201) - 100) }
        }
        let q = Tensor(shape: shape(seq: seqQ), scalars: qk(batch * seqQ * heads * headDim))
        let k = Tensor(shape: shape(seq: seqK), scalars: qk(batch * seqK * heads * headDim))
        let v = Tensor(shape: shape(seq: seqK), scalars: rng.floats(batch * seqK * heads * headDim, in: -3...3))
        var keyPadding: [[Bool]]? = nil
        func mixedRow(_ b: Int) -> [Bool] {
            switch b % 3 {
            case 0:
                return [Bool](repeating: true, count: seqK)
            case 1:
                let padded = seqK <= 1 ? 0 : 1 + Int(rng.next() % UInt64(seqK - 1))
                return (0..<seqK).map { $0 < seqK - padded }
            default:
                var row = (0..<seqK).map { _ in rng.nextUnit() >= 0.3 }
                row[Int(rng.next() % UInt64(seqK))] = true
                return row
            }
        }
        switch padding {
        case .none: break
        case .mixed: keyPadding = (0..<batch).map(mixedRow)
        case .lastRowAllPadded:
            keyPadding = (0..<batch).map { $0 == batch - 1 ? [Bool](repeating: false, count: seqK) : mixedRow($0) }
        case .leading(let n):
            keyPadding = (0..<batch).map { b in (0..<seqK).map { b == 0 || $0 >= n } }
        }
        let attentionBias: AttentionBias
        switch bias {
        case .none: attentionBias = .none
        case .alibi(let symmetric): attentionBias = .alibi(slopes: alibiSlopes(heads: heads), symmetric: symmetric)
        case .t5(let bidirectional, let buckets, let maxDistance):
            let table = Tensor(shape: [buckets, heads], scalars: rng.floats(buckets * heads, in: -2...2))
            attentionBias = .t5(table: table, bidirectional: bidirectional, maxDistance: maxDistance)
        case .shaw(let clip):
            let w = 2 * clip + 1
            attentionBias = .shaw(
                keys: Tensor(shape: [w, headDim], scalars: rng.floats(w * headDim, in: -1...1)),
                values: Tensor(shape: [w, headDim], scalars: rng.floats(w * headDim, in: -1...1)), clip: clip)
        }
        return AttentionInputs(
            q: q, k: k, v: v, mask: AttentionMask(causal: causal, queryStart: queryStart, keyPadding: keyPadding, window: window),
            bias: attentionBias, scale: largeIntegerScores ? 1 : scale, layout: layout)
    }
}

// MARK: - Checking

/// The allowed |got - oracle| of every output of one (batch, head), relative to max|V|.
///
/// Why: o_i = sum_j p_j v_j / sum_j p_j, and the oracle computes it in Double (exact for our
/// purposes). The float32 kernel's error has three parts:
///  - scores: scale*q is rounded, the dot product of D terms accumulates rounding errors
///    (each at most u times a partial sum, random in sign: they grow like sqrt(D), and
///    4*sqrt(D) is far beyond the spread of that random walk), then the biases are added and
///    s - max is rounded. Every score error delta shifts a weight by the factor exp(delta),
///    and moves o_i by at most 2 max|V| * max|delta|; |delta| <= u*(1 + 4*sqrt(D)) * S with S
///    bounding |scale*q.k| + |bias| (Cauchy-Schwarz: |scale| |q_i|_2 |k_j|_2). With
///    `largeIntegerScores` the scores are exact integers (no rounding at all) and this term is 0;
///  - weights: exp is within 2 ulp (4u relative), each key block's running-max correction
///    adds an exp and a rounding per output and per running sum (6u per block of 64 keys,
///    the smallest key block), the final division and the oracle's rounding 2u more;
///  - sums: l = sum p_j and sum p_j v_j run over seqK terms in float32. The worst case is
///    seqK*u, but the roundings are independent and random in sign, so the error grows like
///    sqrt(seqK)*u; 4*sqrt(seqK)*u is ~20 standard deviations out. The worst-case bound
///    would be too loose to see a single dropped key at seqK ~ 1000, so the typical growth
///    is what is asserted.
/// Everything is relative to max|V| because o_i is a convex combination of the v_j. For
/// D = 16, seqK = 100 and unit-range data this is about 1e-5 * max|V| (observed errors stay
/// below a tenth of it), while one dropped or extra key moves an output by ~max|V|/seqK and
/// a relative-position bias off by one position by ~slope * max|V|.
struct AttentionTolerance {
    let perHead: [Double]  // [batch * heads]

    init(_ c: AttentionCase, _ inp: AttentionInputs) {
        let scale = Double((inp.scale ?? 1 / Float(c.headDim).squareRoot()).magnitude)
        let keyBlocks = Double(max(1, (c.seqK + 63) / 64))  // 64: the smallest key block of any table
        var tol = [Double]()
        let q = inp.q.scalars, k = inp.k.scalars, v = inp.v.scalars
        for b in 0..<c.batch {
            for h in 0..<c.heads {
                var maxV = 0.0, maxQ = 0.0, maxK = 0.0
                for j in 0..<c.seqK {
                    var nk = 0.0
                    for d in 0..<c.headDim {
                        let idx = c.index(b, j, h, d, seq: c.seqK)
                        maxV = max(maxV, Double(v[idx].magnitude))
                        nk += Double(k[idx]) * Double(k[idx])
                    }
                    maxK = max(maxK, nk.squareRoot())
                }
                for i in 0..<c.seqQ {
                    var nq = 0.0
                    for d in 0..<c.headDim {
                        let x = Double(q[c.index(b, i, h, d, seq: c.seqQ)])
                        nq += x * x
                    }
                    maxQ = max(maxQ, nq.squareRoot())
                }
                var maxBias = 0.0, maxShawK = 0.0
                if let shaw = inp.bias.shaw {
                    // Shaw: the score gains scale * q . a^K_c (bounded like q . k), and the
                    // output is a convex combination of v_j + a^V_c.
                    let ak = shaw.keys.scalars, av = shaw.values.scalars
                    for bucket in 0..<(2 * shaw.clip + 1) {
                        var n2 = 0.0
                        for d in 0..<c.headDim { n2 += Double(ak[bucket * c.headDim + d]) * Double(ak[bucket * c.headDim + d]) }
                        maxShawK = max(maxShawK, n2.squareRoot())
                    }
                    maxV += av.reduce(0.0) { max($0, Double($1.magnitude)) }
                }
                if inp.bias.isDistanceTable {
                    // Every relative position key - (query + queryStart) that occurs.
                    for rel in (0 - (c.seqQ - 1) - c.queryStart)...(c.seqK - 1 - c.queryStart) {
                        maxBias = max(maxBias, Double(inp.bias.value(head: h, relative: rel).magnitude))
                    }
                }
                let scoreScale = c.largeIntegerScores && inp.bias.isNone ? 0 : scale * maxQ * (maxK + maxShawK) + maxBias
                let scoreErr = u * (1 + 4 * Double(c.headDim).squareRoot()) * scoreScale
                let sumErr = u * (12 + 4 * Double(c.seqK).squareRoot() + 6 * keyBlocks)
                tol.append(maxV * (sumErr + 2 * scoreErr))
            }
        }
        perHead = tol
    }
}

/// Whether query i of batch row b sees at least one key.
func seesSomething(_ c: AttentionCase, _ mask: AttentionMask, b: Int, i: Int) -> Bool {
    let last = c.causal ? min(c.seqK - 1, i + c.queryStart) : c.seqK - 1
    let first = c.window > 0 ? max(0, i + c.queryStart - c.window + 1) : 0
    if last < first { return false }
    guard let pad = mask.keyPadding else { return true }
    return pad[b][first...last].contains(true)
}

/// The first output of `got` out of tolerance from `expected`, described; nil when all match.
/// Outputs of queries that see no key must be exactly 0 in both.
func firstAttentionMismatch(
    _ got: Tensor, _ expected: Tensor, _ c: AttentionCase, _ inp: AttentionInputs, _ tol: AttentionTolerance,
    toleranceFactor: Double = 1
) -> String? {
    if got.shape != expected.shape { return "shape \(got.shape), expected \(expected.shape)" }
    let g = got.scalars, e = expected.scalars
    for b in 0..<c.batch {
        for h in 0..<c.heads {
            let t = tol.perHead[b * c.heads + h] * toleranceFactor
            for i in 0..<c.seqQ {
                let blind = !seesSomething(c, inp.mask, b: b, i: i)
                for d in 0..<c.headDim {
                    let idx = c.index(b, i, h, d, seq: c.seqQ)
                    let ok = blind ? (g[idx] == 0 && e[idx] == 0) : matches(g[idx], Double(e[idx]), tolerance: t)
                    if !ok {
                        return
                            "first bad index [b \(b), i \(i), h \(h), d \(d)] (flat \(idx))\(blind ? " (query sees no key: must be exactly 0)" : ""): got \(g[idx]), expected \(e[idx]), |diff| \(abs(Double(g[idx]) - Double(e[idx]))) > tol \(t)"
                    }
                }
            }
        }
    }
    return nil
}

/// The largest |got - expected| / tolerance over the outputs (diagnostics).
func worstRatio(_ got: Tensor, _ expected: Tensor, _ c: AttentionCase, _ tol: AttentionTolerance) -> Double {
    let g = got.scalars, e = expected.scalars
    var worst = 0.0
    for b in 0..<c.batch {
        for h in 0..<c.heads {
            let t = tol.perHead[b * c.heads + h]
            for i in 0..<c.seqQ {
                for d in 0..<c.headDim {
                    let idx = c.index(b, i, h, d, seq: c.seqQ)
                    worst = max(worst, abs(Double(g[idx]) - Double(e[idx])) / t)
                }
            }
        }
    }
    return worst
}

/// Runs one case on one table: the fused kernel on 1 and 2 threads (which must agree
/// bitwise: each query block is computed by one thread, in a fixed order), checked against
/// the Swift SIMD backend (the Double oracle); when the case has no padding and no bias and
/// the table is a production variant, `materializedAttention` is checked against the oracle
/// too, and fused against materialized. Returns the worst error/tolerance ratio seen.
@discardableResult
func checkAttentionCase(_ table: KernelTable, _ c: AttentionCase, oracleCache: Tensor? = nil) -> Double {
    let inp = c.makeInputs()
    let oracle =
        oracleCache
        ?? scaledDotProductAttention(
            query: inp.q, key: inp.k, value: inp.v, mask: inp.mask, bias: inp.bias, scale: inp.scale,
            layout: inp.layout, compute: testCompute(.swiftSIMD, threads: 2))
    let tol = AttentionTolerance(c, inp)
    let one = table.attention(inp, threads: 1)
    let two = table.attention(inp, threads: 2)
    let diff = firstBitwiseDifference(one.scalars, two.scalars)
    #expect(
        diff == nil,
        "\(table) \(c): 1 and 2 threads differ bitwise at flat index \(diff ?? -1): \(diff.map { one.scalars[$0] } ?? 0) vs \(diff.map { two.scalars[$0] } ?? 0)"
    )
    if let m = firstAttentionMismatch(one, oracle, c, inp, tol) {
        Issue.record("\(table) fused vs oracle, \(c): \(m)")
    }
    var worst = worstRatio(one, oracle, c, tol)
    if c.materializable, case .native(let v) = table {
        let mat = materializedAttention(
            query: inp.q, key: inp.k, value: inp.v, causal: c.causal, queryStart: c.queryStart, window: c.window, scale: inp.scale,
            layout: c.layout, compute: testCompute(.native(v), threads: 1))
        if let m = firstAttentionMismatch(mat, oracle, c, inp, tol) {
            Issue.record("\(table) materialized vs oracle, \(c): \(m)")
        }
        if let m = firstAttentionMismatch(one, mat, c, inp, tol, toleranceFactor: 2) {
            Issue.record("\(table) fused vs materialized, \(c): \(m)")
        }
        worst = max(worst, worstRatio(mat, oracle, c, tol))
    }
    return worst
}

/// Records the first few failures of a sweep in full and counts the rest, so that one bug
/// hit by many cases does not bury the report.
struct IssueBudget {
    let limit: Int
    var recorded = 0
    var suppressed = 0

    init(limit: Int = 6) { self.limit = limit }

    mutating func record(_ message: String) {
        if recorded < limit {
            Issue.record(Comment(rawValue: message))
            recorded += 1
        } else {
            suppressed += 1
        }
    }

    func finish(_ what: String) {
        if suppressed > 0 { Issue.record(Comment(rawValue: "\(what): \(suppressed) more failing cases not shown")) }
    }
}
