"""Write tiny but real tokenizers in the formats Meta and Hugging Face ship, for conversion tests.

- `write_spm_tokenizer`: a SentencePiece BPE model trained like Llama 2's (byte fallback, digits
  split, identity normalization), a few hundred pieces.
- `write_tiktoken_tokenizer`: a byte-level BPE learned by `train_byte_bpe` on the same corpus,
  written as Llama 3's `tokenizer.model` (`base64(bytes) rank` per line).
- `write_hf_tokenizer`: the same BPE as a Hugging Face `tokenizer.json` + `tokenizer_config.json`,
  laid out like meta-llama/Llama-3.2-1B-Instruct's.
- `write_large_tiktoken_tokenizer`: a rank file of Llama 3's size (128,000 ranks) for timing.

All offline, deterministic and well under a second.
"""

from __future__ import annotations

import base64
import functools
import io
import itertools
import json
import random
from collections import Counter
from pathlib import Path

import regex

from app.convert.vocab import (
    LLAMA3_PATTERN,
    LLAMA31_TEMPLATE,
    byte_to_unicode,
    bytes_to_token,
    llama3_special_tokens,
)

CORPUS = """\
The quick brown fox jumps over the lazy dog. Llamas live in the high Andes of South America;
they carry loads, and their wool keeps people warm through the long, cold nights.
A model that runs on your own computer keeps your words private: nothing leaves the machine.
In 2023 and 2024 people downloaded models of 7, 8, 13 and 70 billion parameters.
Numbers like 3.14159, 2.71828 and 1,000,000 are split into digits by the tokenizer.
"Hello," she said, "what's the weather like today?" It's sunny, and it'll stay warm until 6 pm.
They've been walking since dawn; we're nearly there, and I'm sure you'd like some tea.
The conversion reads the weights, maps the tensor names, and writes a GGUF file for llama.cpp.
Tokens, merges, scores and types: the vocabulary tells the model how text becomes numbers.
Every morning the shepherd counts the animals, then leads them up the mountain path again.
def main():\n    print("hello world")\n    return 0\n
Questions and answers, stories and poems, code and tables: the model has seen them all.
"""

SPM_VOCAB_SIZE = 400
BPE_MERGES = 300


def write_spm_tokenizer(path: Path) -> Path:
    """Train a Llama 2-like SentencePiece model; `path` is the file, or a folder for `tokenizer.model`."""
    target = path / "tokenizer.model" if path.is_dir() else path
    target.write_bytes(_spm_model_bytes())
    return target


@functools.cache
def _spm_model_bytes() -> bytes:
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS.splitlines()),
        model_writer=model,
        model_type="bpe",
        vocab_size=SPM_VOCAB_SIZE,
        byte_fallback=True,
        split_digits=True,
        character_coverage=1.0,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        add_dummy_prefix=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    return model.getvalue()


@functools.cache
def train_byte_bpe(n_merges: int = BPE_MERGES) -> tuple[dict[bytes, int], tuple[tuple[bytes, bytes], ...]]:
    """Byte-level BPE on `CORPUS`: 256 byte tokens, then the most frequent pair merged, `n_merges` times.

    Returns (ranks, merges in training order). Words are split with Llama 3's regex first, as
    tiktoken does; a merge whose result already is a token adds no rank (that token then has
    two splits, the case that the recovery of merges must get right). Ties go to the larger pair.
    """
    words = Counter(regex.findall(LLAMA3_PATTERN, CORPUS))
    pieces = {word: [bytes([b]) for b in word.encode()] for word in words}
    ranks = {bytes([b]): rank for rank, b in enumerate(_byte_rank_order())}
    merges: list[tuple[bytes, bytes]] = []
    for _ in range(n_merges):
        pairs: Counter[tuple[bytes, bytes]] = Counter()
        for word, count in words.items():
            seq = pieces[word]
            for pair in itertools.pairwise(seq):
                pairs[pair] += count
        if not pairs:
            break
        best = max(pairs, key=lambda pair: (pairs[pair], pair))
        merged = best[0] + best[1]
        ranks.setdefault(merged, len(ranks))
        merges.append(best)
        for word, seq in pieces.items():
            pieces[word] = _apply_merge(seq, best)
    return ranks, tuple(merges)


