"""Tokenizer conversion: the vocabulary written to GGUF tokenizes in real llama.cpp exactly as the
original tokenizer does (sentencepiece for Llama 2, tiktoken for Llama 3)."""

from __future__ import annotations

import base64
import contextlib
import ctypes
import datetime
import json
import random
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import gguf
import llama_cpp
import pytest
import sentencepiece
import tiktoken

from app.convert.vocab import (
    LLAMA3_PATTERN,
    Vocab,
    add_vocab,
    byte_to_unicode,
    bytes_to_token,
    llama3_special_tokens,
    load_hf_tokenizer,
    load_meta_tokenizer,
    recover_merges,
)
from app.core.errors import TokenizerFileError
from app.engine.generation import ChatTurn
from app.engine.templates import choose_template
from tests.support.convert_tokenizers import (
    reference_merges,
    train_byte_bpe,
    write_hf_tokenizer,
    write_large_tiktoken_tokenizer,
    write_spm_tokenizer,
    write_tiktoken_tokenizer,
)

SAMPLES = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "  leading spaces, and   runs of  spaces  ",
    "Numbers: 3.14159, 1,000,000 and 2024!",
    "It's what they've said; I'm sure we'll see.",
    "tabs\tand\nnew lines\n\n  indented",
    "Ünïcödé: 日本語のテキスト, Ελληνικά, русский",
    "emoji 🦙🚀 and symbols ∑ ≠ →",
    "def f(x):\n    return x ** 2  # squared",
    "",
]
CHAT = [
    ChatTurn("system", "Be brief."),
    ChatTurn("user", "Hi there"),
    ChatTurn("assistant", "Hello!"),
    ChatTurn("user", "What is a llama?"),
]


# -- llama.cpp, vocabulary only ------------------------------------------------------------------


def write_vocab_gguf(path: Path, vocab: Vocab) -> Path:
    """A GGUF with llama hyper-parameters and the vocabulary but no tensors (enough for vocab_only)."""
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_name("vocabulary test")
    writer.add_block_count(1)
    writer.add_context_length(256)
    writer.add_embedding_length(64)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(4)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(vocab.size)
    add_vocab(writer, vocab)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    return path


class LlamaVocab:
    """llama.cpp's tokenizer for a loaded vocab-only model."""

    def __init__(self, model: ctypes.c_void_p) -> None:
        self.model = model
        self.vocab = llama_cpp.llama_model_get_vocab(model)

    def tokenize(self, text: str, *, parse_special: bool = False) -> list[int]:
        data = text.encode()
        capacity = len(data) + 8
        buffer = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), buffer, capacity, False, parse_special)
        assert n >= 0
        return list(buffer[:n])

    def text(self, token: int) -> str:
        return llama_cpp.llama_vocab_get_text(self.vocab, token).decode()

    def chat_template(self) -> str | None:
        raw = llama_cpp.llama_model_chat_template(self.model, None)
        return raw.decode() if raw else None


@contextlib.contextmanager
def load_vocab(path: Path) -> Iterator[LlamaVocab]:
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    assert model, f"llama.cpp could not load {path}"
    try:
        yield LlamaVocab(model)
    finally:
        llama_cpp.llama_model_free(model)


def tiktoken_encoding(path: Path) -> tiktoken.Encoding:
    """The reference: tiktoken itself on the rank file, with Llama 3's regex and special tokens."""
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in path.read_text().splitlines() if line)
    }
    specials = {name: len(ranks) + i for i, name in enumerate(llama3_special_tokens())}
    return tiktoken.Encoding(
        "tiny-llama3", pat_str=LLAMA3_PATTERN, mergeable_ranks=ranks, special_tokens=specials
    )


def render(vocab: LlamaVocab, turns: list[ChatTurn]) -> str:
    """The prompt as the engine builds it: the GGUF's template through app/engine/templates.py."""
    bos = vocab.text(llama_cpp.llama_vocab_bos(vocab.vocab))
    eos = vocab.text(llama_cpp.llama_vocab_eos(vocab.vocab))
    return choose_template(vocab.chat_template(), lambda _text: False, bos, eos).render(turns)


# -- Llama 2: SentencePiece ----------------------------------------------------------------------


