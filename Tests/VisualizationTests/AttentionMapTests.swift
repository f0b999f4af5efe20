// Attention probabilities and hidden states against transformers (`output_attentions`,
// `output_hidden_states`) on Fixtures/bert, the heatmap and bar chart drawings, and the
// `attend context` / `attend attention-map` commands run end to end on the same folder, and
// attention-map on Fixtures/t5_text (--part encoder, decoder, cross) and Fixtures/llama_text
// (copies of the tokenizer and transformer tests' folders).
// Fixtures/attention_golden.json comes from make_attention_fixture.py.
import AttendTestSupport
import Foundation
import Testing

@testable import Attend

/// The fixture folder and transformers' numbers for it.
struct AttentionGolden {
    let folder: URL
    let json: [String: Any]

    init() throws {
        folder = try #require(Bundle.module.url(forResource: "bert", withExtension: nil, subdirectory: "Fixtures"))
        let url = try #require(Bundle.module.url(forResource: "attention_golden", withExtension: "json", subdirectory: "Fixtures"))
        json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    func ints(_ key: String) -> [[Int]] { (json[key] as? [[NSNumber]] ?? []).map { $0.map(\.intValue) } }
    func floats(_ key: String) -> [[Float]] { (json[key] as? [[NSNumber]] ?? []).map { $0.map(\.floatValue) } }
}

/// The largest |a - b| (infinity when the lengths differ).
func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count else { return .infinity }
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

@Test func attentionProbabilitiesMatchTransformers() throws {
    let g = try AttentionGolden()
    let model = try BERTModel(directory: g.folder)
    let ids = g.ints("input_ids"), mask = g.ints("attention_mask")
    #expect(Set(mask.map { $0.reduce(0, +) }).count == 2, "the fixture batch must be padded")
    let out = try model.forward(inputIDs: ids, attentionMask: mask, outputHiddenStates: true, outputAttentions: [0, 1])
    let shape = (g.json["attention_shape"] as? [Int]) ?? []
    let expected = g.floats("attentions")
    #expect(out.attentions.keys.sorted() == [0, 1])
    for layer in 0..<2 {
        let got = try #require(out.attentions[layer])
        #expect(got.shape == shape)
        #expect(maxDifference(got.scalars, expected[layer]) <= 1e-5, "layer \(layer)")
        // Padded keys get exactly 0, and every row sums to 1.
        let (b, h, s) = (shape[0], shape[1], shape[2])
        let p = got.scalars
        for bi in 0..<b {
            for hi in 0..<h {
                for q in 0..<s {
                    let row = p[(((bi * h + hi) * s + q) * s)..<(((bi * h + hi) * s + q + 1) * s)]
                    #expect(abs(row.reduce(0, +) - 1) < 1e-5)
                    for k in 0..<s where mask[bi][k] == 0 { #expect(row[row.startIndex + k] == 0) }
                }
            }
        }
    }
    let hidden = g.floats("hidden_states")
    #expect(out.hiddenStates.count == 3)
    for (l, state) in out.hiddenStates.enumerated() {
        #expect(maxDifference(state.scalars, hidden[l]) <= 1e-5, "hidden state \(l)")
    }
}

@Test func askingForAttentionsLeavesTheForwardPassAlone() throws {
    let g = try AttentionGolden()
    let model = try BERTModel(directory: g.folder)
    let ids = g.ints("input_ids"), mask = g.ints("attention_mask")
    let plain = try model.forward(inputIDs: ids, attentionMask: mask)
    let asked = try model.forward(inputIDs: ids, attentionMask: mask, outputAttentions: [1])
    #expect(plain.attentions.isEmpty && asked.attentions.keys.sorted() == [1])
    #expect(bitwiseEqual(plain.lastHiddenState.scalars, asked.lastHiddenState.scalars))
    #expect(throws: ModelInputError.self) { try model.forward(inputIDs: ids, attentionMask: mask, outputAttentions: [2]) }
    #expect(throws: ModelInputError.self) { try model.forward(inputIDs: ids, attentionMask: mask, outputAttentions: [-1]) }
}

@Test func forwardAsyncReturnsTheAskedAttentions() async throws {
    let g = try AttentionGolden()
    let model = try BERTModel(directory: g.folder)
    let ids = g.ints("input_ids"), mask = g.ints("attention_mask")
    let sync = try model.forward(inputIDs: ids, attentionMask: mask, outputAttentions: [0])
    let detached = try await model.forwardAsync(inputIDs: ids, attentionMask: mask, outputAttentions: [0])
    #expect(detached.attentions.keys.sorted() == [0])
    #expect(bitwiseEqual(try #require(detached.attentions[0]).scalars, try #require(sync.attentions[0]).scalars))
}

@Test func heatmapDrawsEveryPanelWithEscapedLabels() throws {
    let labels = ["<s>", "a&b", "\"q\"", "</svg>"]
    let n = labels.count
    let panels = (0..<3).map { h in HeatmapPanel(caption: "head \(h)", values: (0..<(n * n)).map { Float($0 + h) / 20 }) }
    var drawing = Heatmap(title: "layer <2> & more", rowLabels: labels, columnLabels: labels, panels: panels)
    drawing.footnote = "rows: queries & columns: keys"
    let parsed = try #require(parseSVG(drawing.document().render()))
    #expect(parsed.texts.contains("rows: queries & columns: keys"))
    #expect(parsed.texts.filter { $0.hasPrefix("head ") }.count == 3)
    #expect(parsed.texts.contains("layer <2> & more"))
    for label in labels { #expect(parsed.texts.filter { $0 == label }.count == 2 * 3, "\(label): once per axis per panel") }
    #expect(parsed.texts.contains { $0.hasPrefix("min ") } && parsed.texts.contains { $0.hasPrefix("max ") })
    // 3 panels of n² cells, a frame each, the background, the legend's 32 steps and frame.
    #expect(parsed.elements.filter { $0 == "rect" }.count == 3 * (n * n + 1) + 1 + 33)
    // One panel drawn alone; NaN cells stay well-formed.
    let single = Heatmap(title: "t", rowLabels: ["x"], columnLabels: ["y"], panels: [HeatmapPanel(caption: "head 0", values: [.nan])])
    #expect(parseSVG(single.document().render()).map { $0.texts.filter { $0.hasPrefix("head ") }.count } == 1)
}

@Test func barChartDrawsEveryBar() throws {
    var chart = BarChart(title: "GEMM <fp32>", unit: "GFLOP/s", bars: [("avx2 & fma", 120.5), ("ref", 3.25), ("broken", .nan)])
    chart.notes = ["80% of peak"]
    let parsed = try #require(parseSVG(chart.document().render()))
    #expect(parsed.texts.contains("GEMM <fp32>") && parsed.texts.contains("avx2 & fma") && parsed.texts.contains("n/a"))
    #expect(parsed.texts.contains("120.5 (80% of peak)") && parsed.texts.contains("3.25"))
    #expect(parsed.elements.filter { $0 == "rect" }.count == 1 + 2)  // background + two finite bars
}

/// Runs the built `attend` with `arguments`.
func runAttend(_ arguments: [String]) throws -> ChildResult {
    let tool = builtProduct("attend", besides: Bundle.module)
    try #require(FileManager.default.isExecutableFile(atPath: tool), "attend is not built at \(tool)")
    return try runChild(tool, arguments, timeout: 120)
}

@Test func contextCommandMatchesTransformers() throws {
    let g = try AttentionGolden()
    let golden = try #require(g.json["context"] as? [String: Any])
    let word = try #require(golden["word"] as? String), texts = try #require(golden["sentences"] as? [String])
    let r = try runAttend(["context", "--model", g.folder.path, "--word", word, "--json"] + texts)
    #expect(r.status == 0, "\(r)")
    let line = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    #expect((line["pieces"] as? [[String]]) == (golden["pieces"] as? [[String]]))
    #expect((line["pairs"] as? [[Int]]) == (golden["pairs"] as? [[Int]]))
    let got = (line["layers"] as? [[Double]] ?? []).map { $0.map(Float.init) }
    let expected = (golden["layers"] as? [[Double]] ?? []).map { $0.map(Float.init) }
    #expect(got.count == 3 && got.count == expected.count)
    for (a, b) in zip(got, expected) { #expect(maxDifference(a, b) <= 1e-5, "\(a) vs \(b)") }
    let input = (line["input"] as? [Double] ?? []).map(Float.init)
    #expect(maxDifference(input, (golden["input"] as? [Double] ?? []).map(Float.init)) <= 1e-5)

    // The table names every layer; a text without the word is named in the error.
    let table = try runAttend(["context", "--model", g.folder.path, "--word", word] + texts)
    #expect(table.status == 0 && table.stdout.contains("input embedding") && table.stdout.contains("2 (last)"), "\(table)")
    let absent = try runAttend(["context", "--model", g.folder.path, "--word", "cat", "the cat sat.", "the dog sat."])
    #expect(absent.status == 1 && absent.stderr.contains("text 2 \"the dog sat.\""), "\(absent)")
    let one = try runAttend(["context", "--model", g.folder.path, "--word", "cat", "the cat sat."])
    #expect(one.status == 2, "\(one)")
}

@Test func attentionMapCommandDrawsAndPrints() throws {
    let g = try AttentionGolden()
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attend-map-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let text = "The cat sat on the mat."
    let all = dir.appendingPathComponent("all.svg"), one = dir.appendingPathComponent("one.svg")
    let r = try runAttend(["attention-map", "--model", g.folder.path, "--layer", "0", "--svg", all.path, "--json", text])
    #expect(r.status == 0, "\(r)")
    let parsed = try #require(parseSVG(try String(contentsOf: all, encoding: .utf8)))
    #expect(parsed.texts.filter { $0.hasPrefix("head ") }.count == 4)
    #expect(["[CLS]", "cat", "mat", "[SEP]"].allSatisfy(parsed.texts.contains))
    #expect(parsed.texts.contains { $0.contains("layer 0") })

    // The JSON equals the library's probabilities (the first text of the golden batch is this one).
    let line = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    let maps = try #require(line["attention"] as? [[[Double]]])
    let model = try BERTModel(directory: g.folder)
    let ids = g.ints("input_ids")[0], mask = g.ints("attention_mask")[0]
    let real = Array(ids.prefix(mask.reduce(0, +)))
    let p = try #require(try model.forward(inputIDs: [real], outputAttentions: [0]).attentions[0]).scalars
    #expect(maps.count == 4 && maps.allSatisfy { $0.count == real.count })
    #expect(maxDifference(maps.flatMap { $0.flatMap { $0.map(Float.init) } }, p) == 0)

    let head = try runAttend(["attention-map", "--model", g.folder.path, "--head", "2", "--svg", one.path, text])
    #expect(head.status == 0, "\(head)")
    let single = try #require(parseSVG(try String(contentsOf: one, encoding: .utf8)))
    #expect(single.texts.filter { $0.hasPrefix("head ") } == ["head 2"])
    let badHead = try runAttend(["attention-map", "--model", g.folder.path, "--head", "4", "--svg", one.path, text])
    #expect(badHead.status == 2 && badHead.stderr.contains("heads 0..<4"), "\(badHead)")
    let notSVG = try runAttend(["attention-map", "--model", g.folder.path, "--svg", dir.appendingPathComponent("x").path, text])
    #expect(notSVG.status == 2, "\(notSVG)")
}

/// Fixtures/NAME of this test bundle (t5_text: a tiny T5 with its tokenizer; llama_text: a
/// tiny Llama, grouped-query attention 4/2, with its tokenizer).
func visualizationFixture(_ name: String) throws -> URL {
    try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"), "Fixtures/\(name) is missing")
}

@Test func attentionMapCommandDrawsT5Parts() throws {
    let folder = try visualizationFixture("t5_text")
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attend-map-t5-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let text = "The house is small."
    let svg = dir.appendingPathComponent("cross.svg")
    let r = try runAttend(["attention-map", "--model", folder.path, "--part", "cross", "--target", "Das Haus", "--svg", svg.path, "--json", text])
    #expect(r.status == 0, "\(r)")
    let line = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    let ids = try #require(line["ids"] as? [Int]), target = try #require(line["target_ids"] as? [Int])
    let tokens = try #require(line["tokens"] as? [String]), targetTokens = try #require(line["target_tokens"] as? [String])
    #expect(line["part"] as? String == "cross" && line["layer"] as? Int == 1)
    let model = try TextToTextModel(directory: folder)
    #expect(ids == model.tokenizer.encode(text).ids)
    #expect(target == [model.model.decoderStartTokenID] + model.tokenizer.encode("Das Haus", addSpecialTokens: false).ids)
    // The printed map is the library's cross-attention, query = target position, key = source token.
    let maps = try #require(line["attention"] as? [[[Double]]])
    let expected = try #require(try model.model.forward(sources: [ids], targets: [target], outputCrossAttentions: [1]).crossAttentions[1])
    #expect(expected.shape == [1, 4, target.count, ids.count])
    #expect(maps.count == 4 && maps.allSatisfy { $0.count == target.count && $0.allSatisfy { $0.count == ids.count } })
    #expect(maxDifference(maps.flatMap { $0.flatMap { $0.map(Float.init) } }, expected.scalars) == 0)
    let parsed = try #require(parseSVG(try String(contentsOf: svg, encoding: .utf8)))
    #expect(parsed.texts.filter { $0.hasPrefix("head ") }.count == 4)
    #expect(parsed.texts.contains { $0.contains("cross-attention") && $0.contains("layer 1") })
    // Every head's panel labels its rows with the target and its columns with the source.
    for label in Set(tokens + targetTokens) {
        let times = tokens.filter { $0 == label }.count + targetTokens.filter { $0 == label }.count
        #expect(parsed.texts.filter { $0 == label }.count == 4 * times, "\(label)")
    }

    // The encoder by default (one head drawn), and the decoder reading what the model generates.
    let one = dir.appendingPathComponent("encoder.svg")
    let encoder = try runAttend(["attention-map", "--model", folder.path, "--layer", "0", "--head", "3", "--svg", one.path, text])
    #expect(encoder.status == 0, "\(encoder)")
    let single = try #require(parseSVG(try String(contentsOf: one, encoding: .utf8)))
    #expect(single.texts.filter { $0.hasPrefix("head ") } == ["head 3"])
    #expect(single.texts.contains { $0.contains("encoder self-attention") && $0.contains("layer 0") })
    let decoder = try runAttend([
        "attention-map", "--model", folder.path, "--part", "decoder", "--json", "--ids", ids.map(String.init).joined(separator: ","),
    ])
    #expect(decoder.status == 0, "\(decoder)")
    let d = try #require(try JSONSerialization.jsonObject(with: Data(decoder.stdout.utf8)) as? [String: Any])
    let generated = try #require(d["target_ids"] as? [Int])
    var greedy = model.model.generationDefaults
    greedy.numBeams = 1
    let row = try model.model.generate(sources: [ids], config: greedy).sequences[0]
    #expect(generated.first == model.model.decoderStartTokenID && Array(row.prefix(generated.count)) == generated)
    let causal = try #require(d["attention"] as? [[[Double]]])
    #expect(causal.allSatisfy { head in head.enumerated().allSatisfy { i, row in row.enumerated().allSatisfy { j, p in j <= i || p == 0 } } })

    // Flags that do not fit the folder or each other.
    for (args, message) in [
        (["--part", "decoder", "--target", "a", "--target-ids", "0,1", text], "not both"),
        (["--target", "Das", text], "--part decoder or cross"),
        (["--part", "cross", "--layer", "2", text], "decoder layers 0..<2"),
        (["--ids", "5,999"], "vocabulary of 64"),
        (["--ids", "5,6", text], "not both"),
        (["--head", "4", text], "heads 0..<4"),
    ] {
        let bad = try runAttend(["attention-map", "--model", folder.path, "--json"] + args)
        #expect(bad.status == 2 && bad.stderr.contains(message), "\(args): \(bad)")
    }
}

@Test func attentionMapCommandDrawsDecoderOnlyPrompts() throws {
    let folder = try visualizationFixture("llama_text")
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attend-map-lm-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let svg = dir.appendingPathComponent("lm.svg")
    let prompt = "Hello world"
    let r = try runAttend(["attention-map", "--model", folder.path, "--layer", "0", "--svg", svg.path, "--json", prompt])
    #expect(r.status == 0, "\(r)")
    let line = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    let ids = try #require(line["ids"] as? [Int]), tokens = try #require(line["tokens"] as? [String])
    let tokenizer = try loadTokenizer(directory: folder)
    #expect(ids == tokenizer.encode(prompt).ids && tokens.count == ids.count)
    let model = try DecoderOnlyModel(directory: folder)
    let expected = try #require(try model.forward(inputIDs: [ids], outputAttentions: [0]).attentions[0])
    let maps = try #require(line["attention"] as? [[[Double]]])
    #expect(maps.count == model.heads && maxDifference(maps.flatMap { $0.flatMap { $0.map(Float.init) } }, expected.scalars) == 0)
    let parsed = try #require(parseSVG(try String(contentsOf: svg, encoding: .utf8)))
    #expect(parsed.texts.filter { $0.hasPrefix("head ") }.count == model.heads)
    #expect(parsed.texts.contains { $0.contains("causal self-attention") && $0.contains("layer 0") })
    for label in Set(tokens) { #expect(parsed.texts.filter { $0 == label }.count >= 2 * model.heads, "\(label)") }
    let part = try runAttend(["attention-map", "--model", folder.path, "--part", "cross", "--json", prompt])
    #expect(part.status == 2 && part.stderr.contains("T5 and Marian"), "\(part)")
    // A model type attention-map does not read is named, with the ones it does.
    let other = dir.appendingPathComponent("neox")
    try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
    try Data(#"{"model_type": "gpt_neox"}"#.utf8).write(to: other.appendingPathComponent("config.json"))
    let unknown = try runAttend(["attention-map", "--model", other.path, "--ids", "1,2", "--json"])
    #expect(unknown.status == 1 && unknown.stderr.contains("model_type \"gpt_neox\" is not one attention-map reads"), "\(unknown)")
}
