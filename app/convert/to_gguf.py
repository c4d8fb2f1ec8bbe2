"""Write an opened checkpoint as a GGUF, streaming: peak memory is one slice of one tensor.

The header, metadata and every tensor's info go out first; then each tensor's data is built a
block of rows at a time (merged across Meta's shards, Q/K un-permuted for Hugging Face, cast to
the output type) and appended, so neither the model nor even one whole tensor is ever in memory.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from app.convert.checkpoint import Checkpoint, Hyperparameters, Layout, TensorData
from app.core.errors import OperationCancelledError, UnsupportedCheckpointError

log = logging.getLogger("convert")

#: Output types the GGUF writer produces itself (quantized types are made from these by llama.cpp).
FLOAT_TYPES: dict[str, tuple[gguf.GGMLQuantizationType, int]] = {
    "F32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
    "F16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
    "BF16": (gguf.GGMLQuantizationType.BF16, gguf.LlamaFileType.MOSTLY_BF16),
}
_ITEMSIZE = {"F32": 4, "F16": 2, "BF16": 2}
_CHUNK_ELEMENTS = 4 << 20  # rows per write: about 16 MB of float32

_META_LAYER = {
    "attention.wq.weight": ("attn_q", 0),
    "attention.wk.weight": ("attn_k", 0),
    "attention.wv.weight": ("attn_v", 0),
    "attention.wo.weight": ("attn_output", 1),
    "feed_forward.w1.weight": ("ffn_gate", 0),
    "feed_forward.w2.weight": ("ffn_down", 1),
    "feed_forward.w3.weight": ("ffn_up", 0),
    "attention_norm.weight": ("attn_norm", None),
    "ffn_norm.weight": ("ffn_norm", None),
}
_HF_LAYER = {
    "self_attn.q_proj.weight": "attn_q",
    "self_attn.k_proj.weight": "attn_k",
    "self_attn.v_proj.weight": "attn_v",
    "self_attn.o_proj.weight": "attn_output",
    "mlp.gate_proj.weight": "ffn_gate",
    "mlp.down_proj.weight": "ffn_down",
    "mlp.up_proj.weight": "ffn_up",
    "input_layernorm.weight": "attn_norm",
    "post_attention_layernorm.weight": "ffn_norm",
}


@dataclass(frozen=True)
class PlannedTensor:
    """One GGUF tensor and how to produce its rows from the checkpoint."""

    name: str
    shape: tuple[int, ...]  # numpy order (rows, columns)
    parts: tuple[TensorData, ...]  # one per shard, or a single one
    axis: int | None  # the axis the parts join on; None: the parts are copies, take the first
    unpermute_heads: int = 0  # HF Q/K: un-permute rows in groups of heads (the number of heads)
    constant: np.ndarray[Any, Any] | None = None  # computed here (rope_freqs), not read

    @property
    def source_bytes(self) -> int:
        if self.constant is not None:
            return int(self.constant.nbytes)
        return sum(
            math.prod(p.shape) * _ITEMSIZE[p.dtype]
            for p in (self.parts if self.axis is not None else self.parts[:1])
        )

    def out_type(self, requested: str) -> str:
        return requested if len(self.shape) == 2 else "F32"  # norms and rope factors stay F32

    def row_blocks(self) -> list[tuple[int, int]]:
        rows = self.shape[0] if len(self.shape) == 2 else 1
        cols = self.shape[1] if len(self.shape) == 2 else math.prod(self.shape)
        align = self.shape[0] // self.unpermute_heads if self.unpermute_heads else 1
        step = max(align, _CHUNK_ELEMENTS // max(cols, 1) // align * align)
        return [(start, min(rows, start + step)) for start in range(0, rows, step)]

    def rows(self, start: int, stop: int) -> tuple[np.ndarray[Any, Any], str]:
        """Rows [start, stop) in the source's raw dtype, and that dtype's name."""
        if self.constant is not None:
            return self.constant, "F32"
        first = self.parts[0]
        if len(self.shape) == 1:
            return first.rows(0, first.row_count).reshape(-1), first.dtype
        if self.axis is None or len(self.parts) == 1:
            block = first.rows(start, stop)
        elif self.axis == 1:
            block = np.concatenate([p.rows(start, stop) for p in self.parts], axis=1)
        else:
            pieces, offset = [], 0
            for part in self.parts:
                lo, hi = max(start, offset), min(stop, offset + part.row_count)
                if lo < hi:
                    pieces.append(part.rows(lo - offset, hi - offset))
                offset += part.row_count
            block = pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=0)
        if self.unpermute_heads:
            head_dim = self.shape[0] // self.unpermute_heads
            cols = block.shape[1]
            block = block.reshape(-1, 2, head_dim // 2, cols).swapaxes(1, 2).reshape(-1, cols)
        return block, first.dtype


def plan_tensors(checkpoint: Checkpoint) -> list[PlannedTensor]:
    """The GGUF tensors of `checkpoint`, in writing order, checked against the hyperparameters."""
    planned = _plan_meta(checkpoint) if checkpoint.layout is Layout.META else _plan_hf(checkpoint)
    scaling = rope_factors(checkpoint.params)
    if scaling is not None:
        planned.insert(1, PlannedTensor("rope_freqs.weight", scaling.shape, (), None, constant=scaling))
    _check_shapes(checkpoint, planned)
    return planned


def _plan_meta(checkpoint: Checkpoint) -> list[PlannedTensor]:
    shards = checkpoint.shards
    params = checkpoint.params

    def merged(source: str, target: str, axis: int | None) -> PlannedTensor:
        try:
            parts = tuple(shard[source] for shard in shards)
        except KeyError:
            raise UnsupportedCheckpointError(checkpoint.directory, f"a shard lacks {source}") from None
        if len({p.dtype for p in parts}) > 1:
            raise UnsupportedCheckpointError(
                checkpoint.directory, f"the shards store {source} in different types"
            )
        shape = list(parts[0].shape)
        if axis is not None and len(parts) > 1:
            shape[axis] = sum(p.shape[axis] for p in parts)
        return PlannedTensor(target, tuple(shape), parts, axis)

    embeddings = shards[0]["tok_embeddings.weight"]
    # Llama 2 splits the embeddings by columns, Llama 3 by vocabulary rows: the shapes tell which.
    embed_axis = 0 if len(shards) > 1 and embeddings.shape[1] == params.dim else 1
    planned = [merged("tok_embeddings.weight", "token_embd.weight", embed_axis)]
    for i in range(params.n_layers):
        for suffix, (target, axis) in _META_LAYER.items():
            planned.append(merged(f"layers.{i}.{suffix}", f"blk.{i}.{target}.weight", axis))
    planned.append(merged("norm.weight", "output_norm.weight", None))
    if "output.weight" in shards[0]:  # Llama 3.2 1B/3B may tie the output to the embeddings
        planned.append(merged("output.weight", "output.weight", 0))
    known = {"tok_embeddings.weight", "norm.weight", "output.weight", "rope.freqs"}
    known |= {f"layers.{i}.{s}" for i in range(params.n_layers) for s in _META_LAYER}
    _refuse_unknown(checkpoint, set(shards[0]) - known)
    return planned


def _plan_hf(checkpoint: Checkpoint) -> list[PlannedTensor]:
    tensors = checkpoint.shards[0]
    params = checkpoint.params

    def single(source: str, target: str, heads: int = 0) -> PlannedTensor:
        if source not in tensors:
            raise UnsupportedCheckpointError(checkpoint.directory, f"the safetensors lack {source}")
        return PlannedTensor(target, tensors[source].shape, (tensors[source],), None, unpermute_heads=heads)

    planned = [single("model.embed_tokens.weight", "token_embd.weight")]
    for i in range(params.n_layers):
        for suffix, target in _HF_LAYER.items():
            heads = {"attn_q": params.n_heads, "attn_k": params.n_kv_heads}.get(target, 0)
            planned.append(single(f"model.layers.{i}.{suffix}", f"blk.{i}.{target}.weight", heads))
    planned.append(single("model.norm.weight", "output_norm.weight"))
    if "lm_head.weight" in tensors:  # absent when tie_word_embeddings
        planned.append(single("lm_head.weight", "output.weight"))
    known = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
    known |= {f"model.layers.{i}.{s}" for i in range(params.n_layers) for s in _HF_LAYER}
    unknown = {name for name in set(tensors) - known if not name.endswith("rotary_emb.inv_freq")}
    _refuse_unknown(checkpoint, unknown)
    return planned


def _refuse_unknown(checkpoint: Checkpoint, unknown: set[str]) -> None:
    if unknown:
        sample = ", ".join(sorted(unknown)[:3])
        raise UnsupportedCheckpointError(
            checkpoint.directory, f"it has tensors a plain Llama does not ({sample}); biases or adapters?"
        )


def _check_shapes(checkpoint: Checkpoint, planned: list[PlannedTensor]) -> None:
    p = checkpoint.params
    kv = p.head_dim * p.n_kv_heads
    expected = {"token_embd": (p.vocab_size, p.dim), "output": (p.vocab_size, p.dim), "output_norm": (p.dim,)}
    expected |= {
        "attn_q": (p.dim, p.dim),
        "attn_k": (kv, p.dim),
        "attn_v": (kv, p.dim),
        "attn_output": (p.dim, p.dim),
        "ffn_gate": (p.ffn_dim, p.dim),
        "ffn_up": (p.ffn_dim, p.dim),
        "ffn_down": (p.dim, p.ffn_dim),
        "attn_norm": (p.dim,),
        "ffn_norm": (p.dim,),
    }
    for tensor in planned:
        kind = tensor.name.removesuffix(".weight").split(".")[-1]
        if kind in expected and tensor.shape != expected[kind]:
            raise UnsupportedCheckpointError(
                checkpoint.directory,
                f"{tensor.name} is {tensor.shape}, the hyperparameters say {expected[kind]}",
            )


def rope_factors(params: Hyperparameters) -> np.ndarray[Any, Any] | None:
    """Llama 3.1's `rope_freqs.weight`: each RoPE frequency's divisor, as llama.cpp's converter makes it."""
    scaling = params.rope_scaling
    if scaling is None:
        return None
    freqs = 1.0 / (
        params.rope_theta ** (np.arange(0, params.head_dim, 2, dtype=np.float64) / params.head_dim)
    )
    low_wavelen = scaling.original_context / scaling.low_freq_factor
    high_wavelen = scaling.original_context / scaling.high_freq_factor
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(scaling.factor)
        else:
            smooth = (scaling.original_context / wavelen - scaling.low_freq_factor) / (
                scaling.high_freq_factor - scaling.low_freq_factor
            )
            factors.append(1 / ((1 - smooth) / scaling.factor + smooth))
    return np.array(factors, dtype=np.float32)


