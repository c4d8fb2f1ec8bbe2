"""Open an original Llama checkpoint folder lazily: hyperparameters, tokenizer and memory-mapped tensors.

Two layouts are read: Meta's (`params.json`, `consolidated.NN.pth` zips written by `torch.save`,
`tokenizer.model`) and Hugging Face's (`config.json`, `model.safetensors` or shards listed in
`model.safetensors.index.json`, `tokenizer.json`). Nothing is read into memory up front: a tensor
is a view of a memory-mapped file, and its pages are handed back to the kernel once copied out,
so the process never holds more than the piece being converted.
"""

from __future__ import annotations

import json
import logging
import math
import mmap
import re
import struct
import zipfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from app.convert.safe_pickle import TensorRef, load_state_dict
from app.core.errors import CheckpointFileMissingError, UnsupportedCheckpointError

log = logging.getLogger("convert")

#: Our dtype names -> the numpy type their raw bytes are viewed as (bf16 has none: its bits as uint16).
RAW_DTYPES: dict[str, np.dtype[Any]] = {
    "BF16": np.dtype(np.uint16),
    "F16": np.dtype(np.float16),
    "F32": np.dtype(np.float32),
}
_SAFETENSORS_DTYPES = {"BF16": "BF16", "F16": "F16", "F32": "F32"}
_ZIP_ALIGNMENT = 64  # torch.save aligns every tensor entry's data to 64 bytes
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., name length, extra length
_SHARD = re.compile(r"consolidated\.(\d+)\.pth$")


class Layout(Enum):
    META = "Meta (consolidated.NN.pth)"
    HF = "Hugging Face (safetensors)"


@dataclass(frozen=True)
class RopeScaling:
    """Llama 3.1's frequency-dependent RoPE scaling (`use_scaled_rope`, HF `rope_type: llama3`)."""

    factor: float = 8.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_context: int = 8192


@dataclass(frozen=True)
class Hyperparameters:
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int  # -1 in Llama 2's params.json: take it from the embedding rows
    ffn_dim: int
    norm_eps: float
    rope_theta: float
    context_length: int
    rope_scaling: RopeScaling | None = None

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads


