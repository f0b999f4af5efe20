// `attend generate` end to end: the executable that `swift build` puts beside the test bundle,
// run on the golden T5 and Marian folders.
import Foundation
import Testing

@testable import Attend

@Suite("attend generate")
struct GenerateCLITests {
    /// Runs the built `attend` with `arguments`; returns (status, stdout, stderr).
    static func run(_ arguments: [String]) throws -> (Int32, String, String) {
        let products = Bundle.module.bundleURL.deletingLastPathComponent()
        let tool = products.appendingPathComponent("attend")
        try #require(FileManager.default.isExecutableFile(atPath: tool.path), "the attend executable is not built at \(tool.path)")
        let p = Process()
        p.executableURL = tool
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    @Test("--json prints what generate returns for a padded batch, greedy and with beams")
    func json() throws {
        let folder = try fixtureFolder("t5").path
        let io = try fixture("t5.io")
        let sources = try HFSeq2SeqTests.sources(io)
        let idArgs = sources.flatMap { ["--ids", $0.map(String.init).joined(separator: ",")] }
        let expected = [("out.greedy_ids", ["--min-new-tokens", "10"]), ("out.beam3_ids", ["--beams", "3"])]
        for (key, extra) in expected {
            // The golden beam search used early_stopping=True; this folder's default is false,
            // so compare against the library with the same settings instead for beams.
            let (status, out, err) = try Self.run(["generate", "--model", folder, "--max-new-tokens", "10", "--json"] + extra + idArgs)
            #expect(status == 0, "\(err)")
            let lines = out.split(separator: "\n").map(String.init)
            let model = try Seq2SeqModel(directory: try fixtureFolder("t5"))
            var config = model.generationDefaults
            config.maxNewTokens = 10
            if key == "out.greedy_ids" { config.minNewTokens = 10 } else { config.numBeams = 3 }
            let want = try model.generate(sources: sources, config: config).sequences
            #expect(lines == want.map { "{\"ids\": [\($0.map(String.init).joined(separator: ", "))]}" }, "\(key): \(out)")
            if key == "out.greedy_ids" { #expect(want == idRows(try io.integers(key), rows: 2)) }
        }
    }

    @Test("one source streams its greedy ids on one line, up to the end token (Marian forces it at the limit)")
    func stream() throws {
        let (status, out, _) = try Self.run(["generate", "--model", try fixtureFolder("marian").path, "--ids", "36,46,22", "--max-new-tokens", "10"])
        #expect(status == 0)
        let ids = out.split(separator: " ").map { Int($0.trimmingCharacters(in: .whitespacesAndNewlines))! }
        #expect(ids.count == 10 && ids.last == 2, "\(out)")
    }

    @Test("bad ids, folders and options exit non-zero with one line naming the problem")
    func errors() throws {
        let folder = try fixtureFolder("t5").path
        for (args, status, words) in [
            (["generate", "--model", folder, "--ids", "1,x"], Int32(2), "item 2 ('x')"),
            (["generate", "--model", folder, "--ids", "1,64"], 2, "outside the model's source vocabulary of 64"),
            (["generate", "--model", folder], 2, "at least one --ids"),
            (["generate", "--model", folder + "/nope", "--ids", "1"], 1, "no such file"),
            (["generate", "--model", folder, "--ids", "1", "--beams", "0"], 2, "--beams needs a positive integer"),
        ] {
            let (s, _, err) = try Self.run(args)
            #expect(s == status && err.contains(words), "\(args): status \(s), \(err)")
            // The message on one line; a command-line mistake adds one line pointing to --help.
            let lines = err.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines.first?.hasPrefix("attend: ") == true && lines.last == "", "\(args): \(err)")
            if status == 2 {
                #expect(lines.count == 3 && lines[1] == "Run 'attend generate --help' for usage.", "\(args): \(err)")
            } else {
                #expect(lines.count == 2, "\(args): \(err)")
            }
        }
    }

    /// The `--json` lines generate prints for what `model` generates from `sources` with at
    /// most 6 new tokens (unless `edit` says otherwise) and `edit`'s other settings.
    static func libraryLines(_ model: Seq2SeqModel, _ sources: [[Int]], _ edit: (inout GenerationConfig) -> Void) throws -> [String] {
        var config = model.generationDefaults
        config.maxNewTokens = 6
        edit(&config)
        return try model.generate(sources: sources, config: config).sequences.map { "{\"ids\": [\($0.map(String.init).joined(separator: ", "))]}" }
    }

    @Test("--precision: stored (the default) and each precision print the library's ids for that precision; a bad value is a one-line usage error")
    func precision() throws {
        // t5_bf16 stores BF16: stored keeps it, float32 widens it, float16 converts it.
        let folder = try fixtureFolder("t5_bf16")
        let sources = try HFSeq2SeqTests.sources(try fixture("t5_bf16.io"))
        let idArgs = sources.flatMap { ["--ids", $0.map(String.init).joined(separator: ",")] }
        var outputs: [String: String] = [:]
        for value in ["stored", "float32", "float16", "bfloat16", ""] {
            let flag = value.isEmpty ? [] : ["--precision", value]
            let (status, out, err) = try Self.run(["generate", "--model", folder.path, "--max-new-tokens", "6", "--min-new-tokens", "6", "--json"] + flag + idArgs)
            #expect(status == 0, "\(value): \(err)")
            let model = try Seq2SeqModel(directory: folder, weightPrecision: value == "stored" || value.isEmpty ? nil : WeightPrecision(rawValue: value)!)
            #expect(model.lmHead.weightPrecision == (value == "float32" ? .float32 : value == "float16" ? .float16 : .bfloat16))
            let want = try Self.libraryLines(model, sources) { $0.minNewTokens = 6 }
            #expect(out.split(separator: "\n").map(String.init) == want, "\(value): \(out)")
            outputs[value] = out
        }
        #expect(outputs["stored"] == outputs[""] && outputs["bfloat16"] == outputs[""], "stored is the default and the folder's own type")
        let (status, _, err) = try Self.run(["generate", "--model", folder.path, "--ids", "1,2", "--precision", "half"])
        let lines = err.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(status == 2 && lines.first?.hasPrefix("attend: ") == true && lines.first?.contains("--precision") == true && lines.count == 3, "\(err)")
    }

    @Test("--memory-precision: bfloat16 and float32 print the library's ids with that memory, auto is the default; refused for a decoder-only model and for a bad value")
    func memoryPrecision() throws {
        let folder = try fixtureFolder("t5_bf16")
        // Sources whose 3-beam ids (8 new tokens) differ between the two memories on an AVX2
        // host (found by search over random sources; the second from the first new token on),
        // several so that a CPU whose float32 sums tie differently still shows the flag
        // reaching the model; and the golden sources as a padded batch.
        let sourceSets = [
            [[6, 12, 12, 18, 35, 62, 12], [54, 27, 48, 29, 31, 53, 17], [41, 26, 54, 35, 63]],
            try HFSeq2SeqTests.sources(try fixture("t5_bf16.io")),
        ]
        for (set, sources) in sourceSets.enumerated() {
            let idArgs = sources.flatMap { ["--ids", $0.map(String.init).joined(separator: ",")] }
            var outputs: [String: String] = [:]
            for (value, precision) in [("", MemoryPrecision.automatic), ("auto", .automatic), ("float32", .float32), ("bfloat16", .bfloat16)] {
                let flag = value.isEmpty ? [] : ["--memory-precision", value]
                let (status, out, err) = try Self.run(["generate", "--model", folder.path, "--max-new-tokens", "8", "--beams", "3", "--json"] + flag + idArgs)
                #expect(status == 0, "\(value): \(err)")
                var model = try Seq2SeqModel(directory: folder)
                model.memoryPrecision = precision
                let want = try Self.libraryLines(model, sources) {
                    $0.numBeams = 3
                    $0.maxNewTokens = 8
                }
                #expect(out.split(separator: "\n").map(String.init) == want, "\(value): \(out)")
                outputs[value] = out
            }
            #expect(outputs["auto"] == outputs[""] && outputs["float32"] == outputs[""], "auto keeps a BF16 model's memory float32")
            if set == 0 { #expect(outputs["bfloat16"] != outputs["float32"], "the rounded memory changes some source's beams: \(outputs)") }
        }
        for (args, words) in [
            (["generate", "--model", try fixtureFolder("lm/gpt2").path, "--ids", "1,2", "--memory-precision", "bfloat16"], "decoder-only"),
            (["generate", "--model", folder.path, "--ids", "1,2", "--memory-precision", "half"], "--memory-precision"),
        ] {
            let (status, _, err) = try Self.run(args)
            let lines = err.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(status == 2 && lines.first?.hasPrefix("attend: ") == true && lines.first?.contains(words) == true && lines.count == 3, "\(err)")
        }
    }

    @Test("translate --memory-precision: each value prints the library's translation (TextToTextModel.memoryPrecision); bfloat16 changes some texts' beams")
    func translateMemoryPrecision() throws {
        // The BF16 golden T5 with a tokenizer of its vocabulary's size: text in, text out.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("attend-t5-bf16-text-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: try fixtureFolder("t5_bf16"), to: folder)
        defer { try? FileManager.default.removeItem(at: folder) }
        for file in ["tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.copyItem(
                at: try fixtureFolder("t5_text_tokenizer").appendingPathComponent(file), to: folder.appendingPathComponent(file))
        }
        // The first four texts' 3-beam ids (8 new tokens) differ between the two memories on
        // an AVX2 host (found by search over random texts of the tokenizer's pieces; "kgd" and
        // "wobkk" from the first new token on); the last's do not. Several, so that a CPU
        // whose float32 sums tie differently still shows the flag reaching the model.
        let texts = ["d smateaniiteat", "kgd", "wobkk", "tdnzw tmaan", "the house is wonderful"]
        var outputs: [String: [[Int]]] = [:]
        for (value, precision) in [("float32", MemoryPrecision.float32), ("bfloat16", .bfloat16), ("auto", .automatic)] {
            var library = try TextToTextModel(directory: folder)
            library.memoryPrecision = precision
            var config = library.model.generationDefaults
            (config.numBeams, config.maxNewTokens) = (3, 8)
            for text in texts {
                let (status, out, err) = try Self.run(
                    ["translate", "--model", folder.path, "--text", text, "--beams", "3", "--max-new-tokens", "8", "--memory-precision", value, "--json"])
                #expect(status == 0, "\(value): \(err)")
                let line = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
                let ids = try #require(line?["output_ids"] as? [Int], "\(value): \(out)")
                #expect(ids == (try library.generate([text], config: config))[0].outputIDs, "\(value), '\(text)'")
                outputs[value, default: []].append(ids)
            }
        }
        #expect(outputs["auto"] == outputs["float32"], "auto keeps a BF16 model's memory float32")
        let changed = zip(outputs["bfloat16"] ?? [], outputs["float32"] ?? []).filter { $0 != $1 }.count
        #expect(changed >= 1, "the rounded memory changes some text's beams: \(outputs)")
    }

    @Test("--repetition-penalty, --no-repeat-ngram-size and --beams print transformers' ids")
    func processorFlags() throws {
        let root = try #require(try jsonFixture("processors") as? [String: Any])
        let cases = try #require(root["cases"] as? [[String: Any]])
        let folder = try fixtureFolder("t5_gated").path
        let idArgs = try HFSeq2SeqTests.sources(try fixture("t5_gated.io")).flatMap { ["--ids", $0.map(String.init).joined(separator: ",")] }
        let flags: [String: String] = [
            "repetition_penalty": "--repetition-penalty", "no_repeat_ngram_size": "--no-repeat-ngram-size",
            "num_beams": "--beams", "max_new_tokens": "--max-new-tokens", "min_new_tokens": "--min-new-tokens",
        ]
        var checked = 0
        for c in cases where c["folder"] as? String == "t5_gated" {
            let settings = try #require(c["settings"] as? [String: Any])
            guard settings.keys.allSatisfy({ flags[$0] != nil }) else { continue }  // a setting without a flag
            let extra = settings.sorted { $0.key < $1.key }.flatMap { [flags[$0.key]!, "\($0.value)"] }
            let (status, out, err) = try Self.run(["generate", "--model", folder, "--json"] + extra + idArgs)
            let want = try #require(c["ids"] as? [[Int]]).map { "{\"ids\": [\($0.map(String.init).joined(separator: ", "))]}" }
            #expect(status == 0 && out.split(separator: "\n").map(String.init) == want, "\(extra): \(out) \(err)")
            checked += 1
        }
        #expect(checked == 6)
    }

    @Test("--do-sample with --seed prints the same ids on 1 and 2 threads; without --seed the seed is printed")
    func sampling() throws {
        let folder = try fixtureFolder("t5_gated").path
        let base = [
            "generate", "--model", folder, "--ids", "3,4,5,6,7,8", "--max-new-tokens", "20", "--do-sample", "--temperature", "1.5",
            "--top-k", "0", "--top-p", "0.95", "--min-p", "0.01",
        ]
        let (s1, one, e1) = try Self.run(base + ["--seed", "11", "--threads", "1"])
        let (s2, two, _) = try Self.run(base + ["--seed", "11", "--threads", "2"])
        #expect(s1 == 0 && s2 == 0 && one == two && e1.isEmpty, "\(one) / \(two) / \(e1)")
        #expect(one.split(separator: " ").count == 20)
        let (s3, other, e3) = try Self.run(base)
        #expect(s3 == 0 && e3.contains("sampling with seed") && e3.contains("--seed"), "\(e3)")
        let seed = try #require(e3.split(separator: " ").first { UInt64($0) != nil })
        let (_, again, _) = try Self.run(base + ["--seed", String(seed)])
        #expect(again == other)
        for (args, words) in [
            (["--temperature", "0.5"], "--temperature applies only when sampling"),
            (["--seed", "3"], "--seed applies only when sampling"),
            (["--do-sample", "--beams", "2"], "cannot be combined with beam search"),
            (["--do-sample", "--top-p", "1.5"], "--top-p needs a number in [0, 1]"),
            (["--do-sample", "--temperature", "0"], "--temperature needs a positive number"),
            (["--do-sample", "--seed", "-1"], "--seed needs a non-negative integer"),
            (["--repetition-penalty", "nan"], "--repetition-penalty needs a positive number"),
            (["--no-repeat-ngram-size", "-2"], "--no-repeat-ngram-size needs a non-negative integer"),
        ] {
            let (s, _, err) = try Self.run(["generate", "--model", folder, "--ids", "3,4"] + args)
            #expect(s == 2 && err.contains(words), "\(args): \(err)")
        }
        let (s, _, err) = try Self.run(["embed", "--model", folder, "--top-k", "3", "text"])
        #expect(s == 2 && err.contains("--top-k is not an option of 'attend embed'"), "\(err)")
    }

    @Test("command-line mistakes print one line and a pointer to the command's --help, never the usage text")
    func usageErrors() throws {
        for (args, pointer) in [
            (["frobnicate"], "Run 'attend --help' for usage."),
            (["embed", "--batch-size", "-3", "--model", "x"], "Run 'attend embed --help' for usage."),
            (["similarity", "--nope"], "Run 'attend similarity --help' for usage."),
            (["generate", "--model", "x", "--ids"], "Run 'attend generate --help' for usage."),
            (["tokenize"], "Run 'attend tokenize --help' for usage."),
        ] {
            let (s, out, err) = try Self.run(args)
            #expect(s == 2 && out.isEmpty, "\(args): status \(s)")
            #expect(
                err.split(separator: "\n").map(String.init).last == pointer && err.split(separator: "\n").count == 2,
                "\(args): \(err)")
        }
        let (s, out, _) = try Self.run(["generate", "--help"])
        #expect(s == 0 && out.contains("attend generate") && out.contains("--max-new-tokens"))
    }
}
