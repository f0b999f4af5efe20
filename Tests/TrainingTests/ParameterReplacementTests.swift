import Foundation
import Testing
@testable import Attend

/// A user may replace `model.parameters` with anything; a set whose names, order or shapes
/// differ from the model's is refused with a thrown `TrainingError` by the next loss, backward
/// and `save(to:)` (naming the parameter), the host is never ended, and putting the right set
/// back trains as before.
@Suite struct ParameterReplacementTests {
    @Test func wrongParametersAreThrownErrorsNotCrashes() throws {
        for (name, model, batch) in try InPlaceUpdateTests.models() {
            let original = model.parameters
            let expected = try model.loss(batch)
            let first = original.names[0], last = original.names[original.count - 1]
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("attend-replaced-\(name)-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: out) }

            var cases: [(String, ParameterSet, String)] = []
            var reshaped = original
            reshaped[first] = Tensor.zeros([3])
            cases.append(("reshaped", reshaped, "'\(first)' has shape [3]"))
            var missing = original
            missing[last] = nil
            cases.append(("missing", missing, "'\(last)' is missing"))
            var extra = original
            extra["not.a.parameter"] = Tensor.zeros([2])
            cases.append(("extra", extra, "'not.a.parameter' is not a parameter"))
            var reordered = original
            let moved = reordered[first]!
            reordered[first] = nil
            reordered[first] = moved
            cases.append(("reordered", reordered, "the model lists '\(first)'"))

            for (what, set, message) in cases {
                model.parameters = set
                do {
                    _ = try model.loss(batch)
                    Issue.record("\(name) \(what): loss did not throw")
                } catch {
                    #expect(error.message.contains(message), "\(name) \(what): \(error.message)")
                }
                #expect(throws: TrainingError.self, "\(name) \(what): save") { try model.save(to: out) }
            }
            model.parameters = original
            #expect(try model.loss(batch) == expected, "\(name): the restored parameters give another loss")
            // Replaced between a loss and its backward: refused, and the step's activations are
            // kept, so the backward runs once the right set is back.
            model.parameters = reshaped
            #expect(throws: TrainingError.self, "\(name): backward over a reshaped set") { _ = try model.backward() }
            model.parameters = original
            let grads = try model.backward()
            #expect(grads.names == original.names, "\(name): gradients after restoring")
        }
    }
}
