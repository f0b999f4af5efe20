// The position-encoding experiment: the task generators produce what they claim, every
// encoding's model trains (its loss falls) and runs at lengths beyond the trained one, and the
// command produces its table, JSON and well-formed charts.
import Attend
import AttendTestSupport
import Experiments
import AttendCommandLine
import Foundation
import Testing

@Suite("Position experiment")
struct PositionExperimentTests {
    @Test("copy: every asked position answers the token k places back")
    func copyTask() {
        var rng = SplitMix64(state: 1)
        for n in [PositionTask.copy.minimumLength, 64, 200] {
            let e = PositionTask.copy.example(length: n, using: &rng)
            #expect(e.tokens.count == n && e.labels.count == n)
            for i in 0..<n {
                let k = PositionTask.copyDistance
                #expect(e.labels[i] == (i >= k ? e.tokens[i - k] : PositionTask.ignored), "length \(n) position \(i)")
            }
        }
    }

    @Test("brackets: each closer's answer is the kind of the opener it matches, found by scanning back")
    func bracketTask() {
        var rng = SplitMix64(state: 2)
        var closers = 0, deepest = 0
        for n in [2, 64, 512] {
            for _ in 0..<20 {
                let e = PositionTask.brackets.example(length: n, using: &rng)
                #expect(e.tokens.count == n && e.labels.count == n)
                var depth = 0
                for (i, t) in e.tokens.enumerated() {
                    depth += t == PositionTask.closeToken ? -1 : 1
                    #expect(depth >= 0 && depth <= PositionTask.bracketMaxDepth, "never closes more than it opened")
                    deepest = max(deepest, depth)
                    guard t == PositionTask.closeToken else {
                        #expect(t >= 0 && t < PositionTask.bracketKinds && e.labels[i] == PositionTask.ignored)
                        continue
                    }
                    // The match: scanning back, the first opener not closed in between.
                    var balance = 0, j = i - 1
                    while j >= 0 {
                        balance += e.tokens[j] == PositionTask.closeToken ? 1 : -1
                        if balance < 0 { break }
                        j -= 1
                    }
                    #expect(j >= 0 && e.labels[i] == e.tokens[j], "length \(n) closer at \(i)")
                    closers += 1
                }
            }
        }
        #expect(closers > 1000 && deepest >= 8, "the generator nests: \(closers) closers, depth \(deepest)")
    }

    @Test("recall: each query's answer is the value stored with its key at the start")
    func recallTask() {
        var rng = SplitMix64(state: 3)
        let s = PositionTask.recallSymbols
        for n in [PositionTask.recall.minimumLength, 64, 300] {
            let e = PositionTask.recall.example(length: n, using: &rng)
            #expect(e.tokens.count == n && e.labels.count == n)
            var stored: [Int: Int] = [:]
            for t in e.tokens.prefix(PositionTask.recallPairs) {
                let (key, value) = ((t - s) / s, (t - s) % s)
                #expect(t == PositionTask.pairToken(key: key, value: value) && stored[key] == nil, "distinct keys in pair tokens")
                stored[key] = value
            }
            let queries = n - PositionTask.recallQueries
            #expect(e.tokens[PositionTask.recallPairs..<queries].allSatisfy { $0 == PositionTask.fillerToken })
            #expect(e.labels[..<queries].allSatisfy { $0 == PositionTask.ignored })
            for i in queries..<n {
                let key = e.tokens[i] - PositionTask.queryToken(key: 0)
                #expect(stored[key] != nil && e.labels[i] == stored[key]!, "length \(n) query at \(i)")
            }
            #expect(e.tokens.allSatisfy { $0 >= 0 && $0 < PositionTask.recall.vocabularySize })
        }
    }

    /// A very small model so the tests take seconds in a debug build.
    static var tinyConfig: PositionModelConfig {
        var c = PositionModelConfig()
        (c.modelDim, c.heads, c.layers, c.feedForwardDim, c.trainLength, c.shawClip, c.t5Buckets, c.t5MaxDistance) = (16, 2, 2, 32, 16, 4, 8, 32)
        return c
    }

