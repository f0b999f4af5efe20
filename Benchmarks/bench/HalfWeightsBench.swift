import Attend
import Foundation

// Helpers of the BF16-weights rows of the decode sections (Seq2SeqBench, LMBench): a BF16
// checkpoint of random weights written to disk (so the model maps it, as it would a real
// BF16 checkpoint), and the resident memory of this process.

/// This process's resident memory now (Linux: /proc/self/statm; elsewhere the peak), MiB.
func currentResidentMiB() -> Double {
    #if os(Linux)
        if let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let fields = s.split(separator: " ")
            if fields.count > 1, let pages = Double(fields[1]) {
                return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
            }
        }
    #endif
    return peakResidentMiB()
}

/// Uniform values in (-scale, scale) as bfloat16 bits (rounded to nearest even), from a
/// SplitMix64 stream, written straight to `handle` in chunks (never the whole tensor at once).
private func writeRandomBF16(_ count: Int, scale: Float, constant: Float? = nil, seed: UInt64, to handle: FileHandle) {
    var rng = SplitMix64(state: seed)
    let chunk = 1 << 20
    var buffer = [UInt16](repeating: 0, count: chunk)
    var left = count
    while left > 0 {
        let n = min(chunk, left)
        for i in 0..<n {
            let x = constant ?? (Float(rng.next() >> 40) * 0x1p-24 * 2 - 1) * scale
            let u = x.bitPattern
            buffer[i] = UInt16(truncatingIfNeeded: (u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
        }
        buffer.withUnsafeBytes { handle.write(Data($0.prefix(n * 2))) }
        left -= n
    }
}

/// Writes a Llama-architecture folder (config.json, model.safetensors in BF16, untied head)
/// of the given shape with random weights (uniform, scaled by 1/sqrt(in); norms 1) into
/// `directory`, and returns the safetensors file's size in bytes.
func writeRandomBF16Llama(
    directory: URL, d: Int, heads: Int, kvHeads: Int, ff: Int, layers: Int, vocabulary: Int, seed: UInt64
) throws -> Int {
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let dh = d / heads
    let config: [String: Any] = [
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": d, "intermediate_size": ff,
        "num_attention_heads": heads, "num_key_value_heads": kvHeads, "num_hidden_layers": layers, "vocab_size": vocabulary,
        "rms_norm_eps": 1e-5, "max_position_embeddings": 2048, "rope_theta": 10000.0, "tie_word_embeddings": false,
        "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
    ]
    try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]).write(to: directory.appendingPathComponent("config.json"))
    // (name, shape, scale; nil scale: a norm of ones)
    var tensors: [(String, [Int], Float?)] = [("model.embed_tokens.weight", [vocabulary, d], 1)]
    for i in 0..<layers {
        let b = "model.layers.\(i)"
        let inv = { (n: Int) in 1 / Float(n).squareRoot() }
        tensors += [
            ("\(b).input_layernorm.weight", [d], nil), ("\(b).post_attention_layernorm.weight", [d], nil),
            ("\(b).self_attn.q_proj.weight", [heads * dh, d], inv(d)), ("\(b).self_attn.k_proj.weight", [kvHeads * dh, d], inv(d)),
            ("\(b).self_attn.v_proj.weight", [kvHeads * dh, d], inv(d)), ("\(b).self_attn.o_proj.weight", [d, heads * dh], inv(heads * dh)),
            ("\(b).mlp.gate_proj.weight", [ff, d], inv(d)), ("\(b).mlp.up_proj.weight", [ff, d], inv(d)),
            ("\(b).mlp.down_proj.weight", [d, ff], inv(ff)),
        ]
    }
    tensors += [("model.norm.weight", [d], nil), ("lm_head.weight", [vocabulary, d], 1 / Float(d).squareRoot())]
    return try writeSafeTensors(
        directory.appendingPathComponent("model.safetensors"), tensors.map { ($0.0, $0.1) }, dtype: "BF16", elementSize: 2
    ) { i, handle in
        let (_, shape, scale) = tensors[i]
        writeRandomBF16(shape.reduce(1, *), scale: scale ?? 1, constant: scale == nil ? 1 : nil, seed: seed &+ UInt64(i), to: handle)
    }
}
