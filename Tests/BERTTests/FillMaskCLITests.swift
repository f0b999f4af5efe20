// `attend fill-mask` end to end against transformers' fill-mask pipeline on a tiny trained
// BertForMaskedLM (Fixtures/fill_mask, made by make_fill_mask_fixture.py), and its errors.
import AttendTestSupport
import Foundation
import Testing

@Suite("attend fill-mask")
struct FillMaskCLITests {
    static func run(_ arguments: [String]) throws -> ChildResult {
        let tool = builtProduct("attend", besides: Bundle.module)
        try #require(FileManager.default.isExecutableFile(atPath: tool), "the attend executable is not built at \(tool)")
        return try runChild(tool, arguments, timeout: 120)
    }

    struct GoldenPrediction {
        var score: Double
        var token: Int
        var tokenString: String
        var sequence: String

        init(_ o: Any) {
            let d = o as! [String: Any]
            score = d["score"] as! Double
            token = d["token"] as! Int
            tokenString = d["token_str"] as! String
            sequence = d["sequence"] as! String
        }
    }

    static func golden() throws -> [(text: String, topK: Int, predictions: [[GoldenPrediction]])] {
        let root = try Fixtures.json("fill_mask_golden.json") as! [String: Any]
        return (root["cases"] as! [[String: Any]]).map { c in
            (c["text"] as! String, c["top_k"] as! Int, (c["predictions"] as! [[Any]]).map { $0.map(GoldenPrediction.init) })
        }
    }

    @Test("--json: every [MASK]'s top-k tokens, scores within 1e-5, token_str and sequence as the pipeline")
    func matchesPipeline() throws {
        let cases = try Self.golden()
        #expect(cases.count >= 5)
        for c in cases {
            let r = try Self.run(["fill-mask", "--model", Fixtures.url("fill_mask").path, "--json", "--top-k", String(c.topK), "--", c.text])
            #expect(r.status == 0, "\(r)")
            let lines = r.stdout.split(separator: "\n")
            try #require(lines.count == 1, "\(r.stdout)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
            #expect(object["text"] as? String == c.text)
            let masks = try #require(object["predictions"] as? [[[String: Any]]])
            #expect(masks.count == c.predictions.count, "\(c.text)")
            for (row, want) in zip(masks, c.predictions) {
                #expect(row.count == want.count, "\(c.text)")
                for (got, w) in zip(row, want) {
                    let score = try #require(got["score"] as? Double)
                    #expect(abs(score - w.score) <= 1e-5, "\(c.text): \(w.tokenString) scores \(score), transformers \(w.score)")
                    #expect(got["token"] as? Int == w.token, "\(c.text)")
                    #expect(got["token_str"] as? String == w.tokenString, "\(c.text)")
                    #expect(got["sequence"] as? String == w.sequence, "\(c.text)")
                }
            }
        }
    }

    @Test("plain output: the text, then score, token and filled-in text per prediction")
    func plainOutput() throws {
        let r = try Self.run(["fill-mask", "--model", Fixtures.url("fill_mask").path, "--top-k", "2", "Paris is the [MASK] of France."])
        #expect(r.status == 0, "\(r)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(lines.first == "\"Paris is the [MASK] of France.\"")
        #expect(lines.dropFirst().first?.contains("\"capital\"  \"paris is the capital of france.\"") == true, "\(lines)")
    }

    @Test(
        "errors are one line and exit 1: no [MASK], no MLM head, no tokenizer; a bad --top-k exits 2",
        arguments: ["no mask", "no head", "no tokenizer", "top-k"])
    func errors(_ what: String) throws {
        let fm = FileManager.default
        let scratch = fm.temporaryDirectory.appendingPathComponent("attend-fill-mask-\(UUID().uuidString)")
        try fm.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: scratch) }
        var folder = Fixtures.url("fill_mask").path
        var text = "Paris is the [MASK] of France."
        var extra: [String] = []
        var expected = ""
        switch what {
        case "no mask":
            text = "Paris is the capital of France."
            expected = "no [MASK] in the text"
        case "no head":
            folder = Fixtures.url("fill_mask_no_head").path
            expected = "no MLM head"
        case "no tokenizer":
            for name in ["config.json", "model.safetensors"] {
                try fm.copyItem(at: Fixtures.url("fill_mask/" + name), to: scratch.appendingPathComponent(name))
            }
            folder = scratch.path
            expected = "vocab.txt"
        default:
            extra = ["--top-k", "0"]
            expected = "--top-k needs a positive integer"
        }
        let r = try Self.run(["fill-mask", "--model", folder] + extra + [text])
        #expect(r.status == (what == "top-k" ? 2 : 1), "\(r)")
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == (what == "top-k" ? 2 : 1), "\(r.stderr)")
        #expect(lines.first?.hasPrefix("attend: ") == true && lines.first?.contains(expected) == true, "\(r.stderr)")
        #expect(r.stdout.isEmpty)
    }
}
