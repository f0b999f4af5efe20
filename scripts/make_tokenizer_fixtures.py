#!/usr/bin/env python3
"""Writes the tokenizer expectations of Tests/BERTTests from the reference implementation.

Needs the Hugging Face `tokenizers` package (`pip install tokenizers`; written with 0.23.3).
Run from the package root:

    python3 scripts/make_tokenizer_fixtures.py

Reads  Tests/BERTTests/Fixtures/minilm_tokenizer/tokenizer.json (all-MiniLM-L6-v2's, uncased)
Writes Tests/BERTTests/Fixtures/cased_tokenizer/tokenizer.json     (small, cased, accents kept)
       Tests/BERTTests/Fixtures/stripcased_tokenizer/tokenizer.json (small, cased, accents stripped)
       Tests/BERTTests/Fixtures/addedtokens_tokenizer/tokenizer.json (lstrip/rstrip/single_word/normalized)
       Tests/BERTTests/Fixtures/tokenizer_cases.json               (texts and the reference's output)

The cases target what goes wrong in BERT tokenizers: accents on cased vocabularies
(precomposed and decomposed forms are different tokens), CJK ranges (the reference's
Extension E range differs from the Python tokenizer's), control, format and private-use
characters, Greek final sigma (the reference lowercases it to σ), [MASK] typed in the text,
the 100-scalar word limit, empty text, truncation of pairs, decoding, and random text.
"""
import json
import os
import random
import sys

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
import tokenizers

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "Tests", "BERTTests", "Fixtures")


def bert_like(vocab, lowercase, strip_accents, added=None):
    t = Tokenizer(models.WordPiece(vocab={w: i for i, w in enumerate(vocab)}, unk_token="[UNK]", max_input_chars_per_word=100))
    t.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=strip_accents, lowercase=lowercase)
    t.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls, sep = vocab.index("[CLS]"), vocab.index("[SEP]")
    t.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    t.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    t.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]])
    if added:
        t.add_tokens(added)
    return t


SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CASED_VOCAB = SPECIALS + [
    "Café", "Cafe\u0301", "Cafe", "café", "cafe", "Caf", "##é", "##e", "##\u0301", "e", "é", "\u0301", "E", "É",
    "Über", "Uber", "über", "uber", "##s", "##er", "U", "Ü", "u", "ü", "naïve", "naive", "Straße", "strasse", "ß",
    "ΟΔΟΣ", "ΟΔΟ", "##Σ", "οδος", "οδοσ", "Σ", "σ", "ς", "İ", "i", "I", "##stanbul", "Istanbul", "İstanbul",
    "The", "the", "quick", "brown", "fox", ".", ",", "!", "?", "-", "'", "[", "]", "MASK", "mask", "a", "b", "c",
    "東", "京", "日", "本", "##本", "한", "국", "어", "ᄒ", "##ᅡ", "##ᆫ", "Å", "A", "##̊", "résumé", "resume",
    "Ａ", "ﬁ", "fi", "##x", "x", "##y", "y", "##z", "z", "hello", "world", "##hello", "HELLO", "Hello",
]


