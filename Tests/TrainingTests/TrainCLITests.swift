// `attend train` and `attend pretrain-mlm` end to end: the command-line checks (exit 2), the
// checks of the files and batches before the first step (exit 1, naming line, row and
// position), and training runs against the golden PyTorch run of Fixtures/bert.
import AttendTestSupport
import Foundation
import Testing

@testable import Attend

@Suite("attend train / pretrain-mlm")
struct TrainCLITests {
    static func fixture(_ path: String) -> URL {
        Bundle.module.url(forResource: "Fixtures/" + path, withExtension: nil)!
    }

    static func run(_ arguments: [String]) throws -> ChildResult {
        let tool = builtProduct("attend", besides: Bundle.module)
        try #require(FileManager.default.isExecutableFile(atPath: tool), "the attend executable is not built at \(tool)")
        return try runChild(tool, arguments, timeout: 300)
    }

    /// A scratch folder, removed by the caller's `defer`.
    static func scratch() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("attend-train-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// The golden BERT folder with a vocabulary (w0 ... w114) beside it, for the text commands.
    static func bertWithVocabulary(in scratch: URL) throws -> URL {
        let folder = scratch.appendingPathComponent("bert")
        try FileManager.default.copyItem(at: fixture("bert/initial"), to: folder)
        try FileManager.default.copyItem(at: fixture("bert_vocab.txt"), to: folder.appendingPathComponent("vocab.txt"))
        return folder
    }

    static var model: String { fixture("bert/initial").path }
    static var batches: String { fixture("bert/batches.jsonl").path }

    /// One `attend:` error line on stderr (and the --help pointer for status 2), nothing on stdout.
    static func expectOneError(_ r: ChildResult, status: Int32, containing text: String, _ what: String) {
        #expect(r.status == status, "\(what): \(r)")
        let lines = r.stderr.split(separator: "\n").map(String.init)
        #expect(lines.count == (status == 2 ? 2 : 1), "\(what): \(r.stderr)")
        #expect(lines.first?.hasPrefix("attend: ") == true && lines.first?.contains(text) == true, "\(what): expected '\(text)' in \(r.stderr)")
        if status == 2 { #expect(lines.last?.hasPrefix("Run 'attend ") == true, "\(what): \(r.stderr)") }
        #expect(!r.stdout.contains("\"step\""), "\(what): trained anyway")
    }

    static let usageCases: [([String], String)] = [
        (["train", "--model", "M", "--steps", "5", "--lr", "1e-3"], "attend train needs --batches FILE"),
        (["train", "--model", "M", "--batches", "B", "--lr", "1e-3"], "needs --steps N"),
        (["train", "--model", "M", "--batches", "B", "--steps", "5"], "needs --lr X"),
        (["train", "--model", "M", "--batches", "B", "--steps", "0", "--lr", "1"], "--steps needs a positive integer, got '0'"),
        (["train", "--model", "M", "--batches", "B", "--steps", "-3", "--lr", "1"], "--steps needs a positive integer"),
        (["train", "--model", "M", "--batches", "B", "--steps", "99999999999999999999", "--lr", "1"], "--steps needs a positive integer"),
        (["train", "--model", "M", "--batches", "B", "--steps", "5", "--lr", "nan"], "--lr needs a positive number, got 'nan'"),
        (["train", "--model", "M", "--batches", "B", "--steps", "5", "--lr", "1e309"], "--lr needs a positive number"),
        (["train", "--model", "M", "--batches", "B", "--steps", "5", "--lr", "0"], "--lr needs a positive number"),
        (["train", "--model", "M", "--batches", "B", "--steps", "5", "--lr", "1", "--weight-decay", "-0.1"], "--weight-decay needs a non-negative"),
        (["train", "--model", "M", "--batches", "B", "--steps", "5", "--lr", "1", "--max-grad-norm", "0"], "--max-grad-norm needs a positive"),
        (["train", "--model", "M", "--batches", "B", "--steps", "5", "--lr", "1", "--warmup", "-1"], "--warmup needs a non-negative integer"),
        (["train", "--model", "M", "--batches", "B", "--steps", "5", "--lr", "1", "--schedule", "cosine"], "--schedule needs one of constant, linear, inverse-sqrt"),
        (["train", "--model", "M", "--batches", "B", "--steps", "5", "--lr", "1", "--seed", "-1"], "--seed needs a non-negative integer"),
        (["train", "--model", "M", "--batches", "B", "--steps", "5", "--lr", "1", "--dropout", "yes"], "--dropout needs on or off, got 'yes'"),
        (["generate", "--model", "M", "--dropout", "off", "x"], "--dropout is not an option of 'attend generate' (it is an option of train, pretrain-mlm)"),
        (["train", "--model", "M", "--batches", "B", "--steps", "5", "--lr", "1", "--save", ""], "--save needs a folder path"),
        (["train", "--model", "M", "--batches", "B", "--steps", "5", "--lr", "1", "some text"], "'attend train' takes no arguments besides its options, got 'some text'"),
        (["train", "--model", "M", "--batches", "B", "--steps", "5", "--lr", "1", "--max-length", "8"], "--max-length is not an option of 'attend train' (it is an option of"),
        (["train", "--model", "M", "--batches", "B", "--steps", "5", "--lr", "1", "--batch-size", "8"], "--batch-size is not an option of 'attend train'"),
        (["train", "--model", "M", "--batches", "B", "--steps", "5", "--lr", "1", "--text", "T"], "--text is not an option of 'attend train'"),
        (["train", "--model", "M", "--batches", "B", "--steps", "5", "--lr", "1", "--top-k", "3"], "--top-k is not an option of 'attend train' (it is an option of generate, translate, fill-mask)"),
        (["train", "--batches", "B", "--steps", "5", "--lr", "1"], "attend train needs --model DIR"),
        (["train", "--model", "M", "--batches"], "--batches needs a value"),
        (["pretrain-mlm", "--model", "M", "--steps", "5", "--lr", "1"], "attend pretrain-mlm needs --text FILE"),
        (["pretrain-mlm", "--model", "M", "--text", "T", "--batches", "B", "--steps", "5", "--lr", "1"], "--batches is not an option of 'attend pretrain-mlm' (it is an option of train)"),
        (["pretrain-mlm", "--model", "M", "--text", "T", "--steps", "5", "--lr", "1", "--batch-size", "0"], "--batch-size needs a positive integer"),
        (["embed", "--model", "M", "--steps", "5", "a"], "--steps is not an option of 'attend embed' (it is an option of train, pretrain-mlm)"),
        (["fill-mask", "--model", "M", "--lr", "1", "a [MASK]"], "--lr is not an option of 'attend fill-mask' (it is an option of train, pretrain-mlm)"),
        (["fill-mask", "--model", "M", "--max-length", "8", "a [MASK]"], "--max-length is not an option of 'attend fill-mask'"),
    ]

    @Test("command-line mistakes: one line, the --help pointer, exit 2, before any file is read", arguments: usageCases)
    func usageErrors(_ arguments: [String], _ message: String) throws {
        let r = try Self.run(arguments)
        Self.expectOneError(r, status: 2, containing: message, arguments.joined(separator: " "))
    }

    @Test("a batch the model cannot take stops train before step 1, naming the file line, row and position")
    func badBatchNamed() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = try String(contentsOfFile: Self.batches, encoding: .utf8).split(separator: "\n").map(String.init)
        // Line 1 good, line 2 blank, line 3 with an id past the vocabulary at row 1, position 2.
        var bad = try #require(try JSONSerialization.jsonObject(with: Data(good[1].utf8)) as? [String: Any])
        var ids = bad["input_ids"] as! [[Int]]
        ids[1][2] = 500
        bad["input_ids"] = ids
        let badLine = String(decoding: try JSONSerialization.data(withJSONObject: bad, options: [.sortedKeys]), as: UTF8.self)
        let file = dir.appendingPathComponent("batches.jsonl")
        try (good[0] + "\n\n" + badLine + "\n").write(to: file, atomically: true, encoding: .utf8)
        let r = try Self.run(["train", "--model", Self.model, "--batches", file.path, "--steps", "3", "--lr", "1e-3", "--json"])
        Self.expectOneError(r, status: 1, containing: "line 3: input_ids[1][2] = 500 is not a token id in 0..<120", "bad id")
        #expect(!r.stderr.contains("step 1/"))

        // Labels missing on line 1; a ragged row; not JSON.
        var noLabels = try #require(try JSONSerialization.jsonObject(with: Data(good[0].utf8)) as? [String: Any])
        noLabels["labels"] = nil
        let noLabelsLine = String(decoding: try JSONSerialization.data(withJSONObject: noLabels, options: [.sortedKeys]), as: UTF8.self)
        for (content, message) in [
            (noLabelsLine + "\n", "line 1: labels are missing"),
            (good[0] + "\n" + #"{"input_ids": [[1, 2], [3]]}"# + "\n", "line 2: input_ids row 1 has 1 values"),
            ("{\"input_ids\": [[1, 2]],\n", "line 1: not JSON"),
            ("", "no batches"),
        ] {
            try content.write(to: file, atomically: true, encoding: .utf8)
            let r = try Self.run(["train", "--model", Self.model, "--batches", file.path, "--steps", "3", "--lr", "1e-3"])
            Self.expectOneError(r, status: 1, containing: message, message)
        }
    }

    @Test("train: masked-LM-only batches (no next_sentence_label) train BertForMaskedLM's loss; --dropout on repeats with its --seed, off is the eval-mode loss")
    func maskedLMOnlyAndDropout() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let mlm = Self.fixture("bert_mlm/batches.jsonl").path
        let want = (try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixture("bert_mlm/run.json"))) as! [String: Any])["losses"] as! [Double]
        func losses(_ model: String, _ extra: [String]) throws -> [Double] {
            let r = try Self.run(["train", "--model", model, "--batches", mlm, "--steps", "3", "--lr", "1e-3", "--json"] + extra)
            #expect(r.status == 0, "\(r)")
            return try Self.steps(r.stdout).map(\.loss)
        }
        let plain = try losses(Self.model, [])
        #expect(plain.count == 3 && abs(plain[0] - want[0]) <= 1e-5 * want[0], "\(plain) vs \(want)")
        // The same folder with dropout in its config.json.
        let folder = dir.appendingPathComponent("bert")
        try FileManager.default.copyItem(at: Self.fixture("bert/initial"), to: folder)
        let url = folder.appendingPathComponent("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        (config["hidden_dropout_prob"], config["attention_probs_dropout_prob"]) = (0.1, 0.1)
        try JSONSerialization.data(withJSONObject: config).write(to: url)
        let on = try losses(folder.path, ["--seed", "5"])
        #expect(on == (try losses(folder.path, ["--dropout", "on", "--seed", "5"])))
        #expect(on != (try losses(folder.path, ["--seed", "6"])))
        #expect(on[0] != plain[0])
        #expect(try losses(folder.path, ["--dropout", "off", "--seed", "5"]) == plain)
    }

