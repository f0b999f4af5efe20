import Foundation
import Testing
@testable import Attend

@Suite struct LearningRateScheduleTests {
    static func schedule(_ name: String, _ c: [String: Any]) -> LearningRateSchedule {
        switch name {
        case "linear", "linear_nowarmup":
            return .linearWarmup(peak: OptimFixtures.float(c["peak"]), warmupSteps: c["warmup"] as! Int, totalSteps: c["total"] as! Int)
        case "cosine", "cosine_2cycles":
            return .cosineWarmup(
                peak: OptimFixtures.float(c["peak"]), warmupSteps: c["warmup"] as! Int, totalSteps: c["total"] as! Int,
                cycles: (c["cycles"] as! NSNumber).doubleValue)
        default:
            return .inverseSquareRootWarmup(
                modelDimension: c["model_dimension"] as! Int, warmupSteps: c["warmup"] as! Int,
                scale: OptimFixtures.float(c["scale"]))
        }
    }

    /// Each schedule's rates equal PyTorch's `LambdaLR` rates (`transformers`'
    /// get_linear_schedule_with_warmup / get_cosine_schedule_with_warmup, the paper's formula
    /// as a lambda) rounded to float32: bit for bit, since both compute in double in the same
    /// order and round once. Past the end the linear and cosine rates are 0.
    @Test(arguments: ["linear", "linear_nowarmup", "cosine", "cosine_2cycles", "inverse_sqrt"])
    func ratesMatchPyTorch(_ name: String) throws {
        let c = OptimFixtures.settings("schedules", name)
        let s = Self.schedule(name, c)
        let want = (c["lrs"] as! [String]).map { Double($0)! }
        for (step, lr) in want.enumerated() {
            let got = try s.learningRate(step: step)
            #expect(got == Float(lr), "\(name) step \(step): \(got), PyTorch \(lr)")
        }
    }

    @Test func shapesOfTheSchedules() throws {
        let linear = LearningRateSchedule.linearWarmup(peak: 1, warmupSteps: 4, totalSteps: 8)
        #expect(try (0...9).map { try linear.learningRate(step: $0) } == [0, 0.25, 0.5, 0.75, 1, 0.75, 0.5, 0.25, 0, 0])
        let cosine = LearningRateSchedule.cosineWarmup(peak: 2, warmupSteps: 0, totalSteps: 4)
        #expect(try cosine.learningRate(step: 0) == 2 && cosine.learningRate(step: 2) == 1 && cosine.learningRate(step: 4) == 0)
        #expect(try LearningRateSchedule.constant(3e-4).learningRate(step: 1_000_000) == 3e-4)
        // The paper's schedule peaks at the end of the warmup (n = warmup) at d^-0.5 * warmup^-0.5.
        let noam = LearningRateSchedule.inverseSquareRootWarmup(modelDimension: 512, warmupSteps: 4000)
        let rates = try (0..<8000).map { try noam.learningRate(step: $0) }
        #expect(rates.indices.max { rates[$0] < rates[$1] } == 3999)
        #expect(abs(Double(rates[3999]) - 1 / (512.0 * 4000).squareRoot()) < 1e-9)
    }

    @Test func invalidSettingsThrow() {
        let bad: [LearningRateSchedule] = [
            .constant(-1), .constant(.nan),
            .linearWarmup(peak: -1e-3, warmupSteps: 1, totalSteps: 10),
            .linearWarmup(peak: 1e-3, warmupSteps: -1, totalSteps: 10),
            .linearWarmup(peak: 1e-3, warmupSteps: 11, totalSteps: 10),
            .linearWarmup(peak: 1e-3, warmupSteps: 0, totalSteps: 0),
            .cosineWarmup(peak: .infinity, warmupSteps: 1, totalSteps: 10),
            .cosineWarmup(peak: 1e-3, warmupSteps: 1, totalSteps: 10, cycles: 0),
            .cosineWarmup(peak: 1e-3, warmupSteps: 1, totalSteps: 10, cycles: .nan),
            .inverseSquareRootWarmup(modelDimension: 0, warmupSteps: 10),
            .inverseSquareRootWarmup(modelDimension: 512, warmupSteps: 0),
            .inverseSquareRootWarmup(modelDimension: 512, warmupSteps: 10, scale: -1),
        ]
        for s in bad {
            #expect(throws: TrainingError.self, "\(s)") { try s.validate() }
            #expect(throws: TrainingError.self, "\(s)") { _ = try s.learningRate(step: 0) }
        }
        #expect { _ = try LearningRateSchedule.constant(1).learningRate(step: -1) } throws: {
            ($0 as? TrainingError)?.message.contains("step -1") == true
        }
    }
}
