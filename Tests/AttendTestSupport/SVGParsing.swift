// Parsing SVG output as XML, for the tests of the SVG writer and of the charts built on it.
import Foundation
#if canImport(FoundationXML)
    import FoundationXML
#endif

/// Parses `svg` and returns every element name with its text, or nil if it is not well-formed.
public func parseSVG(_ svg: String) -> (elements: [String], texts: [String])? {
    final class Collector: NSObject, XMLParserDelegate {
        var elements: [String] = []
        var texts: [String] = []
        var current = ""
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
            elements.append(name)
            current = ""
        }
        func parser(_ parser: XMLParser, foundCharacters string: String) { current += string }
        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if name == "text" { texts.append(current) }
            current = ""
        }
    }
    let parser = XMLParser(data: Data(svg.utf8))
    let collector = Collector()
    parser.delegate = collector
    return parser.parse() ? (collector.elements, collector.texts) : nil
}
