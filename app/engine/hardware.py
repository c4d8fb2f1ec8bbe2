"""What this machine has: RAM from the OS, and the compute devices llama.cpp itself reports."""

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import psutil

log = logging.getLogger("hardware")


class DeviceKind(StrEnum):
    CPU = "CPU"
    GPU = "GPU"
    INTEGRATED_GPU = "integrated GPU"
    ACCELERATOR = "accelerator"


# enum ggml_backend_dev_type in ggml-backend.h
_GGML_DEVICE_KINDS = {
    0: DeviceKind.CPU,
    1: DeviceKind.GPU,
    2: DeviceKind.INTEGRATED_GPU,
    3: DeviceKind.ACCELERATOR,
}


@dataclass(frozen=True)
class Device:
    name: str
    description: str
    kind: DeviceKind
    memory_total: int
    memory_free: int


@dataclass(frozen=True)
class Hardware:
    ram_total: int
    ram_available: int
    devices: tuple[Device, ...]

    @property
    def gpus(self) -> tuple[Device, ...]:
        """Devices that can hold model layers (discrete or integrated GPUs)."""
        return tuple(d for d in self.devices if d.kind in (DeviceKind.GPU, DeviceKind.INTEGRATED_GPU))


def probe_hardware() -> Hardware:
    memory = psutil.virtual_memory()
    return Hardware(memory.total, memory.available, tuple(llama_cpp_devices()))


def llama_cpp_devices() -> list[Device]:
    """The devices of the llama.cpp build in use, as its ggml backend registry lists them.

    llama-cpp-python does not bind these calls, so they are bound here from its own libggml.
    """
    ggml = _load_ggml()
    if ggml is None:
        return []
    devices = []
    for index in range(ggml.ggml_backend_dev_count()):
        dev = ggml.ggml_backend_dev_get(index)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        ggml.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        devices.append(
            Device(
                name=(ggml.ggml_backend_dev_name(dev) or b"").decode("utf-8", "replace"),
                description=(ggml.ggml_backend_dev_description(dev) or b"").decode("utf-8", "replace"),
                kind=_GGML_DEVICE_KINDS.get(ggml.ggml_backend_dev_type(dev), DeviceKind.ACCELERATOR),
                memory_total=total.value,
                memory_free=free.value,
            )
        )
    return devices


def _load_ggml() -> ctypes.CDLL | None:
    import llama_cpp  # loads libllama and, with it, libggml

    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    # The soname first (libggml.so.0): that is the copy libllama loaded. Wheels ship the library as
    # separate files, not links, and opening another copy would give a second, separate registry.
    candidates = (
        sorted(lib_dir.glob("libggml.so.?"))
        + sorted(lib_dir.glob("libggml.so"))
        + sorted(lib_dir.glob("libggml*.dylib"))
        + sorted(lib_dir.glob("ggml.dll"))
    )
    if not candidates:
        log.warning("llama.cpp's ggml library was not found in %s; no device report", lib_dir)
        return None
    ggml = ctypes.CDLL(str(candidates[0]))
    ggml.ggml_backend_dev_count.restype = ctypes.c_size_t
    ggml.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    ggml.ggml_backend_dev_get.restype = ctypes.c_void_p
    for fn in (ggml.ggml_backend_dev_name, ggml.ggml_backend_dev_description):
        fn.argtypes = [ctypes.c_void_p]
        fn.restype = ctypes.c_char_p
    ggml.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    ggml.ggml_backend_dev_type.restype = ctypes.c_int
    size_pointer = ctypes.POINTER(ctypes.c_size_t)
    ggml.ggml_backend_dev_memory.argtypes = [ctypes.c_void_p, size_pointer, size_pointer]
    ggml.ggml_backend_dev_memory.restype = None
    return ggml
