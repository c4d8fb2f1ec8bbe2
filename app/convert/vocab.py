"""Tokenizers of Llama checkpoints turned into GGUF vocabulary metadata, without PyTorch or transformers.

Three sources end up as the same `Vocab`:
- Llama 2's `tokenizer.model` (SentencePiece): pieces, scores and types as they are (GGUF's token
  types are SentencePiece's), GGUF tokenizer model "llama".
- Llama 3's `tokenizer.model` (tiktoken: `base64(bytes) rank` per line): tokens are the GPT-2
  byte-to-unicode strings of the ranks, then 256 special tokens; llama.cpp needs BPE *merges*,
  which tiktoken does not store, so they are recovered from the ranks (see `recover_merges`).
- A Hugging Face `tokenizer.json` (+ `tokenizer_config.json`), as in the meta-llama repos.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import json
import logging
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf

from app.core.errors import TokenizerFileError

log = logging.getLogger("convert")

#: Chat templates written into converted instruct models that carry none of their own.
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>"
    "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
LLAMA2_TEMPLATE = (
    "{% set system = messages[0]['content'] if messages and messages[0]['role'] == 'system' else '' %}"
    "{% for m in messages if m['role'] != 'system' %}"
    "{% if m['role'] == 'user' %}{{ bos_token }}[INST] "
    "{% if loop.first and system %}<<SYS>>\n{{ system }}\n<</SYS>>\n\n{% endif %}"
    "{{ m['content'] | trim }} [/INST]"
    "{% else %} {{ m['content'] | trim }} {{ eos_token }}{% endif %}{% endfor %}"
)

NORMAL = int(gguf.TokenType.NORMAL)
UNKNOWN = int(gguf.TokenType.UNKNOWN)
CONTROL = int(gguf.TokenType.CONTROL)
USER_DEFINED = int(gguf.TokenType.USER_DEFINED)
UNUSED = int(gguf.TokenType.UNUSED)
BYTE = int(gguf.TokenType.BYTE)

#: Llama 3's pre-tokenizer regex (tiktoken's `pat_str`; llama.cpp calls it "llama-bpe").
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_SPECIAL_COUNT = 256
#: Named special tokens by offset after the ranks (llama-models' tokenizers); the rest are reserved.
_LLAMA30_SPECIALS = {
    0: "<|begin_of_text|>",
    1: "<|end_of_text|>",
    6: "<|start_header_id|>",
    7: "<|end_header_id|>",
    9: "<|eot_id|>",
}
_LLAMA31_SPECIALS = _LLAMA30_SPECIALS | {
    4: "<|finetune_right_pad_id|>",
    8: "<|eom_id|>",
    10: "<|python_tag|>",
}
#: Llama 3.1+ Instruct's template without its tool-calling branches: the system block always states the
#: knowledge cutoff and today's date, as the models were trained.
LLAMA31_TEMPLATE = (
    "{{- bos_token }}\n"
    "{%- if not date_string is defined %}\n"
    "    {%- if strftime_now is defined %}\n"
    '        {%- set date_string = strftime_now("%d %b %Y") %}\n'
    "    {%- else %}\n"
    '        {%- set date_string = "26 Jul 2024" %}\n'
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content']|trim %}\n"
    "    {%- set messages = messages[1:] %}\n"
    "{%- else %}\n"
    '    {%- set system_message = "" %}\n'
    "{%- endif %}\n"
    '{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}\n'
    '{{- "Cutting Knowledge Date: December 2023\\n" }}\n'
    '{{- "Today Date: " + date_string + "\\n\\n" }}\n'
    "{{- system_message }}\n"
    '{{- "<|eot_id|>" }}\n'
    "{%- for message in messages %}\n"
    "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
    "{%- endif %}\n"
)
_TIKTOKEN_LINE = re.compile(rb"[A-Za-z0-9+/]+={0,2} [0-9]+\r?\n?")
_SENTENCEPIECE_SPACE = "\u2581"
_MAX_ID_GAPS = 1024  # unused ids a tokenizer.json may skip (filled with [PADn]); more means a damaged file


@dataclass(frozen=True)
class Vocab:
    """Everything GGUF's `tokenizer.*` keys hold; ids index `tokens`."""

    model: str  # tokenizer.ggml.model: "llama" (SentencePiece) or "gpt2" (byte-level BPE)
    pre: str  # tokenizer.ggml.pre: how text is split before BPE ("default", "llama-bpe")
    tokens: tuple[str, ...]
    token_types: tuple[int, ...]  # gguf.TokenType values
    scores: tuple[float, ...] = ()  # SentencePiece only
    merges: tuple[str, ...] = ()  # "left right", byte-level BPE only, highest priority first
    bos_id: int | None = None
    eos_id: int | None = None
    unk_id: int | None = None
    eot_id: int | None = None  # end of turn (Llama 3 <|eot_id|>)
    eom_id: int | None = None  # end of message (Llama 3.1+ tool calls)
    pad_id: int | None = None
    add_bos: bool = True
    add_eos: bool = False
    add_space_prefix: bool | None = None  # SentencePiece's add_dummy_prefix; None: llama.cpp's default
    chat_template: str | None = None

    @property
    def size(self) -> int:
        """Number of tokens: the rows the token embedding and output matrices must have."""
        return len(self.tokens)


