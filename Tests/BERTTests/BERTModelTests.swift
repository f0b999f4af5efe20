// BERT against the golden `BertForPreTraining` of the shared golden data, copied into Fixtures/ (transformers 5.23:
// last hidden state, MLM and NSP logits), against an independent Double-precision reference
// written here from Hugging Face's modeling_bert (absolute, relative_key and
// relative_key_query positions, with padding), and its loading rules and errors.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

/// Named tensors held in memory.
struct MemorySource: TensorSource {
    var tensors: [String: Tensor]
    var tensorNames: [String] { tensors.keys.sorted() }
    func tensor(_ name: String) throws -> Tensor {
        guard let t = tensors[name] else { throw CheckpointError.missingTensor(name: name) }
        return t
    }
}

/// Every backend the tests run the model on: each supported native variant and Swift SIMD.
let allBackends: [Compute] =
    KernelVariant.supported.map { testCompute(.native($0), threads: 2) }
    + [testCompute(.swiftSIMD, threads: 2)]

enum PretrainingGolden {
    static let weights = try! SafeTensorsFile(contentsOf: Fixtures.url("bert_pretraining.safetensors"))
    static let io = try! SafeTensorsFile(contentsOf: Fixtures.url("bert_pretraining.io.safetensors"))
    static let config = try! BERTConfig(contentsOf: Fixtures.url("bert_pretraining.config.json"))

    static func rows(_ name: String) throws -> [[Int]] {
        let flat = try io.integers(name)
        let s = io.info(name)!.shape[1]
        return stride(from: 0, to: flat.count, by: s).map { Array(flat[$0..<($0 + s)]) }
    }
}