def uncased_cases():
    long_ascii = ["a" * 99, "a" * 100, "a" * 101, "abcdefghij" * 10, "abcdefghij" * 10 + "k"]
    texts = [
        "", " ", "\t\n\r ", "Hello, world!", "HELLO WORLD", "hello[MASK]world", "hello [MASK] world",
        "hello [mask] world", "[CLS] already [SEP] there", "[MASK][MASK]", "[MASK]", "[UNK] unknown", "[PAD]",
        "The quick brown fox.", "Café déjà vu — naïve résumé!", "Cafe\u0301 de\u0301ja\u0300", "ΟΔΟΣ ΣΑΣ ὈΔΥΣΣΕΎΣ",
        "Straße STRASSE ẞ", "İstanbul ıi İI", "ǅemal ǲ", "東京は日本の首都です。", "中文 漢字 한국어 日本語",
        "\U0002B81F\U0002B820\U0002B920 \U00020000 \U0002A6DF\U0002A700", "\uF900\uFA0E\u2F800",
        "a\u0000b\u0001c\u007fd\u0085e\u009ff", "zero\u200bwidth\u200djoiner\u2060word", "soft\u00adhyphen",
        "bom\ufeffstart", "private\ue000use\U000F0000\U0010FFFD", "replacement\ufffdchar", "rtl\u200emark\u202ahere",
        "nbsp\u00a0and\u3000ideographic\u2028line\u2029para", "tab\tsep\u000bvt\u000cff\u001cfs",
        "emoji 😀 👍🏽 👨‍👩‍👧 🫨", "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３", "ﬁne ﬀ ﬃ", "Ⅻ ① ²", "Thai: ภาษาไทย",
        "Arabic: مرحبا بالعالم", "Hebrew: שָׁלוֹם", "Devanagari: नमस्ते", "Cherokee: ᏣᎳᎩ", "¿Qué? ¡Sí! «citation»",
        "$100 + 5% = ^~`|<>", "e-mail: someone@example.com, url http://x.y/z?a=b&c=d", "it's don't won't",
        "Transformers replaced RNNs.", "unaffable antidisestablishmentarianism", "x\u0301\u0316y z\u0316\u0301",
        "\u1E0A\u0323 \u1E0C\u0307 Q\u0323\u0307", "A\u030A \u00C5 \u212B", "ﾊﾝｶｸ ｶﾀｶﾅ", "\u0F73\u0F75\u0344",
        "\U00011938 \U0001D15E", "math 𝐀𝐁𝐂 𝔸", "ⓐⓑⓒ ⒜", "\u00b5 \u03bc \u00c6\u00e6 \u0130", "numbers 3.14 1,000 ½ ⅓",
        "multiple   spaces\n\nnewlines\r\nCRLF", ". , ! ?", "...", "a.b.c", "ab##cd", "##ab", "[SEP][CLS]",
        " [MASK] ", "x[MASK]y[SEP]z",
    ] + long_ascii + [
        "é" * 100, "é" * 101, "e\u0301" * 60, "東" * 150, "word " * 300,
    ]
    # Where the reference's (older) Unicode tables differ from Swift's: newer punctuation,
    # format characters and marks, changed categories, a newer decomposition, the CJK
    # Extension E boundary; then code points drawn from every plane.
    divergent = [0x2E43, 0x2E52, 0x2E5D, 0x1B7D, 0x11944, 0x166D, 0x111C9, 0x08E2, 0x0890, 0x110CD, 0x13430,
                 0x1734, 0x1171E, 0x11938, 0x0897, 0x1ACE, 0x1DF9, 0x2B81F, 0x2B820, 0x2B91F, 0x2B920, 0x2CEAF,
                 0x2CEB0, 0x30000, 0x31350, 0xE01EF, 0xFFFE, 0xFFFF, 0x10FFFF]
    texts += ["a%sb" % chr(cp) for cp in divergent] + ["%sX%s" % (chr(cp), chr(cp)) for cp in divergent]
    prng = random.Random(7)
    sample = [cp for cp in (prng.randrange(0x110000) for _ in range(800)) if not 0xD800 <= cp <= 0xDFFF][:600]
    sample += [prng.randrange(0x80, 0x3000) for _ in range(300)]
    texts += ["a%sb %s" % (chr(cp), chr(cp)) for cp in sample]

    rng = random.Random(20240601)
    pool = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") * 4
            + list(" \t\n.,!?;:'\"()[]{}-_/\\@#$%^&*+=<>|~`") * 2
            + list("éèêëàâäôöûüçñÉÈÀÇÑßøåæœ") + ["e\u0301", "a\u0308", "\u0301", "\u0327"]
            + list("東京日本語中文漢字한국어ひらがなカタカナ") + list("αβγδΣσςΩωΔΟ") + list("абвгдЖЗИЙ")
            + ["\u200b", "\u00ad", "\ufeff", "\ue000", "\u0000", "\u0007", "\u00a0", "\u3000", "\u2028"]
            + ["[MASK]", "[CLS]", "[SEP]", "[mask]", "😀", "—", "–", "…", "“", "”", "«", "»", "¿", "¡"])
    for _ in range(300):
        n = rng.randint(0, 40)
        texts.append("".join(rng.choice(pool) for _ in range(n)))
    return texts