def load_meta_tokenizer(path: Path, *, instruct: bool, llama31: bool = True) -> Vocab:
    """Meta's `tokenizer.model`: SentencePiece (Llama 2) or tiktoken (Llama 3), told apart by content.

    `llama31` (tiktoken only): Llama 3.1+ special token names (with `<|eom_id|>`) and chat template.
    Llama 3.0 ships the same rank file, so only the caller knows (3.0's params.json has no
    `use_scaled_rope`).
    """
    try:
        with path.open("rb") as file:
            head = file.read(256)
    except OSError as exc:
        raise TokenizerFileError(path, f"it cannot be read ({exc.strerror or exc})") from exc
    if not head:
        raise TokenizerFileError(path, "the file is empty")
    started = time.perf_counter()
    if _TIKTOKEN_LINE.match(head):
        return _loaded(path, _load_tiktoken(path, instruct=instruct, llama31=llama31), started)
    if head[0] == 0x0A:  # protobuf field 1 (the pieces), length-delimited: a SentencePiece model
        return _loaded(path, _load_sentencepiece(path, instruct=instruct), started)
    raise TokenizerFileError(path, "it is neither a SentencePiece model nor a tiktoken rank file")


def _loaded(path: Path, vocab: Vocab, started: float) -> Vocab:
    log.info(
        "read tokenizer %s: %s, %d tokens, %d merges, in %.2f s",
        path,
        vocab.model,
        vocab.size,
        len(vocab.merges),
        time.perf_counter() - started,
    )
    return vocab


# -- SentencePiece (Llama 2) ---------------------------------------------------------------------


def _load_sentencepiece(path: Path, *, instruct: bool, chat_template: str | None = None) -> Vocab:
    import sentencepiece  # imported here: only conversions need it

    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.Load(str(path))
    except (OSError, RuntimeError) as exc:
        raise TokenizerFileError(path, f"SentencePiece cannot read it ({exc})") from exc
    size = processor.get_piece_size()
    tokens: list[str] = []
    scores: list[float] = []
    types: list[int] = []
    for i in range(size):
        tokens.append(processor.id_to_piece(i))
        scores.append(float(processor.get_score(i)))
        types.append(_sentencepiece_type(processor, i))
    pieces = processor.encode_as_pieces("x")
    return Vocab(
        model="llama",
        pre="default",
        tokens=tuple(tokens),
        token_types=tuple(types),
        scores=tuple(scores),
        bos_id=_optional_id(processor.bos_id()),
        eos_id=_optional_id(processor.eos_id()),
        unk_id=_optional_id(processor.unk_id()),
        pad_id=_optional_id(processor.pad_id()),
        add_bos=True,
        add_eos=False,
        add_space_prefix=bool(pieces) and pieces[0].startswith(_SENTENCEPIECE_SPACE),
        chat_template=chat_template or (LLAMA2_TEMPLATE if instruct else None),
    )


