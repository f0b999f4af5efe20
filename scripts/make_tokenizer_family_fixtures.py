#!/usr/bin/env python3
"""Writes the harder tokenizer expectations of Tests/TokenizerTests from the references.

Needs transformers (5.24), tokenizers (0.23.3), sentencepiece (0.2.3) and protobuf:
`pip install transformers tokenizers sentencepiece protobuf`. Run from the package root:

    python3 scripts/make_tokenizer_family_fixtures.py

Reads  Tests/TokenizerTests/Fixtures/{t5_unigram,marian_spm,llama_bpe,gpt2_bytelevel}
       (the golden folders, copied from the shared golden data)
Writes Tests/TokenizerTests/Fixtures/extra/<name>/   small tokenizers trained here on the
       golden texts: roberta_bytelevel (add_prefix_space, RobertaProcessing, lstrip <mask>),
       unigram_bytefallback (NFKC + Replace + Strip + Lowercase, Metaspace never,
       byte_fallback), bpe_suffix (continuing_subword_prefix, end_of_word_suffix, unk with
       fuse_unk, Whitespace + Digits + Punctuation, BPEDecoder), t5_slow (spiece.model only),
       llama_slow (tokenizer.model only), gpt2_slow (vocab.json + merges.txt only; the golden
       folder's vocab.json numbers tokens differently from its tokenizer.json), qwen_style and
       llama3_style (NFC, Split with Qwen2's / Llama 3's regular expression, byte-level BPE;
       Llama 3's with ignore_merges), t5_cleanup (the golden T5 with clean_up_tokenization_spaces)
       Tests/TokenizerTests/Fixtures/tokenizer_hard.json    transformers' ids, tokens and
       decodes (skip_special_tokens True and False) for every folder on hard texts
       Tests/TokenizerTests/Fixtures/sentencepiece_cases.json  sentencepiece's own ids and
       decode for each model file

The texts target what breaks tokenizers: every whitespace kind, NUL and control characters,
combining sequences and emoji ZWJ sequences (grapheme clusters the Precompiled normalizer
looks at whole), fullwidth forms (NFKC in the charsmap), long words (merge order, Viterbi),
special tokens typed in the text, contractions (GPT-2's pattern), language codes (Marian),
byte fallback of unknown characters, and random text.
"""
import json
import os
import random
import shutil

import sentencepiece as spm
import tokenizers
import transformers
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "Tests", "TokenizerTests", "Fixtures")
EXTRA = os.path.join(FIX, "extra")

CORPUS = [c["text"] for c in json.load(open(os.path.join(FIX, "tokenizer_golden.json")))["cases"]["t5_unigram"]] + [
    "Tokenizers turn text into numbers, and numbers back into text.",
    "The Eiffel Tower is in Paris; the Brandenburg Gate is in Berlin.",
    "Ein Haus ist ein Gebäude, in dem Menschen wohnen.",
    "I'm sure they'll say it's what we've done, and you'd agree.",
    "零一二三四五六七八九十 ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
    "naïve café coöperate façade jalapeño Ångström",
]

rng = random.Random(0)
ALPHABET = "aAbé e\u0301 \t\n\u00a0\u3000'.,!?-_0123456789東京😀👍🏽\u200d\u2581<>/"


def random_text(n):
    return "".join(rng.choice(ALPHABET) for _ in range(n))


POOLS = ["abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789",
         " \t\n\r\u00a0\u3000\u2009\u200b\u2028\x85\x0b\x0c", ".,;:!?'\"()[]{}<>-_/\\@#$%^&*+=~`|",
         "éèêëàâäôöûüçñßÆØÅ", "\u0301\u0308\u0327\u200d\u200c\ufe0f", "東京日本語中文한국어ひらがなカタカナ",
         "😀👍🏽🇩🇪👨‍👩‍👧❤️", "ΩμέγαΑλφαРусскийעבריתالعربيةहिन्दीไทย", "ｆｕｌｌＡＢＣ１２３ﬁﬂ㍻①½™",
         "\x00\x01\x07\x1b\x7f"]
WHOLE = ["▁", "</s>", "<s>", "<unk>", "<pad>", "<extra_id_0>", "<|endoftext|>", "<0x41>", "'s", "'ll", " the", "  ",
         "...", "\r\n"]


