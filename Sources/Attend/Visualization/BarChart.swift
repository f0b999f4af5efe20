// A horizontal bar chart as SVG: benchmark figures per kernel or per model (GFLOP/s, % of
// peak, time), one bar per entry with its value written beside it.
import Foundation

/// Horizontal bars, one per `(label, value)`, on a shared scale from 0 (or the smallest
/// negative value) to the largest value, with a title, the unit on the axis and each value
/// written at the end of its bar. Non-finite values get no bar and read "n/a". Drawing is
/// linear in the number of bars.
package struct BarChart: Sendable {
    package var title: String
    /// The axis label: what the values are ("GFLOP/s", "% of peak").
    package var unit: String
    package var bars: [(label: String, value: Double)]
    /// Optional notes written after each bar's value ("51% of peak"), by bar index.
    package var notes: [String] = []
    package var width: Double = 860

    /// A chart titled `title` of `bars` measured in `unit`.
    package init(title: String, unit: String, bars: [(label: String, value: Double)]) {
        self.title = title
        self.unit = unit
        self.bars = bars
    }

    /// The chart as an SVG document.
    package func document() -> SVGDocument {
        let barHeight = 18.0, gap = 6.0
        let labelChars = Double(min(48, bars.map(\.label.count).max() ?? 4))
        let left = 16 + labelChars * 7.4, right = width - 150, top = 48.0
        let height = top + Double(max(bars.count, 1)) * (barHeight + gap) + 50
        var svg = SVGDocument(width: width, height: height)
        svg.text(title, x: width / 2, y: 26, size: 16, anchor: "middle", bold: true)
        let finite = bars.map(\.value).filter(\.isFinite)
        let lo = min(0, finite.min() ?? 0)
        var hi = max(0, finite.max() ?? 1)
        if hi == lo { hi = lo + 1 }
        func px(_ v: Double) -> Double { left + (v - lo) / (hi - lo) * (right - left) }
        let bottom = top + Double(bars.count) * (barHeight + gap)
        for i in 0...4 {
            let v = lo + Double(i) / 4 * (hi - lo)
            svg.line(x1: px(v), y1: top - 4, x2: px(v), y2: bottom, stroke: "#dddddd", width: 0.5)
            svg.text(LineChart.tick(v), x: px(v), y: bottom + 16, size: 11, anchor: "middle")
        }
        for (i, bar) in bars.enumerated() {
            let y = top + Double(i) * (barHeight + gap)
            svg.text(bar.label.count > 48 ? String(bar.label.prefix(47)) + "…" : bar.label, x: left - 6, y: y + barHeight * 0.7, size: 12, anchor: "end")
            guard bar.value.isFinite else {
                svg.text("n/a", x: px(0) + 4, y: y + barHeight * 0.7, size: 11, color: "#666666")
                continue
            }
            let (a, b) = (px(min(0, bar.value)), px(max(0, bar.value)))
            svg.rect(x: a, y: y, width: b - a, height: barHeight, fill: SVG.seriesColor(0), title: "\(bar.label): \(LineChart.tick(bar.value)) \(unit)")
            let note = i < notes.count && !notes[i].isEmpty ? " (\(notes[i]))" : ""
            svg.text(LineChart.tick(bar.value) + note, x: b + 4, y: y + barHeight * 0.7, size: 11)
        }
        svg.line(x1: px(0), y1: top - 4, x2: px(0), y2: bottom)
        svg.text(unit, x: (left + right) / 2, y: bottom + 36, size: 13, anchor: "middle")
        return svg
    }
}
