#!/usr/bin/env python3
"""Generate the HuggingFace-parity fixtures of the `electra-tokenizer` crate.

Pinned versions (Python 3.11.7, no network needed):
    transformers==5.24.0   (BertTokenizerLegacy = the pure-Python "slow" BertTokenizer,
                            BertTokenizer = the `tokenizers`-backed "fast" one)
    tokenizers==0.23.3

Outputs (in crates/electra-tokenizer/tests/fixtures/ unless --out is given)
----------------------------------------------------------------------------
bert_uncased_ids.jsonl
    One JSON object per line: {"text": str, "ids": [int]} -- the ids of the pure-Python
    BertTokenizerLegacy(datasets/vocab/vocab.txt, do_lower_case=True) with
    add_special_tokens=False. Lines: a deterministic sample of the committed corpus
    (datasets/corpus/*.txt, long paragraphs cut to a window of words) and crafted lines
    (punctuation, accents, digits, CJK, Cyrillic, Arabic, emoji, control characters, words
    over 100 characters, whitespace-only lines, special-token strings).
bert_uncased_pairs.jsonl
    {"a": str, "b": str|null, "max_len": int, "input_ids": [int], "token_type_ids": [int]}:
    `[CLS] a [SEP] (b [SEP])` with truncation="longest_first" to max_len, from the fast
    tokenizer (the slow one truncates ties differently, see the report; lines on which slow and
    fast tokenization disagree are not used here).
packing_reference.json
    The reference ELECTRA ExampleBuilder (build_pretraining_dataset.py, reproduced below) run
    over documents made of fixture lines (referenced by their index in bert_uncased_ids.jsonl)
    for several seeds and lengths, with Python's `random.Random(seed)` as the random source,
    plus the first outputs of that generator, so the Rust reimplementation is checked draw
    for draw.

The script prints a report of slow/fast disagreements (they are expected on a handful of
exotic lines; the fixture records the slow tokenizer, which the Rust crate must match).

Run:  python3 scripts/make_tokenizer_fixture.py [--out DIR]
Deterministic: rerunning with the pinned versions reproduces the files byte for byte.
"""

import argparse
import json
import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VOCAB_DIR = ROOT / "datasets" / "vocab"
CORPUS = [ROOT / "datasets" / "corpus" / "moby_dick.txt", ROOT / "datasets" / "corpus" / "brown_sample.txt"]
DEFAULT_OUT = ROOT / "crates" / "electra-tokenizer" / "tests" / "fixtures"

SAMPLE_LINES = 2300
WINDOW_WORDS = 32
PACKING_LINES = 320