def mixed_text():
    """Up to 60 pieces: a character of a random class, or a whole token-like string."""
    out = []
    for _ in range(rng.randint(0, 60)):
        k = rng.randrange(len(POOLS) + len(WHOLE))
        out.append(rng.choice(POOLS[k]) if k < len(POOLS) else WHOLE[k - len(POOLS)])
    return "".join(out)


HARD = [
    "",
    " ",
    "   ",
    "\t\n\r",
    "a\u0000b\u0000",
    "\u0007bell and \u001b escape",
    "x\u00a0y\u2003z\u3000w\u2028v\u0085u",
    "e\u0301 \u00e9 o\u0308\u0301 a\u030a",
    "👨‍👩‍👧‍👦 family, 👍🏽 thumbs, 🇩🇪 flag",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ ﬁ ﬂ ㍻ ①",
    "I'm sure they'll say it's what we've done, and you'd agree. DON'T SHOUT'S",
    "  double  spaces   and trailing ",
    "\n\nnewlines\n\n",
    "tab\tseparated\tvalues",
    "numbers 1234567890 3.14 -42 1e10 0x1F",
    "</s> in the middle </s>",
    "<unk><pad><s></s>",
    "<extra_id_0> fill <extra_id_1> the blanks <extra_id_19>",
    ">>fr<< Bonjour le monde",
    "<|endoftext|>hello<|endoftext|>",
    "already ▁ has ▁▁ metaspace",
    "<0x41> looks like a byte token",
    "Ωμέγα Ελληνικά Русский текст עברית العربية हिन्दी",
    "ᚠᛇᚻ᛫ᛒᛦᚦ ꙮ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \U0010ffff",
    "supercalifragilisticexpialidocious" * 3,
    "a" * 300,
    "ab" * 200 + " " + "東" * 50,
    "<mask> token and <mask>",
    "spacing marks: theि कि ণ্ and numbers ① ② ⑳ ½ Ⅻ ٣ ߁",
    "\r\n's\u001bि<0x41>Ｂe❤語\n",
    "Hello , world ! Is it ? I 'm sure , they 're n't . ' quoted '",
] + [random_text(40) for _ in range(12)] + [mixed_text() for _ in range(16)]


def save(tok, name, **config):
    d = os.path.join(EXTRA, name)
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=1, ensure_ascii=False)


def make_roberta():
    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    t.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    t.train_from_iterator(CORPUS, trainer)
    t.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
    t.post_processor = processors.RobertaProcessing(("</s>", t.token_to_id("</s>")), ("<s>", t.token_to_id("<s>")))
    save(t, "roberta_bytelevel", tokenizer_class="RobertaTokenizer", bos_token="<s>", eos_token="</s>",
         unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", add_prefix_space=True)


def make_unigram():
    t = Tokenizer(models.Unigram())
    t.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace("``", '"'),
                                         normalizers.Strip(), normalizers.Lowercase()])
    t.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never")
    t.decoder = decoders.Sequence([decoders.Metaspace(prepend_scheme="never"), decoders.ByteFallback()])
    trainer = trainers.UnigramTrainer(vocab_size=300, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>",
                                      byte_fallback=True)
    t.train_from_iterator(CORPUS, trainer)
    t.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B:1 </s>:1",
                                                     special_tokens=[("</s>", t.token_to_id("</s>"))])
    save(t, "unigram_bytefallback", tokenizer_class="PreTrainedTokenizerFast", eos_token="</s>", unk_token="<unk>",
         pad_token="<pad>")


def make_bpe_suffix():
    t = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##", end_of_word_suffix="</w>", fuse_unk=True))
    t.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase()])
    t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True),
                                               pre_tokenizers.Punctuation()])
    t.decoder = decoders.BPEDecoder(suffix="</w>")
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["[UNK]", "[CLS]", "[SEP]"],
                                  continuing_subword_prefix="##", end_of_word_suffix="</w>",
                                  initial_alphabet=list("abcdefghijklmnopqrstuvwxyz"))
    t.train_from_iterator(CORPUS, trainer)
    t.post_processor = processors.BertProcessing(("[SEP]", t.token_to_id("[SEP]")), ("[CLS]", t.token_to_id("[CLS]")))
    save(t, "bpe_suffix", tokenizer_class="PreTrainedTokenizerFast", unk_token="[UNK]", cls_token="[CLS]",
         sep_token="[SEP]", clean_up_tokenization_spaces=True)