def test_llama2_vocabulary_tokenizes_like_sentencepiece(tmp_path: Path) -> None:
    model_file = write_spm_tokenizer(tmp_path / "tokenizer.model")
    reference = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
    vocab = load_meta_tokenizer(model_file, instruct=False)

    assert (vocab.model, vocab.pre, vocab.size) == ("llama", "default", reference.get_piece_size())
    assert (vocab.bos_id, vocab.eos_id, vocab.unk_id) == (1, 2, 0)
    assert vocab.token_types[:4] == (
        gguf.TokenType.UNKNOWN,
        gguf.TokenType.CONTROL,
        gguf.TokenType.CONTROL,
        6,
    )
    assert vocab.chat_template is None
    with load_vocab(write_vocab_gguf(tmp_path / "v.gguf", vocab)) as llama:
        assert llama_cpp.llama_vocab_type(llama.vocab) == llama_cpp.LLAMA_VOCAB_TYPE_SPM
        assert llama_cpp.llama_vocab_get_add_bos(llama.vocab)
        for text in SAMPLES:
            assert llama.tokenize(text) == reference.encode(text), text
        # byte fallback: a character the model never saw becomes its UTF-8 bytes
        assert [llama.text(t) for t in llama.tokenize("🦙")][-4:] == ["<0xF0>", "<0x9F>", "<0xA6>", "<0x99>"]


def test_llama2_chat_template_is_inst_format(tmp_path: Path) -> None:
    vocab = load_meta_tokenizer(write_spm_tokenizer(tmp_path / "tokenizer.model"), instruct=True)
    with load_vocab(write_vocab_gguf(tmp_path / "v.gguf", vocab)) as llama:
        prompt = render(llama, CHAT)
    assert prompt == (
        "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi there [/INST] Hello! </s>"
        "<s>[INST] What is a llama? [/INST]"
    )


# -- Llama 3: tiktoken ---------------------------------------------------------------------------


def test_llama3_vocabulary_tokenizes_like_tiktoken(tmp_path: Path) -> None:
    model_file = write_tiktoken_tokenizer(tmp_path / "tokenizer.model")
    reference = tiktoken_encoding(model_file)
    vocab = load_meta_tokenizer(model_file, instruct=False)
    n_ranks = len(train_byte_bpe()[0])

    assert (vocab.model, vocab.pre, vocab.size) == ("gpt2", "llama-bpe", n_ranks + 256)
    assert vocab.tokens[n_ranks : n_ranks + 2] == ("<|begin_of_text|>", "<|end_of_text|>")
    assert vocab.tokens[-1] == "<|reserved_special_token_247|>"
    assert (vocab.bos_id, vocab.eos_id, vocab.eot_id) == (n_ranks, n_ranks + 1, n_ranks + 9)
    assert set(vocab.token_types[n_ranks:]) == {gguf.TokenType.CONTROL}
    with load_vocab(write_vocab_gguf(tmp_path / "v.gguf", vocab)) as llama:
        assert llama_cpp.llama_vocab_type(llama.vocab) == llama_cpp.LLAMA_VOCAB_TYPE_BPE
        for text in [*SAMPLES, "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"]:
            assert llama.tokenize(text, parse_special=True) == reference.encode(
                text, allowed_special="all"
            ), text
        assert llama.tokenize("<|eot_id|>", parse_special=True) == [vocab.eot_id]
        assert llama_cpp.llama_vocab_is_eog(llama.vocab, vocab.eot_id)


def test_llama30_instruct_ends_turns_with_eot_and_renders_the_llama3_template(tmp_path: Path) -> None:
    model_file = write_tiktoken_tokenizer(tmp_path / "tokenizer.model")
    vocab = load_meta_tokenizer(model_file, instruct=True, llama31=False)
    assert vocab.eos_id == vocab.eot_id == vocab.tokens.index("<|eot_id|>")
    assert vocab.eom_id is None
    assert vocab.tokens[-1] == "<|reserved_special_token_250|>"
    with load_vocab(write_vocab_gguf(tmp_path / "v.gguf", vocab)) as llama:
        prompt = render(llama, CHAT)
        tokens = llama.tokenize(prompt, parse_special=True)
    header = "<|start_header_id|>{}<|end_header_id|>\n\n"
    assert prompt == (
        "<|begin_of_text|>"
        + header.format("system") + "Be brief.<|eot_id|>"
        + header.format("user") + "Hi there<|eot_id|>"
        + header.format("assistant") + "Hello!<|eot_id|>"
        + header.format("user") + "What is a llama?<|eot_id|>"
        + header.format("assistant")
    )  # fmt: skip
    assert tokens[0] == vocab.bos_id
    assert tokens.count(vocab.eot_id) == 4


