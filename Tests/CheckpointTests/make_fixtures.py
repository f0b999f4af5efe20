#!/usr/bin/env python3
"""Writes the safetensors fixtures of CheckpointTests into ./Fixtures (run once; outputs are
committed, so `swift test` needs neither Python nor this script).

Needs only numpy. Every file is written byte by byte here (no safetensors writer), so the
malformed ones can be exactly as malformed as intended. When the reference implementation is
installed (`pip install safetensors`), every valid fixture is checked to load with it and every
malformed one to be rejected by it (except where this reader is deliberately stricter, listed
in REFERENCE_ACCEPTS).

    python3 Tests/CheckpointTests/make_fixtures.py

Layout:
  mha.safetensors            copy of shared/golden/mha.safetensors (real PyTorch output)
  dtypes.safetensors         every dtype with special values, plus `expected.<name>` F32
                             tensors computed here independently (numpy / formulas)
  edge/*.safetensors         valid corner cases (empty header, scalars, zero-size, unaligned,
                             unpadded header, escaped names)
  malformed/*.safetensors    one defect each; CheckpointTests says which error each must raise
  single/, sharded/, index_*/  checkpoint directories
"""
import json
import math
import os
import shutil
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "Fixtures")
GOLDEN_MHA = os.path.join(HERE, "..", "..", "..", "shared", "golden", "mha.safetensors")

DTYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
              "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E5M2": 1, "F8_E4M3": 1,
              "F8_E4M3FNUZ": 1, "F8_E5M2FNUZ": 1, "F8_E8M0": 1, "C64": 8}


def header_file(header, data=b"", pad=True):
    """8-byte length + header text (str or bytes) + data. pad: spaces to a multiple of 8."""
    hb = header.encode("utf-8") if isinstance(header, str) else header
    if pad:
        hb += b" " * ((8 - len(hb) % 8) % 8)
    return struct.pack("<Q", len(hb)) + hb + data


def build(tensors, metadata=None, pad=True, ensure_ascii=True):
    """tensors: list of (name, dtype, shape, raw bytes) laid out in the given order."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        assert len(raw) == DTYPE_SIZE[dtype] * int(np.prod(shape, dtype=np.int64)), name
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=ensure_ascii)
    return header_file(text, data, pad)


def write(rel, content):
    path = os.path.join(OUT, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content)
    return path


# ---------------------------------------------------------------- independent expected values

def minifloat(byte, ebits, mbits, bias, special):
    """Value of an 8-bit float, from the format's definition (not from the Swift code)."""
    sign = -1.0 if byte >> (ebits + mbits) & 1 else 1.0
    e = (byte >> mbits) & ((1 << ebits) - 1)
    m = byte & ((1 << mbits) - 1)
    if special == "ieee" and e == (1 << ebits) - 1:
        return sign * math.inf if m == 0 else math.copysign(math.nan, sign)
    if special == "fn" and e == (1 << ebits) - 1 and m == (1 << mbits) - 1:
        return math.copysign(math.nan, sign)
    if special == "fnuz" and byte == 0x80:
        return math.nan
    if e == 0:
        return sign * m * 2.0 ** (1 - bias - mbits)
    return sign * (1 + m / 2 ** mbits) * 2.0 ** (e - bias)


def f32(values):
    return np.array(values, dtype="<f4")