/// Max |a - b| over two tensors of the same shape.
func maxAbsDiff(_ a: Tensor, _ b: Tensor) -> Float {
    precondition(a.shape == b.shape, "maxAbsDiff: \(a.shape) vs \(b.shape)")
    return zip(a.scalars, b.scalars).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

@Suite("BERT model")
struct BERTModelTests {
    @Test("bert_pretraining: last hidden state, MLM and NSP logits within 1e-4 of transformers", arguments: allBackends)
    func pretrainingGolden(_ compute: Compute) throws {
        let g = PretrainingGolden.self
        #expect(
            g.config
                == BERTConfig(
                    vocabSize: 120, hiddenSize: 64, numHiddenLayers: 2, numAttentionHeads: 4,
                    intermediateSize: 128, maxPositionEmbeddings: 64))
        let model = try BERTModel(config: g.config, weights: g.weights)
        #expect(model.pooler != nil && model.maskedLMHead != nil && model.nextSentenceHead != nil)
        // The decoder is tied: the word embedding table itself, stored once.
        #expect(model.maskedLMHead!.decoder.weight == model.embeddings.word.weight)
        let out = try model.forward(
            inputIDs: try g.rows("in.input_ids"), tokenTypeIDs: try g.rows("in.token_type_ids"),
            attentionMask: try g.rows("in.attention_mask"), compute: compute)
        let hidden = out.lastHiddenState
        let mlm = try model.maskedLMLogits(hidden, compute: compute)
        let nsp = try model.nextSentenceLogits(try model.pooled(hidden, compute: compute), compute: compute)
        let eh = maxAbsDiff(hidden, try g.io.tensor("out.last_hidden_state"))
        let em = maxAbsDiff(mlm, try g.io.tensor("out.mlm_logits"))
        let en = maxAbsDiff(nsp, try g.io.tensor("out.nsp_logits"))
        #expect(eh <= 1e-4 && em <= 1e-4 && en <= 1e-4, "max abs error: hidden \(eh), MLM \(em), NSP \(en) (\(compute.backend))")
        print("bert_pretraining (\(compute.backend)): max abs error hidden \(eh), MLM \(em), NSP \(en)")
    }

    @Test("a model folder loads (config.json + model.safetensors), and the bare naming too")
    func folderAndBareNames() throws {
        let g = PretrainingGolden.self
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attend-bert-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(at: Fixtures.url("bert_pretraining.config.json"), to: dir.appendingPathComponent("config.json"))
        try FileManager.default.copyItem(at: Fixtures.url("bert_pretraining.safetensors"), to: dir.appendingPathComponent("model.safetensors"))
        let folder = try BERTModel(directory: dir)
        let ids = try g.rows("in.input_ids"), types = try g.rows("in.token_type_ids"), mask = try g.rows("in.attention_mask")
        let expected = try g.io.tensor("out.last_hidden_state")
        #expect(try maxAbsDiff(folder.forward(inputIDs: ids, tokenTypeIDs: types, attentionMask: mask).lastHiddenState, expected) <= 1e-4)

        // BertModel's naming (no "bert." prefix, no heads), plus the position_ids buffer.
        var bare: [String: Tensor] = [:]
        for name in g.weights.tensorNames where name.hasPrefix("bert.") {
            bare[String(name.dropFirst(5))] = try g.weights.tensor(name)
        }
        bare["embeddings.position_ids"] = Tensor(shape: [1, 64], generating: { Float($0) })
        let model = try BERTModel(config: g.config, weights: MemorySource(tensors: bare))
        #expect(model.maskedLMHead == nil && model.nextSentenceHead == nil && model.pooler != nil)
        #expect(try maxAbsDiff(model.forward(inputIDs: ids, tokenTypeIDs: types, attentionMask: mask).lastHiddenState, expected) <= 1e-4)
    }

    @Test("checkpoint problems throw errors naming the tensor")
    func checkpointErrors() throws {
        let g = PretrainingGolden.self
        var all: [String: Tensor] = [:]
        for name in g.weights.tensorNames { all[name] = try g.weights.tensor(name) }
        func load(_ t: [String: Tensor], ignoring: Bool = false) -> Error? {
            thrownError { _ = try BERTModel(config: g.config, weights: MemorySource(tensors: t), ignoringUnusedTensors: ignoring) }
        }
        var missing = all
        missing["bert.encoder.layer.1.output.dense.bias"] = nil
        #expect(load(missing) as? CheckpointError == .missingTensor(name: "bert.encoder.layer.1.output.dense.bias"))
        var wrong = all
        wrong["bert.encoder.layer.0.attention.self.key.weight"] = Tensor.zeros([64, 63])
        #expect(
            load(wrong) as? CheckpointError
                == .wrongShape(name: "bert.encoder.layer.0.attention.self.key.weight", expected: [64, 64], found: [64, 63]))
        var extra = all
        extra["classifier.weight"] = Tensor.zeros([3, 64])
        #expect(load(extra) as? CheckpointError == .unexpectedTensors(["classifier.weight"]))
        #expect(load(extra, ignoring: true) == nil)
        extra["bert.embeddings.position_ids"] = Tensor.zeros([1, 64])
        extra["bert.embeddings.token_type_ids"] = Tensor.zeros([1, 64])
        extra["classifier.weight"] = nil
        #expect(load(extra) == nil)
        #expect(load([:]) as? CheckpointError == .missingTensor(name: "embeddings.word_embeddings.weight"))
        var bad = g.config
        bad.numAttentionHeads = 5
        #expect((thrownError { _ = try BERTModel(config: bad, weights: MemorySource(tensors: all)) } as? CheckpointError) != nil)
    }

    @Test("bad config.json and corrupt weights throw one-line errors naming the file")
    func fileErrors() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attend-bertcfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let cfg = dir.appendingPathComponent("config.json")
        let cases: [(String, String)] = [
            ("{\"hidden_size\": 64, \"num_attention_heads\": 5}", "num_attention_heads"),
            ("{\"hidden_size\": -1}", "hidden_size"),
            ("{\"hidden_size\": 1.5}", "hidden_size"),
            ("{\"hidden_act\": \"quick_gelu\"}", "hidden_act"),
            ("{\"position_embedding_type\": \"rotary\"}", "position_embedding_type"),
            ("{\"model_type\": \"t5\"}", "model_type"),
            ("{\"layer_norm_eps\": \"tiny\"}", "layer_norm_eps"),
            ("{\"vocab_size\": 99999999999999999999}", "vocab_size"),
            ("{\"vocab_size\": 3,}", "invalid JSON"),
            ("[1, 2]", "expected an object"),
        ]
        for (text, needle) in cases {
            try Data(text.utf8).write(to: cfg)
            let e = thrownError { _ = try BERTConfig(contentsOf: cfg) }
            let err = try #require(e as? ModelFileError, "\(text)")
            #expect(err.description.contains(needle) && err.description.contains(cfg.path) && !err.description.contains("\n"), "\(err)")
        }
        // Unknown keys are ignored; absent ones take BertConfig's defaults.
        try Data("{\"some_new_key\": [1, {\"x\": null}], \"hidden_size\": 64, \"num_attention_heads\": 4}".utf8).write(to: cfg)
        #expect(try BERTConfig(contentsOf: cfg) == BERTConfig(hiddenSize: 64, numAttentionHeads: 4))
        // A truncated weights file.
        try FileManager.default.copyItem(
            at: Fixtures.url("bert_pretraining.config.json"), to: cfg.deletingLastPathComponent().appendingPathComponent("c2.json"))
        try FileManager.default.removeItem(at: cfg)
        try FileManager.default.moveItem(at: dir.appendingPathComponent("c2.json"), to: cfg)
        let full = try Data(contentsOf: Fixtures.url("bert_pretraining.safetensors"))
        try full.prefix(full.count / 2).write(to: dir.appendingPathComponent("model.safetensors"))
        #expect((thrownError { _ = try BERTModel(directory: dir) } as? SafeTensorsError) != nil)
        try FileManager.default.removeItem(at: dir.appendingPathComponent("model.safetensors"))
        #expect((thrownError { _ = try BERTModel(directory: dir) } as? SafeTensorsError) != nil)
        #expect((thrownError { _ = try BERTModel(directory: dir.appendingPathComponent("missing")) } as? ModelFileError) != nil)
    }

    @Test(
        "against an independent Double reference: absolute and relative positions, with padding",
        arguments: BERTConfig.PositionEmbeddingType.allCases)
    func naiveReference(_ type: BERTConfig.PositionEmbeddingType) throws {
        let config = BERTConfig(
            vocabSize: 50, hiddenSize: 24, numHiddenLayers: 2, numAttentionHeads: 3, intermediateSize: 40,
            maxPositionEmbeddings: 16, typeVocabSize: 2, positionEmbeddingType: type)
        let weights = randomBERTWeights(config, seed: caseSeed(7, type.hashValue & 0xFF))
        let model = try BERTModel(config: config, weights: weights)
        var rng = SeededRNG(seed: caseSeed(8))
        let lengths = [11, 7, 1]
        let seq = 11
        let ids = lengths.map { n in (0..<seq).map { $0 < n ? Int(rng.next() % 50) : 0 } }
        let types = lengths.map { n in (0..<seq).map { $0 < n && $0 > n / 2 ? 1 : 0 } }
        let mask = lengths.map { n in (0..<seq).map { $0 < n ? 1 : 0 } }
        for compute in allBackends {
            let got = try model.forward(inputIDs: ids, tokenTypeIDs: types, attentionMask: mask, compute: compute).lastHiddenState
            for b in 0..<ids.count {
                let n = lengths[b]
                let want = naiveBERT(config, weights, ids: Array(ids[b].prefix(n)), types: Array(types[b].prefix(n)))
                for i in 0..<n {
                    for c in 0..<config.hiddenSize {
                        let e = abs(Double(got[b, i, c]) - want[i][c])
                        #expect(e <= 2e-5, "\(type) \(compute.backend): row \(b) token \(i) dim \(c): \(got[b, i, c]) vs \(want[i][c])")
                        if e > 2e-5 { return }
                    }
                }
            }
        }
    }

    @Test("hidden states: the embedding output, then one per layer")
    func hiddenStates() throws {
        let config = BERTConfig(
            vocabSize: 30, hiddenSize: 16, numHiddenLayers: 3, numAttentionHeads: 2, intermediateSize: 32, maxPositionEmbeddings: 8)
        let model = try BERTModel(config: config, weights: randomBERTWeights(config, seed: 3))
        let out = try model.forward(inputIDs: [[1, 2, 3]], outputHiddenStates: true)
        #expect(out.hiddenStates.count == 4 && out.hiddenStates.last == out.lastHiddenState)
        #expect(try model.forward(inputIDs: [[1, 2, 3]]).hiddenStates.isEmpty)
        #expect(try model.forward(inputIDs: []).lastHiddenState.shape == [0, 0, 16])
    }

    @Test("input the model cannot take throws a one-line ModelInputError naming what and where")
    func badInputThrows() throws {
        let config = BERTConfig(
            vocabSize: 30, hiddenSize: 16, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 32, maxPositionEmbeddings: 8)
        let model = try BERTModel(config: config, weights: randomBERTWeights(config, seed: 4))
        func message(_ body: () throws -> Void) -> String? {
            do { try body() } catch let e as ModelInputError { return e.message } catch { return "another error: \(error)" }
            return nil
        }
        let cases: [(String, () throws -> Void)] = [
            ("token id 30 at [1][2] out of range 0..<30", { _ = try model.forward(inputIDs: [[1, 2, 3], [4, 5, 30]]) }),
            ("token id -1 at [0][0]", { _ = try model.forward(inputIDs: [[-1]]) }),
            ("rows have different lengths", { _ = try model.forward(inputIDs: [[1, 2], [3]]) }),
            ("sequence length 9 exceeds maxPositionEmbeddings 8", { _ = try model.forward(inputIDs: [Array(repeating: 1, count: 9)]) }),
            ("token type 2 at [0][1] out of range 0..<2", { _ = try model.forward(inputIDs: [[1, 2]], tokenTypeIDs: [[0, 2]]) }),
            ("attentionMask values must be 0 or 1", { _ = try model.forward(inputIDs: [[1, 2]], attentionMask: [[1, 5]]) }),
            ("attentionMask 1 x [1] must be [1][2]", { _ = try model.forward(inputIDs: [[1, 2]], attentionMask: [[1]]) }),
            ("no MLM head", { _ = try model.maskedLMLogits(Tensor.zeros([1, 2, 16])) }),
            ("no NSP head", { _ = try model.nextSentenceLogits(Tensor.zeros([1, 16])) }),
            ("hidden state [1, 2, 15] must be [batch, seq >= 1, 16]", { _ = try model.pooled(Tensor.zeros([1, 2, 15])) }),
        ]
        for (expected, body) in cases {
            let m = message(body)
            #expect(m?.contains(expected) == true && m?.contains("\n") == false, "expected '\(expected)', got \(m ?? "no error")")
        }
    }
}

