// Locating the fixtures of CheckpointTests (written by make_fixtures.py, bundled with `.copy`).
import Foundation
import Testing

@testable import Attend

enum Fixtures {
    /// The bundled Fixtures folder.
    static let root: URL = {
        guard let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
            fatalError("CheckpointTests: the Fixtures resource folder is missing from the test bundle")
        }
        return url
    }()

    /// A fixture by relative path, e.g. "malformed/gap.safetensors".
    static func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }

    /// The raw bytes of a fixture.
    static func bytes(_ relative: String) throws -> [UInt8] { Array(try Data(contentsOf: url(relative))) }
}

/// The error `body` throws, as a SafeTensorsError (nil if it did not throw; records an issue
/// if it threw something else).
func safeTensorsError(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> SafeTensorsError? {
    do {
        try body()
        return nil
    } catch let e as SafeTensorsError {
        return e
    } catch {
        Issue.record("expected a SafeTensorsError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Bitwise float equality, except that any NaN equals any NaN of the same sign.
func sameFloat(_ a: Float, _ b: Float) -> Bool {
    if a.isNaN || b.isNaN { return a.isNaN && b.isNaN && a.sign == b.sign }
    return a.bitPattern == b.bitPattern
}
