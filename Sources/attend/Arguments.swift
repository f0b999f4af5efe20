import Foundation

/// A mistake in the command line: printed on one line with a pointer to `--help`, exit status 2.
struct UsageError: Error, CustomStringConvertible {
    let description: String
}

/// The parsed command line of `attend`.
struct Arguments {
    enum Command: String, CaseIterable {
        case tokenize, decode, embed, similarity, generate, translate
        case fillMask = "fill-mask"
        case train
        case pretrainMLM = "pretrain-mlm"
        case download

        /// Whether the command trains a model (`train`, `pretrain-mlm`).
        var trains: Bool { self == .train || self == .pretrainMLM }
    }

    /// How `--input` is read.
    enum InputFormat: String {
        case lines, jsonl
    }

    static let usage = """
        usage: attend tokenize   --model DIR [--json] [--max-length N] [TEXT...]
               attend decode     --model DIR --ids 1,2,3 [--ids ...] [--keep-special-tokens] [--json]
               attend embed      --model DIR [--json] [--batch-size N] [--threads N] [TEXT...]
               attend similarity --model DIR [--json] [--batch-size N] [--threads N] [TEXT...]
               attend generate   --model DIR (--ids 5,17,42 | --prompt TEXT) [--ids/--prompt ...] [--beams N]
                                 [--max-new-tokens N] [--min-new-tokens N] [--json] [--threads N]
                                 [--repetition-penalty X] [--no-repeat-ngram-size N] [--stop STRING ...]
                                 [--do-sample [--temperature X] [--top-k N] [--top-p X]
                                 [--min-p X] [--seed N]]
               attend generate   --model DIR --text "..." [--text ...] [--input FILE|-] [--task NAME]
                                 [options as above]
               attend translate  --model DIR --text "..." [--text ...] [--input FILE|-] [options as above]
               attend fill-mask  --model DIR [--top-k K] [--json] [--threads N] [TEXT...]
               attend train      --model DIR --batches FILE --steps N --lr X [--weight-decay W]
                                 [--max-grad-norm G] [--warmup N] [--schedule constant|linear|inverse-sqrt]
                                 [--save OUT] [--json] [--threads N] [--seed S]
               attend pretrain-mlm --model DIR --text FILE [--max-length L] [--batch-size B]
                                 --steps N --lr X [training options as train]
               attend download   ORG/NAME [--revision R] [--to DIR]

          tokenize    the token ids (and tokens) of each text, as the model sees it (any
                      tokenizer family: WordPiece, Unigram, BPE, byte-level BPE, SentencePiece,
                      Marian)
          decode      the text of token ids, as transformers' decode
          embed       the sentence embedding of each text
          similarity  the cosine similarity of every pair of texts, as a table
          generate    the tokens a model generates, greedy, sampled or with beam search, exactly
                      as transformers' model.generate does: a T5 or Marian model from source
                      token ids, a decoder-only model (GPT-2, Llama, Mistral, Qwen2; told by
                      config.json's model_type) from prompt ids or text, continuing the prompt
          translate   generate --text for a translation folder (Marian, or T5 with --task
                      translation_en_to_de and the like)
          fill-mask   the most likely tokens for each [MASK] of a text, from a BERT folder with
                      an MLM head (BertForMaskedLM, BertForPreTraining) and its tokenizer, as
                      transformers' fill-mask pipeline: score (softmax over the vocabulary),
                      token, token_str and the text with the token filled in
          train       trains a model folder with AdamW on the batches of a JSON-lines file: a
                      BertForPreTraining folder (labels; loss = MLM + NSP with
                      next_sentence_label, the MLM loss alone without it), a T5 or Marian
                      folder (labels; decoder inputs shifted from them unless given)
          pretrain-mlm
                      trains a BERT folder on text: sentence pairs (next-sentence prediction)
                      with 15% of the tokens masked, built as transformers'
                      TextDatasetForNextSentencePrediction and DataCollatorForLanguageModeling
          download    fetches a model folder from the Hugging Face Hub into the cache the Python
                      huggingface_hub uses ($HF_HUB_CACHE, else $HF_HOME/hub, else
                      ~/.cache/huggingface/hub; either tool reuses the other's files) and prints
                      its snapshot folder, which --model takes (as does the cache folder
                      models--ORG--NAME itself): only the files a model needs (configs,
                      safetensors weights, tokenizer and sentence-transformers files), each
                      checked against the Hub's SHA-256 or git hash, an interrupted file resumed.
                      HF_TOKEN (gated or private models), HF_ENDPOINT and HF_HUB_OFFLINE=1 (the
                      cache only, no network) are read as huggingface_hub reads them

          --model DIR      a sentence-transformers / Hugging Face BERT folder (config.json,
                           model.safetensors, tokenizer.json or vocab.txt, modules.json, ...);
                           for generate, a T5, Marian, GPT-2, Llama, Mistral or Qwen2 folder
                           (config.json, model.safetensors or a sharded index,
                           generation_config.json; tokenizer files for --prompt); also a Hub
                           cache folder models--ORG--NAME, or ORG/NAME itself when no such path
                           exists and the Hub cache holds it (attend download)
          --json           one JSON object per text and line: {"text": ..., "ids": [...], ...}
          --max-length N   cut texts to N tokens, [CLS] and [SEP] included (tokenize; default:
                           the folder's sentence_bert_config.json, else no limit)
          --batch-size N   texts per forward pass (default 32)
          --threads N      threads for the model (default: all active cores)
          --ids A,B,C      (generate) a source (or, decoder-only, a prompt) as comma-separated
                           token ids; several --ids make a padded batch with one output line each
                           (decoder-only prompts are left-padded, as transformers pads them)
          --text T         (generate, T5/Marian) a source text, tokenized with the folder's
                           tokenizer; the output is printed as text (streamed for one greedy
                           source); with --json: {"text", "ids", "output", "output_ids"} per
                           source. --input FILE|- reads the source texts as tokenize does.
                           A line on stderr then gives the generated tokens/s, the time to the
                           first token and the peak memory
          --task NAME      (generate/translate with texts) a task of config.json's
                           task_specific_params (t5: summarization, translation_en_to_de, ...):
                           its prefix goes before every text and its generation settings
                           (num_beams, max_length, no_repeat_ngram_size, ...) are the defaults
          --prompt TEXT    (generate, decoder-only) a prompt as text, encoded by the folder's
                           tokenizer; the continuation is printed as text, streamed for one
                           prompt. Several --prompt make one batch
          --beams N        (generate) beam search with N beams (default: the folder's
                           generation_config.json, else 1 = greedy)
          --max-new-tokens N, --min-new-tokens N
                           (generate) length limits (defaults: generation_config.json, else
                           max_length 20 counting the start token, as transformers)
          --repetition-penalty X, --no-repeat-ngram-size N
                           (generate) divide the scores of tokens already present by X (> 1
                           discourages repeats); never repeat an N-token sequence
          --stop STRING    (generate) end a row once its text contains STRING (repeatable; as
                           transformers' stop_strings: the token completing it is kept; greedy
                           search and sampling; read with the folder's tokenizer)
          --do-sample      (generate) draw each token instead of taking the most likely, after
                           --temperature X (default 1), --top-k N (default 50, 0 = off),
                           --top-p X and --min-p X (off by default), all as transformers;
                           --seed N repeats a draw on any thread count (default: a random seed,
                           printed on stderr). Defaults come from generation_config.json.

        generate prints, per source, the generated ids (up to the end token) on one line; with
        one source and greedy search they appear as they are chosen. With --json it prints one
        line {"ids": [...]} per source: the whole sequence as generate returns it (the start
        token included, padded to the batch's length). For a decoder-only model, {"ids": [...]}
        is the prompt followed by the new tokens up to the end token (without the batch's left
        padding; with --prompt also "text", the continuation), and a timing line goes to stderr:
        prompt tokens/s, generated tokens/s, time to first token, peak memory.

        fill-mask prints, per text, the --top-k K (default 5) predictions of each [MASK]:
        score, token and the filled-in text; with --json one line per text {"text": ...,
        "predictions": [[{"score", "token", "token_str", "sequence"}, ...] per [MASK]]}.

        train and pretrain-mlm read and check everything before the first step (a batch the
        model cannot take stops them with its file line, row and position), then print a
        progress line per step on stderr (loss, tokens/s, time left) and a summary (tokens/s,
        peak memory). Batches are used in order, cycling.
          --batches FILE   (train) one batch per line: {"input_ids": [[...]], "attention_mask",
                           "token_type_ids", "labels", "next_sentence_label", "decoder_input_ids",
                           ...}, the keyword arguments of the transformers model's forward
          --text FILE      (pretrain-mlm) one sentence per line, documents separated by blank
                           lines; --max-length L tokens per pair (default 128, at most the
                           model's positions), --batch-size B pairs per batch (default 32)
          --steps N        optimizer steps
          --lr X           peak learning rate; --warmup N steps rise linearly from 0 to it, then
                           --schedule constant (default), linear (down to 0 at the last step) or
                           inverse-sqrt, as transformers' schedules
          --weight-decay W AdamW's decoupled weight decay (default 0; biases and LayerNorm
                           weights excluded)
          --max-grad-norm G
                           clip the gradients to a global L2 norm of G (default: no clipping)
          --save OUT       write the trained model folder (config.json, model.safetensors and
                           the tokenizer files) to OUT
          --dropout on|off on (default): the model's dropout probabilities from config.json
                           apply while training (hidden_dropout_prob, dropout_rate, dropout,
                           ...), as the Hugging Face Trainer trains; off: none (eval mode)
          --seed S         seed of the dropout masks and (pretrain-mlm) of the pairing,
                           shuffling and masking (default 0; the same seed gives the same bits)
          --json           one line per step on stdout: {"step", "loss" (before the step's
                           update), "grad_norm" (before clipping), "lr"}

        download prints the folder on stdout and a line per file it transfers on stderr
        ("attend: fetching FILE (SIZE)"); a second run transfers nothing.
          --revision R     a branch, tag or commit (default main)
          --to DIR         also copy the files into the plain folder DIR (regular files, not
                           links into the cache) and print DIR

        decode prints the text of each --ids (special tokens left out unless
        --keep-special-tokens); with --json one line {"ids": [...], "text": ...} each.

          --input FILE     read the texts (or, for decode, the id lists) from FILE, "-" for
                           standard input
          --input-format lines|jsonl
                           lines (default): one text per line (decode: "1,2,3" per line);
                           jsonl: one JSON object per line, {"text": ...} (decode: {"ids": [...]}),
                           so any text (newlines, NUL) can be given

        Texts come from the arguments, or, when there are none, from --input, else from standard
        input, one per line.
        """

