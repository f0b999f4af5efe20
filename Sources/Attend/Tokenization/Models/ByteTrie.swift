/// A trie over byte strings for common-prefix search (every vocabulary token that begins a
/// text), stored flat: per node a sorted edge list (nodes numbered breadth first); the root's
/// 256 children in a direct table.
/// Cost of a search: O(matched length x log fan-out).
struct ByteTrie: Sendable {
    /// Node n's edges are `edgeLabel[edgeStart[n] ..< edgeStart[n + 1]]`, sorted by label.
    private let edgeStart: [Int32]
    private let edgeLabel: [UInt8]
    private let edgeTarget: [Int32]
    /// The value stored at node n (-1: none).
    private let value: [Int32]
    private let root: [Int32]

    /// A trie holding `keys[i]` with value `values[i]` (later duplicates win). Empty keys are
    /// skipped. Built breadth first from the keys sorted bytewise (each node's keys are a
    /// contiguous range, its children the runs of equal next bytes), so no per-node tables
    /// are allocated. Cost: O(total key bytes x log keys).
    init(_ keys: [[UInt8]], values: [Int]) {
        // Sorted by bytes; equal keys keep their input order, so the last of them wins below.
        let order = keys.indices.filter { !keys[$0].isEmpty }.sorted { a, b in
            let x = keys[a], y = keys[b]
            if x.lexicographicallyPrecedes(y) { return true }
            if y.lexicographicallyPrecedes(x) { return false }
            return a < b
        }
        var starts: [Int32] = [0], labels: [UInt8] = [], targets: [Int32] = [], value: [Int32] = []
        // Queue of nodes: the range of `order` below them and their depth.
        var queue: [(lo: Int, hi: Int, depth: Int)] = [(0, order.count, 0)]
        var q = 0
        while q < queue.count {
            let (lo, hi, depth) = queue[q]
            q += 1
            var v: Int32 = -1
            var k = lo
            // Keys ending here sort first in the range.
            while k < hi && keys[order[k]].count == depth {
                v = Int32(values[order[k]])
                k += 1
            }
            value.append(v)
            while k < hi {
                let b = keys[order[k]][depth]
                var e = k + 1
                while e < hi && keys[order[e]][depth] == b { e += 1 }
                labels.append(b)
                targets.append(Int32(queue.count))
                queue.append((k, e, depth + 1))
                k = e
            }
            starts.append(Int32(labels.count))
        }
        var root = [Int32](repeating: -1, count: 256)
        for e in Int(starts[0])..<Int(starts[1]) { root[Int(labels[e])] = targets[e] }
        self.edgeStart = starts
        self.edgeLabel = labels
        self.edgeTarget = targets
        self.value = value
        self.root = root
    }

    /// Calls `body(length, value)` for each stored key that is a prefix of `text[start...]`,
    /// shortest first.
    @inline(__always)
    func prefixes(_ text: UnsafeBufferPointer<UInt8>, from start: Int, _ body: (Int, Int) -> Void) {
        guard start < text.count else { return }
        var node = Int(root[Int(text[start])])
        var i = start + 1
        while node >= 0 {
            let v = value[node]
            if v >= 0 { body(i - start, Int(v)) }
            guard i < text.count else { return }
            let b = text[i]
            var lo = Int(edgeStart[node]), hi = Int(edgeStart[node + 1])
            var next = -1
            while lo < hi {
                let mid = (lo + hi) >> 1
                let l = edgeLabel[mid]
                if l == b { next = Int(edgeTarget[mid]); break }
                if l < b { lo = mid + 1 } else { hi = mid }
            }
            node = next
            i += 1
        }
    }
}
