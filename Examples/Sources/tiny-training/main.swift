// tiny-training: a complete training run with Attend's training API, small enough to finish
// in seconds. It writes a freshly initialized 2-layer BERT (BertForPreTraining: masked
// language model plus next-sentence head) to a folder, opens it with TrainableModels.load,
// trains it with AdamW on a toy task (counting: the masked tokens of "a a+1 a+2 ..." follow
// from their neighbours) while printing the loss, saves it, and loads the saved folder again
// to check that it holds the trained weights.
import Attend
import ExampleSupport
import Foundation

let spec = CommandSpec(
    name: "tiny-training",
    summary: "train a tiny BERT for a few steps (loss going down), save it and load it again",
    synopsis: "[--output DIR] [--steps N] [--lr X] [--seed S] [--threads N]",
    options: [
        .value("--output", "DIR", "where the trained folder goes (default: a new temporary folder)"),
        .value("--steps", "N", "optimizer steps (default 80)"),
        .value("--lr", "X", "AdamW learning rate (default 0.005)"),
        .value("--seed", "S", "seed of the initial weights and of the masking (default 1)"),
        .value("--threads", "N", "threads for the kernels (default: all active cores)"),
    ],
    notes: [
        "The model: vocabulary 40 ([PAD] [UNK] [CLS] [SEP] [MASK] and 35 words), width 32, 2 layers,",
        "4 heads, positions 32. The data: 8 batches of 8 rows, cycled; each row is two runs of",
        "consecutive words with 3 of them masked, and a next-sentence label saying whether the",
        "second run continues the first.",
        "",
        "example:",
        "  tiny-training --steps 120 --output /tmp/tiny-bert",
    ])

/// A small deterministic generator (SplitMix64): the same seed gives the same run.
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func int(below n: Int) -> Int { Int(next() % UInt64(n)) }
    /// A standard normal draw (Box-Muller).
    mutating func normal() -> Float {
        let u1 = max(Double(next() >> 11) / Double(1 << 53), 1e-300), u2 = Double(next() >> 11) / Double(1 << 53)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}

let vocabulary = 40, width = 32, layers = 2, heads = 4, feedForward = 64, positions = 32
let (pad, cls, sep, mask, firstWord) = (0, 2, 3, 4, 5)
let words = vocabulary - firstWord

/// Writes a BertForPreTraining folder with weights drawn as `transformers` initializes them
/// (normal with standard deviation 0.02, LayerNorm 1 and 0, biases 0).
func writeInitialModel(to folder: URL, rng: inout SplitMix64) throws {
    let config = """
        {"architectures": ["BertForPreTraining"], "model_type": "bert", "vocab_size": \(vocabulary),
         "hidden_size": \(width), "num_hidden_layers": \(layers), "num_attention_heads": \(heads),
         "intermediate_size": \(feedForward), "max_position_embeddings": \(positions),
         "type_vocab_size": 2, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "pad_token_id": \(pad)}
        """
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    try Data(config.utf8).write(to: folder.appendingPathComponent("config.json"))

    var entries: [(String, Tensor)] = []
    func normal(_ name: String, _ shape: [Int]) {
        entries.append((name, Tensor(shape: shape, generating: { _ in 0.02 * rng.normal() })))
    }
    func constant(_ name: String, _ shape: [Int], _ value: Float) { entries.append((name, Tensor(repeating: value, shape: shape))) }
    func layerNorm(_ prefix: String) {
        constant(prefix + ".weight", [width], 1)
        constant(prefix + ".bias", [width], 0)
    }
    func linear(_ prefix: String, out: Int, in inputs: Int) {
        normal(prefix + ".weight", [out, inputs])
        constant(prefix + ".bias", [out], 0)
    }
    normal("bert.embeddings.word_embeddings.weight", [vocabulary, width])
    normal("bert.embeddings.position_embeddings.weight", [positions, width])
    normal("bert.embeddings.token_type_embeddings.weight", [2, width])
    layerNorm("bert.embeddings.LayerNorm")
    for l in 0..<layers {
        let p = "bert.encoder.layer.\(l)"
        for part in ["query", "key", "value"] { linear("\(p).attention.self.\(part)", out: width, in: width) }
        linear("\(p).attention.output.dense", out: width, in: width)
        layerNorm("\(p).attention.output.LayerNorm")
        linear("\(p).intermediate.dense", out: feedForward, in: width)
        linear("\(p).output.dense", out: width, in: feedForward)
        layerNorm("\(p).output.LayerNorm")
    }
    linear("bert.pooler.dense", out: width, in: width)
    linear("cls.predictions.transform.dense", out: width, in: width)
    layerNorm("cls.predictions.transform.LayerNorm")
    constant("cls.predictions.bias", [vocabulary], 0)  // the decoder weight is the word embeddings
    linear("cls.seq_relationship", out: 2, in: width)
    try SafeTensorsWriter.write(ParameterSet(entries), to: folder.appendingPathComponent("model.safetensors"))
}