def cast(block: np.ndarray[Any, Any], source: str, target: str) -> np.ndarray[Any, Any]:
    """Raw `source` values (bf16 as uint16 bits) as `target` (bf16 out rounded to nearest even)."""
    if source == target:
        return block
    if source == "BF16":
        wide = block.astype(np.uint32)
        wide <<= 16  # in place: one temporary fewer
        as_f32 = wide.view(np.float32)
    else:
        as_f32 = block.astype(np.float32)
    if target == "F32":
        return as_f32
    if target == "F16":
        return as_f32.astype(np.float16)
    bits = as_f32.view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def write_gguf(
    checkpoint: Checkpoint,
    planned: list[PlannedTensor],
    add_vocab: Callable[[gguf.GGUFWriter], None],
    out_path: Path,
    out_type: str,
    *,
    name: str,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> None:
    """Stream `planned` into a GGUF at `out_path` as `out_type` (F32, F16 or BF16); norms stay F32.

    `progress(done, total)` counts source bytes; `cancel` is checked between row blocks and
    raises `OperationCancelledError` (the caller removes the partial file).
    """
    params = checkpoint.params
    writer = gguf.GGUFWriter(out_path, arch="llama")
    try:
        writer.add_name(name)
        writer.add_context_length(params.context_length)
        writer.add_embedding_length(params.dim)
        writer.add_block_count(params.n_layers)
        writer.add_feed_forward_length(params.ffn_dim)
        writer.add_rope_dimension_count(params.head_dim)
        writer.add_head_count(params.n_heads)
        writer.add_head_count_kv(params.n_kv_heads)
        writer.add_layer_norm_rms_eps(params.norm_eps)
        writer.add_rope_freq_base(params.rope_theta)
        writer.add_vocab_size(params.vocab_size)
        writer.add_file_type(FLOAT_TYPES[out_type][1])
        add_vocab(writer)
        for tensor in planned:
            kind = tensor.out_type(out_type)
            writer.add_tensor_info(
                tensor.name,
                tensor.shape,
                np.dtype(np.float32),
                math.prod(tensor.shape) * _ITEMSIZE[kind],
                raw_dtype=FLOAT_TYPES[kind][0],
            )
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        assert writer.fout is not None
        fout = writer.fout[0]
        total = sum(t.source_bytes for t in planned)
        done = 0
        for tensor in planned:
            kind = tensor.out_type(out_type)
            writer.write_padding(fout, fout.tell())
            written = 0
            for start, stop in tensor.row_blocks():
                if cancel is not None and cancel.is_set():
                    raise OperationCancelledError("the conversion")
                block, source = tensor.rows(start, stop)
                out = np.ascontiguousarray(cast(block, source, kind))
                out.tofile(fout)
                written += out.nbytes
                done += block.nbytes
                if progress is not None:
                    progress(done, total)
            writer.write_padding(fout, written)
            for part in tensor.parts:  # pages the kernel faulted in around our reads would otherwise stay
                part.file.release_all()
        log.info("wrote %s (%d tensors, %s)", out_path, len(planned), out_type)
    finally:
        writer.close()
