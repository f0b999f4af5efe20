// A small writer of standalone SVG documents: the pictures Attend draws itself (attention
// heatmaps, accuracy-against-length charts, benchmark charts) with no plotting dependency.
// Every string that reaches the document is XML-escaped, every number is written finite, so
// the output is well-formed XML whatever the labels and values are.
import Foundation

/// A standalone SVG document built element by element: `width` x `height` user units, white
/// background, a system sans-serif font. Appending is O(1) amortized; `render()` is linear in
/// the number of elements.
package struct SVGDocument: Sendable {
    /// The canvas size in user units (pixels when shown at 100%).
    package let width: Double
    package let height: Double
    private var elements: [String] = []

    /// An empty `width` x `height` document with a white background.
    package init(width: Double, height: Double) {
        self.width = width
        self.height = height
        rect(x: 0, y: 0, width: width, height: height, fill: "#ffffff")
    }

    /// A filled rectangle; `stroke` draws its outline, `title` becomes a hover tooltip.
    package mutating func rect(
        x: Double, y: Double, width: Double, height: Double, fill: String, stroke: String? = nil, title: String? = nil
    ) {
        var s = "<rect x=\"\(SVG.number(x))\" y=\"\(SVG.number(y))\" width=\"\(SVG.number(max(0, width)))\" height=\"\(SVG.number(max(0, height)))\" fill=\"\(SVG.escape(fill))\""
        if let stroke { s += " stroke=\"\(SVG.escape(stroke))\" stroke-width=\"0.5\"" }
        if let title {
            s += "><title>\(SVG.escape(title))</title></rect>"
        } else {
            s += "/>"
        }
        elements.append(s)
    }

    /// A straight line from (x1, y1) to (x2, y2); `dashed` draws it dashed.
    package mutating func line(x1: Double, y1: Double, x2: Double, y2: Double, stroke: String = "#000000", width: Double = 1, dashed: Bool = false) {
        elements.append(
            "<line x1=\"\(SVG.number(x1))\" y1=\"\(SVG.number(y1))\" x2=\"\(SVG.number(x2))\" y2=\"\(SVG.number(y2))\" stroke=\"\(SVG.escape(stroke))\" stroke-width=\"\(SVG.number(width))\"\(dashed ? " stroke-dasharray=\"4 3\"" : "")/>"
        )
    }

    /// An open polyline through `points` (nothing when fewer than two).
    package mutating func polyline(_ points: [(x: Double, y: Double)], stroke: String, width: Double = 2) {
        guard points.count >= 2 else { return }
        let list = points.map { "\(SVG.number($0.x)),\(SVG.number($0.y))" }.joined(separator: " ")
        elements.append("<polyline points=\"\(list)\" fill=\"none\" stroke=\"\(SVG.escape(stroke))\" stroke-width=\"\(SVG.number(width))\"/>")
    }

    /// A filled circle of radius `r` at (cx, cy); `title` becomes a hover tooltip.
    package mutating func circle(cx: Double, cy: Double, r: Double, fill: String, title: String? = nil) {
        let head = "<circle cx=\"\(SVG.number(cx))\" cy=\"\(SVG.number(cy))\" r=\"\(SVG.number(r))\" fill=\"\(SVG.escape(fill))\""
        elements.append(title.map { head + "><title>\(SVG.escape($0))</title></circle>" } ?? head + "/>")
    }

    /// Text anchored at (x, y): `anchor` is `start`, `middle` or `end`; `rotate` turns it
    /// (degrees, around the anchor point), as for vertical axis labels.
    package mutating func text(
        _ string: String, x: Double, y: Double, size: Double = 12, anchor: String = "start", color: String = "#000000",
        bold: Bool = false, rotate: Double = 0
    ) {
        var s = "<text x=\"\(SVG.number(x))\" y=\"\(SVG.number(y))\" font-size=\"\(SVG.number(size))\" text-anchor=\"\(SVG.escape(anchor))\" fill=\"\(SVG.escape(color))\""
        if bold { s += " font-weight=\"bold\"" }
        if rotate != 0 { s += " transform=\"rotate(\(SVG.number(rotate)) \(SVG.number(x)) \(SVG.number(y)))\"" }
        s += ">\(SVG.escape(string))</text>"
        elements.append(s)
    }

    /// The document as SVG 1.1 text (with the XML declaration), ready to write to a `.svg` file.
    package func render() -> String {
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"\(SVG.number(width))\" height=\"\(SVG.number(height))\" viewBox=\"0 0 \(SVG.number(width)) \(SVG.number(height))\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
        for e in elements { out += e + "\n" }
        out += "</svg>\n"
        return out
    }

    /// Writes `render()` to `url` atomically.
    package func write(to url: URL) throws {
        try Data(render().utf8).write(to: url, options: .atomic)
    }
}

/// Escaping, number formatting and colours shared by the drawings.
package enum SVG {
    /// `string` with `&`, `<`, `>`, `"` and `'` escaped, and characters XML 1.0 forbids (C0
    /// controls other than tab, newline and carriage return; U+FFFE, U+FFFF) replaced by U+FFFD.
    package static func escape(_ string: String) -> String {
        var out = ""
        out.reserveCapacity(string.utf8.count)
        for scalar in string.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
            default:
                if scalar.value < 0x20 || scalar.value == 0xFFFE || scalar.value == 0xFFFF {
                    out += "\u{FFFD}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// `value` with at most two decimals and no exponent; non-finite values become 0 so the
    /// document stays valid.
    package static func number(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        let rounded = (value * 100).rounded() / 100
        if rounded == rounded.rounded() && abs(rounded) < 1e15 { return String(Int64(rounded)) }
        return String(format: "%.2f", rounded)
    }

    /// A colour of the viridis map for `t` in [0, 1] (clamped; NaN is drawn grey), as `#rrggbb`:
    /// dark violet at 0 through teal to yellow at 1, perceptually even and readable in grey.
    package static func viridis(_ t: Double) -> String {
        guard t.isFinite else { return "#bbbbbb" }
        // Eight control points of matplotlib's viridis, interpolated linearly.
        let stops: [(Double, Double, Double)] = [
            (68, 1, 84), (70, 50, 127), (54, 92, 141), (39, 127, 142), (31, 161, 135), (74, 193, 109), (160, 218, 57), (253, 231, 37),
        ]
        let x = min(max(t, 0), 1) * Double(stops.count - 1)
        let i = min(Int(x), stops.count - 2)
        let f = x - Double(i)
        let (a, b) = (stops[i], stops[i + 1])
        func mix(_ p: Double, _ q: Double) -> Int { Int((p + (q - p) * f).rounded()) }
        return String(format: "#%02x%02x%02x", mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }

    /// A qualitative palette (colour-blind safe, Okabe–Ito) for series `index`, cycling.
    package static func seriesColor(_ index: Int) -> String {
        let palette = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442"]
        return palette[((index % palette.count) + palette.count) % palette.count]
    }
}