def _sentencepiece_type(processor: Any, token: int) -> int:
    """SentencePiece's piece type; its enum values are GGUF's (user-defined pieces read as NORMAL)."""
    if processor.is_unknown(token):
        return UNKNOWN
    if processor.is_control(token):
        return CONTROL
    if processor.is_unused(token):
        return UNUSED
    if processor.is_byte(token):
        return BYTE
    return NORMAL


def _optional_id(token: int) -> int | None:
    return token if token >= 0 else None


# -- tiktoken (Llama 3) --------------------------------------------------------------------------


def _load_tiktoken(path: Path, *, instruct: bool, llama31: bool) -> Vocab:
    ranks = read_tiktoken_ranks(path)
    by_rank = sorted(ranks, key=ranks.__getitem__)
    tokens = [bytes_to_token(b) for b in by_rank]
    merges = _recover_merges(ranks, by_rank, tokens)
    n_ranks = len(tokens)
    specials = llama3_special_tokens(llama31=llama31)
    special_ids = {name: n_ranks + i for i, name in enumerate(specials)}
    return Vocab(
        model="gpt2",
        pre="llama-bpe",
        tokens=(*tokens, *specials),
        token_types=(NORMAL,) * n_ranks + (CONTROL,) * len(specials),
        merges=tuple(merges),
        bos_id=special_ids["<|begin_of_text|>"],
        eos_id=special_ids["<|eot_id|>" if instruct else "<|end_of_text|>"],
        eot_id=special_ids["<|eot_id|>"],
        eom_id=special_ids.get("<|eom_id|>"),
        add_bos=True,
        add_eos=False,
        chat_template=(LLAMA31_TEMPLATE if llama31 else LLAMA3_TEMPLATE) if instruct else None,
    )


def llama3_special_tokens(*, llama31: bool = True) -> tuple[str, ...]:
    """The 256 special tokens that follow the ranks; unnamed ones are `<|reserved_special_token_N|>`."""
    named = _LLAMA31_SPECIALS if llama31 else _LLAMA30_SPECIALS
    tokens = []
    reserved = 0
    for offset in range(LLAMA3_SPECIAL_COUNT):
        if offset in named:
            tokens.append(named[offset])
        else:
            tokens.append(f"<|reserved_special_token_{reserved}|>")
            reserved += 1
    return tuple(tokens)


def read_tiktoken_ranks(path: Path) -> dict[bytes, int]:
    """`base64(bytes) rank` lines → {bytes: rank}; ranks must be 0..n-1, each once, and cover every byte."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise TokenizerFileError(path, f"it cannot be read ({exc.strerror or exc})") from exc
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        try:
            encoded, rank_text = line.split()
            token, rank = base64.b64decode(encoded, validate=True), int(rank_text)
        except (ValueError, binascii.Error) as exc:
            raise TokenizerFileError(path, f"line {number} is not `base64 rank`") from exc
        if not token or token in ranks:
            raise TokenizerFileError(path, f"line {number} repeats a token or has an empty one")
        ranks[token] = rank
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise TokenizerFileError(path, "its ranks are not 0, 1, 2, … each once")
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise TokenizerFileError(path, f"{len(missing)} of the 256 single bytes have no rank")
    return ranks


def recover_merges(ranks: Mapping[bytes, int]) -> list[str]:
    """The BPE merges llama.cpp needs, recovered from tiktoken's ranks as transformers does.

    tiktoken merges the adjacent pair whose concatenation has the lowest rank. The equivalent
    merge list has, for every token in rank order, *each* split into two halves that are both
    tokens, ordered by the halves' ranks. Keeping one split per token drops merges that real
    text needs: 678 tokens of Llama 3 have more than one.
    """
    by_rank = sorted(ranks, key=ranks.__getitem__)
    return _recover_merges(ranks, by_rank, [bytes_to_token(token) for token in by_rank])


def _recover_merges(
    ranks: Mapping[bytes, int], by_rank: Sequence[bytes], spelled: Sequence[str]
) -> list[str]:
    """`recover_merges` given the tokens in rank order and their spellings (about 1 s for Llama 3)."""
    merges: list[str] = []
    for token in by_rank:
        n = len(token)
        if n == 2:  # the common case: two single bytes, always both tokens
            merges.append(f"{spelled[ranks[token[:1]]]} {spelled[ranks[token[1:]]]}")
        elif n > 2:
            splits = [
                (ranks[left], ranks[right])
                for left, right in [(token[:cut], token[cut:]) for cut in range(1, n)]
                if left in ranks and right in ranks
            ]
            if len(splits) > 1:
                splits.sort()
            merges.extend([f"{spelled[left]} {spelled[right]}" for left, right in splits])
    return merges


@functools.cache
def byte_to_unicode() -> tuple[str, ...]:
    """GPT-2's printable stand-in for each byte value (byte-level BPE vocabularies are spelled in these)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return tuple(table[b] for b in range(256))