def dtypes_file():
    t, expected = [], []

    def add(name, dtype, shape, raw, exp=None):
        t.append((name, dtype, shape, raw))
        if exp is not None:
            expected.append(("expected." + name, "F32", shape, f32(exp).tobytes()))

    v32 = [1.0, -2.5, 0.0, -0.0, math.inf, -math.inf, math.nan, 1.401298464324817e-45, 3.4028234663852886e38]
    add("f32", "F32", [3, 3], f32(v32).tobytes(), v32)

    h = np.array([0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x3C00, 0xC000, 0x7BFF, 0x7C00, 0xFC00,
                  0x7E00, 0x7C01, 0x3555, 0x8001], dtype="<u2")
    add("f16", "F16", [2, 7], h.tobytes(), h.view("<f2").astype(np.float32))

    b = np.array([0x0000, 0x8000, 0x0001, 0x3F80, 0xC020, 0x7F80, 0xFF80, 0x7FC0, 0x7F7F, 0x8080],
                 dtype="<u2")
    add("bf16", "BF16", [10], b.tobytes(), (b.astype(np.uint32) << 16).view(np.float32))

    d = np.array([1.0, 0.1, -1e300, 1e-50, math.nan, 16777217.0], dtype="<f8")
    with np.errstate(over="ignore"):
        add("f64", "F64", [6], d.tobytes(), d.astype(np.float32))

    i64 = np.array([0, -1, 2**53 + 1, -2**63, 2**63 - 1], dtype="<i8")
    add("i64", "I64", [5], i64.tobytes(), i64.astype(np.float32))
    i32 = np.array([0, -1, 2**31 - 1, -2**31], dtype="<i4")
    add("i32", "I32", [2, 2], i32.tobytes(), i32.astype(np.float32))
    i16 = np.array([-32768, 32767, 7], dtype="<i2")
    add("i16", "I16", [3], i16.tobytes(), i16.astype(np.float32))
    i8 = np.array([-128, 127, -1], dtype="i1")
    add("i8", "I8", [3], i8.tobytes(), i8.astype(np.float32))
    u64 = np.array([0, 2**63 - 1], dtype="<u8")
    add("u64", "U64", [2], u64.tobytes(), u64.astype(np.float32))
    u64big = np.array([2**64 - 1], dtype="<u8")
    add("u64_big", "U64", [1], u64big.tobytes(), u64big.astype(np.float32))
    u32 = np.array([0, 2**32 - 1], dtype="<u4")
    add("u32", "U32", [2], u32.tobytes(), u32.astype(np.float32))
    u16 = np.array([0, 65535], dtype="<u2")
    add("u16", "U16", [2], u16.tobytes(), u16.astype(np.float32))
    u8 = np.array([0, 1, 255], dtype="u1")
    add("u8", "U8", [3], u8.tobytes(), u8.astype(np.float32))
    add("bool", "BOOL", [2, 2], bytes([0, 1, 1, 0]), [0, 1, 1, 0])
    add("bool_raw", "BOOL", [3], bytes([0, 1, 2]), [0, 1, 1])

    e4 = [0x00, 0x80, 0x01, 0x08, 0x38, 0x7E, 0x7F, 0xFF, 0xB8, 0x07]
    add("f8_e4m3", "F8_E4M3", [10], bytes(e4), [minifloat(x, 4, 3, 7, "fn") for x in e4])
    e5 = [0x3C, 0x7C, 0xFC, 0x7D, 0x01, 0x80, 0x7B]
    add("f8_e5m2", "F8_E5M2", [7], bytes(e5), [minifloat(x, 5, 2, 15, "ieee") for x in e5])
    e4z = [0x80, 0x40, 0x01, 0x00, 0xFF, 0x7F]
    add("f8_e4m3fnuz", "F8_E4M3FNUZ", [6], bytes(e4z), [minifloat(x, 4, 3, 8, "fnuz") for x in e4z])
    e5z = [0x80, 0x40, 0x7F, 0x01]
    add("f8_e5m2fnuz", "F8_E5M2FNUZ", [4], bytes(e5z), [minifloat(x, 5, 2, 16, "fnuz") for x in e5z])
    e8 = [127, 0, 254, 255, 128]
    add("f8_e8m0", "F8_E8M0", [5], bytes(e8), [math.nan if x == 255 else 2.0 ** (x - 127) for x in e8])
    add("c64", "C64", [2], f32([1, 2, 3, 4]).tobytes())

    return build(t + expected, metadata={"format": "pt", "note": "ünïcode ✓"})


# ---------------------------------------------------------------- fixtures

