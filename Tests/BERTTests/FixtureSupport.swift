// Locating the fixtures of BERTTests and the real all-MiniLM-L6-v2 folder.
import Foundation
import Testing

@testable import Attend

enum Fixtures {
    /// The bundled Fixtures folder.
    static let root: URL = {
        guard let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
            fatalError("BERTTests: the Fixtures resource folder is missing from the test bundle")
        }
        return url
    }()

    /// A fixture by relative path, e.g. "minilm_tokenizer/tokenizer.json".
    static func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }

    /// A JSON fixture parsed with Foundation (test data only; the library has its own reader).
    static func json(_ relative: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(contentsOf: url(relative)), options: [.fragmentsAllowed])
    }
}

/// The real all-MiniLM-L6-v2 folder, fetched by scripts/fetch-minilm.sh: `ATTEND_MINILM_DIR`
/// when set, else `.cache/minilm` under the package root. Nil (and the real-model tests are
/// skipped, saying so) when its files are not there.
enum RealMiniLM {
    static let directory: URL = {
        if let d = ProcessInfo.processInfo.environment["ATTEND_MINILM_DIR"], !d.isEmpty {
            return URL(fileURLWithPath: d)
        }
        // This file is <root>/Tests/BERTTests/FixtureSupport.swift.
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".cache/minilm")
    }()

    static let required = ["config.json", "model.safetensors", "tokenizer.json", "modules.json", "1_Pooling/config.json"]

    static var isAvailable: Bool {
        required.allSatisfy { FileManager.default.fileExists(atPath: directory.appendingPathComponent($0).path) }
    }

    /// Printed once by each skipped test, so a run without the model says what it did not check.
    static var skipMessage: String {
        "real all-MiniLM-L6-v2 not found in \(directory.path) (run scripts/fetch-minilm.sh or set ATTEND_MINILM_DIR): real-model test skipped"
    }
}

/// Max |a - b| and cosine similarity of two vectors, accumulated in Double.
func compare(_ a: [Float], _ b: [Float]) -> (maxAbs: Double, cosine: Double) {
    precondition(a.count == b.count, "compare: lengths \(a.count) and \(b.count)")
    var m = 0.0, dot = 0.0, na = 0.0, nb = 0.0
    for i in a.indices {
        let x = Double(a[i]), y = Double(b[i])
        m = max(m, abs(x - y))
        dot += x * y
        na += x * x
        nb += y * y
    }
    return (m, dot / max((na * nb).squareRoot(), 1e-300))
}

/// The error `body` throws (nil if it did not throw).
func thrownError(_ body: () throws -> Void) -> Error? {
    do {
        try body()
        return nil
    } catch {
        return error
    }
}