def _byte_rank_order() -> list[int]:
    """Single bytes ranked as in GPT-2 and Llama 3: in the order of their stand-ins (rank 0 is `!`)."""
    return sorted(range(256), key=byte_to_unicode().__getitem__)


def _apply_merge(seq: list[bytes], pair: tuple[bytes, bytes]) -> list[bytes]:
    out: list[bytes] = []
    i = 0
    while i < len(seq):
        if i + 1 < len(seq) and (seq[i], seq[i + 1]) == pair:
            out.append(seq[i] + seq[i + 1])
            i += 2
        else:
            out.append(seq[i])
            i += 1
    return out


def write_tiktoken_tokenizer(path: Path) -> Path:
    """Llama 3's `tokenizer.model` format for `train_byte_bpe`; `path` is the file or its folder."""
    target = path / "tokenizer.model" if path.is_dir() else path
    ranks, _ = train_byte_bpe()
    target.write_text(
        "".join(f"{base64.b64encode(token).decode()} {rank}\n" for token, rank in ranks.items()),
        encoding="ascii",
    )
    return target


def write_large_tiktoken_tokenizer(path: Path, n_ranks: int = 128_000) -> Path:
    """A rank file the size of Llama 3's: random concatenations of earlier tokens, 7.6 bytes on
    average. For timing and ids at full size; its ranks are no trained BPE, so not for tokenizing."""
    rng = random.Random(0)
    tokens = [bytes([b]) for b in _byte_rank_order()]
    seen = set(tokens)
    while len(tokens) < n_ranks:
        token = tokens[int(len(tokens) * rng.random() ** 4)] + tokens[int(len(tokens) * rng.random() ** 4)]
        if len(token) <= 16 and token not in seen:
            seen.add(token)
            tokens.append(token)
    path.write_text("".join(f"{base64.b64encode(t).decode()} {rank}\n" for rank, t in enumerate(tokens)))
    return path


def reference_merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """Merges from ranks the slow, obvious way (transformers' TikTokenConverter), to check the fast one."""
    found = []
    for token, rank in ranks.items():
        local = [
            (token[:i], token[i:], rank)
            for i in range(1, len(token))
            if token[:i] in ranks and token[i:] in ranks
        ]
        found.extend(sorted(local, key=lambda m: (ranks[m[0]], ranks[m[1]])))
    found.sort(key=lambda m: m[2])
    return [(left, right) for left, right, _ in found]


def write_hf_tokenizer(model_dir: Path, *, merges_as_pairs: bool = False) -> None:
    """`tokenizer.json` and `tokenizer_config.json` like meta-llama/Llama-3.2-1B-Instruct's, for the tiny BPE.

    `merges_as_pairs` writes merges as ["a", "b"] (tokenizers >= 0.20) instead of "a b".
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    ranks, _ = train_byte_bpe()
    vocab = {bytes_to_token(token): rank for token, rank in ranks.items()}
    merges = [(bytes_to_token(left), bytes_to_token(right)) for left, right in reference_merges(ranks)]
    specials = llama3_special_tokens()
    added = [
        {
            "id": len(ranks) + i,
            "content": name,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, name in enumerate(specials)
    ]
    bos = {"id": "<|begin_of_text|>", "ids": [len(ranks)], "tokens": ["<|begin_of_text|>"]}
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": LLAMA3_PATTERN},
                    "behavior": "Isolated",
                    "invert": False,
                },
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        },
        "post_processor": {
            "type": "Sequence",
            "processors": [
                {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
                {
                    "type": "TemplateProcessing",
                    "single": [
                        {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                        {"Sequence": {"id": "A", "type_id": 0}},
                    ],
                    "pair": [],
                    "special_tokens": {"<|begin_of_text|>": bos},
                },
            ],
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": True,
            "vocab": vocab,
            "merges": [list(m) for m in merges] if merges_as_pairs else [f"{a} {b}" for a, b in merges],
        },
    }
    config = {
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "chat_template": LLAMA31_TEMPLATE,
        "clean_up_tokenization_spaces": True,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    (model_dir / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")
    (model_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