    @Test("every encoding trains (its loss falls) and runs at lengths beyond the trained one", arguments: PositionEncoding.allCases)
    func encodingTrains(_ encoding: PositionEncoding) throws {
        let compute = try Compute.default.with(threads: 1)
        let model = PositionModel(encoding: encoding, vocabularySize: PositionTask.copy.vocabularySize, config: Self.tinyConfig, seed: 5, compute: compute)
        let before = model.parameters
        var settings = TrainingSettings()
        (settings.steps, settings.batch, settings.learningRate, settings.warmup) = (30, 8, 1e-2, 3)
        let losses = try train(model, task: .copy, length: 16, settings: settings, seed: 5)
        let first = losses.prefix(5).reduce(0, +) / 5, last = losses.suffix(5).reduce(0, +) / 5
        #expect(losses.allSatisfy { $0.isFinite })
        #expect(last < first - 0.05, "\(encoding): loss \(first) -> \(last)")
        // Every parameter was trained, position tables included.
        for (name, t) in before.entries { #expect(model.parameters[name]!.scalars != t.scalars, "\(encoding): \(name) did not change") }
        for n in [16, 40] {
            let a = accuracy(model, task: .copy, length: n, count: 4, seed: 9)
            #expect(a >= 0 && a <= 1, "\(encoding) at length \(n): \(a)")
        }
        if encoding == .learned { #expect(model.learnedPositionRows(length: 40).suffix(25).allSatisfy { $0 == 15 }, "clamped to the last trained row") }
    }

    @Test("options: flags parse, wrong ones throw naming the problem")
    func options() throws {
        let o = try PositionExperimentOptions(arguments: ["--task", "copy,recall", "--encodings", "rope", "--seeds", "2", "--steps", "7", "--threads", "1"])
        #expect(o.tasks == [.copy, .recall] && o.encodings == [.rope] && o.seeds == [1, 2] && o.settings.steps == 7 && o.threads == 1)
        let q = try PositionExperimentOptions(arguments: ["--steps", "9", "--quick"])
        #expect(q.lengths == [64, 128] && q.seeds == [1] && q.settings.steps == 9, "an explicit count wins over --quick")
        let grammar = try PositionExperimentOptions(arguments: ["--task=brackets", "--out=-x", "--quiet"])
        #expect(grammar.tasks == [.brackets] && grammar.output.lastPathComponent == "-x" && grammar.quiet)
        #expect(experimentTool.command(named: "positions")?.flag(named: "--task")?.kind == .list(.choice(PositionTask.allCases.map(\.rawValue))))
        #expect(experimentTool.command(named: "positions")?.flag(named: "--encodings")?.kind == .list(.choice(PositionEncoding.allCases.map(\.rawValue))))
        for bad in [["--task", "sorting"], ["--seeds", "0"], ["--steps"], ["--out"], ["--frobnicate"], ["--encodings", "rope,,"], ["stray"]] {
            #expect(throws: UsageError.self, "\(bad)") { try PositionExperimentOptions(arguments: bad) }
        }
    }

    @Test("positions --quick writes the Markdown table, the JSON and one well-formed chart per task")
    func quickRunWritesReport() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("attend-positions-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        // --quick's shape (one seed, lengths 64 and 128), cut further so a debug build takes seconds.
        var options = try PositionExperimentOptions(arguments: [
            "--quick", "--task", "copy,brackets", "--encodings", "learned,t5", "--steps", "2", "--out", out.path, "--quiet",
        ])
        options.config = Self.tinyConfig
        options.settings.evaluationSequences = 2
        let report = try runPositionExperiment(options, command: "experiment positions --quick")
        let files = try report.write(to: out)
        #expect(Set(files.map(\.lastPathComponent)) == ["positions.md", "positions.json", "positions-copy.svg", "positions-brackets.svg"])

        let md = try String(contentsOf: out.appendingPathComponent("positions.md"), encoding: .utf8)
        #expect(md.contains("### copy") && md.contains("### brackets") && md.contains("| encoding | 64 | 128 |"))
        #expect(md.components(separatedBy: "\n").filter { $0.hasPrefix("| learned |") || $0.hasPrefix("| t5 |") }.count == 4)

        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("positions.json"))) as? [String: Any]
        let results = try #require(json?["results"] as? [[String: Any]])
        #expect(results.count == 2 * 2 * 2, "tasks x encodings x lengths")
        for r in results {
            let mean = try #require(r["mean"] as? Double)
            #expect(mean >= 0 && mean <= 1)
        }

        for task in ["copy", "brackets"] {
            let svg = try String(contentsOf: out.appendingPathComponent("positions-\(task).svg"), encoding: .utf8)
            let parsed = try #require(parseSVG(svg), "\(task) chart is well-formed XML")
            #expect(parsed.elements.first == "svg")
            #expect(parsed.elements.filter { $0 == "polyline" }.count == 2, "one line per encoding")
            #expect(parsed.texts.contains("learned") && parsed.texts.contains("t5") && parsed.texts.contains("128"))
        }
    }
}