def test_llama31_instruct_has_eom_and_a_dated_system_block(tmp_path: Path) -> None:
    vocab = load_meta_tokenizer(write_tiktoken_tokenizer(tmp_path / "tokenizer.model"), instruct=True)
    assert vocab.eom_id == vocab.tokens.index("<|eom_id|>") == vocab.bos_id + 8
    with load_vocab(write_vocab_gguf(tmp_path / "v.gguf", vocab)) as llama:
        assert llama_cpp.llama_vocab_is_eog(llama.vocab, vocab.eom_id)
        assert llama_cpp.llama_vocab_eos(llama.vocab) == vocab.eot_id
        prompt = render(llama, CHAT[1:2])
    assert prompt == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        f"Cutting Knowledge Date: December 2023\nToday Date: {today()}\n\n<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def today() -> str:
    return datetime.datetime.now().strftime("%d %b %Y")


def random_texts(count: int) -> list[str]:
    """Seeded random strings of letters, digits, punctuation, runs of whitespace, accents, CJK and emoji."""
    rng = random.Random(1)
    alphabet = [*"abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ  \n\t0123456789.,;:'\"!?-()", "é", "ß", "日", "本"]
    alphabet += ["🦙", "→", "  ", "'s", "'ll", "\r\n", "’"]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(count)]


@pytest.mark.parametrize("kind", ["sentencepiece", "tiktoken"])
def test_random_text_tokenizes_exactly_as_the_reference(tmp_path: Path, kind: str) -> None:
    if kind == "sentencepiece":
        model_file = write_spm_tokenizer(tmp_path / "tokenizer.model")
        encode = sentencepiece.SentencePieceProcessor(model_file=str(model_file)).encode
    else:
        model_file = write_tiktoken_tokenizer(tmp_path / "tokenizer.model")
        encode = tiktoken_encoding(model_file).encode
    vocab = load_meta_tokenizer(model_file, instruct=False)
    with load_vocab(write_vocab_gguf(tmp_path / "v.gguf", vocab)) as llama:
        mismatches = [text for text in random_texts(300) if llama.tokenize(text) != encode(text)]
    assert mismatches == []


def test_recovered_merges_are_every_split_ordered_by_rank() -> None:
    ranks, trained = train_byte_bpe()
    merges = recover_merges(ranks)

    assert merges == [f"{bytes_to_token(a)} {bytes_to_token(b)}" for a, b in reference_merges(ranks)]
    assert_contains_in_order(merges, [f"{bytes_to_token(a)} {bytes_to_token(b)}" for a, b in trained])
    # merges come in the rank order of the token they make
    by_name = {bytes_to_token(token): rank for token, rank in ranks.items()}
    made = [by_name[merge.replace(" ", "")] for merge in merges]
    assert made == sorted(made)
    assert len(merges) > len(trained)  # some tokens have more than one split: all are kept


def test_recovered_merges_keep_a_real_trained_vocabularys_merges_in_order(starter_path: Path) -> None:
    """The starter model's byte-level BPE (49k tokens trained by HF tokenizers), read as tiktoken ranks."""
    arrays = gguf_string_arrays(starter_path)
    real_merges = arrays["tokenizer.ggml.merges"]
    byte_of = {char: byte for byte, char in enumerate(byte_to_unicode())}
    tokens = [bytes(byte_of[c] for c in token) for token in arrays["tokenizer.ggml.tokens"]]
    merges = recover_merges({token: rank for rank, token in enumerate(tokens)})
    assert_contains_in_order(merges, real_merges)
    assert len(merges) > 2 * len(real_merges)  # many of its tokens can be split more than one way


