"""Read a GGUF file's header (metadata and tensor infos) without touching its tensor data.

Inspecting a 40 GB model reads a few megabytes. The parser trusts nothing: every
length and count is checked against the bytes the file really has and against sane
limits before anything is read or allocated, so a damaged or hostile file gives a
`DamagedGGUFError` naming the file and the problem, never a crash, hang or huge
allocation. It is bounded in time as well: items it walks one by one (strings, nested
arrays, entries, tensors) count against a budget, and a run of them must be backed by
bytes the file really stores (a sparse file's holes are not a header).
"""

from __future__ import annotations

import mmap
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gguf

from app.core.errors import DamagedGGUFError, ModelFileNotFoundError, NotAGGUFError

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)

MAX_KV_COUNT = 65_536
MAX_TENSOR_COUNT = 1 << 20
MAX_ARRAY_LENGTH = 1 << 26  # the largest real vocabularies and merge lists are well under a million
MAX_STRING_BYTES = 1 << 24  # chat templates are kilobytes; nothing legitimate comes near 16 MiB
MAX_NESTING = 3
MAX_DIMS = 4  # GGML_MAX_DIMS
KEPT_ARRAY_LENGTH = 512  # longer arrays (vocabularies, merges) are summarised, not kept
#: Items the parser walks one at a time, over the whole header. Llama 3's vocabulary and merges are
#: ~410k, Gemma's 262k-token vocabulary about as many; this bounds a hostile header to seconds.
MAX_HEADER_STEPS = 1 << 22

SHARD_NAME = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$")

# GGUF metadata value types (gguf.GGUFValueType), with struct formats for the fixed-size ones.
_SCALAR_FORMATS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
_TYPE_NAMES = {t.value: t.name.lower() for t in gguf.GGUFValueType}


@dataclass(frozen=True)
class ArraySummary:
    """A metadata array too long to keep (a vocabulary, say): its element type and length."""

    item_type: str
    length: int