/// The toy batches: `[CLS] run1 [SEP] run2 [SEP]`, runs of consecutive words; run2 continues
/// run1 (next-sentence label 0) or starts elsewhere (label 1); 3 words masked, their labels
/// the true words, every other label -100.
func makeBatches(count: Int, rows: Int, rng: inout SplitMix64) -> [TrainingBatch] {
    let half = 6, length = 2 * half + 3
    return (0..<count).map { _ in
        var ids: [[Int]] = [], types: [[Int]] = [], labels: [[Int]] = [], next: [Int] = []
        for _ in 0..<rows {
            let start = rng.int(below: words - 2 * half)
            let continues = rng.int(below: 2) == 0
            let second = continues ? start + half : rng.int(below: words - half)
            var row = [cls] + (0..<half).map { firstWord + start + $0 } + [sep]
            row += (0..<half).map { firstWord + second + $0 } + [sep]
            var rowLabels = [Int](repeating: -100, count: length)
            var masked = Set<Int>()
            while masked.count < 3 {
                let p = 1 + rng.int(below: length - 2)
                if row[p] != sep { masked.insert(p) }
            }
            for p in masked {
                rowLabels[p] = row[p]
                row[p] = mask
            }
            ids.append(row)
            types.append([Int](repeating: 0, count: half + 2) + [Int](repeating: 1, count: half + 1))
            labels.append(rowLabels)
            next.append(continues ? 0 : 1)
        }
        return TrainingBatch(inputIDs: ids, tokenTypeIDs: types, labels: labels, nextSentenceLabel: next)
    }
}

runCommand(spec) { args in
    let steps = try args.integer("--steps", default: 80, in: 1...100_000)
    let seed = try args.integer("--seed", default: 1, in: 0...Int.max)
    let threads = try args.integer("--threads", default: Compute.default.threads, in: 1...1024)
    let lrText = args.value("--lr") ?? "0.005"
    guard let learningRate = Float(lrText), learningRate.isFinite, learningRate > 0 else {
        throw ExampleError("--lr needs a positive number, got '\(lrText)'", usage: true)
    }
    Compute.default = try Compute.default.with(threads: threads)
    let output = args.value("--output").map { URL(fileURLWithPath: $0) }
        ?? FileManager.default.temporaryDirectory.appendingPathComponent("tiny-training-\(UUID().uuidString)")
    let initial = output.appendingPathComponent("initial"), trained = output.appendingPathComponent("trained")

    var rng = SplitMix64(state: UInt64(seed))
    try writeInitialModel(to: initial, rng: &rng)
    let batches = makeBatches(count: 8, rows: 8, rng: &rng)

    // The training loop of README's "Training" section.
    let model = try TrainableModels.load(directory: initial)
    var optimizer = try AdamW(parameters: model.parameters, learningRate: learningRate, weightDecay: 0.01)
    print("training \(model.parameters.scalarCount) parameters for \(steps) steps (AdamW, lr \(learningRate))")
    let start = Date()
    var losses: [Float] = []
    for step in 0..<steps {
        let batch = batches[step % batches.count]
        let loss = try model.loss(batch)  // forward; keeps what backward needs
        let grads = try model.backward()  // by transformers' parameter names
        var clipped = grads
        let norm = try clipGradientNorm(&clipped, maxNorm: 1)
        try optimizer.step(&model.parameters, gradients: clipped)
        losses.append(loss)
        if step % max(1, steps / 10) == 0 || step == steps - 1 {
            print(String(format: "step %4d  loss %.4f  grad norm %.3f", step, loss, norm))
        }
    }
    let seconds = Date().timeIntervalSince(start)
    let firstRound = losses.prefix(batches.count), lastRound = losses.suffix(batches.count)
    let before = firstRound.reduce(0, +) / Float(firstRound.count), after = lastRound.reduce(0, +) / Float(lastRound.count)
    print(String(format: "mean loss over %d batches: %.4f at the start, %.4f at the end (%.2f s)", batches.count, before, after, seconds))

    // Save, load the saved folder again, and check it computes the same loss.
    try model.save(to: trained)
    let reloaded = try TrainableModels.load(directory: trained)
    let check = batches[0]
    let lossTrained = try model.loss(check)
    _ = try model.backward()  // frees the activations kept by loss
    let lossReloaded = try reloaded.loss(check)
    _ = try reloaded.backward()
    print(String(format: "loss on batch 0: %.6f trained, %.6f after saving and loading %@", lossTrained, lossReloaded, trained.path))
    guard lossTrained == lossReloaded else {
        throw ExampleError("the reloaded model computes another loss (\(lossReloaded) instead of \(lossTrained))")
    }
    guard after < before else { throw ExampleError("the loss did not go down (\(before) -> \(after)); try more --steps") }
    // The trained encoder also loads for inference.
    let encoder = try BERTModel(directory: trained)
    print("the saved folder loads as a BERTModel too: \(encoder.config.numHiddenLayers) layers of width \(encoder.hiddenSize)")
}