    @Test("missing files and folders exit 1 with one line: batches, model, text, tokenizer; --save under a missing folder exits 2")
    func missingFiles() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let absent = dir.appendingPathComponent("absent").path
        var r = try Self.run(["train", "--model", Self.model, "--batches", absent, "--steps", "3", "--lr", "1e-3"])
        Self.expectOneError(r, status: 1, containing: "--batches \(absent): cannot read the file", "batches")
        r = try Self.run(["train", "--model", absent, "--batches", Self.batches, "--steps", "3", "--lr", "1e-3"])
        Self.expectOneError(r, status: 1, containing: "config.json", "model")
        r = try Self.run(["train", "--model", Self.fixture("t5/initial").path, "--batches", Self.batches, "--steps", "3", "--lr", "1e-3"])
        Self.expectOneError(r, status: 1, containing: "line 1", "BERT batches on T5")
        r = try Self.run(["train", "--model", Self.model, "--batches", Self.batches, "--steps", "3", "--lr", "1e-3", "--save", absent + "/out"])
        Self.expectOneError(r, status: 2, containing: "does not exist", "save")
        r = try Self.run(["train", "--model", Self.model, "--batches", Self.batches, "--steps", "3", "--lr", "1e-3", "--save", Self.batches])
        Self.expectOneError(r, status: 2, containing: "is a file", "save onto a file")

