// The command line of `attend` (Sources/attend): its commands and each command's flags. A
// flag is listed under every command that uses it; the parser refuses it elsewhere, naming the
// command. The CLI grammar test (Tests/CommandLineTests/AttendGrammarTests.swift) and the
// hostile-input harness read these tables.

/// The flag tables of `attend`.
package enum AttendCommandLine {
    // MARK: Flags shared by several commands

    static let model = Flag(
        "--model", .string, "DIR", required: true,
        help:
            "the model folder: config.json, model.safetensors (or a sharded index) and the tokenizer files (tokenizer.json, vocab.txt, spiece.model, ...) as Hugging Face saves them; also a Hub cache folder models--ORG--NAME, or ORG/NAME itself when no such path exists and the Hub cache holds it (attend download)")
    static let json = Flag.switch("--json", help: "one JSON object per line on stdout")
    static let threads = Flag("--threads", .int(1...1024), "N", help: "threads for the model (default: all active cores)")
    static let precision = Flag(
        "--precision", .choice(precisionNames),
        help:
            "the element type the model's weight matrices are held in: stored (default) keeps each as the folder stores it (F16 and BF16 stay 16-bit, mapped; int8 from attend quantize stays int8), float32 widens 16-bit weights at load, float16 or bfloat16 round float32 weights at load (biases and norms stay float32)"
    )
    /// The `--precision` values: the weight precisions' names and `stored`.
    package static let precisionNames = ["float32", "float16", "bfloat16", "stored"]
    static let memoryPrecision = Flag(
        "--memory-precision", .choice(memoryPrecisionNames),
        help:
            "(T5, Marian) the precision the encoder memory's cross-attention keys and values are held in while decoding: auto (default) bfloat16 for int8 weights, else float32 (a float32 or 16-bit model then matches transformers on its weights in float32); bfloat16 halves the bytes each token reads beside the weights (faster decoding of long sources with 16-bit weights) for a rounding of every key and value; float32 also for int8 weights"
    )
    /// The `--memory-precision` values.
    package static let memoryPrecisionNames = ["auto", "float32", "bfloat16"]
    static let input = Flag(
        "--input", .string, "FILE|-",
        help: "read the texts from FILE, - for standard input (default when no texts are given: standard input)")
    static let inputFormat = Flag(
        "--input-format", .choice(["lines", "jsonl"]),
        help:
            "lines (default): one text per line; jsonl: one JSON object per line, {\"text\": ...}, so any text (newlines, NUL) can be given")
    static let embedMaxLength = Flag(
        "--max-length", .int(1...Int.max), "N",
        help: "cut texts to N tokens, [CLS] and [SEP] included (default: the folder's sentence_bert_config.json, else the model's positions)")
    static let batchSize = Flag("--batch-size", .int(1...Int.max), "N", help: "texts per forward pass (default 32)")
    static let ids = Flag(
        "--ids", .list(.int(0...Int.max)), "A,B,C", repeatable: true,
        help: "token ids, comma-separated; several --ids make a padded batch with one output line each")

    /// The options of generate and translate besides the sources.
    static let generation: [Flag] = [
        Flag(
            "--task", .string, "NAME",
            help:
                "a task of config.json's task_specific_params (t5: summarization, translation_en_to_de, ...): its prefix goes before every text and its generation settings are the defaults"
        ),
        Flag("--beams", .int(1...Int.max), "N", help: "beam search with N beams (default: generation_config.json, else 1 = greedy)"),
        Flag(
            "--max-new-tokens", .int(1...Int.max), "N",
            help: "at most N new tokens (default: generation_config.json, else max_length 20 counting the start token, as transformers)"),
        Flag("--min-new-tokens", .int(0...Int.max), "N", help: "at least N new tokens before the end token may be chosen"),
        Flag(
            "--repetition-penalty", .double(.positive), "X",
            help: "divide the scores of tokens already present by X (> 1 discourages repeats)"),
        Flag("--no-repeat-ngram-size", .int(0...Int.max), "N", help: "never repeat an N-token sequence (0 turns it off)"),
        Flag(
            "--stop", .nonEmptyString, "STRING", repeatable: true,
            help:
                "end a row once its text contains STRING (as transformers' stop_strings: the token completing it is kept; greedy search and sampling; read with the folder's tokenizer)"
        ),
        Flag.switch("--do-sample", help: "draw each token instead of taking the most likely, as transformers"),
        Flag("--temperature", .double(.positive), "X", help: "(sampling) divide the scores by X (default 1)"),
        Flag("--top-k", .int(0...Int.max), "N", help: "(sampling) keep the N most likely tokens (default 50, 0 turns it off)"),
        Flag("--top-p", .double(.closed(0, 1)), "X", help: "(sampling) keep the most likely tokens up to probability X (off by default)"),
        Flag("--min-p", .double(.closed(0, 1)), "X", help: "(sampling) drop tokens below X times the top probability (off by default)"),
        Flag(
            "--seed", .uint64, "N",
            help: "(sampling) repeats a draw on any thread count (default: a random seed, printed on stderr)"),
    ]

    static let generateTexts = Flag(
        "--text", .string, "TEXT", repeatable: true,
        help:
            "(T5, Marian) a source text, tokenized with the folder's tokenizer; the output is printed as text (streamed for one greedy source)"
    )

    /// The options of train and pretrain-mlm besides their data.
    static let training: [Flag] = [
        Flag("--steps", .int(1...Int.max), "N", required: true, help: "optimizer steps"),
        Flag(
            "--lr", .double(.positive), "X", required: true,
            help: "peak learning rate; --warmup steps rise linearly from 0 to it, then --schedule"),
        Flag(
            "--weight-decay", .double(.nonNegative), "W",
            help: "AdamW's decoupled weight decay (default 0; biases and LayerNorm weights excluded)"),
        Flag("--max-grad-norm", .double(.positive), "G", help: "clip the gradients to a global L2 norm of G (default: no clipping)"),
        Flag("--warmup", .int(0...Int.max), "N", help: "steps rising linearly from 0 to --lr (default 0)"),
        Flag(
            "--schedule", .choice(["constant", "linear", "inverse-sqrt"]),
            help: "after the warmup: constant (default), linear (down to 0 at the last step) or inverse-sqrt, as transformers' schedules"),
        Flag(
            "--save", .string, "OUT",
            help: "write the trained model folder (config.json, model.safetensors and the tokenizer files) to OUT"),
        Flag(
            "--dropout", .choice(["on", "off"]),
            help:
                "on (default): the model's dropout probabilities from config.json apply while training, as the Hugging Face Trainer trains; off: none (eval mode)"
        ),
        Flag(
            "--seed", .uint64, "S",
            help:
                "seed of the dropout masks and (pretrain-mlm) of the pairing, shuffling and masking (default 0; the same seed gives the same bits)"
        ),
        Flag.switch("--json", help: "one line per step on stdout: {\"step\", \"loss\" (before the step's update), \"grad_norm\" (before clipping), \"lr\"}"),
        threads,
    ]

    /// The `--scheme` values of quantize.
    enum Int8SchemeNames {
        static let all = ["int8-channel", "int8-group32"]
    }

    static let textsFrom = "Texts come from the arguments or, when there are none, from --input, else from standard input, one per line."

    // MARK: The commands

    /// The commands of `attend`, in the order `attend --help` lists them.
    package static let commands: [CommandSpec] = [
        CommandSpec(
            "tokenize",
            summary:
                "the token ids (and tokens) of each text, as the model sees it (any tokenizer family: WordPiece, Unigram, BPE, byte-level BPE, SentencePiece, Marian)",
            flags: [
                model, json,
                Flag(
                    "--max-length", .int(1...Int.max), "N",
                    help:
                        "cut texts to N tokens, [CLS] and [SEP] included (default: the folder's sentence_bert_config.json, else no limit)"),
                input, inputFormat,
            ],
            positionals: "[TEXT...]", details: textsFrom),
        CommandSpec(
            "decode", summary: "the text of token ids, as transformers' decode",
            flags: [
                model,
                Flag("--ids", .list(.int(0...Int.max)), "A,B,C", repeatable: true, help: "token ids to decode, comma-separated; one line of output each"),
                Flag.switch("--keep-special-tokens", help: "keep the special tokens (left out by default)"),
                json,
                Flag("--input", .string, "FILE|-", help: "read the id lists from FILE, - for standard input (instead of --ids)"),
                Flag(
                    "--input-format", .choice(["lines", "jsonl"]),
                    help: "lines (default): \"1,2,3\" per line; jsonl: one JSON object {\"ids\": [...]} per line"),
            ],
            details: "decode prints the text of each --ids; with --json one line {\"ids\": [...], \"text\": ...} each. Without --ids it reads --input, else standard input."),
        CommandSpec(
            "embed", summary: "the sentence embedding of each text (a sentence-transformers BERT folder)",
            flags: [
                model, json, batchSize, embedMaxLength, threads, precision, input, inputFormat,
                Flag(
                    "--output", .nonEmptyString, "OUT",
                    help:
                        "write the vectors to OUT instead of printing them, streaming any number of texts (from --input, - or standard input) in bounded memory: OUT.npy, a float32 (texts, dimension) numpy matrix whose header counts the rows written so far; OUT.jsonl, one line per text as --json prints it. Progress goes to stderr (a bar on a terminal, else a line every 5 s), then a summary: texts/s, tokens/s, peak memory"
                ),
                Flag.switch(
                    "--resume",
                    help:
                        "(with --output) keep the complete rows OUT already holds (a partial last row or line is cut off), skip as many texts and continue; OUT's dimension must be the model's (.jsonl: its last text must equal the input's text of that number)"
                ),
            ],
            positionals: "[TEXT...]",
            details: "With --json one line per text: {\"text\", \"ids\", \"embedding\"}. " + textsFrom),
        CommandSpec(
            "similarity", summary: "the cosine similarity of every pair of texts, as a table",
            flags: [model, json, batchSize, embedMaxLength, threads, precision, input, inputFormat],
            positionals: "[TEXT...]",
            details: "With --json one line per text: {\"text\", \"ids\", \"similarity\"}. " + textsFrom),
        CommandSpec(
            "generate",
            summary:
                "the tokens a model generates, greedy, sampled or with beam search, exactly as transformers' model.generate does: a T5 or Marian model from source token ids or texts, a decoder-only model (GPT-2, Llama, Mistral, Qwen2; told by config.json's model_type) from prompt ids or text, continuing the prompt",
            flags: [
                model, precision,
                Flag(
                    "--ids", .list(.int(0...Int.max)), "A,B,C", repeatable: true,
                    help:
                        "a source (or, decoder-only, a prompt) as comma-separated token ids; several --ids make a padded batch with one output line each (decoder-only prompts are left-padded, as transformers pads them)"
                ),
                generateTexts,
                Flag(
                    "--prompt", .string, "TEXT", repeatable: true,
                    help:
                        "(decoder-only) a prompt as text, encoded by the folder's tokenizer; the continuation is printed as text, streamed for one prompt. Several --prompt make one batch"
                ),
                input, inputFormat, json, threads, memoryPrecision,
            ] + generation,
            details: """
                One kind of source: --ids, texts (--text, --input) or --prompt. generate prints, per source, the generated ids (up to
                the end token) on one line; with one source and greedy search they appear as they are chosen. With --json it prints
                one line {"ids": [...]} per source: the whole sequence as generate returns it (the start token included, padded to
                the batch's length). For a decoder-only model, {"ids": [...]} is the prompt followed by the new tokens up to the end
                token (with --prompt also "text", the continuation). Texts print the output as text; with --json {"text", "ids",
                "output", "output_ids"} per source. A line on stderr gives the tokens/s, the time to the first token and the peak
                memory. Defaults come from the folder's generation_config.json.
                """),
        CommandSpec(
            "translate",
            summary: "generate --text for a translation folder (Marian, or T5 with --task translation_en_to_de and the like)",
            flags: [model, generateTexts, input, inputFormat, json, threads, precision, memoryPrecision] + generation,
            details: "translate takes source texts (--text, --input); its output is generate's for texts."),
        CommandSpec(
            "fill-mask",
            summary:
                "the most likely tokens for each [MASK] of a text, from a BERT folder with an MLM head, as transformers' fill-mask pipeline",
            flags: [
                model, precision,
                Flag("--top-k", .int(1...Int.max), "K", help: "predictions per [MASK] (default 5)"),
                json, threads, input, inputFormat,
            ],
            positionals: "[TEXT...]",
            details: """
                fill-mask prints, per text, the --top-k predictions of each [MASK]: score (softmax over the vocabulary), token and
                the filled-in text; with --json one line per text {"text": ..., "predictions": [[{"score", "token", "token_str",
                "sequence"}, ...] per [MASK]]}. \(textsFrom)
                """),
        CommandSpec(
            "train",
            summary:
                "trains a model folder with AdamW on the batches of a JSON-lines file: a BertForPreTraining folder (loss = MLM + NSP: batches need labels and next_sentence_label) or a T5 or Marian folder (labels; decoder inputs shifted from them unless given)",
            flags: [
                model,
                Flag(
                    "--batches", .string, "FILE", required: true,
                    help:
                        "one batch per line: {\"input_ids\": [[...]], \"attention_mask\", \"token_type_ids\", \"labels\", \"next_sentence_label\", \"decoder_input_ids\", ...}, the keyword arguments of the transformers model's forward"
                ),
            ] + training,
            details: """
                train reads and checks everything before the first step (a batch the model cannot take stops it with its file line,
                row and position), then prints a progress line per step on stderr (loss, tokens/s, time left) and a summary (tokens/s,
                peak memory). Batches are used in order, cycling.
                """),
        CommandSpec(
            "pretrain-mlm",
            summary:
                "trains a BERT folder on text: sentence pairs (next-sentence prediction) with 15% of the tokens masked, built as transformers' TextDatasetForNextSentencePrediction and DataCollatorForLanguageModeling",
            flags: [
                model,
                Flag(
                    "--text", .string, "FILE", required: true,
                    help: "one sentence per line, documents separated by blank lines"),
                Flag(
                    "--max-length", .int(1...Int.max), "L",
                    help: "tokens per sentence pair (default 128, at most the model's positions)"),
                Flag("--batch-size", .int(1...Int.max), "B", help: "sentence pairs per batch (default 32)"),
            ] + training,
            details: "pretrain-mlm prints its progress and summary on stderr as train does."),
        CommandSpec(
            "context",
            summary:
                "how a word's vector changes with its sentence, in a BERT folder: layer by layer (0 = the embedding block's output, then each encoder layer's; the last is the last hidden state), the cosine between the word's vectors (the mean over its word pieces) in every pair of texts, beside the cosine of its input (token) embeddings, as a table",
            flags: [
                model, precision,
                Flag("--word", .nonEmptyString, "WORD", required: true, help: "the word to follow across the texts"),
                json, threads, input, inputFormat,
            ],
            positionals: "TEXT TEXT...",
            details: """
                context finds --word WORD in each text as a whole word, ignoring case (its first occurrence; an error names a text
                without it) and runs each text on its own. With --json it prints one line {"word", "texts", "pieces" (per text),
                "pairs" ([i, j], 0-based), "input" (per pair), "layers" (per layer, per pair)}. \(textsFrom)
                """),
        CommandSpec(
            "attention-map",
            summary:
                "the attention probabilities of one layer for one text, as transformers' output_attentions returns them, drawn as token-by-token heatmaps (rows = queries, columns = keys), one panel per head, in a standalone SVG file: a BERT folder (self-attention), a decoder-only folder (GPT-2, Llama, Mistral, Qwen2: causal self-attention over the prompt) or a T5 or Marian folder (--part encoder, decoder or cross); the model type is read from config.json",
            flags: [
                model, precision,
                Flag("--layer", .int(0...Int.max), "L", help: "the layer, 0-based (default the last)"),
                Flag("--head", .int(0...Int.max), "H", help: "only this head, 0-based (default every head)"),
                Flag("--svg", .nonEmptyString, "OUT.svg", help: "draw the heatmaps into OUT.svg (a file name ending in .svg)"),
                Flag.switch(
                    "--json",
                    help:
                        "print one line {\"text\" (when given), \"ids\", \"tokens\", \"layer\", \"heads\", \"attention\" (per head, [query][key])}; for a T5 or Marian folder also \"part\", and with --part decoder or cross \"target_ids\" and \"target_tokens\" (the queries)"
                ),
                Flag(
                    "--ids", .list(.int(0...Int.max)), "A,B,C",
                    help: "the text as comma-separated token ids instead of TEXT (labels come from the folder's tokenizer when it has one, else the ids)"),
                Flag(
                    "--part", .choice(["encoder", "decoder", "cross"]),
                    help:
                        "(T5, Marian) which attention: encoder (default; the source's self-attention), decoder (the target's causal self-attention) or cross (the target's queries over the source's keys)"
                ),
                Flag(
                    "--target", .string, "TEXT",
                    help:
                        "(T5, Marian; --part decoder or cross) the target text, encoded with the folder's tokenizer (Marian: target.spm) without the end token; the decoder reads the start token followed by it (default: what the model generates from the source, greedy, up to its end token)"
                ),
                Flag(
                    "--target-ids", .list(.int(0...Int.max)), "A,B,C",
                    help: "(T5, Marian; --part decoder or cross) the decoder's input ids as they are, the start token included, instead of --target"),
                threads, input, inputFormat,
            ],
            positionals: "[TEXT]",
            details:
                "attention-map needs --svg OUT.svg or --json (or both), and one text: TEXT, --ids, or one line of --input (else standard input). A padded or future key gets probability 0, as in transformers."
        ),
        CommandSpec(
            "quantize",
            summary:
                "writes an int8 copy of a model folder (BERT/MiniLM, T5, Marian, Llama, Mistral, Qwen2): the projections of every transformer block, and the output head of a generation model, as int8 weights with float scales; embeddings, norms and everything else as stored",
            flags: [
                model,
                Flag("--out", .nonEmptyString, "DIR2", required: true, help: "the new folder (must not exist, or be empty)"),
                Flag(
                    "--scheme", .choice(Int8SchemeNames.all),
                    help:
                        "int8-channel (default): one float32 scale per output channel; int8-group32: one float16 scale per 32 inputs of a row (finer, 1/16 byte more per weight)"
                ),
                Flag(
                    "--keep-float", .nonEmptyString, "RULE",
                    help:
                        "which matrices stay 16-bit instead of int8: auto (default): the attention value projections (value, v, v_proj) and the matrices whose relative error ||W - Q(W)|| / ||W|| under the scheme is above 0.01; a number R: only the matrices above R; none; or module names NAME[,NAME...] (e.g. encoder.layer.2.output.dense)"
                ),
                json,
            ],
            details: """
                quantize writes DIR2/model.safetensors (each quantized weight as I8 NAME beside NAME_scale), DIR2/config.json with a
                "quantization_config" and a copy of every other file of the folder; attend and Attend's loaders read DIR2 as they
                read the original. A tied output head gets its own int8 lm_head.weight (the embedding table stays as stored).
                Each scale is the clip of the block's largest magnitude (100% down to 50% in steps of 1%) with the least squared
                error. The matrices --keep-float keeps are written float16 (16-bit ones as stored) and listed in the config's
                "modules_to_not_convert"; the loaders hold them 16-bit.
                Every product quantizes its rows of activations on the fly (uint8 per 32 inputs, with the group's minimum as offset)
                and runs integer dot products, decoding's included. quantize prints one line: the tensors quantized, those kept 16-bit and the bytes before and after
                (with --json one object {"out", "scheme", "quantized", "kept", "kept_bytes", "bytes_before", "bytes_after",
                "file_bytes"}).
                """),
        CommandSpec(
            "download",
            summary:
                "fetches a model folder from the Hugging Face Hub into the cache the Python huggingface_hub uses ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub; either tool reuses the other's files) and prints its snapshot folder, which --model takes (as does the cache folder models--ORG--NAME itself)",
            flags: [
                Flag("--revision", .nonEmptyString, "R", help: "a branch, tag or commit (default main)"),
                Flag(
                    "--to", .nonEmptyString, "DIR",
                    help: "also copy the files into the plain folder DIR (regular files, not links into the cache) and print DIR"),
            ],
            positionals: "ORG/NAME",
            details: """
                Only the files a model needs (configs, safetensors weights, tokenizer and sentence-transformers files) are fetched,
                each checked against the Hub's SHA-256 or git hash, an interrupted file resumed. HF_TOKEN (gated or private
                models), HF_ENDPOINT and HF_HUB_OFFLINE=1 (the cache only, no network) are read as huggingface_hub reads them.
                download prints the folder on stdout and a line per file it transfers on stderr ("attend: fetching FILE (SIZE)");
                a second run transfers nothing.
                """),
    ]

    /// The tool.
    package static let tool = ToolSpec(
        name: "attend",
        summary:
            "Tokenize, embed and compare texts with a BERT sentence-embedding model folder, generate and translate with T5, Marian and decoder-only folders, fill in [MASK] tokens, and train.",
        commands: commands,
        failureMeaning:
            "runtime failure (a folder or file that is missing, unreadable or malformed, input the model cannot take; one line on stderr)")
}