def pair_cases():
    return [
        ("The quick brown fox", "jumps over the lazy dog", None),
        ("one two three four five six seven eight nine ten eleven", "a b c", 10),
        ("a b", "one two three four five six seven eight nine ten eleven", 10),
        ("one two three four five six", "a b c d e f g h", 10),
        ("one two three four five six seven", "a b c d e f g", 9),
        ("x", "", None),
        ("", "", None),
        ("long " * 10, "short", 3),
        ("Café", "[MASK] here", None),
    ]


def record(tok, texts, max_lengths=(None,)):
    out = []
    for text in texts:
        for ml in max_lengths:
            if ml is None:
                tok.no_truncation()
            else:
                tok.enable_truncation(ml)
            e = tok.encode(text)
            out.append({
                "text": text, "max_length": ml, "ids": e.ids, "tokens": e.tokens, "type_ids": e.type_ids,
                "special_tokens_mask": e.special_tokens_mask,
                "decoded": tok.decode(e.ids), "decoded_with_specials": tok.decode(e.ids, skip_special_tokens=False),
            })
    tok.no_truncation()
    return out


def record_pairs(tok, pairs):
    out = []
    for a, b, ml in pairs:
        if ml is None:
            tok.no_truncation()
        else:
            tok.enable_truncation(ml)
        e = tok.encode(a, b)
        out.append({"text": a, "pair": b, "max_length": ml, "ids": e.ids, "tokens": e.tokens, "type_ids": e.type_ids,
                    "special_tokens_mask": e.special_tokens_mask})
    tok.no_truncation()
    return out


def save(tok, name):
    d = os.path.join(FIX, name)
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))


def main():
    minilm = Tokenizer.from_file(os.path.join(FIX, "minilm_tokenizer", "tokenizer.json"))
    minilm.no_padding()
    cased = bert_like(CASED_VOCAB, lowercase=False, strip_accents=None)
    stripcased = bert_like(CASED_VOCAB, lowercase=False, strip_accents=True)
    added = bert_like(CASED_VOCAB, lowercase=True, strip_accents=None, added=[
        AddedToken("<lstrip>", lstrip=True, normalized=False),
        AddedToken("<rstrip>", rstrip=True, normalized=False),
        AddedToken("hello", single_word=True, normalized=False),
        AddedToken("WORLD", normalized=True),
        AddedToken("ünï", normalized=True),
    ])
    save(cased, "cased_tokenizer")
    save(stripcased, "stripcased_tokenizer")
    save(added, "addedtokens_tokenizer")

    accent_texts = [
        "Café", "Cafe\u0301", "café cafe Cafe", "CAFÉ", "Über uber ÜBER", "naïve nai\u0308ve", "Straße", "ΟΔΟΣ οδος",
        "İstanbul", "Istanbul", "東京日本", "한국어", "Å A\u030A \u212B", "résumé", "Ａ ﬁ", "[MASK] mask MASK",
        "É e\u0301 E\u0301", "Hello hello HELLO", "x\u0301y", "Cafés", "é" * 100, "é" * 101,
    ]
    added_texts = [
        "a <lstrip> b", "a   <lstrip>b", "a<rstrip>   b", "hello world", "sayhello world", "hello, world",
        "a WORLD b", "a world b", "aworldb", "ÜNÏ ünï unï", "x<lstrip><rstrip>y", "[MASK] hello [MASK]",
    ]
    cases = {
        "reference": "tokenizers " + tokenizers.__version__,
        "tokenizers": {
            "minilm_tokenizer": {
                "single": record(minilm, uncased_cases()) + record(minilm, ["word " * 300, "The quick brown fox."], (5, 2, 16)),
                "pairs": record_pairs(minilm, pair_cases()),
            },
            "cased_tokenizer": {"single": record(cased, accent_texts), "pairs": []},
            "stripcased_tokenizer": {"single": record(stripcased, accent_texts), "pairs": []},
            "addedtokens_tokenizer": {"single": record(added, added_texts + accent_texts), "pairs": []},
        },
    }
    with open(os.path.join(FIX, "tokenizer_cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=True, indent=None, separators=(",", ":"))
    n = sum(len(v["single"]) + len(v["pairs"]) for v in cases["tokenizers"].values())
    print(f"wrote {n} cases with tokenizers {tokenizers.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
