import Attend
import AttendCommandLine
import Foundation

/// `attend quantize`: writes the int8 folder and prints one summary line.
func quantize(folder: URL, _ args: Arguments) throws {
    guard let out = args.quantizeOut, let scheme = Int8Scheme(rawValue: args.quantizeScheme) else {
        throw UsageError(description: "quantize needs --out DIR2")
    }
    let r = try ModelQuantization.quantize(model: folder, out: URL(fileURLWithPath: out), scheme: scheme, keep: args.keepFloat)
    if args.json {
        print(
            jsonObject([
                ("out", .string(out)), ("scheme", .string(scheme.rawValue)), ("quantized", .int(r.quantized.count)),
                ("kept", .strings(r.kept)), ("kept_bytes", .int(r.keptBytes)),
                ("bytes_before", .int(r.bytesBefore)), ("bytes_after", .int(r.bytesAfter)), ("file_bytes", .int(r.fileBytes)),
            ]))
    } else {
        let mb = { (n: Int) in String(format: "%.1f MB", Double(n) / 1e6) }
        print(
            "\(out): \(r.quantized.count) weights as \(scheme.rawValue)\(r.addedHead ? " (a separate int8 output head added)" : "") \(mb(r.bytesBefore)) -> \(mb(r.bytesAfter))"
                + (r.kept.isEmpty ? "" : String(format: "; %d kept 16-bit (%@, %.0f%% of the covered bytes)", r.kept.count, mb(r.keptBytes), 100 * r.keptByteFraction))
                + "; model.safetensors \(mb(r.fileBytes)); \(r.copiedFiles.count) other files copied"
        )
    }
}
