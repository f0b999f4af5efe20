#!/usr/bin/env python3
"""Regenerates Sources/Attend/Tokenization/ReferenceUnicodeTables.swift from the reference.

The reference tokenizer (Hugging Face `tokenizers`, Rust) classifies characters with an older
Unicode version than Swift's standard library. This probes every code point through the
reference's BertNormalizer and BertPreTokenizer and writes the tables Attend's BERT
normalizer uses instead of Swift's properties:

  - punctuation (non-ASCII) the pre-tokenizer isolates;
  - characters clean_text removes (U+0000, U+FFFD, categories Cc, Cf, Co, Cs of its version);
  - non-spacing marks (Mn) strip_accents drops after NFD.

Needs `pip install tokenizers` (the tables in the repository come from 0.23.3). Takes about a
minute. Run from anywhere:

    python3 scripts/probe_unicode_tables.py

Characters whose NFD differs between the reference and Swift (the `referenceUndecomposed`
set) are not derived here: the tokenizer tests and a Swift-side scan found U+11938 only.
"""
import os
import sys

from tokenizers import normalizers, pre_tokenizers
import tokenizers

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Sources", "Attend", "Tokenization",
                   "ReferenceUnicodeTables.swift")
A, B = ord("a"), ord("b")


def probe(normalizer):
    """Code point -> the pre-tokenized words of normalize("a" + c + "b"), where they differ from ["a" c "b"]."""
    pt = pre_tokenizers.BertPreTokenizer()
    out = {}
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        s = "a" + chr(cp) + "b"
        words = [w for w, _ in pt.pre_tokenize_str(normalizer.normalize_str(s))]
        if words != [s]:
            out[cp] = [[ord(c) for c in w] for w in words]
    return out


def ranges(xs):
    out = []
    for x in sorted(xs):
        if out and out[-1][1] == x - 1:
            out[-1][1] = x
        else:
            out.append([x, x])
    return out


def fmt(rs, per=6):
    items = ["0x%X...0x%X" % (a, b) for a, b in rs]
    return "\n".join("    " + ", ".join(items[i:i + per]) + "," for i in range(0, len(items), per))


def main():
    raw = probe(normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=False))
    cased = probe(normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=False))
    uncased = probe(normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True))
    punct = [cp for cp, w in raw.items() if w == [[A], [cp], [B]] and cp >= 0x80]
    removed = [cp for cp, w in cased.items() if w == [[A, B]]]
    removed_set = set(removed)
    marks = [cp for cp, w in uncased.items() if w == [[A, B]] and cp not in removed_set]
    src = f'''// Unicode tables of the reference tokenizer (Hugging Face `tokenizers` {tokenizers.__version__}, Rust), which
// classifies characters with an older Unicode version than Swift's standard library: newer
// punctuation is not punctuation there, newer format characters are not removed, and a few
// characters changed category since. To give the same tokens, BERT's normalizer and
// pre-tokenizer use these tables instead of Swift's properties. They were derived by probing
// every code point through the reference's BertNormalizer and BertPreTokenizer
// (scripts/probe_unicode_tables.py) and are checked by the tokenizer tests.

/// Non-ASCII characters the reference treats as punctuation (its `is_punctuation`: categories
/// Pc, Pd, Ps, Pe, Pi, Pf, Po in its Unicode version), as sorted closed ranges.
let referencePunctuationRanges: [ClosedRange<UInt32>] = [
{fmt(ranges(punct))}
]

/// Characters the reference's clean_text removes (U+0000, U+FFFD, and categories Cc, Cf, Co,
/// Cs in its Unicode version, except tab, LF and CR), as sorted closed ranges.
let referenceRemovedRanges: [ClosedRange<UInt32>] = [
{fmt(ranges(removed))}
]

/// Non-spacing marks (category Mn) in the reference's Unicode version: what strip_accents drops
/// after NFD, as sorted closed ranges.
let referenceNonspacingMarkRanges: [ClosedRange<UInt32>] = [
{fmt(ranges(marks))}
]

/// Characters that Swift's NFD decomposes but the reference does not (decompositions newer
/// than its Unicode version). All are starters (canonical combining class 0).
let referenceUndecomposed: Set<UInt32> = [0x11938]

/// Whether `v` lies in one of the sorted, disjoint `ranges`. Cost: O(log ranges).
@inline(__always)
func inRanges(_ v: UInt32, _ ranges: [ClosedRange<UInt32>]) -> Bool {{
    var lo = 0, hi = ranges.count
    while lo < hi {{
        let mid = (lo + hi) / 2
        if ranges[mid].upperBound < v {{ lo = mid + 1 }} else {{ hi = mid }}
    }}
    return lo < ranges.count && ranges[lo].contains(v)
}}
'''
    with open(OUT, "w") as f:
        f.write(src)
    print(f"wrote {OUT}: {len(ranges(punct))} punctuation, {len(ranges(removed))} removed, "
          f"{len(ranges(marks))} non-spacing mark ranges (tokenizers {tokenizers.__version__})", file=sys.stderr)


if __name__ == "__main__":
    main()
