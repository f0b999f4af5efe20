// The SVG writer: every document is well-formed XML whatever its labels and numbers are, and a
// line chart draws what it is given (one polyline per series, error bars, legend labels).
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

@testable import Attend
import AttendTestSupport

@Test func hostileLabelsStayWellFormed() throws {
    var doc = SVGDocument(width: 100, height: 50)
    let label = "a<b & \"c\" 'd' \u{01}\u{1F} ]]> </svg> é 銀行"
    doc.text(label, x: 1, y: 2)
    doc.rect(x: .nan, y: .infinity, width: -3, height: 4, fill: "#000", title: label)
    let parsed = try #require(parseSVG(doc.render()))
    #expect(parsed.elements.first == "svg")
    #expect(parsed.texts == ["a<b & \"c\" 'd' \u{FFFD}\u{FFFD} ]]> </svg> é 銀行"])
}

@Test func numbersAreFiniteAndShort() {
    #expect(SVG.number(3) == "3")
    #expect(SVG.number(2.345) == "2.35" || SVG.number(2.345) == "2.34")
    #expect(SVG.number(-0.5) == "-0.50" || SVG.number(-0.5) == "-0.5")
    #expect(SVG.number(.nan) == "0")
    #expect(SVG.viridis(0) == "#440154")
    #expect(SVG.viridis(1) == "#fde725")
    #expect(SVG.viridis(.nan) == "#bbbbbb")
}

@Test func lineChartDrawsEverySeries() throws {
    let chart = LineChart(
        title: "Accuracy <by> length", xLabel: "length", yLabel: "accuracy",
        series: [
            ChartSeries(name: "sinusoidal", points: [(64, 0.9, 0.02), (128, 0.6, 0.1), (256, 0.3, nil)]),
            ChartSeries(name: "T5 buckets", points: [(64, 0.95, 0.01), (128, 0.9, 0.03), (256, 0.85, 0.05), (512, .nan, nil)]),
        ])
    var c = chart
    c.logX = true
    c.yRange = 0...1
    let parsed = try #require(parseSVG(c.document().render()))
    #expect(parsed.elements.filter { $0 == "polyline" }.count == 2)
    #expect(parsed.elements.filter { $0 == "circle" }.count == 6)  // the NaN point is skipped
    #expect(parsed.texts.contains("Accuracy <by> length"))
    #expect(parsed.texts.contains("sinusoidal") && parsed.texts.contains("T5 buckets"))
    #expect(["64", "128", "256", "512"].allSatisfy(parsed.texts.contains))
}