# ---------------------------------------------------------------------------------------------
# The reference example builder: google-research/electra build_pretraining_dataset.py
# (ExampleBuilder), with the tokenizer call replaced by precomputed ids and the global `random`
# replaced by an explicit random.Random instance (same generator). Apache-2.0, (c) Google.
# ---------------------------------------------------------------------------------------------
class ReferenceExampleBuilder:
    """Given a stream of input text, creates pretraining examples."""

    def __init__(self, max_length, cls_id, sep_id, rng):
        self._current_sentences = []
        self._current_length = 0
        self._max_length = max_length
        self._target_length = max_length
        self._cls = cls_id
        self._sep = sep_id
        self._rng = rng

    def add_line(self, line, bert_tokids):
        """Adds a line of text (and its token ids) to the current example being built."""
        line = line.strip().replace("\n", " ")
        if (not line) and self._current_length != 0:  # empty lines separate docs
            return self._create_example()
        self._current_sentences.append(list(bert_tokids) if line else [])
        self._current_length += len(bert_tokids) if line else 0
        if self._current_length >= self._target_length:
            return self._create_example()
        return None

    def _create_example(self):
        """Creates a pre-training example from the current list of sentences."""
        random = self._rng
        # small chance to only have one segment as in classification tasks
        if random.random() < 0.1:
            first_segment_target_length = 100000
        else:
            # -3 due to not yet having [CLS]/[SEP] tokens in the input text
            first_segment_target_length = (self._target_length - 3) // 2

        first_segment = []
        second_segment = []
        for sentence in self._current_sentences:
            # the sentence goes to the first segment if (1) the first segment is
            # empty, (2) the sentence doesn't put the first segment over length or
            # (3) 50% of the time when it does put the first segment over length
            if (len(first_segment) == 0 or
                    len(first_segment) + len(sentence) < first_segment_target_length or
                    (len(second_segment) == 0 and
                     len(first_segment) < first_segment_target_length and
                     random.random() < 0.5)):
                first_segment += sentence
            else:
                second_segment += sentence

        # trim to max_length while accounting for not-yet-added [CLS]/[SEP] tokens
        first_segment = first_segment[:self._max_length - 2]
        second_segment = second_segment[:max(0, self._max_length - len(first_segment) - 3)]

        # prepare to start building the next example
        self._current_sentences = []
        self._current_length = 0
        # small chance for random-length instead of max_length-length example
        if random.random() < 0.05:
            self._target_length = random.randint(5, self._max_length)
        else:
            self._target_length = self._max_length

        return self._make_example(first_segment, second_segment)

    def _make_example(self, first_segment, second_segment):
        input_ids = [self._cls] + first_segment + [self._sep]
        segment_ids = [0] * len(input_ids)
        if second_segment:
            input_ids += second_segment + [self._sep]
            segment_ids += [1] * (len(second_segment) + 1)
        return {"input_ids": input_ids, "segment_ids": segment_ids}


def reference_pack(documents, max_length, cls_id, sep_id, seed):
    """ExampleWriter.write_examples over `documents` (lists of (text, ids)) with blank lines
    between documents and the final add_line("") flush."""
    builder = ReferenceExampleBuilder(max_length, cls_id, sep_id, random.Random(seed))
    out = []
    for doc in documents:
        for text, ids in doc:
            ex = builder.add_line(text, ids)
            if ex:
                out.append(ex)
        ex = builder.add_line("", [])
        if ex:
            out.append(ex)
    return out