def bytes_to_token(data: bytes) -> str:
    """The GPT-2 byte-to-unicode spelling of `data`."""
    return data.decode("latin-1").translate(_byte_translation())


@functools.cache
def _byte_translation() -> dict[int, str]:
    return dict(enumerate(byte_to_unicode()))


# -- Hugging Face tokenizer.json -----------------------------------------------------------------


def load_hf_tokenizer(model_dir: Path, *, instruct: bool) -> Vocab:
    """`tokenizer.json` (BPE) and `tokenizer_config.json` of a Hugging Face Llama checkpoint.

    A SentencePiece-style `tokenizer.json` (Llama 2's, with byte fallback), or none at all, means
    the `tokenizer.model` beside it is read instead, keeping the config's chat template. Newer
    transformers save the template as `chat_template.jinja` rather than in the config.
    """
    path = model_dir / "tokenizer.json"
    spm = model_dir / "tokenizer.model"
    started = time.perf_counter()
    config_path = model_dir / "tokenizer_config.json"
    config = _read_json(config_path) if config_path.exists() else {}
    chat_template = _config_chat_template(config, config_path) or _read_template(model_dir)
    if not path.exists() and spm.exists():
        vocab = load_meta_tokenizer(spm, instruct=instruct)
        return dataclasses.replace(vocab, chat_template=chat_template or vocab.chat_template)
    data = _read_json(path)
    model = data.get("model")
    if not isinstance(model, dict) or model.get("type", "BPE") != "BPE":
        raise TokenizerFileError(path, "its model is not BPE")
    if model.get("byte_fallback"):
        if not spm.exists():
            raise TokenizerFileError(
                path, "it is SentencePiece-style and there is no tokenizer.model beside it"
            )
        return _loaded(spm, _load_sentencepiece(spm, instruct=instruct, chat_template=chat_template), started)
    if not _is_llama3_pretokenizer(data.get("pre_tokenizer")):
        raise TokenizerFileError(path, "its pre-tokenizer is not Llama 3's")

    raw_vocab = model.get("vocab")
    added = data.get("added_tokens") or []
    if not isinstance(raw_vocab, dict) or not raw_vocab or not isinstance(added, list):
        raise TokenizerFileError(path, "it has no vocabulary")
    ids: dict[str, int] = {}
    types: dict[int, int] = {}
    try:
        for text, token in raw_vocab.items():
            ids[str(text)] = _check_id(token)
        for entry in added:
            token = _check_id(entry["id"])
            ids[str(entry["content"])] = token
            types[token] = CONTROL if entry.get("special") else USER_DEFINED
    except (KeyError, TypeError, ValueError) as exc:
        raise TokenizerFileError(path, f"a token entry is malformed ({exc})") from exc
    size = max(ids.values()) + 1
    if size > len(ids) + _MAX_ID_GAPS:
        raise TokenizerFileError(path, f"its token ids reach {size - 1} with only {len(ids)} tokens")
    names = [f"[PAD{i}]" for i in range(size)]
    token_types = [UNUSED] * size
    for text, token in ids.items():
        names[token] = text
        token_types[token] = types.get(token, NORMAL)
    merges = _hf_merges(path, model.get("merges"), ids)

    def special(key: str, default: str | None) -> int | None:
        text = _config_token(config.get(key)) or default
        return ids.get(text) if text is not None else None

    bos_id = special("bos_token", "<|begin_of_text|>")
    post_processor = json.dumps(data.get("post_processor"))
    bos_text = names[bos_id] if bos_id is not None else None
    add_bos = bool(config.get("add_bos_token", bos_text is not None and bos_text in post_processor))
    vocab = Vocab(
        model="gpt2",
        pre="llama-bpe",
        tokens=tuple(names),
        token_types=tuple(token_types),
        merges=merges,
        bos_id=bos_id,
        eos_id=special("eos_token", "<|eot_id|>" if instruct else "<|end_of_text|>"),
        eot_id=ids.get("<|eot_id|>"),
        eom_id=ids.get("<|eom_id|>"),
        pad_id=special("pad_token", None),
        add_bos=add_bos,
        add_eos=bool(config.get("add_eos_token", False)),
        chat_template=chat_template or (LLAMA3_TEMPLATE if instruct else None),
    )
    return _loaded(path, vocab, started)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TokenizerFileError(path, "the file is missing") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokenizerFileError(path, f"it is not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise TokenizerFileError(path, "it is not a JSON object")
    return data


def _check_id(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 24:
        raise ValueError(f"token id {value!r}")
    return value


def _is_llama3_pretokenizer(spec: object) -> bool:
    """True if the pre-tokenizer splits with Llama 3's regex (the only byte-level BPE we convert)."""
    return LLAMA3_PATTERN in _regexes(spec)


def _regexes(spec: object) -> Iterator[str]:
    """Every `{"Regex": ...}` pattern in a (nested) tokenizers pre-tokenizer spec."""
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key == "Regex" and isinstance(value, str):
                yield value
            else:
                yield from _regexes(value)
    elif isinstance(spec, list):
        for value in spec:
            yield from _regexes(value)


def _hf_merges(path: Path, raw: object, ids: Mapping[str, int]) -> tuple[str, ...]:
    """Merges as "left right", from either spelling tokenizers writes ("a b" or ["a", "b"])."""
    if not isinstance(raw, list):
        raise TokenizerFileError(path, "it has no merges list")
    merges: list[str] = []
    for merge in raw:
        pair = merge.split(" ") if isinstance(merge, str) else merge
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(part, str) and part in ids for part in pair)
        ):
            raise TokenizerFileError(path, f"merge {merge!r} is not two tokens of the vocabulary")
        merges.append(f"{pair[0]} {pair[1]}")
    return tuple(merges)


