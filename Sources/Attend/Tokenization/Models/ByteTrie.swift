/// A trie over byte strings for common-prefix search (every vocabulary token that begins a
/// text), stored flat: per node a sorted edge list; the root's 256 children in a direct table.
/// Cost of a search: O(matched length x log fan-out).
struct ByteTrie: Sendable {
    /// Node n's edges are `edgeLabel[edgeStart[n] ..< edgeStart[n + 1]]`, sorted by label.
    private let edgeStart: [Int32]
    private let edgeLabel: [UInt8]
    private let edgeTarget: [Int32]
    /// The value stored at node n (-1: none).
    private let value: [Int32]
    private let root: [Int32]

    /// A trie holding `keys[i]` with value `values[i]` (later duplicates win). Empty keys are skipped.
    init(_ keys: [[UInt8]], values: [Int]) {
        // Build with per-node dictionaries, then flatten breadth first.
        var children: [[UInt8: Int]] = [[:]]
        var vals: [Int] = [-1]
        for (k, v) in zip(keys, values) where !k.isEmpty {
            var node = 0
            for b in k {
                if let c = children[node][b] {
                    node = c
                } else {
                    children.append([:])
                    vals.append(-1)
                    children[node][b] = children.count - 1
                    node = children.count - 1
                }
            }
            vals[node] = v
        }
        var order = [0], index = [Int](repeating: -1, count: children.count)
        index[0] = 0
        var q = 0
        while q < order.count {
            for (_, c) in children[order[q]].sorted(by: { $0.key < $1.key }) {
                index[c] = order.count
                order.append(c)
            }
            q += 1
        }
        var starts: [Int32] = [0], labels: [UInt8] = [], targets: [Int32] = [], value: [Int32] = []
        for old in order {
            for (b, c) in children[old].sorted(by: { $0.key < $1.key }) {
                labels.append(b)
                targets.append(Int32(index[c]))
            }
            starts.append(Int32(labels.count))
            value.append(Int32(vals[old]))
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
