// libFuzzer target: safetensors bytes through `SafeTensorsFile(bytes:)`.
//
// Each input is read twice when it can be:
//  1. as a whole file (8-byte length, header, data);
//  2. if it starts with `{`: as the header JSON up to the first NUL byte, followed by the data
//     (the rest); the harness writes the length prefix, so mutations of the JSON are not
//     wasted on a length that no longer matches.
// A file must either load or throw `SafeTensorsError` (anything else, a crash or a sanitizer
// report is a bug). A loaded file must keep its promises: every tensor's byte range inside the
// input and as long as its shape needs; every tensor readable as Float32 (every conversion)
// and, for integer dtypes, as Int; error messages one line, starting with the name.
//
// Build and run: see ../../Package.swift.
import Attend

/// The name errors must start with.
let name = "fuzz.safetensors"

/// Stops the run with a report libFuzzer records as a crash (with the input saved).
func fail(_ message: String) -> Never {
    fatalError("FuzzSafeTensors invariant: \(message)")
}

/// Loads `bytes` and reads everything in it, checking the reader's promises.
func check(_ bytes: [UInt8]) {
    let file: SafeTensorsFile
    do {
        file = try SafeTensorsFile(bytes: bytes, name: name)
    } catch let e as SafeTensorsError {
        checkMessage(e)
        return
    } catch {
        fail("threw \(type(of: error)), not SafeTensorsError: \(error)")
    }
    var sink: Float = 0
    var dataBytes = 0
    for tensorName in file.tensorNames {
        guard let info = file.info(tensorName) else { fail("listed tensor \(tensorName) has no info") }
        guard info.shape.allSatisfy({ $0 >= 0 }) else { fail("negative shape \(info.shape)") }
        guard info.byteRange.lowerBound >= 8, info.byteRange.upperBound <= bytes.count else {
            fail("byte range \(info.byteRange) outside the \(bytes.count)-byte input")
        }
        guard info.elementCount * info.dtype.byteSize == info.byteRange.count else {
            fail("\(info.shape) of \(info.dtype) in \(info.byteRange.count) bytes")
        }
        dataBytes += info.byteRange.count
        do {
            let t = try file.tensor(tensorName)
            guard t.shape == info.shape, t.count == info.elementCount else {
                fail("tensor \(tensorName) has shape \(t.shape), info says \(info.shape)")
            }
            t.withUnsafeBufferPointer { for x in $0 { sink += x } }
        } catch let e as SafeTensorsError {
            guard case .dtypeNotConvertible = e else { fail("tensor(\(tensorName)) threw \(e)") }
            checkMessage(e)
        } catch {
            fail("tensor(\(tensorName)) threw \(type(of: error))")
        }
        do {
            let values = try file.integers(tensorName)
            guard values.count == info.elementCount else { fail("integers(\(tensorName)): \(values.count) values") }
            for v in values { sink += Float(v & 1) }
        } catch let e as SafeTensorsError {
            switch e {
            case .dtypeNotConvertible, .integerOutOfRange: checkMessage(e)
            default: fail("integers(\(tensorName)) threw \(e)")
            }
        } catch {
            fail("integers(\(tensorName)) threw \(type(of: error))")
        }
    }
    // The tensors tile the data section exactly (no gap, no overlap, nothing left over).
    if let dataStart = file.tensorNames.compactMap({ file.info($0)?.byteRange.lowerBound }).min() {
        guard dataBytes == bytes.count - dataStart else {
            fail("tensors cover \(dataBytes) bytes of a data section of \(bytes.count - dataStart)")
        }
    }
    // A name not in the file is `.missingTensor`.
    let absent = "\u{0}absent"
    if file.info(absent) == nil {
        do {
            _ = try file.tensor(absent)
            fail("tensor(absent) returned a tensor")
        } catch SafeTensorsError.missingTensor(let f, let t) {
            guard f == name, t == absent else { fail("missingTensor(\(f), \(t))") }
        } catch {
            fail("tensor(absent) threw \(error)")
        }
    }
    blackHole(sink)
}

/// Error messages are one line naming the file (and the tensor at fault, quoted).
func checkMessage(_ e: SafeTensorsError) {
    let d = e.description
    guard d.hasPrefix(name + ": "), !d.contains("\n"), !d.contains("\r"), e.file == name else {
        fail("bad message: \(d)")
    }
}

@inline(never)
func blackHole(_ x: Float) {
    if x == 0x1p100 { print("") }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    check(bytes)
    if bytes.first == UInt8(ascii: "{") {
        let headerEnd = bytes.firstIndex(of: 0) ?? bytes.count
        var file: [UInt8] = []
        file.reserveCapacity(8 + bytes.count)
        withUnsafeBytes(of: UInt64(headerEnd).littleEndian) { file.append(contentsOf: $0) }
        file.append(contentsOf: bytes[..<headerEnd])
        if headerEnd < bytes.count { file.append(contentsOf: bytes[(headerEnd + 1)...]) }
        check(file)
    }
    return 0
}
