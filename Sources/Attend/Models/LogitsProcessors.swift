// The score edits that run between the model's logits and the choice of the next token, in
// Hugging Face's order and with its float32 arithmetic (transformers' logits_process.py),
// so that greedy and beam search with them pick the same ids as `generate`:
//
//   repetition penalty, no-repeat n-grams, min new tokens, forced BOS, forced EOS,
//   suppressed tokens, the custom processor; then, when sampling, the warpers:
//   temperature, top-k, top-p, min-p.
//
// Sampling draws from the final distribution with a seeded generator per row (SplitMix64),
// on the calling thread, so the same seed gives the same ids for any thread count.

import Foundation

/// The built-in logits processors in Hugging Face's order, then the custom one, then (when
/// `config.doSample`) the sampling warpers. `scores` is `[rows, V]`: raw logits in greedy
/// search and sampling, log-probabilities in beam search, as in Hugging Face.
/// Cost: O(rows * (V + sequence length * n)) for the n-gram ban, O(rows * V log V) for top-p.
func applyProcessors(_ scores: inout Tensor, sequences: [[Int]], promptLength: Int, maxLength: Int, config: GenerationConfig) {
    let v = scores.shape[1], rows = scores.shape[0]
    let length = sequences[0].count
    // Rows are independent: each runs through the processors in Hugging Face's order.
    // The processors that set single scores write them in place; the row is copied out only
    // for the penalty and the n-gram ban.
    func setting(_ r: Int, _ edit: (UnsafeMutablePointer<Float>) -> Void) {
        if v == 0 { return }
        scores.withUnsafeMutableBufferPointer { edit($0.baseAddress! + r * v) }
    }
    func forceOnly(_ r: Int, _ token: Int) {
        setting(r) { row in for j in 0..<v { row[j] = j == token ? 0 : -.infinity } }
    }
    for r in 0..<rows {
        if config.repetitionPenalty != 1 || config.noRepeatNGramSize > 0 {
            var row = scores.row(r)  // [V]
            if config.repetitionPenalty != 1 { applyRepetitionPenalty(&row, sequence: sequences[r], penalty: config.repetitionPenalty) }
            if config.noRepeatNGramSize > 0 {
                for t in bannedNGramTokens(sequences[r], size: config.noRepeatNGramSize) where t < v { row[t] = -.infinity }
            }
            scores.setRow(r, row)
        }
        if length - promptLength < config.minNewTokens {
            setting(r) { row in for e in config.eosTokenIDs where e >= 0 && e < v { row[e] = -.infinity } }
        }
        if let bos = config.forcedBOSTokenID, length == 1 { forceOnly(r, bos) }
        if let eos = config.forcedEOSTokenID, length == maxLength - 1 { forceOnly(r, eos) }
        if !config.suppressedTokenIDs.isEmpty {
            setting(r) { row in for t in config.suppressedTokenIDs where t >= 0 && t < v { row[t] = -.infinity } }
        }
    }
    config.logitsProcessor?(&scores, sequences)
    if config.doSample {
        for r in 0..<rows {
            var row = scores.row(r)
            applySamplingWarpers(&row, config: config, minTokensToKeep: 1)
            scores.setRow(r, row)
        }
    }
}

/// Hugging Face's `RepetitionPenaltyLogitsProcessor` on one row: every token of `sequence`
/// (once, however often it occurs; ids past the row ignored) gets `score * penalty` when
/// its score is negative, else `score / penalty`, in float32. Cost: O(sequence + V).
func applyRepetitionPenalty(_ row: inout [Float], sequence: [Int], penalty: Float) {
    var seen = [Bool](repeating: false, count: row.count)
    for t in sequence where t >= 0 && t < row.count && !seen[t] {
        seen[t] = true
        let x = row[t]
        row[t] = x < 0 ? x * penalty : x / penalty
    }
}

/// Hugging Face's `NoRepeatNGramLogitsProcessor`: the tokens that would complete an n-gram
/// of `size` tokens already in `sequence` (its last `size - 1` tokens match the start of an
/// earlier n-gram, whose last token is then banned). With size 1, every token seen so far.
/// Cost: O(sequence * size).
func bannedNGramTokens(_ sequence: [Int], size n: Int) -> [Int] {
    let length = sequence.count
    guard n >= 1, length >= n else { return [] }
    let prefixStart = length + 1 - n  // the last n - 1 tokens
    var banned: [Int] = []
    for start in 0...(length - n) {
        var match = true
        for k in 0..<(n - 1) where sequence[start + k] != sequence[prefixStart + k] {
            match = false
            break
        }
        if match { banned.append(sequence[start + n - 1]) }
    }
    return banned
}