        let text = dir.appendingPathComponent("text.txt")
        try "w1 w2 w3\nw4 w5\n\nw6 w7 w8\n".write(to: text, atomically: true, encoding: .utf8)
        r = try Self.run(["pretrain-mlm", "--model", Self.model, "--text", text.path, "--steps", "2", "--lr", "1e-3"])
        Self.expectOneError(r, status: 1, containing: "vocab.txt", "no tokenizer")
        let bert = try Self.bertWithVocabulary(in: dir)
        r = try Self.run(["pretrain-mlm", "--model", bert.path, "--text", absent, "--steps", "2", "--lr", "1e-3"])
        Self.expectOneError(r, status: 1, containing: "--text \(absent): cannot read the file", "text")
        r = try Self.run(["pretrain-mlm", "--model", bert.path, "--text", text.path, "--steps", "2", "--lr", "1e-3", "--max-length", "65"])
        Self.expectOneError(r, status: 2, containing: "--max-length 65 is more than the model's 64 positions", "max-length")
        try "\n  \n\n".write(to: text, atomically: true, encoding: .utf8)
        r = try Self.run(["pretrain-mlm", "--model", bert.path, "--text", text.path, "--steps", "2", "--lr", "1e-3"])
        Self.expectOneError(r, status: 1, containing: "no tokens", "empty text")
    }

    /// The `{"step", "loss", "grad_norm", "lr"}` lines of a run's stdout.
    static func steps(_ stdout: String) throws -> [(step: Int, loss: Double, gradNorm: Double, lr: Double)] {
        try stdout.split(separator: "\n").map { line in
            let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
            return (
                try #require(o["step"] as? Int), try #require(o["loss"] as? Double), try #require(o["grad_norm"] as? Double),
                try #require(o["lr"] as? Double)
            )
        }
    }

    @Test(
        "train --json on the golden runs: PyTorch's losses within 1e-5 and grad norms within 1e-4 relative, batches cycling; --save writes the trained weights",
        arguments: ["bert", "t5", "marian"])
    func trainMatchesPyTorch(_ name: String) throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let golden = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixture("\(name)/run.json"))) as? [String: Any])
        let losses = golden["losses"] as! [Double], norms = golden["grad_norms_before_clipping"] as! [Double]
        let out = dir.appendingPathComponent("trained")
        let r = try Self.run([
            "train", "--model", Self.fixture("\(name)/initial").path, "--batches", Self.fixture("\(name)/batches.jsonl").path,
            "--steps", "\(losses.count)", "--lr", "\(golden["lr"] as! Double)", "--weight-decay", "\(golden["weight_decay"] as! Double)",
            "--max-grad-norm", "\(golden["clip_grad_norm"] as! Double)", "--json", "--save", out.path,
        ])
        #expect(r.status == 0, "\(r)")
        let steps = try Self.steps(r.stdout)
        #expect(steps.map(\.step) == Array(1...losses.count))
        for (s, (loss, norm)) in zip(steps, zip(losses, norms)) {
            #expect(abs(s.loss - loss) <= 1e-5 * abs(loss), "step \(s.step): loss \(s.loss), PyTorch \(loss)")
            #expect(abs(s.gradNorm - norm) <= 1e-4 * norm, "step \(s.step): grad norm \(s.gradNorm), PyTorch \(norm)")
            #expect(s.lr == 1e-3)
        }
        // stderr: a progress line per step, then the summary and the saved note.
        let err = r.stderr.split(separator: "\n").map(String.init)
        #expect(err.count == losses.count + 2, "\(r.stderr)")
        for k in 1...losses.count {
            #expect(err[k - 1].hasPrefix("attend: step \(k)/\(losses.count)  loss ") && err[k - 1].contains("tokens/s  ETA "), "\(err[k - 1])")
        }
        #expect(err.dropLast().last?.hasPrefix("attend: trained \(losses.count) steps in ") == true && r.stderr.contains("peak memory"))
        // The saved folder holds the trained weights (PyTorch's within 1e-5).
        let saved = try SafeTensorsFile(contentsOf: out.appendingPathComponent("model.safetensors"))
        let reference = try SafeTensorsFile(contentsOf: Self.fixture("\(name)/trained/model.safetensors"))
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("config.json").path))
        var compared = 0
        for tensorName in reference.tensorNames where saved.tensorNames.contains(tensorName) {
            let a = try saved.tensor(tensorName).scalars, b = try reference.tensor(tensorName).scalars
            #expect(a.count == b.count, "\(tensorName)")
            let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
            #expect(worst <= 1e-5, "\(tensorName): the saved weights differ from PyTorch's by \(worst)")
            compared += 1
        }
        #expect(compared >= 20, "only \(compared) tensors in common with the reference")
    }

    @Test("--warmup and --schedule: the learning rate of each step, as transformers' schedules")
    func schedules() throws {
        let peak = 1e-3
        let expected: [(String, [Double])] = [
            ("constant", [0, 0.5, 1, 1, 1]),
            ("linear", [0, 0.5, 1, 2.0 / 3, 1.0 / 3]),
            ("inverse-sqrt", [0, 0.5, 1, 1 / 1.5.squareRoot(), 1 / 2.0.squareRoot()]),
        ]
        for (schedule, factors) in expected {
            let r = try Self.run([
                "train", "--model", Self.model, "--batches", Self.batches, "--steps", "5", "--lr", "\(peak)", "--warmup", "2",
                "--schedule", schedule, "--json",
            ])
            #expect(r.status == 0, "\(r)")
            let lrs = try Self.steps(r.stdout).map(\.lr)
            #expect(lrs.count == 5)
            for (k, (lr, f)) in zip(lrs, factors).enumerated() {
                #expect(abs(lr - peak * f) <= 1e-12, "\(schedule) step \(k + 1): lr \(lr), expected \(peak * f)")
            }
        }
        // Without warmup, the first step already uses the peak rate.
        let r = try Self.run(["train", "--model", Self.model, "--batches", Self.batches, "--steps", "2", "--lr", "0.002", "--schedule", "linear", "--json"])
        #expect(try Self.steps(r.stdout).map(\.lr) == [0.002, 0.001])
    }

    @Test("pretrain-mlm: trains on text, the same seed repeats the losses, another seed changes them; the saved folder fills masks")
    func pretrainOnText() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let bert = try Self.bertWithVocabulary(in: dir)
        var rng = SplitMix64(state: 9)
        let text = (0..<6).map { _ in
            (0..<8).map { _ in (0..<7).map { _ in "w\(rng.next() % 115)" }.joined(separator: " ") }.joined(separator: "\n")
        }.joined(separator: "\n\n")
        let file = dir.appendingPathComponent("text.txt")
        try text.write(to: file, atomically: true, encoding: .utf8)
        func pretrain(seed: Int, save: URL? = nil) throws -> [Double] {
            let r = try Self.run(
                [
                    "pretrain-mlm", "--model", bert.path, "--text", file.path, "--max-length", "24", "--batch-size", "4", "--steps", "3",
                    "--lr", "1e-3", "--seed", "\(seed)", "--json",
                ] + (save.map { ["--save", $0.path] } ?? []))
            #expect(r.status == 0, "\(r)")
            return try Self.steps(r.stdout).map(\.loss)
        }
        let out = dir.appendingPathComponent("pretrained")
        let a = try pretrain(seed: 1, save: out)
        #expect(a.count == 3 && a.allSatisfy { $0.isFinite && $0 > 0 })
        #expect(try pretrain(seed: 1) == a)
        #expect(try pretrain(seed: 2) != a)
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("vocab.txt").path))
        let fill = try Self.run(["fill-mask", "--model", out.path, "--json", "--top-k", "3", "w1 [MASK] w2"])
        #expect(fill.status == 0, "\(fill)")
        #expect(fill.stdout.contains("\"predictions\""))
    }
}
