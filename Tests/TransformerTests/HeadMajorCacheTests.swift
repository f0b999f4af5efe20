// A decoder-only model's cache stores each head's keys and values contiguously
// (`makeCache`); the public `CausalLMCache` initializer stores them position by position.
// Both must give the same logits bit for bit (the attention kernels read the same numbers
// through other strides), through capacity growth and beam-style row selection, and the
// head-by-head storage must hold exactly the position-major cache's scalars, transposed.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

@Suite("Head-by-head decoder-only KV cache")
struct HeadMajorCacheTests {
    @Test("the public cache initializers: sizes below 1 throw, naming them, not a trap; a capacity below 1 counts as 1")
    func badSizes() throws {
        for (batch, width, words) in [(0, 8, "batch 0"), (-2, 8, "batch -2"), (2, 0, "modelDim 0")] {
            do {
                _ = try AttentionKV(batch: batch, modelDim: width)
                Issue.record("AttentionKV(batch: \(batch), modelDim: \(width)): no error")
            } catch {
                #expect(error.message.contains(words), "\(error)")  // typed: ModelInputError
            }
        }
        #expect(try AttentionKV(batch: 2, modelDim: 8, capacity: 0).capacity == 1)
        for (layers, rows, width, words) in [(0, 1, 8, "layers 0"), (2, 0, 8, "rows 0"), (2, 1, -4, "kvWidth -4")] {
            expectInvalidInput("CausalLMCache(layers: \(layers), rows: \(rows), kvWidth: \(width))", words) {
                _ = try CausalLMCache(layers: layers, rows: rows, kvWidth: width)
            }
        }
        let cache = try CausalLMCache(layers: 2, rows: 3, kvWidth: 8, capacity: -5)
        #expect(cache.rows == 3 && cache.layers.count == 2 && cache.layers[0].capacity == 1)
    }

    @Test("selectRows with indices that are not rows of the cache throws, the cache unchanged")
    func badRowSelections() throws {
        let model = try DecoderOnlyModel(directory: try lmFolder("gpt2"))
        var cache = model.makeCache(rows: 2)
        _ = try model.checkedNextTokenLogits(appending: [[1, 2], [3, 4]], to: &cache)
        for bad in [[], [2], [-1, 0], [0, 1, 5]] {
            expectInvalidInput("selectRows(\(bad))", "2 rows") { try cache.selectRows(bad) }
        }
        #expect(cache.rows == 2 && cache.length == 2)
        try cache.selectRows([1, 1, 0])
        #expect(cache.rows == 3 && cache.nextPosition == [2, 2, 2])
    }

    @Test("logits equal the position-major cache's bit for bit; storage is its transpose", arguments: ["gpt2", "llama"])
    func sameLogits(_ folder: String) throws {
        let model = try DecoderOnlyModel(directory: try lmFolder(folder))
        let headMajor = model.makeCache(rows: 2, capacity: 1)  // grows on every early append
        let positionMajor = try CausalLMCache(
            layers: model.layers.count, rows: 2, kvWidth: model.kvHeads * model.headDim, capacity: 1)
        #expect(headMajor.layers[0].appendHeadDim == model.headDim && positionMajor.layers[0].appendHeadDim == 0)
        let steps: [[[Int]]] = [[[13, 34, 70], [105, 77, 23]], [[9], [41]], [[3], [8]], [[200], [17]]]
        for threads in [1, 2] {
            let compute = try Compute.default.with(threads: threads)
            var a = headMajor, b = positionMajor
            for (i, tokens) in steps.enumerated() {
                if i == 2 {
                    try a.selectRows([1, 1])  // beam-style: both rows continue old row 1
                    try b.selectRows([1, 1])
                }
                let x = model.nextTokenLogits(appending: tokens, to: &a, compute: compute).scalars
                let y = model.nextTokenLogits(appending: tokens, to: &b, compute: compute).scalars
                #expect(x == y, "\(folder) step \(i), \(threads) thread(s): max difference \(maxAbs(x, y))")
            }
            #expect(a.length == b.length)
            let dh = model.headDim, width = model.kvHeads * dh, n = a.length
            for l in a.layers.indices {
                let hm = a.layers[l], pm = b.layers[l]
                let (hk, hv) = hm.layouts(headDim: dh), (pk, pv) = pm.layouts(headDim: dh)
                let hs = hm.storage.scalars, ps = pm.storage.scalars
                var same = true
                for row in 0..<2 {
                    for h in 0..<model.kvHeads {
                        for t in 0..<n {
                            for e in 0..<dh {
                                let i = t * hk.rowStride + e, j = t * pk.rowStride + e
                                same = same && hs[hk.offset(row, h) + i] == ps[pk.offset(row, h) + j]
                                    && hs[hv.offset(row, h) + i] == ps[pv.offset(row, h) + j]
                            }
                        }
                    }
                }
                #expect(same, "\(folder) layer \(l): the head-by-head keys/values differ from the position-major ones")
                #expect(hm.capacity >= n && hk.rowStride == dh && pk.rowStride == 2 * width)
            }
        }
    }
}
