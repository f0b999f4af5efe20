// `attend generate --task NAME` (config.json's task_specific_params: prefix and generation
// settings, as transformers' pipelines apply them), `attend translate`, and the timing line
// generate --text writes to stderr.
import Foundation
import Testing

@testable import Attend

@Suite("generate --task, translate, timing line")
struct TaskAndTranslateCLITests {
    /// A copy of the tiny T5 text folder whose config.json gains `task_specific_params`.
    func folderWithTasks() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attend-t5-task-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: Fixtures.url("t5_text"), to: dir)
        let configURL = dir.appendingPathComponent("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        config["task_specific_params"] = [
            "summarization": [
                "prefix": "summarize: ", "num_beams": 2, "max_length": 8, "no_repeat_ngram_size": 2,
                "early_stopping": true,
            ],
            "translation_en_to_de": ["prefix": "translate English to German: ", "max_length": 6],
        ]
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        return dir
    }

    @Test("--task puts the task's prefix before every text and uses its settings, as the flags would")
    func taskEqualsFlags() throws {
        let dir = try folderWithTasks()
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = "the house is wonderful"
        let (s1, o1, e1) = try TokenizeCLITests.run(["generate", "--model", dir.path, "--text", text, "--task", "summarization", "--json"])
        let (s2, o2, _) = try TokenizeCLITests.run([
            "generate", "--model", dir.path, "--text", "summarize: " + text, "--beams", "2",
            "--max-new-tokens", "7", "--no-repeat-ngram-size", "2", "--json",
        ])
        #expect(s1 == 0 && s2 == 0, "\(e1)")
        let a = TokenizeCLITests.jsonLines(o1), b = TokenizeCLITests.jsonLines(o2)
        #expect(a.count == 1 && a.first?["output_ids"] as? [Int] == b.first?["output_ids"] as? [Int], "\(o1) vs \(o2)")
        #expect((a.first?["text"] as? String)?.hasPrefix("summarize: ") == true)
        // A flag still overrides the task's setting.
        let (s3, o3, _) = try TokenizeCLITests.run([
            "generate", "--model", dir.path, "--text", text, "--task", "translation_en_to_de",
            "--max-new-tokens", "2", "--json",
        ])
        #expect(s3 == 0 && (TokenizeCLITests.jsonLines(o3).first?["output_ids"] as? [Int])?.count ?? 99 <= 3, "\(o3)")
    }

    @Test("an unknown task, or a folder without tasks, is a one-line error naming what exists")
    func unknownTask() throws {
        let dir = try folderWithTasks()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (s, o, e) = try TokenizeCLITests.run(["generate", "--model", dir.path, "--text", "x", "--task", "poetry"])
        #expect(s == 1 && o.isEmpty && e.contains("no task 'poetry'") && e.contains("summarization") && e.split(separator: "\n").count == 1, "\(e)")
        let (s2, _, e2) = try TokenizeCLITests.run(["generate", "--model", Fixtures.url("t5_text").path, "--text", "x", "--task", "summarization"])
        #expect(s2 == 1 && e2.contains("task_specific_params"), "\(e2)")
        let (s3, _, e3) = try TokenizeCLITests.run(["generate", "--model", dir.path, "--ids", "1,2", "--task", "summarization"])
        #expect(s3 == 2 && e3.contains("--task"), "\(e3)")
    }

    @Test("translate is generate --text; it refuses ids; the timing line goes to stderr")
    func translate() throws {
        let folder = Fixtures.url("marian_text").path
        let (s1, o1, e1) = try TokenizeCLITests.run(["translate", "--model", folder, "--text", "the house", "--json"])
        let (s2, o2, _) = try TokenizeCLITests.run(["generate", "--model", folder, "--text", "the house", "--json"])
        #expect(s1 == 0 && s2 == 0 && o1 == o2 && !o1.isEmpty, "\(e1)")
        #expect(e1.contains("tokens generated in") && e1.contains("time to first token") && e1.contains("peak memory"), "\(e1)")
        let (s3, _, e3) = try TokenizeCLITests.run(["translate", "--model", folder, "--ids", "1,2"])
        #expect(s3 == 2 && e3.contains("--ids is not an option of 'attend translate'"), "\(e3)")
    }
}
