// A line chart with error bars, as SVG: accuracy against sequence length per position
// encoding, throughput against threads, and the like.
import Foundation

/// One named series of a `LineChart`: points (x, y) with an optional half-width `spread`
/// drawn as an error bar.
package struct ChartSeries: Sendable {
    /// The legend label.
    package var name: String
    /// The points in drawing order.
    package var points: [(x: Double, y: Double, spread: Double?)]

    /// A series `name` through `points`.
    package init(name: String, points: [(x: Double, y: Double, spread: Double?)]) {
        self.name = name
        self.points = points
    }
}

/// A line chart of several series on shared axes, drawn into a standalone SVG: a title, axis
/// labels and ticks, grid lines, one colour per series with a legend, error bars where a
/// point has a spread. The x axis may be logarithmic base 2 (lengths 64, 128, 256...).
/// Drawing is linear in the number of points.
package struct LineChart: Sendable {
    package var title: String
    package var xLabel: String
    package var yLabel: String
    package var series: [ChartSeries]
    /// Base-2 logarithmic x axis (x values must be positive; others are skipped).
    package var logX: Bool = false
    /// The y range; nil takes the data's range (with a margin).
    package var yRange: ClosedRange<Double>? = nil
    package var width: Double = 720
    package var height: Double = 440

    /// A chart titled `title` with the given axis labels and series.
    package init(title: String, xLabel: String, yLabel: String, series: [ChartSeries]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
    }

    /// The chart as an SVG document.
    package func document() -> SVGDocument {
        var svg = SVGDocument(width: width, height: height)
        let legendWidth = 170.0
        let left = 70.0, right = width - legendWidth, top = 46.0, bottom = height - 56
        svg.text(title, x: width / 2, y: 26, size: 16, anchor: "middle", bold: true)

        func tx(_ x: Double) -> Double? { logX ? (x > 0 ? Foundation.log2(x) : nil) : x }
        let xs = series.flatMap { $0.points.compactMap { p in p.x.isFinite ? tx(p.x) : nil } }
        let ys = series.flatMap { $0.points.flatMap { p -> [Double] in
            guard p.y.isFinite else { return [] }
            let s = p.spread.flatMap { $0.isFinite ? abs($0) : nil } ?? 0
            return [p.y - s, p.y + s]
        } }
        var x0 = xs.min() ?? 0, x1 = xs.max() ?? 1
        if x0 == x1 { x0 -= 1; x1 += 1 }
        var yr = yRange ?? ((ys.min() ?? 0)...(ys.max() ?? 1))
        if yr.lowerBound == yr.upperBound { yr = (yr.lowerBound - 1)...(yr.upperBound + 1) }
        let xPad = (x1 - x0) * 0.04
        x0 -= xPad; x1 += xPad
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * (right - left) }
        func py(_ y: Double) -> Double { bottom - (y - yr.lowerBound) / (yr.upperBound - yr.lowerBound) * (bottom - top) }

        // Axes, grid and ticks.
        svg.line(x1: left, y1: bottom, x2: right, y2: bottom)
        svg.line(x1: left, y1: top, x2: left, y2: bottom)
        for i in 0...5 {
            let y = yr.lowerBound + Double(i) / 5 * (yr.upperBound - yr.lowerBound)
            svg.line(x1: left, y1: py(y), x2: right, y2: py(y), stroke: "#dddddd", width: 0.5)
            svg.text(LineChart.tick(y), x: left - 6, y: py(y) + 4, size: 11, anchor: "end")
        }
        let xTicks = Array(Set(series.flatMap { $0.points.map(\.x) }.filter { $0.isFinite && tx($0) != nil })).sorted()
        for x in xTicks.count <= 12 ? xTicks : stride(from: 0, to: xTicks.count, by: xTicks.count / 10 + 1).map({ xTicks[$0] }) {
            let p = px(tx(x)!)
            svg.line(x1: p, y1: bottom, x2: p, y2: bottom + 4)
            svg.text(LineChart.tick(x), x: p, y: bottom + 18, size: 11, anchor: "middle")
        }
        svg.text(xLabel, x: (left + right) / 2, y: height - 16, size: 13, anchor: "middle")
        svg.text(yLabel, x: 18, y: (top + bottom) / 2, size: 13, anchor: "middle", rotate: -90)

        // Series, error bars, legend.
        for (i, s) in series.enumerated() {
            let color = SVG.seriesColor(i)
            let pts = s.points.compactMap { p -> (x: Double, y: Double, spread: Double?)? in
                guard let t = tx(p.x), t.isFinite, p.y.isFinite else { return nil }
                return (px(t), py(p.y), p.spread)
            }
            svg.polyline(pts.map { ($0.x, $0.y) }, stroke: color)
            for (p, raw) in zip(pts, s.points.filter { tx($0.x) != nil && $0.y.isFinite }) {
                if let spread = raw.spread, spread.isFinite, spread > 0 {
                    let (a, b) = (py(raw.y - spread), py(raw.y + spread))
                    svg.line(x1: p.x, y1: a, x2: p.x, y2: b, stroke: color, width: 1.2)
                    svg.line(x1: p.x - 4, y1: a, x2: p.x + 4, y2: a, stroke: color, width: 1.2)
                    svg.line(x1: p.x - 4, y1: b, x2: p.x + 4, y2: b, stroke: color, width: 1.2)
                }
                let label = "\(s.name): x \(LineChart.tick(raw.x)), y \(LineChart.tick(raw.y))" + (raw.spread.map { " ± \(LineChart.tick($0))" } ?? "")
                svg.circle(cx: p.x, cy: p.y, r: 3.5, fill: color, title: label)
            }
            let ly = top + 8 + Double(i) * 20
            svg.line(x1: right + 16, y1: ly, x2: right + 40, y2: ly, stroke: color, width: 3)
            svg.text(s.name, x: right + 46, y: ly + 4, size: 12)
        }
        return svg
    }

    /// A short tick label: integers as integers, others with up to three significant decimals.
    static func tick(_ v: Double) -> String {
        guard v.isFinite else { return "nan" }
        if v == v.rounded() && abs(v) < 1e9 { return String(Int(v)) }
        return String(format: abs(v) < 10 ? "%.3g" : "%.4g", v)
    }
}

