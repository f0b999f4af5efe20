import Attend
import Foundation

// The experiment's outputs: a Markdown table per task (accuracy mean ± standard deviation over
// seeds, one row per encoding, one column per evaluated length), the same numbers as JSON,
// and one SVG chart per task of accuracy against length.

/// Every seed's accuracy of one encoding on one task, per length.
package struct CellResults: Sendable {
    package var task: PositionTask
    package var encoding: PositionEncoding
    /// `runs[s].accuracy[length]` for seed s.
    package var runs: [RunResult]

    /// Mean and sample standard deviation (0 for one seed) over seeds at `length`.
    package func summary(length: Int) -> (mean: Double, spread: Double) {
        let xs = runs.compactMap { $0.accuracy[length] }
        guard !xs.isEmpty else { return (.nan, .nan) }
        let mean = xs.reduce(0, +) / Double(xs.count)
        guard xs.count > 1 else { return (mean, 0) }
        let variance = xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(xs.count - 1)
        return (mean, variance.squareRoot())
    }
}

/// A finished experiment: its settings, every cell, and how long it took.
package struct PositionReport: Sendable {
    package var lengths: [Int]
    package var seeds: [UInt64]
    package var config: PositionModelConfig
    package var settings: TrainingSettings
    package var cells: [CellResults]
    package var wallSeconds: Double
    package var threads: Int
    package var command: String

    /// The tasks present, in the order run.
    package var tasks: [PositionTask] {
        var out: [PositionTask] = []
        for c in cells where !out.contains(c.task) { out.append(c.task) }
        return out
    }

    /// The Markdown tables, one per task.
    package func markdown() -> String {
        var out = "Accuracy (mean ± standard deviation over \(seeds.count) seed\(seeds.count == 1 ? "" : "s")), trained at length "
        out += "\(config.trainLength), \(settings.steps) steps of \(settings.batch) sequences; \(settings.evaluationSequences) held-out sequences per length.\n"
        for task in tasks {
            out += "\n### \(task.rawValue)\n\n"
            out += "| encoding | " + lengths.map { "\($0)" }.joined(separator: " | ") + " |\n"
            out += "|---|" + lengths.map { _ in "---:|" }.joined() + "\n"
            for cell in cells where cell.task == task {
                let values = lengths.map { n -> String in
                    let s = cell.summary(length: n)
                    return String(format: "%.3f ± %.3f", s.mean, s.spread)
                }
                out += "| \(cell.encoding.rawValue) | " + values.joined(separator: " | ") + " |\n"
            }
        }
        out += String(format: "\nWall time %.1f s on %d thread%@.\n", wallSeconds, threads, threads == 1 ? "" : "s")
        return out
    }

    /// The results as a JSON object (sorted keys).
    package func json() throws -> Data {
        let results: [[String: Any]] = cells.flatMap { cell in
            lengths.map { n -> [String: Any] in
                let s = cell.summary(length: n)
                return [
                    "task": cell.task.rawValue, "encoding": cell.encoding.rawValue, "length": n,
                    "mean": s.mean.isFinite ? s.mean : NSNull(), "spread": s.spread.isFinite ? s.spread : NSNull(),
                    "seeds": cell.runs.map { $0.accuracy[n].map { $0.isFinite ? $0 as Any : NSNull() } ?? NSNull() },
                ]
            }
        }
        let training: [[String: Any]] = cells.map { cell in
            [
                "task": cell.task.rawValue, "encoding": cell.encoding.rawValue,
                "firstLoss": cell.runs.map { Double($0.firstLoss) }, "lastLoss": cell.runs.map { Double($0.lastLoss) },
                "seconds": cell.runs.map(\.seconds),
            ]
        }
        let object: [String: Any] = [
            "command": command, "wallSeconds": wallSeconds, "threads": threads, "lengths": lengths, "seeds": seeds.map { Int($0) },
            "trainLength": config.trainLength, "steps": settings.steps, "batch": settings.batch, "learningRate": Double(settings.learningRate),
            "evaluationSequences": settings.evaluationSequences,
            "model": [
                "modelDim": config.modelDim, "heads": config.heads, "layers": config.layers, "feedForwardDim": config.feedForwardDim,
                "shawClip": config.shawClip, "t5Buckets": config.t5Buckets, "t5MaxDistance": config.t5MaxDistance,
                "learnedBeyondTrainLength": "clamped to the last trained position",
            ],
            "results": results, "training": training,
        ]
        return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
    }

    /// The chart of `task`: accuracy against length (log2 axis), one series per encoding,
    /// error bars of one standard deviation, the trained length marked.
    package func chart(_ task: PositionTask) -> LineChart {
        let series = cells.filter { $0.task == task }.map { cell in
            ChartSeries(
                name: cell.encoding.rawValue,
                points: lengths.map { n in
                    let s = cell.summary(length: n)
                    return (x: Double(n), y: s.mean, spread: seeds.count > 1 ? s.spread : nil)
                })
        }
        var chart = LineChart(title: "\(task.rawValue): accuracy against length (trained at \(config.trainLength))", xLabel: "sequence length", yLabel: "accuracy", series: series)
        chart.logX = true
        chart.yRange = 0...1
        return chart
    }

    /// Writes `positions.md`, `positions.json` and `positions-<task>.svg` into `directory`
    /// (created if needed); returns the files written.
    @discardableResult
    package func write(to directory: URL) throws -> [URL] {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var files: [URL] = []
        let md = directory.appendingPathComponent("positions.md")
        try Data(markdown().utf8).write(to: md)
        let js = directory.appendingPathComponent("positions.json")
        try json().write(to: js)
        files += [md, js]
        for task in tasks {
            let svg = directory.appendingPathComponent("positions-\(task.rawValue).svg")
            try chart(task).document().write(to: svg)
            files.append(svg)
        }
        return files
    }
}