def main():
    if os.path.isdir(OUT):
        for entry in os.listdir(OUT):
            p = os.path.join(OUT, entry)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    os.makedirs(OUT, exist_ok=True)
    valid, malformed = [], []

    if os.path.exists(GOLDEN_MHA):
        shutil.copy(GOLDEN_MHA, os.path.join(OUT, "mha.safetensors"))
    valid.append(os.path.join(OUT, "mha.safetensors"))
    valid.append(write("dtypes.safetensors", dtypes_file()))

    two = f32([1.5, -2.0]).tobytes()
    # Valid corner cases.
    valid.append(write("edge/empty_header.safetensors", header_file("{}")))
    valid.append(write("edge/metadata_only.safetensors", header_file('{"__metadata__":{"format":"pt"}}')))
    valid.append(write("edge/scalar_and_empty.safetensors", build([
        ("scalar", "F32", [], f32([7.25]).tobytes()),
        ("empty", "F32", [0, 3], b""),
        ("empty_i64", "I64", [0], b""),
        ("after", "I32", [1], np.array([42], "<i4").tobytes()),
    ])))
    # F32 data at data offset 3 and an odd header length: neither aligned.
    valid.append(write("edge/unaligned.safetensors", build([
        ("bytes", "U8", [3], bytes([1, 2, 3])),
        ("f32", "F32", [2], two),
        ("f16", "F16", [1], np.array([0x3C00], "<u2").tobytes()),
    ], pad=False)))
    # Offsets listed out of order in the header; names that need JSON escapes (\u, \", \n)
    # in one file and raw UTF-8 in the other.
    text = ('{"z.second":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},'
            '"a.first":{"shape":[2],"data_offsets":[0,8],"dtype":"F32","extra_key":[1,{"x":null}]},'
            '"quote\\"d\\u00e9\\n\\ud83d\\ude00":{"dtype":"U8","shape":[1],"data_offsets":[16,17]}}')
    valid.append(write("edge/unordered_escaped.safetensors",
                       header_file(text, f32([1, 2, 3, 4]).tobytes() + bytes([9]))))
    valid.append(write("edge/utf8_names.safetensors", build(
        [("gewicht.ä.😀", "F32", [1], f32([0.5]).tobytes())], ensure_ascii=False)))
    valid.append(write("edge/metadata_null.safetensors", header_file('{"__metadata__":null}')))

    # Checkpoint directories.
    a, bb = f32([1, 2, 3, 4]).tobytes(), f32([5, 6]).tobytes()
    c, d = f32([7]).tobytes(), np.array([3, 1, 4], "<i8").tobytes()
    shard1 = build([("a", "F32", [2, 2], a), ("b", "F32", [2], bb)], metadata={"format": "pt"})
    shard2 = build([("c", "F32", [1], c), ("d", "I64", [3], d)], metadata={"format": "pt"})
    valid.append(write("single/model.safetensors", shard1))
    valid.append(write("sharded/model-00001-of-00002.safetensors", shard1))
    valid.append(write("sharded/model-00002-of-00002.safetensors", shard2))
    # A decoy model.safetensors: the index must win when both exist.
    valid.append(write("sharded/model.safetensors", build([("decoy", "F32", [1], c)])))
    index = {"metadata": {"total_size": 48}, "weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
        "c": "model-00002-of-00002.safetensors", "d": "model-00002-of-00002.safetensors"}}
    write("sharded/model.safetensors.index.json", json.dumps(index, indent=2).encode())
    write("index_mismatch/model-00001-of-00001.safetensors", shard1)
    write("index_mismatch/model.safetensors.index.json", json.dumps(
        {"weight_map": {"a": "model-00001-of-00001.safetensors", "c": "model-00001-of-00001.safetensors"}}).encode())
    write("index_escape/model.safetensors.index.json", json.dumps(
        {"weight_map": {"a": "../single/model.safetensors"}}).encode())
    write("index_no_weight_map/model.safetensors.index.json", json.dumps({"metadata": {}}).encode())
    write("index_duplicate_key/model.safetensors.index.json",
          b'{"weight_map":{"a":"x.safetensors","a":"y.safetensors"}}')
    write("index_missing_shard/model.safetensors.index.json", json.dumps(
        {"weight_map": {"a": "model-00001-of-00009.safetensors"}}).encode())

    # Malformed files: one defect each.
    f = lambda dtype, shape, off: '{"dtype":"%s","shape":%s,"data_offsets":%s}' % (dtype, shape, off)
    ok = build([("a", "F32", [2], two), ("b", "F32", [2], two)])
    m = {
        "empty": b"",
        "truncated_length": b"\x10\x00\x00\x00\x00",
        "header_huge": struct.pack("<Q", 2**40) + b"{}",
        "header_u64_max": struct.pack("<Q", 2**64 - 1) + b"{}      ",
        "header_just_over_limit": struct.pack("<Q", 100_000_001) + b"{}",
        "header_past_end": struct.pack("<Q", 1000) + b"{}" + b" " * 40,
        "not_json": header_file("this is not json"),
        "json_array": header_file("[1,2]"),
        "json_string": header_file('"abc"'),
        "not_utf8": header_file(b'{"a\xff":' + f("F32", [2], [0, 8]).encode() + b"}", two),
        "overlong_utf8": header_file(b'{"\xc0\xaf":' + f("F32", [2], [0, 8]).encode() + b"}", two),
        "surrogate_utf8": header_file(b'{"\xed\xa0\x80":' + f("F32", [2], [0, 8]).encode() + b"}", two),
        "unknown_dtype": header_file('{"a":%s}' % f("F31", [2], [0, 8]), two),
        "lowercase_dtype": header_file('{"a":%s}' % f("f32", [2], [0, 8]), two),
        "sub_byte_dtype": header_file('{"a":%s}' % f("F4", [2], [0, 1]), b"\x00"),
        "shape_mismatch": header_file('{"a":%s}' % f("F32", [3], [0, 8]), two),
        "shape_overflow": header_file('{"a":%s}' % f("F32", [2**40, 2**40], [0, 8]), two),
        "shape_negative": header_file('{"a":%s}' % f("F32", [-1, 2], [0, 8]), two),
        "shape_float": header_file('{"a":%s}' % f("F32", "[2.0]", [0, 8]), two),
        "shape_string": header_file('{"a":%s}' % f("F32", '["2"]', [0, 8]), two),
        "shape_too_large": header_file('{"a":%s}' % f("F32", "[18446744073709551616]", [0, 8]), two),
        "offsets_out_of_range": header_file('{"a":%s}' % f("F32", [1000], [0, 4000]), two * 2),
        "offsets_reversed": header_file('{"a":%s}' % f("F32", [2], [8, 0]), two),
        "offsets_three": header_file('{"a":%s}' % f("F32", [2], [0, 8, 8]), two),
        "offsets_negative": header_file('{"a":%s}' % f("F32", [2], [-8, 0]), two),
        "offsets_too_large": header_file('{"a":%s}' % f("F32", [2], "[0, 99999999999999999999]"), two),
        "overlap": header_file('{"a":%s,"b":%s}' % (f("F32", [2], [0, 8]), f("F32", [2], [4, 12])), two + two[:4]),
        "gap": header_file('{"a":%s,"b":%s}' % (f("F32", [2], [0, 8]), f("F32", [2], [12, 20])), two * 2 + two[:4]),
        "gap_at_start": header_file('{"a":%s}' % f("F32", [2], [4, 12]), two + two[:4]),
        "duplicate_names": header_file('{"a":%s,"a":%s}' % (f("F32", [2], [0, 8]), f("F32", [2], [0, 8])), two),
        "duplicate_field": header_file('{"a":{"dtype":"F32","shape":[2],"shape":[2],"data_offsets":[0,8]}}', two),
        "duplicate_metadata": header_file('{"__metadata__":{},"__metadata__":{}}'),
        "data_truncated": ok[:-4],
        "trailing_bytes": ok + b"\x00" * 4,
        "metadata_not_strings": header_file('{"__metadata__":{"a":1}}'),
        "metadata_not_object": header_file('{"__metadata__":"pt"}'),
        "missing_dtype": header_file('{"a":{"shape":[2],"data_offsets":[0,8]}}', two),
        "entry_not_object": header_file('{"a":[1,2]}', two),
        "deep_nesting": header_file('{"__metadata__":' + "[" * 200 + "]" * 200 + "}"),
        "trailing_comma": header_file('{"a":%s,}' % f("F32", [2], [0, 8]), two),
        "nul_padding": header_file(('{"a":%s}' % f("F32", [2], [0, 8])).encode() + b"\x00\x00", two),
        "lone_surrogate": header_file('{"__metadata__":{"a":"\\ud800"}}'),
        "control_char": header_file('{"__metadata__":{"a":"x\ty"}}'),
        "leading_zero": header_file('{"a":%s}' % f("F32", "[02]", [0, 8]), two),
        "unterminated": header_file('{"a":%s' % f("F32", [2], [0, 8]), two),
        # More of each class the issue lists (truncation, overlap, range, size, dtype,
        # UTF-8, duplicates), each with its own expected error in MalformedFileTests.
        "truncated_in_header": ok[:20],
        "truncated_after_length": ok[:8],
        "truncated_in_first_tensor": ok[:len(ok) - 12],
        "overlap_identical": header_file('{"a":%s,"b":%s}' % (f("F32", [2], [0, 8]), f("F32", [2], [0, 8])), two),
        "overlap_contained": header_file('{"a":%s,"b":%s}' % (f("F32", [4], [0, 16]), f("F32", [1], [4, 8])), two * 2),
        "overlap_zero_size_inside": header_file(
            '{"a":%s,"z":%s}' % (f("F32", [2], [0, 8]), f("F32", [0], [4, 4])), two),
        "offsets_out_of_range_huge": header_file('{"a":%s}' % f("F32", [2**60], [0, 2**62]), two),
        "offsets_not_array": header_file('{"a":%s}' % f("F32", [2], '"0-8"'), two),
        "shape_mismatch_scalar": header_file('{"a":%s}' % f("F32", [], [0, 8]), two),
        "shape_mismatch_zero": header_file('{"a":%s}' % f("F32", [0], [0, 8]), two),
        "shape_mismatch_bf16": header_file('{"a":%s}' % f("BF16", [2], [0, 8]), two),
        "dtype_not_string": header_file('{"a":%s}' % f(0, [2], [0, 8]).replace('"0"', "32"), two),
        "dtype_empty": header_file('{"a":%s}' % f("", [2], [0, 8]), two),
        "not_utf8_truncated_sequence": header_file(b'{"__metadata__":{"a":"\xe2\x82"}}'),
        "not_utf8_above_max": header_file(b'{"__metadata__":{"a":"\xf4\x90\x80\x80"}}'),
        "not_utf8_in_padding": header_file(b'{}' + b'\xff' + b' ' * 5),
        "duplicate_metadata_key": header_file('{"__metadata__":{"format":"pt","format":"np"}}'),
        "duplicate_names_escaped": header_file(
            '{"a":%s,"\\u0061":%s}' % (f("F32", [2], [0, 8]), f("F32", [2], [0, 8])), two),
        "duplicate_names_canonical": header_file(
            '{"\u00e9":%s,"e\u0301":%s}' % (f("F32", [2], [0, 8]), f("F32", [2], [8, 16])), two * 2),
        "duplicate_nested_key": header_file(
            '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":{"k":1,"k":2}}}', two),
    }
    for name, content in m.items():
        malformed.append(write("malformed/%s.safetensors" % name, content))

    total = 0
    for root, _, files in os.walk(OUT):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    print("wrote %d valid and %d malformed fixtures, %d bytes in all" % (len(valid), len(malformed), total))
    check_with_reference(valid, malformed)


