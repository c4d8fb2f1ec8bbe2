"""What a GGUF model is, from its header alone: architecture, size, parameter breakdown, shape."""

from __future__ import annotations

import collections
from dataclasses import dataclass
from pathlib import Path

import gguf

from app.core.errors import DamagedGGUFError
from app.gguf.header import GGUFHeader, MetadataValue, TensorInfo, read_header, shard_paths

#: Parameter groups, in display order. Names are GGUF tensor names (`blk.N.attn_q.weight`, ...).
BREAKDOWN_KEYS = (
    "embeddings",
    "attention",
    "attention.q",
    "attention.k",
    "attention.v",
    "attention.output",
    "feed_forward",
    "feed_forward.gate",
    "feed_forward.up",
    "feed_forward.down",
    "norms",
    "output",
    "other",
)
_ATTENTION_PARTS = {
    "attn_q": "attention.q",
    "attn_k": "attention.k",
    "attn_v": "attention.v",
    "attn_output": "attention.output",
}
_FFN_PARTS = {
    "ffn_gate": "feed_forward.gate",
    "ffn_up": "feed_forward.up",
    "ffn_down": "feed_forward.down",
    "ffn_gate_exps": "feed_forward.gate",
    "ffn_up_exps": "feed_forward.up",
    "ffn_down_exps": "feed_forward.down",
}


@dataclass(frozen=True)
class ModelShape:
    """The hyper-parameters that decide memory use, from `{arch}.*` metadata."""

    n_layers: int
    n_embd: int
    n_head: int
    n_head_kv: int  # summed over layers' KV heads / layers when it varies per layer
    head_dim_k: int
    head_dim_v: int
    n_vocab: int
    context_length: int


@dataclass(frozen=True)
class ModelReport:
    paths: list[Path]  # one file, or every shard in order
    name: str | None
    architecture: str
    file_type: str  # "Q4_K_M", "F16", ...
    parameters: int
    breakdown: dict[str, int]
    tensors: list[TensorInfo]
    shape: ModelShape | None  # None for architectures without the usual attention keys
    file_size: int
    weights_bytes: int
    license: str | None
    has_chat_template: bool

    @property
    def context_length(self) -> int | None:
        return self.shape.context_length if self.shape else None


def inspect_model(path: Path) -> ModelReport:
    """Read the header of `path` (and of its other shards, for a split model)."""
    paths = shard_paths(path)
    return report_from_headers(paths, [read_header(p) for p in paths])


def report_from_headers(paths: list[Path], headers: list[GGUFHeader]) -> ModelReport:
    """A report from already-parsed headers (local files, or a remote file's start)."""
    first = headers[0]
    tensors = [t for h in headers for t in h.tensors]
    if not tensors:
        raise DamagedGGUFError(paths[0], "it holds no weights at all (a vocabulary-only file?)")
    architecture = str(first.get("general.architecture", "unknown"))
    return ModelReport(
        paths=paths,
        name=_str_or_none(first.get("general.name")),
        architecture=architecture,
        file_type=_file_type(first, tensors),
        parameters=sum(t.n_elements for t in tensors),
        breakdown=parameter_breakdown(tensors),
        tensors=tensors,
        shape=_shape(first, architecture, tensors),
        file_size=sum(h.file_size for h in headers),
        weights_bytes=sum(t.n_bytes for t in tensors),
        license=_str_or_none(first.get("general.license")),
        has_chat_template="tokenizer.chat_template" in first.metadata,
    )


def parameter_breakdown(tensors: list[TensorInfo]) -> dict[str, int]:
    counts = dict.fromkeys(BREAKDOWN_KEYS, 0)
    for tensor in tensors:
        for key in _categories(tensor.name):
            counts[key] += tensor.n_elements
    return counts


def _categories(name: str) -> tuple[str, ...]:
    parts = name.split(".")  # "token_embd.weight", "blk.0.attn_q.weight", "blk.3.ffn_up_exps.weight"
    base = parts[2] if parts[0] == "blk" and len(parts) > 2 else parts[0]
    if "norm" in base:
        return ("norms",)
    if base in ("token_embd", "position_embd", "token_types"):
        return ("embeddings",)
    if base == "output":
        return ("output",)
    if base in _ATTENTION_PARTS:
        return ("attention", _ATTENTION_PARTS[base])
    if base.startswith("attn_"):
        return ("attention",)
    if base in _FFN_PARTS:
        return ("feed_forward", _FFN_PARTS[base])
    if base.startswith("ffn_"):
        return ("feed_forward",)
    return ("other",)


def _file_type(header: GGUFHeader, tensors: list[TensorInfo]) -> str:
    value = header.get("general.file_type")
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            name = gguf.LlamaFileType(value).name
        except ValueError:
            return f"type {value}"
        return name.removeprefix("MOSTLY_").removeprefix("ALL_")
    # No file type recorded: name it after the type holding most of the weights.
    by_type: collections.Counter[str] = collections.Counter()
    for tensor in tensors:
        by_type[tensor.type_name] += tensor.n_bytes
    return by_type.most_common(1)[0][0] if by_type else "unknown"


def _shape(header: GGUFHeader, arch: str, tensors: list[TensorInfo]) -> ModelShape | None:
    def number(key: str) -> int | None:
        value = header.get(f"{arch}.{key}")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    n_layers, n_embd, n_head = (
        number("block_count"),
        number("embedding_length"),
        number("attention.head_count"),
    )
    if not (n_layers and n_embd and n_head):
        return None
    kv_value: MetadataValue | None = header.get(f"{arch}.attention.head_count_kv")
    if isinstance(kv_value, list) and kv_value:  # per-layer KV heads (some hybrid models)
        heads = [v for v in kv_value if isinstance(v, int)]
        n_head_kv = max(1, round(sum(heads) / len(heads))) if heads else n_head
    elif isinstance(kv_value, int) and kv_value > 0:
        n_head_kv = kv_value
    else:
        n_head_kv = n_head
    head_dim_k = number("attention.key_length") or n_embd // n_head
    head_dim_v = number("attention.value_length") or n_embd // n_head
    vocab = number("vocab_size") or _vocab_size(header, tensors)
    return ModelShape(
        n_layers=n_layers,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim_k=head_dim_k,
        head_dim_v=head_dim_v,
        n_vocab=vocab,
        context_length=number("context_length") or 0,
    )


def _vocab_size(header: GGUFHeader, tensors: list[TensorInfo]) -> int:
    tokens = header.get("tokenizer.ggml.tokens")
    if tokens is not None and hasattr(tokens, "length"):
        return int(tokens.length)
    if isinstance(tokens, list):
        return len(tokens)
    embd = next((t for t in tensors if t.name == "token_embd.weight"), None)
    return embd.shape[-1] if embd else 0


def _str_or_none(value: MetadataValue | None) -> str | None:
    return value if isinstance(value, str) and value else None