# ---------------------------------------------------------------------------------------------
# Fixture text
# ---------------------------------------------------------------------------------------------
def crafted_lines():
    long_word = "a" * 101
    lines = [
        "",
        " ",
        "\t\t",
        "\u3000",
        "\u00a0\u2009 \u200a",
        "Hello, world!",
        "HELLO WORLD",
        "Don't stop -- won't stop; can't stop... (really?) [yes] {no} <maybe>",
        "!!!???...,,,;;;:::",
        "\"quoted\" 'single' \u201ccurly\u201d \u2018apostrophe\u2019 \u00abguillemets\u00bb \u201elow\u201c",
        "em\u2014dash en\u2013dash ellipsis\u2026 bullet\u2022 section\u00a7 pilcrow\u00b6",
        "caf\u00e9 na\u00efve \u00c5ngstr\u00f6m r\u00e9sum\u00e9 fa\u00e7ade co\u00f6perate S\u00e3o Paulo Z\u00fcrich",
        "cafe\u0301 decomposed e\u0301 and n\u0303",
        "\u00c9COLE \u00c0 PARIS, \u00d1and\u00fa, \u0141\u00f3d\u017a, \u0160koda, \u0130stanbul",
        "Stra\u00dfe gro\u00df \u1e9e \ufb01nance \ufb02ow \u0133",
        "\u039f\u0394\u039f\u03a3 \u03b1\u03b8\u03ae\u03bd\u03b1 \u0395\u03bb\u03bb\u03ac\u03b4\u03b1 \u03a3\u03af\u03c3\u03c5\u03c6\u03bf\u03c2",
        "1234567890 3.14159 1,000,000 $5.99 \u20ac10 \u00a33 \u00a5100 50% #1 @user 2020-03-23 12:30pm",
        "\u00bd \u00bc \u00b2 \u00b3 \u2460 \u2167 \u216b \u00aa \u00ba \u2122 \u00a9 \u00ae \u00b0C",
        "\u4e2d\u6587\u6587\u672c\u6d4b\u8bd5\uff0c\u6c49\u5b57\u3002",
        "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3068\u30ab\u30bf\u30ab\u30ca\u3002",
        "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
        "mixed\u4e2dEnglish\u6587text",
        "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u0401\u043b\u043a\u0430 \u0439\u043e\u0433\u0443\u0440\u0442",
        "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 \u0627\u0644\u0639\u064e\u0631\u064e\u0628\u0650\u064a\u064e\u0651\u0629",
        "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
        "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
        "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a",
        "emoji \U0001f600 \U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467 \u2764\ufe0f \U0001f1eb\U0001f1f7",
        "control\x00chars\x07here\x1b[31m red\x7f del",
        "tab\tseparated\tvalues\rand carriage return",
        "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom\u00adsoft hyphen",
        "replacement \ufffd char and private use \ue000 and \U000f0000",
        "rtl\u200fmark\u200eltr \u202aembedding\u202c",
        "unit\x1fseparator\x1crecord",
        "\u200b\x00\x01",
        long_word,
        "a" * 100,
        "prefix " + long_word + " suffix",
        "\u00e9" * 101,
        "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
        "https://example.com/path?query=1&x=y#frag user@example.org C:\\Windows\\path",
        "def f(x): return x**2 + 3*x - 1  # comment",
        "snake_case camelCase PascalCase kebab-case SCREAMING_CASE",
        "[CLS] the [MASK] sat on the [SEP] mat [PAD] [UNK]",
        "[mask] lower-case brackets [cls]",
        "[MASK][MASK]x[SEP]",
        "   leading and trailing spaces   ",
        "a.b.c d,e,f g;h;i",
        "U.S.A. e.g. i.e. Mr. Dr. St. No. vs.",
        "\u00bfQu\u00e9 tal? \u00a1Muy bien!",
        "\uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 \uff21\uff22\uff23 \uff11\uff12\uff13",
        "\u24b6\u24b7\u24b8 \U0001d400\U0001d401 \u2102",
        "\u0627\u0644\u0631\u0642\u0645 \u0661\u0662\u0663 and \u0967\u0968\u0969",
    ]
    # long runs of mixed material
    lines.append(" ".join(["word"] * 300))
    lines.append("x" * 5000)
    lines.append(("abc " * 50) + ("d" * 150) + (" efg" * 30))
    return lines


def corpus_sample(rng):
    lines = []
    for path in CORPUS:
        with open(path, encoding="utf-8") as f:
            lines.extend(line.rstrip("\n") for line in f if line.strip())
    picked = rng.sample(range(len(lines)), SAMPLE_LINES)
    out = []
    for i in sorted(picked):
        words = lines[i].split(" ")
        if len(words) > WINDOW_WORDS:
            start = rng.randrange(0, len(words) - WINDOW_WORDS + 1)
            words = words[start:start + WINDOW_WORDS]
        out.append(" ".join(words))
    return out


