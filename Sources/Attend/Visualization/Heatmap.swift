// Heatmaps as SVG: attention maps (one panel per head, rows = queries, columns = keys, token
// labels on both axes) on one shared viridis colour scale with its legend.
import Foundation

/// One panel of a `Heatmap`: a caption and `rows x columns` values, row-major.
package struct HeatmapPanel: Sendable {
    /// The caption above the panel ("head 3").
    package var caption: String
    /// `rows * columns` values, row-major; non-finite values are drawn grey.
    package var values: [Float]

    /// A panel `caption` of row-major `values`.
    package init(caption: String, values: [Float]) {
        self.caption = caption
        self.values = values
    }
}

/// Several heatmaps of the same shape side by side (wrapping after `columnsOfPanels`), with
/// shared row labels on the left of each panel, column labels rotated on top, one colour
/// scale (viridis from the smallest to the largest finite value, or `range`) and a legend
/// giving its minimum and maximum. Drawing is linear in the number of cells; cells carry a
/// hover tooltip ("row → column: value") when a panel has at most 64 x 64 of them.
package struct Heatmap: Sendable {
    package var title: String
    /// Labels of the rows (queries), top to bottom.
    package var rowLabels: [String]
    /// Labels of the columns (keys), left to right.
    package var columnLabels: [String]
    package var panels: [HeatmapPanel]
    /// The value range of the colour scale; nil takes the data's.
    package var range: ClosedRange<Double>? = nil
    /// Panels per row of the grid.
    package var columnsOfPanels: Int = 4
    /// A line under the panels ("rows: queries, columns: keys"); nil draws none.
    package var footnote: String? = nil

    /// A heatmap titled `title`; every panel has `rowLabels.count * columnLabels.count` values.
    package init(title: String, rowLabels: [String], columnLabels: [String], panels: [HeatmapPanel]) {
        self.title = title
        self.rowLabels = rowLabels
        self.columnLabels = columnLabels
        self.panels = panels
    }

    /// The drawing as an SVG document.
    package func document() -> SVGDocument {
        let rows = rowLabels.count, cols = columnLabels.count
        let longest = max(rows, cols, 1)
        let cell = min(24, max(3, (360 / Double(longest)).rounded(.down)))
        let font = min(11, max(4, cell * 0.8))
        let labelChars = Double(min(24, (rowLabels + columnLabels).map(\.count).max() ?? 1))
        let labelSpace = labelChars * font * 0.62 + 8
        let panelWidth = labelSpace + Double(cols) * cell + 24
        let panelHeight = 22 + labelSpace + Double(rows) * cell + 16
        let perRow = max(1, min(columnsOfPanels, panels.count))
        let gridRows = max(1, (panels.count + perRow - 1) / perRow)
        let legendWidth = 90.0
        let width = max(360, 16 + Double(perRow) * panelWidth + legendWidth)
        let height = max(220, 48 + Double(gridRows) * panelHeight + (footnote == nil ? 8 : 26))
        var svg = SVGDocument(width: width, height: height)
        svg.text(title, x: width / 2, y: 26, size: 16, anchor: "middle", bold: true)

        let finite = panels.flatMap { $0.values.filter(\.isFinite) }.map(Double.init)
        var lo = range?.lowerBound ?? finite.min() ?? 0, hi = range?.upperBound ?? finite.max() ?? 1
        if !(hi > lo) { hi = lo + 1 }
        func color(_ v: Float) -> String { v.isFinite ? SVG.viridis((Double(v) - lo) / (hi - lo)) : SVG.viridis(.nan) }
        func short(_ s: String) -> String { s.count > 24 ? String(s.prefix(23)) + "…" : s }
        let tooltips = rows <= 64 && cols <= 64

        for (p, panel) in panels.enumerated() {
            let ox = 16 + Double(p % perRow) * panelWidth, oy = 48 + Double(p / perRow) * panelHeight
            let gx = ox + labelSpace, gy = oy + 22 + labelSpace  // the grid's top-left corner
            svg.text(panel.caption, x: gx + Double(cols) * cell / 2, y: oy + 14, size: 13, anchor: "middle", bold: true)
            for (j, label) in columnLabels.enumerated() {
                let x = gx + (Double(j) + 0.5) * cell + font * 0.35
                svg.text(short(label), x: x, y: gy - 4, size: font, rotate: -90)
            }
            for (i, label) in rowLabels.enumerated() {
                svg.text(short(label), x: gx - 4, y: gy + (Double(i) + 0.5) * cell + font * 0.35, size: font, anchor: "end")
            }
            for i in 0..<rows {
                for j in 0..<cols {
                    let k = i * cols + j
                    let v = k < panel.values.count ? panel.values[k] : .nan
                    let tip = tooltips ? "\(rowLabels[i]) → \(columnLabels[j]): \(LineChart.tick(Double(v)))" : nil
                    svg.rect(x: gx + Double(j) * cell, y: gy + Double(i) * cell, width: cell, height: cell, fill: color(v), title: tip)
                }
            }
            svg.rect(x: gx, y: gy, width: Double(cols) * cell, height: Double(rows) * cell, fill: "none", stroke: "#444444")
        }

        if let footnote { svg.text(footnote, x: 16, y: height - 10, size: 11, color: "#444444") }

        // The colour scale: a vertical bar from the minimum (bottom) to the maximum (top).
        let lx = width - legendWidth + 16, top = 60.0, barHeight = min(200, height - top - 30)
        let steps = 32
        for s in 0..<steps {
            let t = 1 - (Double(s) + 0.5) / Double(steps)
            svg.rect(x: lx, y: top + Double(s) * barHeight / Double(steps), width: 16, height: barHeight / Double(steps) + 0.5, fill: SVG.viridis(t))
        }
        svg.rect(x: lx, y: top, width: 16, height: barHeight, fill: "none", stroke: "#444444")
        svg.text("max " + LineChart.tick(hi), x: lx, y: top - 6, size: 11)
        svg.text("min " + LineChart.tick(lo), x: lx, y: top + barHeight + 14, size: 11)
        return svg
    }
}