/// The sampling warpers of Hugging Face in its order: temperature (`score / T` in float32),
/// top-k (keeps every score >= the k-th largest, k at least `minTokensToKeep`), top-p
/// (sorted ascending, softmax, running sum: drops the tokens whose running sum is <=
/// `1 - p`, keeping the `minTokensToKeep` most probable; among equal scores the lower id
/// counts as less probable, where PyTorch's unstable sort leaves the order unspecified), min-p (drops tokens whose
/// probability is below `minP` x the largest probability). Dropped scores become -inf.
/// Cost: O(V) plus O(V log V) for top-p.
func applySamplingWarpers(_ row: inout [Float], config: GenerationConfig, minTokensToKeep: Int) {
    let v = row.count
    guard v > 0 else { return }
    if config.temperature != 1 {
        let t = config.temperature
        for j in 0..<v { row[j] = row[j] / t }
    }
    if config.topK > 0 {
        let k = min(max(config.topK, minTokensToKeep), v)
        if k < v {
            let kth = kthLargest(row, k)
            for j in 0..<v where row[j] < kth { row[j] = -.infinity }
        }
    }
    if config.topP < 1 {
        let order = (0..<v).sorted { a, b in row[a] < row[b] || (row[a] == row[b] && a < b) }  // ascending
        let probs = softmax(order.map { row[$0] })
        let threshold = Float(1 - config.topP)  // PyTorch compares float32 with the scalar cast to float32
        var cumulative = 0.0  // PyTorch's CPU cumsum adds in double, storing float32
        for (i, j) in order.enumerated() {
            cumulative += Double(probs[i])
            if Float(cumulative) <= threshold && i < v - minTokensToKeep { row[j] = -.infinity }
        }
    }
    if let minP = config.minP {
        let probs = softmax(row)
        let top = probs.max() ?? 0
        let cut = Float(minP) * top
        let keep = Set(topIndices(probs, count: min(minTokensToKeep, v)))
        for j in 0..<v where probs[j] < cut && !keep.contains(j) { row[j] = -.infinity }
    }
}

/// The k-th largest value of `row` (1-based k <= count; NaN never counts), kept in a sorted
/// window of the k largest so far. Cost: O(V log k) plus O(k) per value that enters the
/// window (few for k much smaller than V).
private func kthLargest(_ row: [Float], _ k: Int) -> Float {
    var top: [Float] = []  // descending, at most k
    top.reserveCapacity(k + 1)
    for x in row where !x.isNaN {
        if top.count == k, x <= top[k - 1] { continue }
        var lo = 0, hi = top.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if top[mid] >= x { lo = mid + 1 } else { hi = mid }
        }
        top.insert(x, at: lo)
        if top.count > k { top.removeLast() }
    }
    return top.count == k ? top[k - 1] : -.infinity
}

/// `softmax(x)` in float32 as PyTorch computes it: `exp(x - max)`, divided by their sum (the
/// sum accumulated in double). All -inf gives NaN, as PyTorch does. Cost: O(n).
func softmax(_ x: [Float]) -> [Float] {
    let m = x.max() ?? 0
    let e = x.map { expf($0 - m) }
    var sum = 0.0
    for value in e { sum += Double(value) }
    let s = Float(sum)
    return e.map { $0 / s }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): a small, fast, well-mixed 64-bit generator,
/// deterministic for a seed on every platform. Sampling draws from it; benchmarks and tests
/// use it for reproducible data. Cost: a few integer operations per number.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The current state (the seed before the first draw).
    public var state: UInt64

    /// A generator whose first number comes from `state` (the seed).
    public init(state: UInt64) { self.state = state }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The random numbers of sampling: one ``SplitMix64`` stream per generated row, derived
/// from the seed and the row index, so a row's draws depend on neither the other rows nor
/// the number of threads.
struct SamplingRNG {
    private var generator: SplitMix64

    /// The stream of row `row` for `seed`.
    init(seed: UInt64, row: Int) {
        generator = SplitMix64(state: seed ^ (UInt64(bitPattern: Int64(row)) &* 0xD1B5_4A32_D192_ED03))
        _ = generator.next()
    }

    /// Uniform in [0, 1) with 53 random bits.
    mutating func nextUnit() -> Double { Double(generator.next() >> 11) * 0x1p-53 }
}

/// Draws one token from the distribution `softmax(scores)` (a row of processed scores;
/// -inf = never): the first token whose running probability passes a uniform draw. Returns
/// nil when no token has a positive finite probability (every token forbidden).
/// Cost: O(V).
func sampleToken(_ scores: [Float], rng: inout SamplingRNG) -> Int? {
    let probs = softmax(scores)
    var total = 0.0
    for p in probs where p.isFinite && p > 0 { total += Double(p) }
    guard total > 0 && total.isFinite else { return nil }
    let u = rng.nextUnit() * total
    var cumulative = 0.0
    var last: Int? = nil
    for (j, p) in probs.enumerated() where p.isFinite && p > 0 {
        cumulative += Double(p)
        last = j
        if u < cumulative { return j }
    }
    return last  // rounding: u landed past the final sum
}