class MappedFile:
    """A read-only memory map whose pages can be given back once a piece has been copied out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with path.open("rb") as file:
            self._map = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        self.size = len(self._map)

    def array(self, offset: int, dtype: np.dtype[Any], count: int) -> np.ndarray[Any, Any]:
        if offset + count * dtype.itemsize > self.size:
            raise UnsupportedCheckpointError(
                self.path.parent, f"{self.path.name} is shorter than its index says"
            )
        return np.frombuffer(self._map, dtype=dtype, count=count, offset=offset)

    def release(self, offset: int, length: int) -> None:
        """Drop the pages of [offset, offset+length) from this process (they stay in the page cache)."""
        if not hasattr(mmap, "MADV_DONTNEED") or length <= 0:
            return
        start = offset - offset % mmap.PAGESIZE
        self._map.madvise(mmap.MADV_DONTNEED, start, min(self.size, offset + length) - start)

    def release_all(self) -> None:
        """Drop every page of the file from this process, including those the kernel mapped around a read."""
        self.release(0, self.size)

    def close(self) -> None:
        self._map.close()


@dataclass(frozen=True)
class TensorData:
    """One stored, C-contiguous tensor (or one shard's part of it) inside a mapped file."""

    file: MappedFile
    offset: int  # bytes
    dtype: str  # BF16, F16 or F32
    shape: tuple[int, ...]

    @property
    def row_count(self) -> int:
        return self.shape[0] if self.shape else 1

    @property
    def row_size(self) -> int:
        return math.prod(self.shape[1:])

    def rows(self, start: int, stop: int) -> np.ndarray[Any, Any]:
        """Rows [start, stop) copied out in the raw dtype (bf16 as uint16); their pages are released."""
        raw = RAW_DTYPES[self.dtype]
        row_bytes = self.row_size * raw.itemsize
        view = self.file.array(self.offset + start * row_bytes, raw, (stop - start) * self.row_size)
        out = view.reshape((stop - start, *self.shape[1:])).copy()
        del view
        self.file.release(self.offset + start * row_bytes, (stop - start) * row_bytes)
        return out


class Checkpoint:
    """An opened checkpoint folder. Close it (or use `with`) to unmap its files."""

    def __init__(
        self,
        directory: Path,
        layout: Layout,
        params: Hyperparameters,
        shards: list[dict[str, TensorData]],
        tokenizer: Path,
        files: list[MappedFile],
    ) -> None:
        self.directory = directory
        self.layout = layout
        self.params = params
        #: Meta: one dict per consolidated.NN.pth; HF: one dict of every tensor.
        self.shards = shards
        self.tokenizer = tokenizer
        self._files = files

    def close(self) -> None:
        for file in self._files:
            file.close()
        self._files = []

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def open_checkpoint(directory: Path) -> Checkpoint:
    """Detect the layout of `directory` and open it; says plainly what is missing or unsupported."""
    if not directory.is_dir():
        raise CheckpointFileMissingError(directory, "choose the folder that holds the downloaded checkpoint.")
    if (directory / "params.json").is_file():
        return _open_meta(directory)
    if (directory / "config.json").is_file():
        return _open_hf(directory)
    if (directory / "original" / "params.json").is_file():
        return _open_meta(directory / "original")
    found = ", ".join(sorted(p.name for p in directory.iterdir())[:8]) or "nothing"
    raise UnsupportedCheckpointError(
        directory, f"it has neither params.json nor config.json (found: {found})"
    )


# -- Meta ------------------------------------------------------------------------------------------


def _open_meta(directory: Path) -> Checkpoint:
    shard_paths = sorted(
        (p for p in directory.iterdir() if _SHARD.search(p.name)),
        key=lambda p: int(_SHARD.search(p.name)[1]),  # type: ignore[index]
    )
    if not shard_paths:
        raise CheckpointFileMissingError(
            directory / "consolidated.00.pth", "the weights were not downloaded; download them again."
        )
    expected = [f"consolidated.{i:02d}.pth" for i in range(len(shard_paths))]
    if [p.name for p in shard_paths] != expected:
        raise UnsupportedCheckpointError(directory, f"the shards are not {', '.join(expected)}")
    tokenizer = _find_first(directory, "tokenizer.model")
    raw = _read_json(directory / "params.json")
    files: list[MappedFile] = []
    try:
        shards = [_read_pth(path, files) for path in shard_paths]
        params = _meta_params(directory, raw, shards)
    except BaseException:
        for file in files:
            file.close()
        raise
    return Checkpoint(directory, Layout.META, params, shards, tokenizer, files)


def _read_pth(path: Path, files: list[MappedFile]) -> dict[str, TensorData]:
    """The tensors of one `torch.save` zip, each a view of its (stored, aligned) zip entry."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsupportedCheckpointError(
            path.parent, f"{path.name} is not a torch.save zip ({exc}); old pickled checkpoints are not read"
        ) from exc
    with archive:
        pickles = [info for info in archive.infolist() if info.filename.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise UnsupportedCheckpointError(path.parent, f"{path.name} has no single */data.pkl")
        prefix = pickles[0].filename[: -len("data.pkl")]
        refs = load_state_dict(archive.read(pickles[0]))
        entries = {info.filename: info for info in archive.infolist()}
    mapped = MappedFile(path)
    files.append(mapped)
    tensors = {}
    for name, ref in refs.items():
        tensors[name] = _pth_tensor(path, mapped, entries, prefix, name, ref)
    mapped.release_all()  # reading the entries' local headers mapped pages (and their neighbours) everywhere
    return tensors


def _pth_tensor(
    path: Path,
    mapped: MappedFile,
    entries: dict[str, zipfile.ZipInfo],
    prefix: str,
    name: str,
    ref: TensorRef,
) -> TensorData:
    entry = entries.get(f"{prefix}data/{ref.storage.key}")
    if entry is None:
        raise UnsupportedCheckpointError(path.parent, f"{path.name} lacks the data of {name}")
    if entry.compress_type != zipfile.ZIP_STORED:
        raise UnsupportedCheckpointError(
            path.parent,
            f"{path.name} stores {name} compressed; re-save it with torch.save (it stores, not zips)",
        )
    if ref.dtype not in RAW_DTYPES:
        raise UnsupportedCheckpointError(
            path.parent, f"{name} is {ref.dtype}; only bf16, f16 and f32 are read"
        )
    if not ref.is_contiguous():
        raise UnsupportedCheckpointError(path.parent, f"{name} is stored transposed (not C-contiguous)")
    signature, name_len, extra_len = _LOCAL_HEADER.unpack(
        bytes(mapped.array(entry.header_offset, np.dtype(np.uint8), _LOCAL_HEADER.size))
    )
    if signature != b"PK\x03\x04":
        raise UnsupportedCheckpointError(path.parent, f"{path.name} is damaged (bad zip entry for {name})")
    data_offset = entry.header_offset + _LOCAL_HEADER.size + name_len + extra_len
    if data_offset % _ZIP_ALIGNMENT:
        raise UnsupportedCheckpointError(
            path.parent,
            f"{path.name} was not written by torch.save (tensor data is not {_ZIP_ALIGNMENT}-byte aligned, "
            "so it cannot be memory-mapped)",
        )
    numel = math.prod(ref.shape)
    if ref.offset + numel > ref.storage.numel or ref.storage.numel * ref.storage.itemsize > entry.file_size:
        raise UnsupportedCheckpointError(path.parent, f"{path.name} is damaged ({name} overruns its storage)")
    return TensorData(mapped, data_offset + ref.offset * ref.storage.itemsize, ref.dtype, ref.shape)


def ffn_width(dim: int, multiple_of: int, ffn_dim_multiplier: float | None) -> int:
    """Meta's FeedForward hidden size (14336 for Llama 3 8B)."""
    hidden = int(8 * dim / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(ffn_dim_multiplier * hidden)
    return multiple_of * math.ceil(hidden / multiple_of)


def meta_rope_scaling(params: dict[str, Any], dim: int) -> RopeScaling | None:
    """The RoPE scaling a Meta params.json asks for with `use_scaled_rope` (Llama 3.1 and later).

    The file names no factor: it is 8 for Llama 3.1/3.3 but 32 for Llama 3.2 1B and 3B (dim 2048
    and 3072), as their Hugging Face config.json says. A file that names it is believed.
    """
    if not params.get("use_scaled_rope"):
        return None
    default_factor = 32.0 if dim <= 3072 else 8.0
    return RopeScaling(
        factor=float(params.get("rope_scaling_factor") or default_factor),
        high_freq_factor=float(params.get("rope_high_freq_factor") or 4.0),
    )


def _meta_params(
    directory: Path, raw: dict[str, Any], shards: list[dict[str, TensorData]]
) -> Hyperparameters:
    try:
        dim, n_layers, n_heads = int(raw["dim"]), int(raw["n_layers"]), int(raw["n_heads"])
        n_kv_heads = int(raw.get("n_kv_heads") or n_heads)
        ffn = ffn_width(dim, int(raw["multiple_of"]), raw.get("ffn_dim_multiplier"))
        norm_eps = float(raw["norm_eps"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UnsupportedCheckpointError(directory, f"params.json lacks or garbles {exc}") from exc
    if "moe_args" in raw or "vision_chunk_size" in raw:
        raise UnsupportedCheckpointError(
            directory, "mixture-of-experts and vision models (Llama 4, 3.2 Vision)"
        )
    vocab = int(raw.get("vocab_size", -1))
    embeddings = shards[0].get("tok_embeddings.weight")
    if embeddings is None:
        raise UnsupportedCheckpointError(directory, "consolidated.00.pth has no tok_embeddings.weight")
    if vocab <= 0:  # Llama 2 leaves it to the embedding rows (split on the columns there)
        vocab = embeddings.shape[0]
    rope_theta = float(raw.get("rope_theta", 10000.0))
    scaling = meta_rope_scaling(raw, dim)
    if scaling is not None:
        context = 131072  # Llama 3.1 and later
    elif rope_theta >= 500000:
        context = 8192  # Llama 3
    elif norm_eps < 5e-6:
        context = 2048  # Llama 1 (norm_eps 1e-6)
    else:
        context = 4096  # Llama 2
    w1 = sum(
        shard["layers.0.feed_forward.w1.weight"].shape[0]
        for shard in shards
        if "layers.0.feed_forward.w1.weight" in shard
    )
    if w1 and w1 != ffn:
        raise UnsupportedCheckpointError(directory, f"the FFN width is {w1}, params.json implies {ffn}")
    return Hyperparameters(
        dim, n_layers, n_heads, n_kv_heads, vocab, ffn, norm_eps, rope_theta, context, scaling
    )


# -- Hugging Face ---------------------------------------------------------------------------------


def _open_hf(directory: Path) -> Checkpoint:
    config = _read_json(directory / "config.json")
    if config.get("model_type") != "llama" and "LlamaForCausalLM" not in config.get("architectures", []):
        raise UnsupportedCheckpointError(
            directory, f"config.json describes a {config.get('model_type', 'unknown')!r} model, not Llama"
        )
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _read_json(index).get("weight_map", {})
        names = sorted(set(weight_map.values()))
    elif (directory / "model.safetensors").is_file():
        names = ["model.safetensors"]
    elif any(directory.glob("pytorch_model*.bin")):
        raise UnsupportedCheckpointError(
            directory, "it has only pytorch_model*.bin; download the safetensors files"
        )
    else:
        raise CheckpointFileMissingError(directory / "model.safetensors", "the weights were not downloaded.")
    tokenizer = directory / "tokenizer.json"
    if not tokenizer.is_file():
        raise CheckpointFileMissingError(tokenizer, "download tokenizer.json with the weights.")
    files: list[MappedFile] = []
    tensors: dict[str, TensorData] = {}
    try:
        for name in names:
            path = directory / name
            if not path.is_file():
                raise CheckpointFileMissingError(
                    path, "a weights shard was not downloaded; download it again."
                )
            mapped = MappedFile(path)
            files.append(mapped)
            tensors |= _read_safetensors(mapped)
        params = _hf_params(directory, config)
    except BaseException:
        for file in files:
            file.close()
        raise
    return Checkpoint(directory, Layout.HF, params, [tensors], tokenizer, files)


def _read_safetensors(mapped: MappedFile) -> dict[str, TensorData]:
    """Parse a safetensors header ourselves: u64 length, JSON {name: {dtype, shape, data_offsets}}."""
    path = mapped.path
    if mapped.size < 8:
        raise UnsupportedCheckpointError(path.parent, f"{path.name} is empty or truncated")
    (length,) = struct.unpack("<Q", bytes(mapped.array(0, np.dtype(np.uint8), 8)))
    if length > min(mapped.size - 8, 100 << 20):
        raise UnsupportedCheckpointError(path.parent, f"{path.name} has an impossible header length")
    try:
        header = json.loads(bytes(mapped.array(8, np.dtype(np.uint8), length)))
    except ValueError as exc:
        raise UnsupportedCheckpointError(path.parent, f"{path.name} has a damaged header ({exc})") from exc
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(entry.get("dtype"))
        if dtype is None:
            raise UnsupportedCheckpointError(
                path.parent, f"{name} is {entry.get('dtype')}; only BF16/F16/F32 are read"
            )
        shape = tuple(int(s) for s in entry["shape"])
        begin, end = (int(x) for x in entry["data_offsets"])
        if end - begin != math.prod(shape) * RAW_DTYPES[dtype].itemsize or 8 + length + end > mapped.size:
            raise UnsupportedCheckpointError(
                path.parent, f"{path.name} is damaged ({name} has wrong offsets)"
            )
        tensors[name] = TensorData(mapped, 8 + length + begin, dtype, shape)
    mapped.release_all()
    return tensors


def _hf_params(directory: Path, config: dict[str, Any]) -> Hyperparameters:
    try:
        dim, n_heads = int(config["hidden_size"]), int(config["num_attention_heads"])
        head_dim = int(config.get("head_dim") or dim // n_heads)
        if head_dim * n_heads != dim:
            raise UnsupportedCheckpointError(directory, "head_dim × heads differs from the hidden size")
        scaling = None
        rope = config.get("rope_scaling") or {}
        if rope.get("rope_type", rope.get("type")) == "llama3":
            scaling = RopeScaling(
                float(rope["factor"]),
                float(rope["low_freq_factor"]),
                float(rope["high_freq_factor"]),
                int(rope["original_max_position_embeddings"]),
            )
        elif rope:
            raise UnsupportedCheckpointError(
                directory, f"RoPE scaling {rope.get('rope_type', rope.get('type'))!r}"
            )
        return Hyperparameters(
            dim=dim,
            n_layers=int(config["num_hidden_layers"]),
            n_heads=n_heads,
            n_kv_heads=int(config.get("num_key_value_heads") or n_heads),
            vocab_size=int(config["vocab_size"]),
            ffn_dim=int(config["intermediate_size"]),
            norm_eps=float(config.get("rms_norm_eps", 1e-5)),
            rope_theta=float(config.get("rope_theta", 10000.0)),
            context_length=int(config.get("max_position_embeddings", 4096)),
            rope_scaling=scaling,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UnsupportedCheckpointError(directory, f"config.json lacks or garbles {exc}") from exc


# -- helpers ---------------------------------------------------------------------------------------


def _find_first(directory: Path, name: str) -> Path:
    """`name` in the model folder, else in its parent (Llama 2 keeps tokenizer.model at the top)."""
    for folder in (directory, directory.parent):
        if (folder / name).is_file():
            return folder / name
    raise CheckpointFileMissingError(directory / name, f"download {name} with the weights.")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UnsupportedCheckpointError(path.parent, f"{path.name} cannot be read ({exc})") from exc
    if not isinstance(value, dict):
        raise UnsupportedCheckpointError(path.parent, f"{path.name} is not a JSON object")
    return value