QWEN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
LLAMA3 = QWEN.replace(r"\p{N}|", r"\p{N}{1,3}|", 1)


def make_split_regex(name, pattern, ignore_merges):
    t = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    t.normalizer = normalizers.NFC()
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(tokenizers.Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    t.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    t.train_from_iterator(CORPUS, trainer)
    t.post_processor = processors.ByteLevel(trim_offsets=False)
    save(t, name, tokenizer_class="Qwen2Tokenizer" if "qwen" in name else "PreTrainedTokenizerFast",
         eos_token="<|endoftext|>", unk_token=None, pad_token="<|endoftext|>")


def make_cleanup_copy():
    """The golden T5 tokenizer.json with clean_up_tokenization_spaces set (transformers then
    removes the space before punctuation when decoding a non-BPE model)."""
    d = os.path.join(EXTRA, "t5_cleanup")
    os.makedirs(d, exist_ok=True)
    shutil.copy(os.path.join(FIX, "t5_unigram", "tokenizer.json"), os.path.join(d, "tokenizer.json"))
    config = json.load(open(os.path.join(FIX, "t5_unigram", "tokenizer_config.json")))
    config["clean_up_tokenization_spaces"] = True
    json.dump(config, open(os.path.join(d, "tokenizer_config.json"), "w"), indent=1)


def make_slow_copies():
    for name, src, files in [("t5_slow", "t5_unigram", ["spiece.model", "tokenizer_config.json"]),
                             ("llama_slow", "llama_bpe", ["tokenizer.model", "tokenizer_config.json"]),
                             ("gpt2_slow", "gpt2_bytelevel", ["vocab.json", "merges.txt", "tokenizer_config.json"])]:
        d = os.path.join(EXTRA, name)
        os.makedirs(d, exist_ok=True)
        for f in files:
            shutil.copy(os.path.join(FIX, src, f), os.path.join(d, f))


def cases_for(folder):
    tok = AutoTokenizer.from_pretrained(folder)
    out = []
    for text in HARD:
        ids = tok(text)["input_ids"]
        out.append({"text": text, "ids": ids, "tokens": tok.convert_ids_to_tokens(ids),
                    "decoded": tok.decode(ids, skip_special_tokens=True),
                    "decoded_with_specials": tok.decode(ids, skip_special_tokens=False)})
    return out


def main():
    os.makedirs(EXTRA, exist_ok=True)
    make_roberta()
    make_unigram()
    make_bpe_suffix()
    make_split_regex("qwen_style", QWEN, ignore_merges=False)
    make_split_regex("llama3_style", LLAMA3, ignore_merges=True)
    make_slow_copies()
    make_cleanup_copy()
    folders = {n: os.path.join(FIX, n) for n in ["t5_unigram", "marian_spm", "llama_bpe", "gpt2_bytelevel"]}
    for n in ["roberta_bytelevel", "unigram_bytefallback", "bpe_suffix", "t5_slow", "llama_slow", "gpt2_slow",
              "qwen_style", "llama3_style", "t5_cleanup"]:
        folders["extra/" + n] = os.path.join(EXTRA, n)
    result = {"made_with": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                            "sentencepiece": spm.__version__},
              "note": "ids: tokenizer(text)['input_ids']; decoded: decode(ids, skip_special_tokens=True); "
                      "decoded_with_specials: skip_special_tokens=False.",
              "cases": {n: cases_for(p) for n, p in folders.items()}}
    with open(os.path.join(FIX, "tokenizer_hard.json"), "w") as f:
        json.dump(result, f, indent=0, ensure_ascii=False)
    sp_cases = {}
    for rel in ["t5_unigram/spiece.model", "marian_spm/source.spm", "marian_spm/target.spm", "llama_bpe/tokenizer.model"]:
        sp = spm.SentencePieceProcessor(model_file=os.path.join(FIX, rel))
        rows = []
        for text in HARD:
            ids = sp.encode(text)
            rows.append({"text": text, "ids": ids, "pieces": sp.encode(text, out_type=str), "decoded": sp.decode(ids)})
        sp_cases[rel] = rows
    with open(os.path.join(FIX, "sentencepiece_cases.json"), "w") as f:
        json.dump({"made_with": spm.__version__, "cases": sp_cases}, f, indent=0, ensure_ascii=False)
    print("wrote", os.path.join(FIX, "tokenizer_hard.json"), "and sentencepiece_cases.json")


if __name__ == "__main__":
    main()
