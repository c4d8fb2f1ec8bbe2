"""Write real GGUF files for tests with the `gguf` package."""

from __future__ import annotations

import math
import os
from collections.abc import Set
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np


def copy_gguf_without_keys(source: Path, target: Path, drop: Set[str]) -> None:
    """Copy a GGUF, tensors and all, leaving out the metadata keys in `drop`."""
    reader = gguf.GGUFReader(source)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(target, arch=arch, endianess=reader.endianess)
    for field in reader.fields.values():
        if (
            field.name == gguf.Keys.General.ARCHITECTURE
            or field.name.startswith("GGUF.")
            or field.name in drop
        ):
            continue
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub_type)
    for tensor in reader.tensors:
        writer.add_tensor_info(
            tensor.name, tensor.data.shape, tensor.data.dtype, tensor.data.nbytes, tensor.tensor_type
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(tensor.data, tensor_endianess=reader.endianess)
    writer.close()


@dataclass(frozen=True)
class LlamaShape:
    vocab: int
    dim: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    context: int
    tied_embeddings: bool = False  # no separate output matrix (Llama 3.2 1B and 3B)


LLAMA_SHAPES = {
    "Llama-2-7B": LlamaShape(32000, 4096, 32, 32, 32, 11008, 4096),
    "Llama-2-13B": LlamaShape(32000, 5120, 40, 40, 40, 13824, 4096),
    "Llama-3-8B": LlamaShape(128256, 4096, 32, 32, 8, 14336, 8192),
    "Llama-3-70B": LlamaShape(128256, 8192, 80, 64, 8, 28672, 8192),
    "Llama-3.2-1B": LlamaShape(128256, 2048, 16, 32, 8, 8192, 131072, tied_embeddings=True),
}


def llama_tensor_shapes(shape: LlamaShape) -> dict[str, tuple[int, ...]]:
    """GGUF tensor names and numpy-order shapes (rows, columns) of a Llama model."""
    kv_dim = shape.dim // shape.heads * shape.kv_heads
    tensors: dict[str, tuple[int, ...]] = {"token_embd.weight": (shape.vocab, shape.dim)}
    for i in range(shape.layers):
        tensors |= {
            f"blk.{i}.attn_norm.weight": (shape.dim,),
            f"blk.{i}.attn_q.weight": (shape.dim, shape.dim),
            f"blk.{i}.attn_k.weight": (kv_dim, shape.dim),
            f"blk.{i}.attn_v.weight": (kv_dim, shape.dim),
            f"blk.{i}.attn_output.weight": (shape.dim, shape.dim),
            f"blk.{i}.ffn_norm.weight": (shape.dim,),
            f"blk.{i}.ffn_gate.weight": (shape.ffn, shape.dim),
            f"blk.{i}.ffn_up.weight": (shape.ffn, shape.dim),
            f"blk.{i}.ffn_down.weight": (shape.dim, shape.ffn),
        }
    tensors["output_norm.weight"] = (shape.dim,)
    if not shape.tied_embeddings:
        tensors["output.weight"] = (shape.vocab, shape.dim)
    return tensors


def write_header_only_llama(
    path: Path,
    shape: LlamaShape,
    *,
    name: str = "test",
    extra: dict[str, tuple[int, ...]] | None = None,
    with_vocabulary: bool = False,
) -> Path:
    """A GGUF with real metadata and tensor infos whose F16 data region is a sparse hole (no disk used).

    `with_vocabulary` adds a token list of the model's vocabulary size, which makes the header
    as long as a real one (megabytes for Llama 3).
    """
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_name(name)
    if with_vocabulary:
        writer.add_token_list([f"token-{i:06d}" for i in range(shape.vocab)])
    writer.add_block_count(shape.layers)
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.dim)
    writer.add_feed_forward_length(shape.ffn)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_vocab_size(shape.vocab)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    total = 0
    for tensor_name, numpy_shape in (llama_tensor_shapes(shape) | (extra or {})).items():
        n_bytes = 2 * math.prod(numpy_shape)
        writer.add_tensor_info(
            tensor_name, numpy_shape, np.dtype(np.float16), n_bytes, gguf.GGMLQuantizationType.F16
        )
        total += -(-n_bytes // 32) * 32
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    data_start = -(-path.stat().st_size // 32) * 32
    os.truncate(path, data_start + total)
    return path


def write_small_gguf(path: Path, seed: int = 0) -> Path:
    """A complete little GGUF with every kind of metadata value and real tensor data (for fuzzing);
    another `seed` gives other weights in a file of the same length."""
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_name("fuzz seed")
    writer.add_block_count(2)
    writer.add_context_length(256)
    writer.add_embedding_length(64)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_key_value("test.u8", 7, gguf.GGUFValueType.UINT8)
    writer.add_key_value("test.i16", -3, gguf.GGUFValueType.INT16)
    writer.add_key_value("test.f64", 2.5, gguf.GGUFValueType.FLOAT64)
    writer.add_key_value("test.bool", True, gguf.GGUFValueType.BOOL)
    writer.add_key_value("test.u64", 1 << 40, gguf.GGUFValueType.UINT64)
    writer.add_token_list([f"tok{i}" for i in range(40)])
    writer.add_token_scores([float(i) for i in range(40)])
    writer.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    rng = np.random.default_rng(seed)
    writer.add_tensor("token_embd.weight", rng.standard_normal((40, 64), dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight", rng.standard_normal((64, 64)).astype(np.float16))
    writer.add_tensor("output_norm.weight", np.ones(64, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_header_only_copy(source: Path, target: Path) -> Path:
    """`source`'s header bytes, with the data region left as a sparse hole of the same size."""
    from app.gguf.header import read_header

    header = read_header(source)
    with source.open("rb") as src, target.open("wb") as dst:
        dst.write(src.read(header.data_offset))
    os.truncate(target, header.file_size)
    return target