MetadataValue = int | float | bool | str | list["MetadataValue"] | ArraySummary


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # GGUF order: the fastest-varying dimension first, as llama.cpp prints it
    type_name: str  # "F16", "Q4_K", ...
    offset: int  # from the start of the data section
    n_bytes: int

    @property
    def n_elements(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count


@dataclass(frozen=True)
class GGUFHeader:
    path: Path
    version: int
    metadata: dict[str, MetadataValue]
    tensors: list[TensorInfo]
    data_offset: int
    file_size: int

    def get(self, key: str, default: MetadataValue | None = None) -> MetadataValue | None:
        return self.metadata.get(key, default)


def read_header(path: Path) -> GGUFHeader:
    """Parse `path`'s header. Raises ModelFileNotFoundError, NotAGGUFError or DamagedGGUFError."""
    if not path.exists():
        raise ModelFileNotFoundError(path)
    if path.is_dir():
        raise NotAGGUFError(path, "it is a folder")
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 8:
                raise NotAGGUFError(path, f"the file is only {size} bytes long")
            stored = _stored_bytes(os.fstat(f.fileno()))
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
                return _Parser(path, view, size, stored).parse()
    except OSError as exc:
        raise NotAGGUFError(path, f"it cannot be read: {exc.strerror or exc}") from exc


def _stored_bytes(st: os.stat_result) -> int:
    """Bytes the file really stores: less than its size when it is sparse (where the OS says)."""
    blocks = getattr(st, "st_blocks", None)
    if blocks is None:
        return st.st_size
    return min(st.st_size, blocks * 512 + 65_536)  # slack for file systems that report lazily


def shard_paths(first: Path) -> list[Path]:
    """All files of a split model (`x-00001-of-00003.gguf`), or just `first` for a single file.

    Raises DamagedGGUFError naming the missing shards when some are not beside the first.
    """
    paths = split_model_paths(first)
    count = len(paths)
    if not first.is_file():
        raise ModelFileNotFoundError(first)
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise DamagedGGUFError(
            first,
            f"this split model is missing {len(missing)} of its {count} files: "
            + ", ".join(missing[:5])
            + ("…" if len(missing) > 5 else ""),
        )
    return paths


def split_model_paths(first: Path) -> list[Path]:
    """Where the parts of a split model named like `first` are (whether or not they exist)."""
    match = SHARD_NAME.match(first.name)
    if match is None:
        return [first]
    count = int(match["count"])
    return [first.with_name(f"{match['stem']}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]


class NeedMoreBytes(Exception):
    """The header goes on past the bytes fetched so far (only from `read_header_prefix`)."""

    def __init__(self, needed: int) -> None:
        super().__init__(f"the header needs at least {needed} bytes")
        self.needed = needed


def read_header_prefix(name: Path, prefix: bytes, file_size: int) -> GGUFHeader:
    """Parse a header from the first bytes of a file of `file_size` bytes (a remote file's start).

    Raises NeedMoreBytes when the header is longer than `prefix`; fetch more and call again.
    """
    if len(prefix) >= 4 and prefix[:4] != GGUF_MAGIC:
        raise NotAGGUFError(name, "it does not start with the GGUF signature")
    return _Parser(name, prefix, file_size).parse()


class _Parser:
    def __init__(self, path: Path, view: mmap.mmap | bytes, size: int, stored: int | None = None) -> None:
        self._path = path
        self._view = view
        self._size = size  # of the whole file; `view` may hold only its start
        self._available = len(view)
        self._stored = size if stored is None else stored
        self._pos = 0
        self.steps = 0

    def _fail(self, problem: str) -> DamagedGGUFError:
        return DamagedGGUFError(self._path, problem)

    def _walk(self, count: int, min_bytes: int, what: str) -> range:
        """The indices of `count` items of at least `min_bytes` each, walked one by one: refused when
        they would pass the step budget or lie beyond the bytes the file stores."""
        self.steps += count
        if self.steps > MAX_HEADER_STEPS:
            raise self._fail(
                f"{what} brings the header to {self.steps:,} items, more than the {MAX_HEADER_STEPS:,} "
                "any real model has"
            )
        if self._pos + count * min_bytes > self._stored:
            raise self._fail(
                f"{what} declares {count:,} items, at least {count * min_bytes:,} bytes, but the file "
                f"stores only {self._stored:,} bytes of data (a sparse or damaged file)"
            )
        return range(count)

    def _need(self, n: int, what: str) -> None:
        if n >= 0 and self._pos + n <= self._size and self._pos + n > self._available:
            raise NeedMoreBytes(self._pos + n)
        if n < 0 or self._pos + n > self._size:
            raise self._fail(
                f"the header ends early: {what} at byte {self._pos:,} needs {n:,} bytes, "
                f"but the file has {self._size:,} (is it truncated?)"
            )

    def _scalar(self, fmt: str, what: str) -> int | float | bool:
        n = struct.calcsize(fmt)
        self._need(n, what)
        (value,) = struct.unpack_from(fmt, self._view, self._pos)
        self._pos += n
        return value

    def _u32(self, what: str) -> int:
        return int(self._scalar("<I", what))

    def _u64(self, what: str) -> int:
        return int(self._scalar("<Q", what))

    def _string(self, what: str) -> str:
        length = self._u64(f"the length of {what}")
        if length > MAX_STRING_BYTES:
            raise self._fail(f"{what} claims to be {length:,} bytes long, which no real model has")
        self._need(length, what)
        raw = self._view[self._pos : self._pos + length]
        self._pos += length
        return raw.decode("utf-8", "replace")

    def _skip_strings(self, count: int, what: str) -> None:
        for _ in self._walk(count, 8, what):
            length = self._u64(f"the length of a string in {what}")
            if length > MAX_STRING_BYTES:
                raise self._fail(f"a string in {what} claims to be {length:,} bytes long")
            self._need(length, what)
            self._pos += length

    def _value(self, value_type: int, what: str, depth: int = 0) -> MetadataValue:
        fmt = _SCALAR_FORMATS.get(value_type)
        if fmt is not None:
            return self._scalar(fmt, what)
        if value_type == _STRING:
            return self._string(what)
        if value_type == _ARRAY:
            return self._array(what, depth)
        raise self._fail(f"{what} has unknown value type {value_type}")

    def _array(self, what: str, depth: int) -> MetadataValue:
        if depth >= MAX_NESTING:
            raise self._fail(f"{what} nests arrays more than {MAX_NESTING} deep")
        item_type = self._u32(f"the element type of {what}")
        length = self._u64(f"the length of {what}")
        if length > MAX_ARRAY_LENGTH:
            raise self._fail(f"{what} claims {length:,} elements, which no real model has")
        fmt = _SCALAR_FORMATS.get(item_type)
        if fmt is not None:
            item_size = struct.calcsize(fmt)
            self._need(length * item_size, what)
            if length > KEPT_ARRAY_LENGTH:
                self._pos += length * item_size
                return ArraySummary(_TYPE_NAMES[item_type], length)
            values = [
                v for (v,) in struct.iter_unpack(fmt, self._view[self._pos : self._pos + length * item_size])
            ]
            self._pos += length * item_size
            return values
        if item_type == _STRING:
            self._need(length * 8, what)  # each string has at least its 8-byte length
            if length > KEPT_ARRAY_LENGTH:
                self._skip_strings(length, what)
                return ArraySummary("string", length)
            return [self._string(f"element {i} of {what}") for i in self._walk(length, 8, what)]
        if item_type == _ARRAY:
            self._need(length * 12, what)  # each nested array has at least its type and length
            items = []
            for i in self._walk(length, 12, what):
                item = self._value(_ARRAY, f"element {i} of {what}", depth + 1)
                if length <= KEPT_ARRAY_LENGTH:
                    items.append(item)
            return items if length <= KEPT_ARRAY_LENGTH else ArraySummary("array", length)
        raise self._fail(f"{what} has unknown element type {item_type}")

    def parse(self) -> GGUFHeader:
        self._need(4, "the signature")
        if self._view[:4] != GGUF_MAGIC:
            raise NotAGGUFError(self._path, "it does not start with the GGUF signature")
        self._pos = 4
        version = self._u32("the version")
        if version not in SUPPORTED_VERSIONS:
            raise NotAGGUFError(self._path, f"GGUF version {version} is not supported")
        n_tensors = self._u64("the tensor count")
        n_kv = self._u64("the metadata count")
        if n_tensors > MAX_TENSOR_COUNT:
            raise self._fail(f"the header claims {n_tensors:,} tensors, which no real model has")
        if n_kv > MAX_KV_COUNT:
            raise self._fail(f"the header claims {n_kv:,} metadata entries, which no real model has")

        metadata: dict[str, MetadataValue] = {}
        for index in self._walk(n_kv, 12, "the metadata"):
            key = self._string(f"the name of metadata entry {index}")
            value_type = self._u32(f"the type of metadata entry {key!r}")
            metadata[key] = self._value(value_type, f"metadata entry {key!r}")

        infos = list(self._tensor_infos(n_tensors))
        alignment = metadata.get("general.alignment", 32)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise self._fail(f"general.alignment is {alignment!r}, not a power of two")
        data_offset = -(-self._pos // alignment) * alignment
        data_size = self._size - data_offset
        tensors = []
        seen: set[str] = set()
        for name, shape, type_id, offset in infos:
            if name in seen:
                raise self._fail(f"tensor {name!r} appears twice")
            seen.add(name)
            tensors.append(self._tensor(name, shape, type_id, offset, alignment, data_size))
        return GGUFHeader(self._path, version, metadata, tensors, data_offset, self._size)

    def _tensor_infos(self, count: int) -> Iterator[tuple[str, tuple[int, ...], int, int]]:
        for index in self._walk(count, 24, "the tensor list"):
            name = self._string(f"the name of tensor {index}")
            n_dims = self._u32(f"the dimension count of tensor {name!r}")
            if not 1 <= n_dims <= MAX_DIMS:
                raise self._fail(f"tensor {name!r} has {n_dims} dimensions (at most {MAX_DIMS} are possible)")
            shape = tuple(self._u64(f"a dimension of tensor {name!r}") for _ in range(n_dims))
            type_id = self._u32(f"the type of tensor {name!r}")
            offset = self._u64(f"the data offset of tensor {name!r}")
            yield name, shape, type_id, offset

    def _tensor(
        self, name: str, shape: tuple[int, ...], type_id: int, offset: int, alignment: int, data_size: int
    ) -> TensorInfo:
        try:
            quant = gguf.GGMLQuantizationType(type_id)
        except ValueError:
            raise self._fail(
                f"tensor {name!r} has tensor type {type_id}, which this version does not know"
            ) from None
        block_size, type_size = gguf.GGML_QUANT_SIZES[quant]
        elements = 1
        for dim in shape:
            elements *= dim
        if elements >= 1 << 62:
            raise self._fail(f"tensor {name!r} has an impossible shape {shape}")
        if shape[0] % block_size:
            raise self._fail(
                f"tensor {name!r} has rows of {shape[0]} values, not a multiple of {quant.name}'s blocks"
            )
        n_bytes = elements // block_size * type_size
        if offset % alignment:
            raise self._fail(f"tensor {name!r} starts at an unaligned offset {offset}")
        if offset + n_bytes > data_size:
            raise self._fail(
                f"tensor {name!r} ends {offset + n_bytes - data_size:,} bytes beyond the end of the file "
                "(the file is truncated)"
            )
        return TensorInfo(name, shape, quant.name, offset, n_bytes)
