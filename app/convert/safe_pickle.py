"""Read the `data.pkl` of a `torch.save` zip without PyTorch and without running its code.

A pickle is a program: `pickle.load` calls whatever globals it names. This unpickler knows a
closed list of names (the ones a state dict saved by `torch.save` uses) and maps each to a
harmless function of ours; any other global is refused when the GLOBAL opcode is read, before
anything is called. Tensors come back as descriptions (dtype, shape, stride, offset, storage
key), never data: the bytes stay in the zip until someone memory-maps them.

BUILD (`__setstate__`, or an update of `__dict__`) is the one opcode that can change an object
it did not create: the values the allow-list maps to are shared by every checkpoint read in the
process. So BUILD is accepted only on the one kind of object torch.save sets state on, an
OrderedDict this pickle made (a state dict's `_metadata`), with the state checked and dropped.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from app.core.errors import ForbiddenPickleError

#: torch storage class -> (our dtype name, bytes per element)
STORAGE_DTYPES: dict[str, tuple[str, int]] = {
    "BFloat16Storage": ("BF16", 2),
    "HalfStorage": ("F16", 2),
    "FloatStorage": ("F32", 4),
    "DoubleStorage": ("F64", 8),
    "IntStorage": ("I32", 4),
    "LongStorage": ("I64", 8),
    "ShortStorage": ("I16", 2),
    "CharStorage": ("I8", 1),
    "ByteStorage": ("U8", 1),
    "BoolStorage": ("BOOL", 1),
}


@dataclass(frozen=True)
class StorageType:
    """What `torch.BFloat16Storage` and friends become: only a dtype."""

    dtype: str
    itemsize: int


@dataclass(frozen=True)
class StorageRef:
    """One storage of the checkpoint: the zip entry `<archive>/data/<key>` holds its bytes."""

    key: str
    dtype: str
    itemsize: int
    numel: int


@dataclass(frozen=True)
class TensorRef:
    """A tensor as the pickle describes it; offsets and strides count elements, as in torch."""

    storage: StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def dtype(self) -> str:
        return self.storage.dtype

    def is_contiguous(self) -> bool:
        expected = 1
        for size, stride in zip(reversed(self.shape), reversed(self.stride), strict=True):
            if size != 1 and stride != expected:
                return False
            expected *= size
        return True


def _rebuild_tensor_v2(
    storage: StorageRef,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    _requires_grad: bool = False,
    _backward_hooks: object = None,
    _metadata: object = None,
) -> TensorRef:
    if not isinstance(storage, StorageRef):
        raise ForbiddenPickleError("a tensor whose storage is not a persistent storage reference")
    return TensorRef(storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _rebuild_from_type_v2(
    func: Callable[..., Any], _new_type: object, args: tuple[Any, ...], _state: object
) -> Any:
    """torch wraps tensor subclasses (nn.Parameter, ...) in this; `func` is one of our allowed functions."""
    if func not in (_rebuild_tensor_v2, _rebuild_parameter):
        raise ForbiddenPickleError("_rebuild_from_type_v2 with a function outside the allow-list")
    return func(*args)


def _rebuild_parameter(
    data: TensorRef, _requires_grad: bool = False, _backward_hooks: object = None
) -> TensorRef:
    return data


class _TensorSubclass:
    """`torch.Tensor` / `nn.Parameter`, named as the new type in `_rebuild_from_type_v2`: never called."""


class _MadeHere(collections.OrderedDict[Any, Any]):
    """An OrderedDict created by the pickle being read (never one of the shared allowed values)."""


def _ordered_dict(*args: Any) -> _MadeHere:
    return _MadeHere(*args)


_ALLOWED: dict[tuple[str, str], object] = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): _TensorSubclass,
    ("torch.nn.parameter", "Parameter"): _TensorSubclass,
} | {("torch", name): StorageType(dtype, size) for name, (dtype, size) in STORAGE_DTYPES.items()}


class _AllowListUnpickler(pickle._Unpickler):  # the Python one: its opcodes can be overridden
    stack: list[Any]
    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(pickle._Unpickler.dispatch)

    def _load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if type(target) is not _MadeHere:
            raise ForbiddenPickleError(f"BUILD (setting state) on a {type(target).__name__}")
        if isinstance(state, tuple) and len(state) == 2 and state[1] is None:
            state = state[0]
        if state is not None and not (isinstance(state, dict) and all(isinstance(k, str) for k in state)):
            raise ForbiddenPickleError(f"BUILD with a {type(state).__name__} as state")
        # The state is a state dict's `_metadata` (module versions): nothing the converter reads.

    dispatch[pickle.BUILD[0]] = _load_build

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise ForbiddenPickleError(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> StorageRef:
        # torch.save writes ('storage', <storage type>, key, location, numel) for every storage.
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise ForbiddenPickleError(f"an unknown persistent id {str(pid)[:60]!r}")
        _, storage_type, key, _location, numel = pid
        if (
            not isinstance(storage_type, StorageType)
            or not isinstance(key, str)
            or not isinstance(numel, int)
        ):
            raise ForbiddenPickleError(f"a malformed storage reference {str(pid)[:60]!r}")
        return StorageRef(key, storage_type.dtype, storage_type.itemsize, numel)


def load_state_dict(data: bytes) -> dict[str, TensorRef]:
    """The tensors named in a checkpoint's `data.pkl`, as descriptions.

    Raises `ForbiddenPickleError` for any global outside the allow-list (nothing of the pickle
    has been called by then) and for a pickle that is not a flat dict of tensors.
    """
    try:
        result = _AllowListUnpickler(io.BytesIO(data)).load()
    except ForbiddenPickleError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        TypeError,
        ValueError,
        IndexError,
        KeyError,
        AttributeError,
        struct.error,
    ) as exc:
        raise ForbiddenPickleError(f"a damaged pickle ({exc})") from exc
    if not isinstance(result, dict):
        raise ForbiddenPickleError(f"a {type(result).__name__} where a dict of tensors was expected")
    tensors = {}
    for name, value in result.items():
        if not isinstance(name, str) or not isinstance(value, TensorRef):
            raise ForbiddenPickleError(f"a non-tensor entry {str(name)[:60]!r} in the state dict")
        tensors[name] = value
    return tensors
