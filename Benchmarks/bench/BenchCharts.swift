// `bench --svg DIR`: one chart per section that ran, drawn from the figures the section
// emitted (the same numbers as its table rows and JSON lines).
import Attend
import Foundation

/// The emitted figures of a run, by section, and their charts.
final class BenchChartRecorder: @unchecked Sendable {
    /// The section whose figures are being emitted.
    var section = ""
    private var order: [String] = []
    private var figures: [String: [[String: Any]]] = [:]

    /// Keeps one emitted result under the current section.
    func record(_ fields: [(String, Any)]) {
        if figures[section] == nil { order.append(section) }
        figures[section, default: []].append(Dictionary(fields, uniquingKeysWith: { a, _ in a }))
    }

    /// A number field of a result, when it is one and finite.
    private static func number(_ f: [String: Any], _ key: String) -> Double? {
        switch f[key] {
        case let d as Double: return d.isFinite ? d : nil
        case let i as Int: return Double(i)
        default: return nil
        }
    }

    /// The chart of one section, or nil when it emitted nothing to draw.
    func chart(_ section: String) -> SVGDocument? {
        let rows = figures[section] ?? []
        func label(_ f: [String: Any]) -> String {
            let name = "\(f["name"] ?? "?")"
            return (f["threads"] as? Int).map { "\(name), \($0) thr" } ?? name
        }
        // Several sequence lengths of the same measurement: time against length.
        var bySeries: [String: [(Double, Double)]] = [:]
        for f in rows {
            guard let seq = Self.number(f, "seq"), let ms = Self.number(f, "ms"), ms > 0 else { continue }
            let name = label(f).replacingOccurrences(of: #"\s*seq \d+"#, with: "", options: .regularExpression)
            bySeries[name, default: []].append((seq, ms))
        }
        if bySeries.values.contains(where: { Set($0.map(\.0)).count >= 2 }) {
            var chart = LineChart(
                title: "bench \(section): time against sequence length", xLabel: "sequence length", yLabel: "ms",
                series: bySeries.keys.sorted().map { name in
                    ChartSeries(name: name, points: bySeries[name]!.sorted { $0.0 < $1.0 }.map { ($0.0, $0.1, nil) })
                })
            chart.logX = true
            return chart.document()
        }
        // Kernels with a flop count: GFLOP/s, each with its share of the FMA peak.
        let flops = rows.filter { Self.number($0, "gflops") != nil }
        if !flops.isEmpty {
            var chart = BarChart(
                title: "bench \(section): GFLOP/s (share of the measured FMA peak)", unit: "GFLOP/s",
                bars: flops.map { (label($0), Self.number($0, "gflops")!) })
            chart.notes = flops.map { f in
                let peak = Self.number(f, "peak_gflops") ?? 0
                return peak > 0 && f["name"] as? String != "fma peak" ? String(format: "%.0f%% of peak", Self.number(f, "gflops")! / peak * 100) : ""
            }
            return chart.document()
        }
        // Otherwise the section's rate, else its time.
        for (key, unit) in [
            ("tokens_per_s", "tokens/s"), ("sentences_per_s", "sentences/s"), ("gbs", "GB/s"), ("us", "µs"), ("ms", "ms"),
        ] {
            let measured = rows.filter { (Self.number($0, key) ?? 0) > 0 }
            if !measured.isEmpty {
                return BarChart(title: "bench \(section): \(unit)", unit: unit, bars: measured.map { (label($0), Self.number($0, key)!) }).document()
            }
        }
        return nil
    }

    /// Writes `SECTION.svg` into `dir` for every section that has a chart; problems go to stderr.
    func write(to dir: String) {
        let url = URL(fileURLWithPath: dir)
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            stderr("bench: --svg \(dir): cannot create the folder (\(error.localizedDescription))")
            return
        }
        for section in order {
            guard let doc = chart(section) else { continue }
            let file = url.appendingPathComponent("\(section).svg")
            do {
                try doc.write(to: file)
                stderr("bench: chart \(file.path)")
            } catch {
                stderr("bench: --svg: cannot write \(file.path) (\(error.localizedDescription))")
            }
        }
    }
}