// MARK: - Random weights and the Double reference

/// Random weights under Hugging Face's bare names, for `config`.
func randomBERTWeights(_ c: BERTConfig, seed: UInt64) -> MemorySource {
    var rng = SeededRNG(seed: seed)
    var t: [String: Tensor] = [:]
    let d = c.hiddenSize
    func put(_ name: String, _ shape: [Int], scale: Float = 0.5, offset: Float = 0) {
        t[name] = Tensor(shape: shape, generating: { _ in offset + scale * rng.nextFloat(in: -1...1) })
    }
    put("embeddings.word_embeddings.weight", [c.vocabSize, d])
    put("embeddings.position_embeddings.weight", [c.maxPositionEmbeddings, d])
    put("embeddings.token_type_embeddings.weight", [c.typeVocabSize, d])
    put("embeddings.LayerNorm.weight", [d], scale: 0.2, offset: 1)
    put("embeddings.LayerNorm.bias", [d], scale: 0.1)
    for i in 0..<c.numHiddenLayers {
        let l = "encoder.layer.\(i)."
        for p in ["query", "key", "value"] {
            put(l + "attention.self.\(p).weight", [d, d], scale: 0.3)
            put(l + "attention.self.\(p).bias", [d], scale: 0.1)
        }
        if c.positionEmbeddingType != .absolute {
            put(l + "attention.self.distance_embedding.weight", [2 * c.maxPositionEmbeddings - 1, c.headDim], scale: 0.5)
        }
        put(l + "attention.output.dense.weight", [d, d], scale: 0.3)
        put(l + "attention.output.dense.bias", [d], scale: 0.1)
        put(l + "attention.output.LayerNorm.weight", [d], scale: 0.2, offset: 1)
        put(l + "attention.output.LayerNorm.bias", [d], scale: 0.1)
        put(l + "intermediate.dense.weight", [c.intermediateSize, d], scale: 0.3)
        put(l + "intermediate.dense.bias", [c.intermediateSize], scale: 0.1)
        put(l + "output.dense.weight", [d, c.intermediateSize], scale: 0.3)
        put(l + "output.dense.bias", [d], scale: 0.1)
        put(l + "output.LayerNorm.weight", [d], scale: 0.2, offset: 1)
        put(l + "output.LayerNorm.bias", [d], scale: 0.1)
    }
    put("pooler.dense.weight", [d, d], scale: 0.3)
    put("pooler.dense.bias", [d], scale: 0.1)
    return MemorySource(tensors: t)
}