# This reader is stricter than the reference here: the reference's serde_json keeps the last of
# two duplicate tensor names (a silent drop), and it reads sub-byte dtypes (F4, F6_*).
# Duplicate keys of any kind are rejected here (the reference keeps the last); names that are
# different bytes but canonically equivalent strings (U+00E9 and e + U+0301) are one Swift
# String, so this reader rejects them as a duplicate where the reference reads two tensors.
REFERENCE_ACCEPTS = {"duplicate_names", "sub_byte_dtype", "duplicate_metadata_key", "duplicate_names_escaped",
                     "duplicate_names_canonical", "duplicate_nested_key"}


def check_with_reference(valid, malformed):
    try:
        from safetensors import deserialize
    except ImportError:
        print("safetensors not installed: skipping the cross-check with the reference")
        return
    bad = 0
    for path in valid:
        try:
            deserialize(open(path, "rb").read())
        except Exception as e:
            print("REFERENCE REJECTS valid fixture %s: %s" % (path, e))
            bad += 1
    for path in malformed:
        name = os.path.basename(path)[:-len(".safetensors")]
        try:
            deserialize(open(path, "rb").read())
            if name not in REFERENCE_ACCEPTS:
                print("REFERENCE ACCEPTS malformed fixture %s" % name)
                bad += 1
        except Exception as e:
            if name in REFERENCE_ACCEPTS:
                print("note: reference rejects %s too: %s" % (name, e))
    print("reference cross-check: %s" % ("OK" if bad == 0 else "%d disagreements" % bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
