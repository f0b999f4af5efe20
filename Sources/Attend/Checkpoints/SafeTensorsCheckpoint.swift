// A whole checkpoint: one model.safetensors, or several shards tied together by
// model.safetensors.index.json ({"metadata": {...}, "weight_map": {tensor name: shard file}}),
// as Hugging Face `save_pretrained` writes them.

import Foundation

/// All tensors of a checkpoint, from one safetensors file or several shards, by name.
///
/// Every file is memory-mapped and its header validated when the checkpoint is opened
/// (O(total header size)); tensor data is read on request. Tensor names are unique across
/// files. Immutable and safe to share between threads.
///
/// ```swift
/// let ckpt = try SafeTensorsCheckpoint(directory: modelFolder)
/// let emb = try ckpt.tensor("embeddings.word_embeddings.weight")  // [vocab, hidden]
/// ```
public struct SafeTensorsCheckpoint: Sendable {
    /// The name of a single-file checkpoint inside a model directory.
    public static let singleFileName = "model.safetensors"
    /// The name of a sharded checkpoint's index inside a model directory.
    public static let indexFileName = "model.safetensors.index.json"

    /// The files of the checkpoint, in the order given (or, for an index, sorted by name).
    public let files: [SafeTensorsFile]
    /// Every tensor name across all files, sorted.
    public let tensorNames: [String]
    /// Tensor name -> index into `files`.
    private let location: [String: Int]
    /// What errors about the checkpoint as a whole name: the index file, the single file, or
    /// the directory of the listed files.
    private let source: String

    /// Opens the checkpoint in `directory`: `model.safetensors.index.json` and the shards it
    /// names when the index is present, otherwise `model.safetensors`. Every tensor the index
    /// lists must be in the shard it names (`.indexMismatch`); tensors in a shard that the
    /// index does not list are still readable. Shard names must be relative paths without
    /// `..`. Throws `SafeTensorsError` naming the index or shard at fault.
    /// Cost: O(total header size); no tensor data is read.
    public init(directory: URL) throws {
        let directory = try resolveModelDirectory(directory)  // a Hub cache folder: its snapshot of main
        let indexURL = directory.appendingPathComponent(SafeTensorsCheckpoint.indexFileName)
        let singleURL = directory.appendingPathComponent(SafeTensorsCheckpoint.singleFileName)
        if FileManager.default.fileExists(atPath: indexURL.path) {
            try self.init(index: indexURL, directory: directory)
        } else if FileManager.default.fileExists(atPath: singleURL.path) {
            try self.init(files: [SafeTensorsFile(contentsOf: singleURL)], source: singleURL.path)
        } else {
            throw SafeTensorsError.invalidIndex(
                file: directory.path,
                reason: "neither \(SafeTensorsCheckpoint.indexFileName) nor \(SafeTensorsCheckpoint.singleFileName) is there")
        }
    }

    /// A checkpoint made of exactly these files. A tensor name in two files is an error
    /// (`.duplicateTensorAcrossFiles`). Cost: O(total header size).
    public init(files: [URL]) throws {
        let opened = try files.map { try SafeTensorsFile(contentsOf: $0) }
        let source: String
        if files.count == 1 {
            source = files[0].path
        } else {
            source = files.first?.deletingLastPathComponent().path ?? "(empty checkpoint)"
        }
        try self.init(files: opened, source: source)
    }

    private init(files: [SafeTensorsFile], source: String) throws {
        var location: [String: Int] = [:]
        for (i, f) in files.enumerated() {
            for name in f.tensorNames {
                if let j = location[name] {
                    throw SafeTensorsError.duplicateTensorAcrossFiles(file: f.path, tensor: name, otherFile: files[j].path)
                }
                location[name] = i
            }
        }
        self.files = files
        self.location = location
        self.tensorNames = location.keys.sorted()
        self.source = source
    }

