"""Write tiny Llama checkpoints in Meta's and Hugging Face's layouts, without PyTorch.

`.pth` files are built byte for byte as `torch.save` builds them: a stored (uncompressed) zip
with `archive/data.pkl` (a protocol-2 pickle of an OrderedDict of `_rebuild_tensor_v2` calls on
persistent storage ids `('storage', torch.BFloat16Storage, key, 'cpu', numel)`), one
`archive/data/<key>` entry per storage whose data starts on a 64-byte boundary, and
`archive/version`. Weights are random but exactly representable in bf16, so a reference
forward pass over them (tests/reference_llama.py) sees precisely what the files hold.
"""

from __future__ import annotations

import json
import math
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.convert.checkpoint import ffn_width
from app.convert.vocab import load_hf_tokenizer, load_meta_tokenizer
from tests.support.convert_tokenizers import write_hf_tokenizer, write_spm_tokenizer, write_tiktoken_tokenizer


@dataclass(frozen=True)
class TinyLlama:
    """A checkpoint's true weights (Meta names, float32 holding bf16 values) and hyperparameters."""

    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_dim: int
    vocab_size: int
    norm_eps: float
    rope_theta: float
    rope_scale: float | None  # Llama 3.1+ scaled RoPE factor (8; 32 for 3.2 1B/3B), None: plain RoPE
    weights: dict[str, np.ndarray[Any, Any]] = field(repr=False)

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads


def bf16_bits(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """float32 values that are exact bf16 → their bf16 bit patterns."""
    return (np.ascontiguousarray(values, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)


def random_llama(
    *,
    vocab_size: int,
    dim: int = 256,
    n_layers: int = 2,
    n_heads: int = 4,
    n_kv_heads: int = 4,
    ffn_dim: int = 768,
    norm_eps: float = 1e-5,
    rope_theta: float = 10000.0,
    rope_scale: float | None = None,
    seed: int = 0,
) -> TinyLlama:
    """Random weights scaled so activations stay near 1 (logits are then meaningful to compare)."""
    rng = np.random.default_rng(seed)
    kv_dim = dim // n_heads * n_kv_heads

    def bf16(shape: tuple[int, ...], scale: float, offset: float = 0.0) -> np.ndarray[Any, Any]:
        values = (rng.standard_normal(shape, dtype=np.float32) * scale + offset).astype(np.float32)
        return (bf16_bits(values).astype(np.uint32) << 16).view(np.float32)

    weights = {"tok_embeddings.weight": bf16((vocab_size, dim), 1.0)}
    for i in range(n_layers):
        weights |= {
            f"layers.{i}.attention.wq.weight": bf16((dim, dim), dim**-0.5),
            f"layers.{i}.attention.wk.weight": bf16((kv_dim, dim), dim**-0.5),
            f"layers.{i}.attention.wv.weight": bf16((kv_dim, dim), dim**-0.5),
            f"layers.{i}.attention.wo.weight": bf16((dim, dim), dim**-0.5),
            f"layers.{i}.feed_forward.w1.weight": bf16((ffn_dim, dim), dim**-0.5),
            f"layers.{i}.feed_forward.w2.weight": bf16((dim, ffn_dim), ffn_dim**-0.5),
            f"layers.{i}.feed_forward.w3.weight": bf16((ffn_dim, dim), dim**-0.5),
            f"layers.{i}.attention_norm.weight": bf16((dim,), 0.1, 1.0),
            f"layers.{i}.ffn_norm.weight": bf16((dim,), 0.1, 1.0),
        }
    weights["norm.weight"] = bf16((dim,), 0.1, 1.0)
    weights["output.weight"] = bf16((vocab_size, dim), dim**-0.5)
    return TinyLlama(
        dim, n_layers, n_heads, n_kv_heads, ffn_dim, vocab_size, norm_eps, rope_theta, rope_scale, weights
    )


# -- torch.save's format, by hand ------------------------------------------------------------------


def _pickle_int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)  # BININT


def _pickle_str(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def _pickle_tuple(items: list[bytes]) -> bytes:
    return b"(" + b"".join(items) + b"t"  # MARK ... TUPLE


def _global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def state_dict_pickle(tensors: dict[str, tuple[str, tuple[int, ...], int, int]]) -> bytes:
    """`data.pkl` of `torch.save(OrderedDict)`: name -> (storage key, shape, storage offset, numel)."""
    out = [b"\x80\x02", _global("collections", "OrderedDict"), b")R", b"("]
    for name, (key, shape, offset, numel) in tensors.items():
        stride = [math.prod(shape[i + 1 :]) for i in range(len(shape))]
        pid = _pickle_tuple(
            [
                _pickle_str("storage"),
                _global("torch", "BFloat16Storage"),
                _pickle_str(key),
                _pickle_str("cpu"),
                _pickle_int(numel),
            ]
        )
        args = _pickle_tuple(
            [
                pid + b"Q",  # BINPERSID
                _pickle_int(offset),
                _pickle_tuple([_pickle_int(s) for s in shape]),
                _pickle_tuple([_pickle_int(s) for s in stride]),
                b"\x89",  # NEWFALSE: requires_grad
                _global("collections", "OrderedDict") + b")R",  # backward hooks
            ]
        )
        out += [_pickle_str(name), _global("torch._utils", "_rebuild_tensor_v2"), args, b"R"]
    out += [b"u."]  # SETITEMS, STOP
    return b"".join(out)


def _write_aligned(archive: zipfile.ZipFile, name: str, data: bytes, alignment: int = 64) -> None:
    """A stored entry whose data starts at a multiple of `alignment` (torch pads the extra field so)."""
    assert archive.fp is not None
    header_end = archive.fp.tell() + 30 + len(name.encode())
    padding = (-(header_end + 4)) % alignment
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.extra = struct.pack("<HH", 0x4246, padding) + b"Z" * padding  # "FB" padding record
    archive.writestr(info, data)


def write_pth(
    path: Path, tensors: dict[str, np.ndarray[Any, Any]], *, pickle_bytes: bytes | None = None
) -> Path:
    """A `torch.save` file of bf16 tensors (given as float32 holding bf16 values), one storage each."""
    entries = {name: (str(i), tuple(t.shape), 0, t.size) for i, (name, t) in enumerate(tensors.items())}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        _write_aligned(archive, "archive/data.pkl", pickle_bytes or state_dict_pickle(entries))
        _write_aligned(archive, "archive/byteorder", b"little")
        for name, tensor in tensors.items():
            _write_aligned(archive, f"archive/data/{entries[name][0]}", bf16_bits(tensor).tobytes())
        _write_aligned(archive, "archive/version", b"3\n")
    return path


# -- Meta layouts ----------------------------------------------------------------------------------

_AXIS0 = ("wq", "wk", "wv", "w1", "w3")
_AXIS1 = ("wo", "w2")


def _shard(
    name: str, tensor: np.ndarray[Any, Any], n: int, index: int, *, embed_axis: int
) -> np.ndarray[Any, Any]:
    """Shard `index` of `n` of one tensor, split the way Meta's model-parallel layers split it."""
    if tensor.ndim == 1 or n == 1:
        return tensor
    leaf = name.split(".")[-2]
    axis = embed_axis if leaf == "tok_embeddings" else 0 if leaf in (*_AXIS0, "output") else 1
    return np.split(tensor, n, axis=axis)[index]


def write_meta_llama2(folder: Path, *, shards: int = 2, seed: int = 0) -> TinyLlama:
    """Llama 2 7B's layout, tiny: `tokenizer.model` (SentencePiece) at the top, the model in a subfolder.

    `folder/llama-2-tiny-chat/` gets `params.json` (vocab_size -1) and `consolidated.0N.pth`, the
    embeddings split by columns.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = write_spm_tokenizer(folder / "tokenizer.model")
    vocab = load_meta_tokenizer(tokenizer, instruct=False).size
    model = random_llama(vocab_size=vocab, seed=seed)
    target = folder / "llama-2-tiny-chat"
    target.mkdir()
    params = {"dim": model.dim, "multiple_of": 256, "n_heads": model.n_heads, "n_layers": model.n_layers}
    params |= {"norm_eps": model.norm_eps, "vocab_size": -1}
    assert ffn_width(model.dim, 256, None) == model.ffn_dim
    (target / "params.json").write_text(json.dumps(params))
    for i in range(shards):
        parts = {name: _shard(name, w, shards, i, embed_axis=1) for name, w in model.weights.items()}
        parts["rope.freqs"] = np.zeros(
            model.head_dim // 2, np.float32
        )  # Meta's files carry it; it is dropped
        write_pth(target / f"consolidated.{i:02d}.pth", parts)
    return model


def write_meta_llama3(folder: Path, *, shards: int = 2, seed: int = 1) -> TinyLlama:
    """Llama 3.1 8B's layout, tiny: GQA (2 KV heads for 4), tiktoken `tokenizer.model` beside the shards,
    embeddings split on the vocabulary axis, `use_scaled_rope` (→ `rope_freqs.weight`)."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = load_meta_tokenizer(write_tiktoken_tokenizer(folder / "tokenizer.model"), instruct=True).size
    ffn = ffn_width(256, 256, 1.3)
    model = random_llama(
        vocab_size=vocab, n_kv_heads=2, ffn_dim=ffn, rope_theta=500000.0, rope_scale=8.0, seed=seed
    )
    params = {"dim": model.dim, "n_layers": model.n_layers, "n_heads": model.n_heads, "n_kv_heads": 2}
    params |= {"vocab_size": vocab, "multiple_of": 256, "ffn_dim_multiplier": 1.3, "norm_eps": model.norm_eps}
    params |= {"rope_theta": 500000.0, "use_scaled_rope": True, "rope_scaling_factor": 8.0}  # as 3.1 8B
    (folder / "params.json").write_text(json.dumps(params))
    for i in range(shards):
        parts = {name: _shard(name, w, shards, i, embed_axis=0) for name, w in model.weights.items()}
        write_pth(folder / f"consolidated.{i:02d}.pth", parts)
    return model


# -- Hugging Face ----------------------------------------------------------------------------------

_HF_NAMES = {
    "attention.wq": "self_attn.q_proj",
    "attention.wk": "self_attn.k_proj",
    "attention.wv": "self_attn.v_proj",
    "attention.wo": "self_attn.o_proj",
    "feed_forward.w1": "mlp.gate_proj",
    "feed_forward.w2": "mlp.down_proj",
    "feed_forward.w3": "mlp.up_proj",
    "attention_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}


def hf_permute(weight: np.ndarray[Any, Any], n_heads: int) -> np.ndarray[Any, Any]:
    """What transformers' convert_llama_weights_to_hf does to Q and K (interleaved pairs → two halves)."""
    rows, cols = weight.shape
    return weight.reshape(n_heads, rows // n_heads // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def hf_name(meta_name: str) -> str:
    if meta_name == "tok_embeddings.weight":
        return "model.embed_tokens.weight"
    if meta_name == "norm.weight":
        return "model.norm.weight"
    if meta_name == "output.weight":
        return "lm_head.weight"
    _, layer, rest = meta_name.split(".", 2)
    return f"model.layers.{layer}.{_HF_NAMES[rest.removesuffix('.weight')]}.weight"


def write_safetensors(path: Path, tensors: dict[str, np.ndarray[Any, Any]]) -> Path:
    """bf16 safetensors: u64 header length, JSON header, then the data."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    blobs = []
    for name, tensor in tensors.items():
        blob = bf16_bits(tensor).tobytes()
        header[name] = {
            "dtype": "BF16",
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        offset += len(blob)
        blobs.append(blob)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with path.open("wb") as file:
        file.write(struct.pack("<Q", len(encoded)) + encoded)
        for blob in blobs:
            file.write(blob)
    return path


def write_hf_llama(folder: Path, *, seed: int = 2, files: int = 2, llama32: bool = False) -> TinyLlama:
    """meta-llama/Llama-3-8B-Instruct's layout, tiny: config.json, Q/K permuted as HF does, sharded
    safetensors with `model.safetensors.index.json`, tokenizer.json.

    `llama32`: like Llama-3.2-1B-Instruct instead: one model.safetensors, the output tied to the
    embeddings (no lm_head), RoPE scaled by 32 (`rope_scaling.rope_type: llama3`).
    """
    write_hf_tokenizer(folder)
    vocab = load_hf_tokenizer(folder, instruct=True).size
    model = random_llama(
        vocab_size=vocab,
        n_kv_heads=2,
        ffn_dim=512,
        rope_theta=500000.0,
        rope_scale=32.0 if llama32 else None,
        seed=seed,
    )
    if llama32:
        model.weights["output.weight"] = model.weights["tok_embeddings.weight"]
        files = 1
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": model.dim,
        "intermediate_size": model.ffn_dim,
        "num_hidden_layers": model.n_layers,
        "num_attention_heads": model.n_heads,
        "num_key_value_heads": model.n_kv_heads,
        "vocab_size": vocab,
        "rms_norm_eps": model.norm_eps,
        "rope_theta": model.rope_theta,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": llama32,
        "torch_dtype": "bfloat16",
    }
    if llama32:
        config["rope_scaling"] = {
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        }
    (folder / "config.json").write_text(json.dumps(config))
    hf = {}
    for name, weight in model.weights.items():
        if name.endswith("attention.wq.weight"):
            weight = hf_permute(weight, model.n_heads)
        elif name.endswith("attention.wk.weight"):
            weight = hf_permute(weight, model.n_kv_heads)
        hf[hf_name(name)] = weight
    if llama32:
        del hf["lm_head.weight"]
        write_safetensors(folder / "model.safetensors", hf)
        return model
    names = list(hf)
    weight_map = {}
    for i in range(files):
        file_name = f"model-{i + 1:05d}-of-{files:05d}.safetensors"
        chunk = names[i * len(names) // files : (i + 1) * len(names) // files]
        write_safetensors(folder / file_name, {n: hf[n] for n in chunk})
        weight_map |= dict.fromkeys(chunk, file_name)
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    return model