/// Hugging Face's BertModel on one unpadded sequence, in Double, straight from the formulas
/// of modeling_bert (eager attention): the independent oracle of the naive-reference test.
func naiveBERT(_ c: BERTConfig, _ w: MemorySource, ids: [Int], types: [Int]) -> [[Double]] {
    let d = c.hiddenSize, n = ids.count, heads = c.numAttentionHeads, dh = c.headDim, m = c.maxPositionEmbeddings
    func get(_ name: String) -> [Double] { try! w.tensor(name).scalars.map(Double.init) }
    func linear(_ x: [[Double]], _ prefix: String, _ out: Int) -> [[Double]] {
        let wt = get(prefix + ".weight"), b = get(prefix + ".bias"), k = x[0].count
        var y: [[Double]] = []
        for row in x {
            var r = [Double](repeating: 0, count: out)
            for o in 0..<out {
                var s: Double = b[o]
                for j in 0..<k { s += wt[o * k + j] * row[j] }
                r[o] = s
            }
            y.append(r)
        }
        return y
    }
    func layerNorm(_ x: [[Double]], _ prefix: String) -> [[Double]] {
        let g = get(prefix + ".weight"), b = get(prefix + ".bias")
        var y: [[Double]] = []
        for row in x {
            let count = Double(row.count)
            var mean = 0.0
            for v in row { mean += v }
            mean /= count
            var variance = 0.0
            for v in row { variance += (v - mean) * (v - mean) }
            variance /= count
            let inv = 1 / (variance + Double(c.layerNormEps)).squareRoot()
            var r: [Double] = []
            for j in row.indices { r.append((row[j] - mean) * inv * g[j] + b[j]) }
            y.append(r)
        }
        return y
    }
    let we = get("embeddings.word_embeddings.weight"), pe = get("embeddings.position_embeddings.weight")
    let te = get("embeddings.token_type_embeddings.weight")
    let absolute = c.positionEmbeddingType == .absolute
    var x: [[Double]] = []
    for i in 0..<n {
        var row: [Double] = []
        for j in 0..<d {
            let word: Double = we[ids[i] * d + j], segment: Double = te[types[i] * d + j]
            let position: Double = absolute ? pe[i * d + j] : 0
            row.append(word + segment + position)
        }
        x.append(row)
    }
    x = layerNorm(x, "embeddings.LayerNorm")
    for layer in 0..<c.numHiddenLayers {
        let l = "encoder.layer.\(layer)."
        let q = linear(x, l + "attention.self.query", d), k = linear(x, l + "attention.self.key", d)
        let v = linear(x, l + "attention.self.value", d)
        let dist = c.positionEmbeddingType == .absolute ? [] : get(l + "attention.self.distance_embedding.weight")
        var ctx = [[Double]](repeating: [Double](repeating: 0, count: d), count: n)
        for h in 0..<heads {
            for i in 0..<n {
                var scores = (0..<n).map { j -> Double in
                    var s = (0..<dh).reduce(0.0) { $0 + q[i][h * dh + $1] * k[j][h * dh + $1] }
                    if c.positionEmbeddingType != .absolute {
                        let e = (i - j + m - 1) * dh
                        s += (0..<dh).reduce(0.0) { $0 + q[i][h * dh + $1] * dist[e + $1] }
                        if c.positionEmbeddingType == .relativeKeyQuery {
                            s += (0..<dh).reduce(0.0) { $0 + k[j][h * dh + $1] * dist[e + $1] }
                        }
                    }
                    return s / Double(dh).squareRoot()
                }
                let mx = scores.max()!
                scores = scores.map { exp($0 - mx) }
                let sum = scores.reduce(0, +)
                for j in 0..<n {
                    for t in 0..<dh { ctx[i][h * dh + t] += scores[j] / sum * v[j][h * dh + t] }
                }
            }
        }
        let a = linear(ctx, l + "attention.output.dense", d)
        let h1 = layerNorm(zip(a, x).map { zip($0, $1).map { $0 + $1 } }, l + "attention.output.LayerNorm")
        let f = linear(h1, l + "intermediate.dense", c.intermediateSize).map { $0.map { $0 / 2 * (1 + erf($0 / 2.0.squareRoot())) } }
        let y = linear(f, l + "output.dense", d)
        x = layerNorm(zip(y, h1).map { zip($0, $1).map { $0 + $1 } }, l + "output.LayerNorm")
    }
    return x
}