    var command: Command
    var model: String
    var json = false
    var maxLength: Int? = nil
    var batchSize = 32
    var threads: Int? = nil
    var texts: [String] = []
    var ids: [[Int]] = []
    /// `--prompt` texts (decoder-only generate).
    var prompts: [String] = []
    var task: String? = nil
    var beams: Int? = nil
    var maxNewTokens: Int? = nil
    var minNewTokens: Int? = nil
    var input: String? = nil
    var inputFormat = InputFormat.lines
    var keepSpecialTokens = false
    var generateTexts: [String] = []
    /// Repetition and sampling options of generate.
    var generation = GenerateOptions()
    /// `--top-k` of fill-mask: predictions per [MASK].
    var fillMaskTopK = 5
    /// The options of train and pretrain-mlm.
    var training = TrainingOptions()
    /// Whether `--batch-size` was given.
    var batchSizeGiven = false
    /// The options of download.
    var download = DownloadOptions()

    static func parse(_ args: [String]) throws -> Arguments {
        guard let first = args.first else { throw UsageError(description: "no command given") }
        guard let command = Command(rawValue: first) else {
            throw UsageError(description: "unknown command '\(first)' (known: \(Command.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        if command == .download {
            var a = Arguments(command: command, model: "")
            a.download = try DownloadOptions.parse(Array(args.dropFirst()))
            return a
        }
        var model: String? = nil
        var a = Arguments(command: command, model: "")
        var i = 1
        var onlyTexts = false
        func value(_ flag: String) throws -> String {
            i += 1
            guard i < args.count else { throw UsageError(description: "\(flag) needs a value") }
            return args[i]
        }
        func positive(_ flag: String) throws -> Int {
            let s = try value(flag)
            guard let n = Int(s), n > 0 else { throw UsageError(description: "\(flag) needs a positive integer, got '\(s)'") }
            return n
        }
        while i < args.count {
            let arg = args[i]
            if onlyTexts || !arg.hasPrefix("--") || arg == "-" {
                a.texts.append(arg)
            } else if command.trains, try a.training.parse(arg, command: command, value: { try value(arg) }) {
                // a training option
            } else if command == .fillMask && arg == "--top-k" {
                a.fillMaskTopK = try positive(arg)
            } else {
                switch arg {
                case "--": onlyTexts = true
                case "--model": model = try value(arg)
                case "--json": a.json = true
                case "--max-length": a.maxLength = try positive(arg)
                case "--batch-size": a.batchSize = try positive(arg); a.batchSizeGiven = true
                case "--threads": a.threads = try positive(arg)
                case "--ids": a.ids.append(try tokenIDs(try value(arg), flag: "--ids #\(a.ids.count + 1)"))
                case "--prompt": a.prompts.append(try value(arg))
                case "--beams": a.beams = try positive(arg)
                case "--max-new-tokens": a.maxNewTokens = try positive(arg)
                case "--min-new-tokens":
                    let s = try value(arg)
                    guard let n = Int(s), n >= 0 else { throw UsageError(description: "\(arg) needs a non-negative integer, got '\(s)'") }
                    a.minNewTokens = n
                case "--input": a.input = try value(arg)
                case "--input-format":
                    let s = try value(arg)
                    guard let f = InputFormat(rawValue: s) else { throw UsageError(description: "\(arg) needs lines or jsonl, got '\(s)'") }
                    a.inputFormat = f
                case "--keep-special-tokens": a.keepSpecialTokens = true
                case "--text": a.generateTexts.append(try value(arg))
                case "--task": a.task = try value(arg)
                default:
                    if TrainingOptions.flags.contains(arg) {
                        throw UsageError(description: "\(arg) belongs to train and pretrain-mlm")
                    }
                    guard try a.generation.parse(arg, value: { try value(arg) }) else { throw UsageError(description: "unknown option '\(arg)'") }
                }
            }
            i += 1
        }
        guard let model, !model.isEmpty else { throw UsageError(description: "--model DIR is required") }
        a.model = model
        if command.trains || command == .fillMask {
            try a.checkTrainingAndFillMask()
            return a
        }
        let generating = a.command == .generate || a.command == .translate
        if a.task != nil && (!generating || !a.ids.isEmpty || !a.prompts.isEmpty) {
            throw UsageError(description: "--task belongs to generate/translate with source texts (--text, --input)")
        }
        if a.command == .translate && (!a.ids.isEmpty || !a.prompts.isEmpty) {
            throw UsageError(description: "translate takes source texts (--text, --input), not --ids or --prompt")
        }
        if a.command == .decode {
            guard a.texts.isEmpty else { throw UsageError(description: "decode takes token ids (--ids or --input), not texts: '\(a.texts[0])'") }
            guard a.ids.isEmpty || a.input == nil else { throw UsageError(description: "decode takes --ids or --input, not both") }
            guard a.beams == nil && a.maxNewTokens == nil && a.minNewTokens == nil && !a.generation.isSet && a.prompts.isEmpty else {
                throw UsageError(description: "--beams, --max-new-tokens, --min-new-tokens, --prompt and the sampling options belong to generate")
            }
        } else if (!a.generateTexts.isEmpty || !a.prompts.isEmpty) && !generating {
            throw UsageError(description: "--text and --prompt belong to generate (other commands take texts as arguments)")
        } else if a.keepSpecialTokens {
            throw UsageError(description: "--keep-special-tokens belongs to decode")
        } else if generating {
            let sources = [!a.ids.isEmpty, !a.generateTexts.isEmpty || a.input != nil, !a.prompts.isEmpty].filter { $0 }.count
            guard sources > 0 else {
                throw UsageError(description: "generate needs at least one --ids A,B,C (or --text, --input, or --prompt)")
            }
            guard sources == 1 else {
                throw UsageError(description: "generate takes one kind of source, not both: --ids, texts (--text, --input) or --prompt")
            }
            guard a.texts.isEmpty else {
                throw UsageError(description: "generate takes token ids (--ids) or texts (--text, --prompt), not arguments: '\(a.texts[0])'")
            }
        } else if !a.ids.isEmpty || a.beams != nil || a.maxNewTokens != nil || a.minNewTokens != nil || a.generation.isSet {
            throw UsageError(description: "--ids, --beams, --max-new-tokens, --min-new-tokens and the sampling options belong to generate")
        }
        return a
    }
}

extension Arguments {
    /// The checks of fill-mask, train and pretrain-mlm: the options each needs, and none that
    /// belongs to another command. Throws `UsageError`.
    mutating func checkTrainingAndFillMask() throws {
        let name = command.rawValue
        var foreign: [String] = []
        if !ids.isEmpty { foreign.append("--ids") }
        if !prompts.isEmpty { foreign.append("--prompt") }
        if task != nil { foreign.append("--task") }
        if beams != nil { foreign.append("--beams") }
        if maxNewTokens != nil { foreign.append("--max-new-tokens") }
        if minNewTokens != nil { foreign.append("--min-new-tokens") }
        if generation.isSet { foreign.append("the sampling options (--do-sample, --temperature, --top-k, ...)") }
        if keepSpecialTokens { foreign.append("--keep-special-tokens") }
        if !generateTexts.isEmpty { foreign.append("--text") }
        if inputFormat != .lines && command != .fillMask { foreign.append("--input-format") }
        if command != .pretrainMLM {
            if maxLength != nil { foreign.append("--max-length") }
            if batchSizeGiven { foreign.append("--batch-size") }
        }
        if command.trains && input != nil { foreign.append("--input") }
        if let first = foreign.first {
            throw UsageError(description: "\(first) \(first.hasPrefix("the ") ? "do" : "does") not apply to \(name)")
        }
        guard command.trains else { return }
        if let t = texts.first { throw UsageError(description: "\(name) takes no text arguments: '\(t)'") }
        try training.check(command: command)
    }
}

/// A source given as comma-separated token ids ("5,17,42"; spaces allowed around commas).
func tokenIDs(_ text: String, flag: String) throws -> [Int] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false)
    var ids: [Int] = []
    for (i, part) in parts.enumerated() {
        let t = part.trimmingCharacters(in: .whitespaces)
        guard let id = Int(t), id >= 0 else {
            throw UsageError(description: "\(flag): item \(i + 1) ('\(t)') is not a token id (a non-negative integer)")
        }
        ids.append(id)
    }
    return ids
}

/// Lines of standard input (the line break removed; a final empty line is not a text).
func readStandardInputLines() -> [String] {
    // Split the bytes (a Swift String would treat "\r\n" as one character).
    var lines = Array(FileHandle.standardInput.readDataToEndOfFile()).split(separator: 0x0A, omittingEmptySubsequences: false)
    if lines.last?.isEmpty == true { lines.removeLast() }
    return lines.map { line in String(decoding: line.last == 0x0D ? line.dropLast() : line, as: UTF8.self) }
}