    private init(index indexURL: URL, directory: URL) throws {
        let indexPath = indexURL.path
        let weightMap = try SafeTensorsCheckpoint.readWeightMap(indexURL)
        let shardNames = Set(weightMap.map(\.shard)).sorted()
        var shards: [SafeTensorsFile] = []
        for name in shardNames {
            shards.append(try SafeTensorsFile(contentsOf: directory.appendingPathComponent(name)))
        }
        let shardByName = Dictionary(uniqueKeysWithValues: zip(shardNames, shards))
        for (tensor, shard) in weightMap where shardByName[shard]?.info(tensor) == nil {
            throw SafeTensorsError.indexMismatch(file: indexPath, tensor: tensor, shard: shard)
        }
        try self.init(files: shards, source: indexPath)
    }

    /// The (tensor, shard file name) pairs of an index file's `weight_map`, validated.
    static func readWeightMap(_ url: URL) throws -> [(tensor: String, shard: String)] {
        let path = url.path
        let bytes = try MappedFileBytes(mapping: path)
        let buf = bytes.buffer
        if UInt64(buf.count) > SafeTensorsFile.maxHeaderLength {
            throw SafeTensorsError.invalidIndex(file: path, reason: "\(buf.count) bytes, more than 100000000")
        }
        if let bad = StrictJSON.firstInvalidUTF8(buf) {
            throw SafeTensorsError.invalidJSON(file: path, offset: bad, reason: "not valid UTF-8")
        }
        let root: StrictJSONValue
        do {
            root = try StrictJSON.parse(buf)
        } catch let e as StrictJSONError {
            throw SafeTensorsError.invalidJSON(file: path, offset: e.offset, reason: e.message)
        }
        guard case .object(let top) = root else {
            throw SafeTensorsError.invalidIndex(file: path, reason: "the JSON is \(root.typeName), not an object")
        }
        guard let mapValue = top["weight_map"] else {
            throw SafeTensorsError.invalidIndex(file: path, reason: "no \"weight_map\"")
        }
        guard case .object(let map) = mapValue else {
            throw SafeTensorsError.invalidIndex(file: path, reason: "\"weight_map\" is \(mapValue.typeName), not an object")
        }
        var out: [(tensor: String, shard: String)] = []
        out.reserveCapacity(map.count)
        for (tensor, value) in map.members {
            guard case .string(let shard) = value else {
                throw SafeTensorsError.invalidIndex(
                    file: path, reason: "weight_map[\(SafeTensorsError.quoted(tensor))] is \(value.typeName), not a file name")
            }
            let components = shard.split(separator: "/", omittingEmptySubsequences: false)
            guard !shard.isEmpty, !shard.hasPrefix("/"), !components.contains(".."), !shard.contains("\0") else {
                throw SafeTensorsError.invalidIndex(
                    file: path,
                    reason: "weight_map[\(SafeTensorsError.quoted(tensor))] = \(SafeTensorsError.quoted(shard)) "
                        + "is not a relative file name inside the directory")
            }
            out.append((tensor, shard))
        }
        return out
    }

    /// The dtype, shape and byte range (within its own file) of `name`, or nil. Cost: O(1).
    public func info(_ name: String) -> SafeTensorsInfo? {
        location[name].flatMap { files[$0].info(name) }
    }

    /// The file holding `name`, or nil. Cost: O(1).
    public func file(containing name: String) -> SafeTensorsFile? {
        location[name].map { files[$0] }
    }

    /// The tensor `name` as Float32 (see `SafeTensorsFile.tensor(_:)`). Throws `.missingTensor`
    /// naming the checkpoint (index, single file or directory) if no file has it.
    /// Cost: O(elements).
    public func tensor(_ name: String) throws -> Tensor {
        guard let i = location[name] else { throw SafeTensorsError.missingTensor(file: source, tensor: name) }
        return try files[i].tensor(name)
    }

    /// The rank-2 F16 or BF16 tensor `name` as its 16-bit values (see
    /// `SafeTensorsFile.halfMatrix(_:)`); nil when absent or of another type or rank.
    func halfMatrix(_ name: String) -> HalfMatrix? {
        location[name].flatMap { files[$0].halfMatrix(name) }
    }

    /// The tensor `name` as `Int` values (see `SafeTensorsFile.integers(_:)`). Throws
    /// `.missingTensor` naming the checkpoint if no file has it. Cost: O(elements).
    public func integers(_ name: String) throws -> [Int] {
        guard let i = location[name] else { throw SafeTensorsError.missingTensor(file: source, tensor: name) }
        return try files[i].integers(name)
    }
}