def pair_cases(texts, rng):
    cases = []
    for _ in range(120):
        a = rng.choice(texts)
        b = rng.choice(texts) if rng.random() < 0.8 else None
        max_len = rng.choice([8, 9, 16, 17, 32, 64, 128])
        cases.append((a, b, max_len))
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    import transformers
    import tokenizers
    from transformers import BertTokenizer
    from transformers.models.bert import BertTokenizerLegacy

    transformers.logging.set_verbosity_error()
    print(f"transformers {transformers.__version__}, tokenizers {tokenizers.__version__}", file=sys.stderr)
    vocab_file = str(VOCAB_DIR / "vocab.txt")
    slow = BertTokenizerLegacy(vocab_file, do_lower_case=True)
    fast = BertTokenizer(vocab=vocab_file, do_lower_case=True)

    rng = random.Random(20200323)
    sample = corpus_sample(rng)
    crafted = crafted_lines()
    texts = sample + crafted

    args.out.mkdir(parents=True, exist_ok=True)
    disagreements = []
    ids_by_line = []
    with open(args.out / "bert_uncased_ids.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for text in texts:
            ids = slow.encode(text, add_special_tokens=False)
            fast_ids = fast.encode(text, add_special_tokens=False)
            if ids != fast_ids:
                disagreements.append((text, ids, fast_ids))
            ids_by_line.append(ids)
            f.write(json.dumps({"text": text, "ids": ids}, ensure_ascii=False) + "\n")

    pair_disagreements = 0
    with open(args.out / "bert_uncased_pairs.jsonl", "w", encoding="utf-8", newline="\n") as f:
        agreeing = [t for t in texts if t not in {d[0] for d in disagreements}]
        for a, b, max_len in pair_cases(agreeing, rng):
            enc = fast(a, b, truncation="longest_first", max_length=max_len, add_special_tokens=True)
            slow_enc = slow(a, b, truncation="longest_first", max_length=max_len, add_special_tokens=True)
            if slow_enc["input_ids"] != enc["input_ids"]:
                pair_disagreements += 1
            f.write(json.dumps({
                "a": a, "b": b, "max_len": max_len,
                "input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"],
            }, ensure_ascii=False) + "\n")

    # Packing: documents of consecutive corpus-sample lines (indices into the ids fixture).
    cls_id = slow.convert_tokens_to_ids("[CLS]")
    sep_id = slow.convert_tokens_to_ids("[SEP]")
    doc_rng = random.Random(7)
    documents = []
    i = 0
    while i < PACKING_LINES:
        n = doc_rng.randint(1, 30)
        documents.append(list(range(i, min(i + n, PACKING_LINES))))
        i += n
    # a document made of a crafted long line and a non-blank line without tokens
    crafted_start = len(sample)
    documents.insert(3, [crafted_start + crafted.index("x" * 5000), crafted_start + crafted.index("\u200b\x00\x01"), 5])
    cases = []
    for seed, max_len in [(0, 128), (12345, 128), (1, 64), (2**40 + 7, 512), (3, 5), (4, 17)]:
        docs = [[(texts[j], ids_by_line[j]) for j in doc] for doc in documents]
        examples = reference_pack(docs, max_len, cls_id, sep_id, seed)
        cases.append({"seed": seed, "max_len": max_len, "examples": examples})
    rng_check = {}
    for seed in [0, 12345, 2**40 + 7]:
        r = random.Random(seed)
        rng_check[str(seed)] = {
            # random() * 2**53 is an exact integer: compared without float parsing issues
            "random_53": [int(r.random() * 2**53) for _ in range(8)],
            "randint_5_128": [r.randint(5, 128) for _ in range(16)],
        }
    with open(args.out / "packing_reference.json", "w", encoding="utf-8", newline="\n") as f:
        json.dump({
            "cls": cls_id, "sep": sep_id, "documents": documents, "cases": cases, "rng": rng_check,
        }, f, separators=(",", ":"))
        f.write("\n")

    print(f"wrote {len(texts)} lines ({len(sample)} corpus, {len(crafted)} crafted) to {args.out}", file=sys.stderr)
    for name in ["bert_uncased_ids.jsonl", "bert_uncased_pairs.jsonl", "packing_reference.json"]:
        print(f"  {name}: {os.path.getsize(args.out / name)} bytes", file=sys.stderr)
    print(f"slow/fast disagreements: {len(disagreements)} of {len(texts)} lines; "
          f"pairs: {pair_disagreements} of 120", file=sys.stderr)
    for text, s, fa in disagreements:
        print(f"  {text[:60]!r}: slow {slow.convert_ids_to_tokens(s)[:12]} fast {fast.convert_ids_to_tokens(fa)[:12]}",
              file=sys.stderr)
    total_examples = sum(len(c["examples"]) for c in cases)
    print(f"packing: {len(documents)} documents, {total_examples} examples over {len(cases)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