@Suite("BERT unpadded batches")
struct UnpaddedTests {
    @Test(
        "stacked sequences of different lengths give the padded batch's real rows",
        arguments: BERTConfig.PositionEmbeddingType.allCases)
    func unpaddedEqualsPadded(_ type: BERTConfig.PositionEmbeddingType) throws {
        // Lengths over 128 take the fused kernel (one call per sequence), shorter ones the
        // micro-kernel path; relative positions the materialized one.
        let config = BERTConfig(
            vocabSize: 40, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 24,
            maxPositionEmbeddings: 160, positionEmbeddingType: type)
        let model = try BERTModel(config: config, weights: randomBERTWeights(config, seed: 11))
        var rng = SeededRNG(seed: 12)
        for lengths in [[5, 1, 17, 9], [150, 3, 131]] {
            let ids = lengths.map { n in (0..<n).map { _ in Int(rng.next() % 40) } }
            let types = lengths.map { n in (0..<n).map { $0 > n / 2 ? 1 : 0 } }
            let longest = lengths.max()!
            let pad = { (rows: [[Int]], v: Int) in rows.map { $0 + Array(repeating: v, count: longest - $0.count) } }
            let mask = lengths.map { n in (0..<longest).map { $0 < n ? 1 : 0 } }
            for compute in allBackends {
                let padded = try model.forward(inputIDs: pad(ids, 0), tokenTypeIDs: pad(types, 0), attentionMask: mask, compute: compute)
                    .lastHiddenState
                let (stacked, rows) = try model.forwardUnpadded(ids, tokenTypeIDs: types, compute: compute)
                #expect(
                    stacked.shape == [lengths.reduce(0, +), 16]
                        && rows.starts == [0] + lengths.dropLast().reduce(into: [Int]()) { $0.append(($0.last ?? 0) + $1) })
                var worst: Float = 0
                for (b, n) in lengths.enumerated() {
                    for i in 0..<n {
                        for c in 0..<16 { worst = max(worst, abs(stacked[rows.starts[b] + i, c] - padded[b, i, c])) }
                    }
                }
                #expect(worst <= 2e-5, "\(type) \(compute.backend) lengths \(lengths): max abs difference \(worst)")
            }
        }
    }
}