def gguf_string_arrays(path: Path) -> dict[str, list[str]]:
    """The string arrays of a GGUF's metadata (gguf.GGUFReader takes seconds for a 49k vocabulary)."""
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # GGUFValueType widths
    with path.open("rb") as file:
        data = file.read(32 << 20)
    pos = 24  # magic, version, tensor count, then the metadata count
    (n_kv,) = struct.unpack_from("<Q", data, 16)

    def string() -> str:
        nonlocal pos
        (n,) = struct.unpack_from("<Q", data, pos)
        pos += 8 + n
        return data[pos - n : pos].decode()

    def value(kind: int) -> list[str] | None:
        nonlocal pos
        if kind == 8:
            string()
        elif kind == 9:
            item, count = struct.unpack_from("<IQ", data, pos)
            pos += 12
            if item == 8:
                return [string() for _ in range(count)]
            pos += sizes[item] * count
        else:
            pos += sizes[kind]
        return None

    arrays = {}
    for _ in range(n_kv):
        key = string()
        (kind,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if (strings := value(kind)) is not None:
            arrays[key] = strings
    return arrays


def assert_contains_in_order(merges: list[str], expected: list[str]) -> None:
    position = {merge: i for i, merge in enumerate(merges)}
    assert [m for m in expected if m not in position] == []
    found = [position[m] for m in expected]
    assert found == sorted(found)


def test_a_token_with_two_splits_gets_both_merges(tmp_path: Path) -> None:
    """`abcd` needs `ab c` though `abc`'s first split is `a bc`: one merge per token stops at `ab c d`."""
    ranks = {bytes([b]): b for b in range(256)} | {b"ab": 256, b"bc": 257, b"abc": 258}
    assert recover_merges(ranks)[-2:] == ["a bc", "ab c"]
    model_file = tmp_path / "tokenizer.model"
    model_file.write_text("".join(f"{base64.b64encode(t).decode()} {r}\n" for t, r in ranks.items()))
    vocab = load_meta_tokenizer(model_file, instruct=False)
    with load_vocab(write_vocab_gguf(tmp_path / "v.gguf", vocab)) as llama:
        for text in ["abcd", "xabc abcabc", "bcd"]:
            assert llama.tokenize(text) == tiktoken_encoding(model_file).encode(text), text
        assert llama.tokenize("abcd") == [258, ord("d")]


# -- Hugging Face tokenizer.json -----------------------------------------------------------------


@pytest.mark.parametrize("merges_as_pairs", [False, True], ids=["merges-as-strings", "merges-as-pairs"])
def test_hf_tokenizer_json_converts_like_the_tiktoken_file(tmp_path: Path, merges_as_pairs: bool) -> None:
    write_hf_tokenizer(tmp_path / "hf", merges_as_pairs=merges_as_pairs)
    hf = load_hf_tokenizer(tmp_path / "hf", instruct=True)
    meta = load_meta_tokenizer(write_tiktoken_tokenizer(tmp_path / "tokenizer.model"), instruct=True)

    assert (hf.tokens, hf.token_types, hf.merges) == (meta.tokens, meta.token_types, meta.merges)
    assert (hf.bos_id, hf.eos_id, hf.eot_id, hf.eom_id, hf.add_bos) == (
        meta.bos_id,
        meta.eos_id,
        meta.eot_id,
        meta.eom_id,
        True,
    )
    reference = tiktoken_encoding(tmp_path / "tokenizer.model")
    with load_vocab(write_vocab_gguf(tmp_path / "v.gguf", hf)) as llama:
        for text in SAMPLES:
            assert llama.tokenize(text, parse_special=True) == reference.encode(text, allowed_special="all")
        prompt = render(llama, CHAT[:2])
    assert prompt == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        f"Cutting Knowledge Date: December 2023\nToday Date: {today()}\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_hf_config_variants_added_token_dicts_and_named_templates(tmp_path: Path) -> None:
    """Older configs spell special tokens as AddedToken dicts and may keep several named templates."""
    write_hf_tokenizer(tmp_path)
    config = {
        "bos_token": {"content": "<|begin_of_text|>", "special": True},
        "eos_token": {"content": "<|end_of_text|>", "special": True},
        "pad_token": "<|finetune_right_pad_id|>",
        "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}],
    }
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    vocab = load_hf_tokenizer(tmp_path, instruct=True)
    assert vocab.chat_template == "D"
    assert [vocab.tokens[i] for i in (vocab.bos_id, vocab.eos_id, vocab.pad_id) if i is not None] == [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|finetune_right_pad_id|>",
    ]


def test_hf_folder_with_only_tokenizer_model_and_a_jinja_template(tmp_path: Path) -> None:
    """Some Llama 2 repos have no tokenizer.json; newer transformers save the template beside the config."""
    write_spm_tokenizer(tmp_path / "tokenizer.model")
    (tmp_path / "chat_template.jinja").write_text("{{ messages[0]['content'] }}")
    vocab = load_hf_tokenizer(tmp_path, instruct=True)
    assert (vocab.model, vocab.chat_template) == ("llama", "{{ messages[0]['content'] }}")


def test_hf_llama2_style_tokenizer_reads_the_sentencepiece_model_beside_it(tmp_path: Path) -> None:
    write_spm_tokenizer(tmp_path / "tokenizer.model")
    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE", "byte_fallback": True}}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    vocab = load_hf_tokenizer(tmp_path, instruct=True)
    assert (vocab.model, vocab.chat_template) == ("llama", "{{ messages }}")


# -- malformed files -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "empty"),
        (b"\x00\x01\x02garbage", "neither"),
        (b"\x0a\x05trunc", "SentencePiece cannot read it"),
        (b"YQ== 0\nYg== 1\n", "256 single bytes"),
        (b"YQ== 0\nYg== 5\n", "ranks are not"),
        (b"YQ== 0\nnot base64! 1\n", "line 2"),
        (b"YQ== 0\nYQ== 1\n", "repeats"),
    ],
    ids=["empty", "binary", "truncated-spm", "missing-bytes", "rank-gap", "bad-line", "duplicate"],
)
def test_malformed_meta_tokenizer_is_reported(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "tokenizer.model"
    path.write_bytes(content)
    with pytest.raises(TokenizerFileError, match=problem) as info:
        load_meta_tokenizer(path, instruct=False)
    assert info.value.exit_code == 4
    assert "Download the model's files again" in str(info.value)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"pre_tokenizer": {"type": "ByteLevel"}}, "pre-tokenizer"),
        ({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a zz"]}}, "merge 'a zz'"),
        ({"model": {"type": "Unigram"}}, "not BPE"),
        ({"added_tokens": [{"id": 10**7, "content": "x"}]}, "ids reach"),
        ({"added_tokens": [{"id": "7", "content": "x"}]}, "malformed"),
    ],
    ids=["other-pretokenizer", "unknown-merge", "unigram", "id-far-beyond", "id-not-a-number"],
)
def test_malformed_tokenizer_json_is_reported(
    tmp_path: Path, changes: dict[str, object], problem: str
) -> None:
    write_hf_tokenizer(tmp_path)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))
    with pytest.raises(TokenizerFileError, match=problem):
        load_hf_tokenizer(tmp_path, instruct=True)