def _read_template(model_dir: Path) -> str | None:
    path = model_dir / "chat_template.jinja"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenizerFileError(path, f"it cannot be read as text ({exc})") from exc


def _config_token(value: object) -> str | None:
    """A special token in tokenizer_config.json: a string or an AddedToken dict."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _config_chat_template(config: Mapping[str, object], path: Path) -> str | None:
    """The default chat template; older configs keep a list of named templates."""
    template = config.get("chat_template")
    if template is None or isinstance(template, str):
        return template
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        chosen = named.get("default", next(iter(named.values()), None))
        if isinstance(chosen, str):
            return chosen
    raise TokenizerFileError(path, "its chat_template is neither text nor a list of named templates")


# -- GGUF ----------------------------------------------------------------------------------------


def add_vocab(writer: gguf.GGUFWriter, vocab: Vocab) -> None:
    """Write every `tokenizer.*` key llama.cpp reads, chat template included."""
    writer.add_tokenizer_model(vocab.model)
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(list(vocab.tokens))
    writer.add_token_types(list(vocab.token_types))
    if vocab.scores:
        writer.add_token_scores(list(vocab.scores))
    if vocab.merges:
        writer.add_token_merges(list(vocab.merges))
    for add, token in (
        (writer.add_bos_token_id, vocab.bos_id),
        (writer.add_eos_token_id, vocab.eos_id),
        (writer.add_unk_token_id, vocab.unk_id),
        (writer.add_eot_token_id, vocab.eot_id),
        (writer.add_eom_token_id, vocab.eom_id),
        (writer.add_pad_token_id, vocab.pad_id),
    ):
        if token is not None:
            add(token)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(vocab.add_eos)
    if vocab.add_space_prefix is not None:
        writer.add_add_space_prefix(vocab.add_space_prefix)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)
