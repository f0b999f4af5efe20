import Attend

// The synthetic tasks of the position-encoding experiment. Each one can only be solved by
// knowing where tokens are (or how far apart), and each can be generated at any length, so
// a model trained on length 64 can be asked the same question at 128, 256 and 512.
//
// A sequence is a list of token ids and, for each position, the id the model should predict
// there (`ignored` where nothing is asked). The models are causal: a position sees itself
// and what came before it, never what follows.

/// One example: the input tokens and, per position, the answer (or `PositionTask.ignored`).
package struct TaskExample: Sendable, Equatable {
    /// Input token ids.
    package var tokens: [Int]
    /// The expected output id at each position; `PositionTask.ignored` where none is asked.
    package var labels: [Int]
}

/// A synthetic task that needs positions.
package enum PositionTask: String, CaseIterable, Sendable {
    /// Copy the token `copyDistance` places back: at position i >= k, answer `tokens[i - k]`.
    /// Pure relative position: the answer is always at the same distance.
    case copy
    /// Bracket matching: opening brackets come in `bracketKinds` kinds, every closing bracket
    /// is the same token; at each closing bracket, answer the kind of the opening bracket it
    /// matches. Needs the nesting structure: which earlier opener is still unmatched.
    case brackets
    /// Associative recall across a gap: `recallPairs` key-value pairs at the start (each pair
    /// one token, so a single attention hop can read it), filler, then `recallQueries` query
    /// tokens at the end, each naming a key; at each query, answer the value stored with
    /// that key. The gap grows with the length: the task asks whether attention still reaches
    /// back that far.
    case recall

    /// The label of positions that ask nothing (PyTorch's `ignore_index`).
    package static let ignored = -100

    /// The copy distance k.
    package static let copyDistance = 8
    /// Distinct tokens of the copy task.
    package static let copySymbols = 16
    /// Kinds of opening bracket.
    package static let bracketKinds = 8
    /// The deepest nesting the bracket generator makes.
    package static let bracketMaxDepth = 16
    /// Key-value pairs at the start of a recall sequence.
    package static let recallPairs = 4
    /// Distinct keys, and distinct values, of the recall task.
    package static let recallSymbols = 8
    /// Queries at the end of a recall sequence.
    package static let recallQueries = 8

    /// Size of the vocabulary (inputs and answers share it).
    package var vocabularySize: Int {
        switch self {
        case .copy: return Self.copySymbols
        case .brackets: return Self.bracketKinds + 1  // kinds 0..<8 open, 8 closes
        case .recall: return Self.recallSymbols * (Self.recallSymbols + 2) + 1  // values, pairs, queries, filler
        }
    }

    /// The shortest sequence the task can be generated at.
    package var minimumLength: Int {
        switch self {
        case .copy: return Self.copyDistance + 1
        case .brackets: return 2
        case .recall: return Self.recallPairs + Self.recallQueries
        }
    }

    /// One random example of `length` tokens (at least `minimumLength`).
    package func example(length: Int, using rng: inout some RandomNumberGenerator) -> TaskExample {
        precondition(length >= minimumLength, "\(self): length \(length) is below the minimum \(minimumLength)")
        switch self {
        case .copy: return Self.copyExample(length: length, using: &rng)
        case .brackets: return Self.bracketExample(length: length, using: &rng)
        case .recall: return Self.recallExample(length: length, using: &rng)
        }
    }

    /// `count` examples of `length` tokens.
    package func batch(count: Int, length: Int, using rng: inout some RandomNumberGenerator) -> [TaskExample] {
        (0..<count).map { _ in example(length: length, using: &rng) }
    }

    private static func copyExample(length: Int, using rng: inout some RandomNumberGenerator) -> TaskExample {
        let tokens = (0..<length).map { _ in Int.random(in: 0..<copySymbols, using: &rng) }
        let labels = (0..<length).map { $0 >= copyDistance ? tokens[$0 - copyDistance] : ignored }
        return TaskExample(tokens: tokens, labels: labels)
    }

    /// The closing-bracket token of the bracket task.
    package static var closeToken: Int { bracketKinds }

    private static func bracketExample(length: Int, using rng: inout some RandomNumberGenerator) -> TaskExample {
        // A random walk on the depth: open at depth 0, close at the maximum depth, otherwise
        // either with equal odds. A stack of the open kinds gives each closer its answer.
        var tokens: [Int] = [], labels: [Int] = [], open: [Int] = []
        for _ in 0..<length {
            let opens = open.isEmpty || (open.count < bracketMaxDepth && Bool.random(using: &rng))
            if opens {
                let kind = Int.random(in: 0..<bracketKinds, using: &rng)
                open.append(kind)
                tokens.append(kind)
                labels.append(ignored)
            } else {
                tokens.append(closeToken)
                labels.append(open.removeLast())
            }
        }
        return TaskExample(tokens: tokens, labels: labels)
    }

    /// The recall task's vocabulary: answers (values) `0..<8`, then the pair tokens (key k
    /// holding value v is `pairToken(k, v)`), the query tokens, and the filler.
    package static func pairToken(key: Int, value: Int) -> Int { recallSymbols + key * recallSymbols + value }
    /// The token asking for key `key`'s value.
    package static func queryToken(key: Int) -> Int { recallSymbols * (recallSymbols + 1) + key }
    /// The filler token of the recall task.
    package static var fillerToken: Int { recallSymbols * (recallSymbols + 2) }

    private static func recallExample(length: Int, using rng: inout some RandomNumberGenerator) -> TaskExample {
        // Distinct keys, any values.
        let keys = Array((0..<recallSymbols).shuffled(using: &rng).prefix(recallPairs))
        let values = keys.map { _ in Int.random(in: 0..<recallSymbols, using: &rng) }
        var tokens = zip(keys, values).map { pairToken(key: $0, value: $1) }
        tokens += Array(repeating: fillerToken, count: length - tokens.count - recallQueries)
        var labels = Array(repeating: ignored, count: tokens.count)
        for _ in 0..<recallQueries {
            let i = Int.random(in: 0..<recallPairs, using: &rng)
            tokens.append(queryToken(key: keys[i]))
            labels.append(values[i])
        }
        return TaskExample(tokens: tokens, labels: labels)
    }
}