def test_tokenizer_json_that_is_not_json_is_reported(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text('{"model": {"type": "BPE", "vocab": {')
    with pytest.raises(TokenizerFileError, match="not readable JSON"):
        load_hf_tokenizer(tmp_path, instruct=True)


def test_missing_tokenizer_json_is_reported(tmp_path: Path) -> None:
    with pytest.raises(TokenizerFileError, match="missing"):
        load_hf_tokenizer(tmp_path, instruct=False)


def test_llama3_sized_vocabulary_converts_in_seconds(tmp_path: Path) -> None:
    write_large_tiktoken_tokenizer(tmp_path / "tokenizer.model")
    started = time.perf_counter()
    vocab = load_meta_tokenizer(tmp_path / "tokenizer.model", instruct=True)
    elapsed = time.perf_counter() - started

    assert elapsed < 20  # about 1.5 s here; a quadratic recovery would take minutes
    assert (vocab.size, vocab.bos_id, vocab.eos_id, vocab.eom_id) == (128_256, 128_000, 128_009, 128_008)
    assert len(vocab.merges) >= 128_000 - 256  # at least one per token made by merging
    with load_vocab(write_vocab_gguf(tmp_path / "v.gguf", vocab)) as llama:
        assert llama_cpp.llama_vocab_n_tokens(llama.vocab) == 128_256
        assert llama.tokenize("<|eot_id|>", parse_special=True) == [128_009]
