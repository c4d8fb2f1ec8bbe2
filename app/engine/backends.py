"""Which llama.cpp backend this build runs on, its GPUs, and how many layers to offload to them.

The answer comes from llama.cpp itself: `llama_supports_gpu_offload()` says whether the build
has a GPU backend at all, and ggml's backend registry lists the backends compiled in (CPU, CUDA,
Metal, Vulkan, ...) and the devices each one found, with their free memory. When a model runs on
the CPU, the plan says why in words a user understands; there is no silent fallback.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import llama_cpp

from app.core.units import format_bytes

log = logging.getLogger("backends")

#: VRAM llama.cpp and the driver keep for themselves beyond our estimate, per GPU.
GPU_RESERVE_BYTES = 512 << 20
#: ggml registries that are not GPU backends even when a build lists them.
_HOST_REGISTRIES = frozenset({"CPU", "BLAS", "RPC"})
# enum ggml_backend_dev_type in ggml-backend.h: 1 GPU, 2 integrated GPU
_GPU_TYPES = {1: False, 2: True}


class CpuReason(StrEnum):
    """Why a model runs (wholly) on the CPU."""

    NO_GPU_BUILD = "no GPU build"
    NO_GPU_FOUND = "no GPU found"
    NOT_ENOUGH_VRAM = "not enough VRAM"
    DEVICE_ERROR = "GPU error"
    USER_CHOICE = "CPU only chosen"


@dataclass(frozen=True)
class GpuDevice:
    backend: str  # the ggml registry: "CUDA", "Metal", "Vulkan", ...
    name: str  # "CUDA0"
    description: str  # "NVIDIA GeForce RTX 4090"
    memory_total: int
    memory_free: int
    integrated: bool

    @property
    def label(self) -> str:
        memory = f"{format_bytes(self.memory_free)} free of {format_bytes(self.memory_total)}"
        return f"{self.description or self.name} ({memory})"


@dataclass(frozen=True)
class BackendReport:
    """What llama.cpp reported about this build and machine."""

    gpu_offload: bool  # llama_supports_gpu_offload(): the build has a GPU backend
    registries: tuple[str, ...]  # ggml backends compiled in, e.g. ("CUDA", "CPU")
    gpus: tuple[GpuDevice, ...]
    error: str | None = None  # the device probe failed (driver or library problem)

    @property
    def name(self) -> str:
        """The backend models run on: the GPUs' backend, else the build's GPU backend, else CPU."""
        if self.gpus:
            return self.gpus[0].backend
        gpu_builds = [r for r in self.registries if r not in _HOST_REGISTRIES]
        return gpu_builds[0] if gpu_builds else "CPU"

    @property
    def cpu_reason(self) -> CpuReason | None:
        """Why no layer can go to a GPU at all (None when a GPU is usable)."""
        if self.error is not None:
            return CpuReason.DEVICE_ERROR
        if not self.gpu_offload:
            return CpuReason.NO_GPU_BUILD
        if not self.gpus:
            return CpuReason.NO_GPU_FOUND
        return None

    @property
    def why_cpu(self) -> str | None:
        """`cpu_reason` in words for the user (None when a GPU is usable)."""
        reason = self.cpu_reason
        return None if reason is None else _REASON_TEXT[reason].format(backend=self.name, error=self.error)

    def describe(self) -> str:
        """One line for Settings and `--self-test`."""
        if self.why_cpu is None:
            return f"{self.name}: " + ", ".join(gpu.label for gpu in self.gpus)
        return f"CPU ({self.why_cpu})"


_REASON_TEXT = {
    CpuReason.NO_GPU_BUILD: "this build of llama.cpp has no GPU support",
    CpuReason.NO_GPU_FOUND: "this {backend} build found no GPU; check the GPU driver",
    CpuReason.DEVICE_ERROR: "the GPU could not be queried: {error}",
}  # the other reasons depend on the model or the setting: plan_offload words them


def detect_backend() -> BackendReport:
    """Ask llama.cpp which backends this build has and which GPUs they see (fast: no model load)."""
    gpu_offload = bool(llama_cpp.llama_supports_gpu_offload())
    try:
        ggml = _ggml_registry()
        registries = tuple(
            _text(ggml.ggml_backend_reg_name(ggml.ggml_backend_reg_get(i)))
            for i in range(ggml.ggml_backend_reg_count())
        )
        gpus = tuple(_gpu_devices(ggml))
    except (OSError, AttributeError) as exc:  # a missing library or symbol: a broken install or driver
        log.warning("llama.cpp's device report failed: %s", exc)
        return BackendReport(gpu_offload, (), (), error=str(exc))
    report = BackendReport(gpu_offload, registries, gpus)
    log.info("backend: %s (registries: %s)", report.describe(), ", ".join(registries))
    return report


def _gpu_devices(ggml: ctypes.CDLL) -> list[GpuDevice]:
    gpus = []
    for index in range(ggml.ggml_backend_dev_count()):
        dev = ggml.ggml_backend_dev_get(index)
        kind = ggml.ggml_backend_dev_type(dev)
        if kind not in _GPU_TYPES:
            continue
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        ggml.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        gpus.append(
            GpuDevice(
                backend=_text(ggml.ggml_backend_reg_name(ggml.ggml_backend_dev_backend_reg(dev))),
                name=_text(ggml.ggml_backend_dev_name(dev)),
                description=_text(ggml.ggml_backend_dev_description(dev)),
                memory_total=total.value,
                memory_free=free.value,
                integrated=_GPU_TYPES[kind],
            )
        )
    return gpus


def _text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", "replace")


def ggml_library_path() -> Path:
    """libggml of the llama-cpp-python in use (its `lib/` folder, also inside a frozen app)."""
    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    # The soname file first: it is the copy libllama loaded (wheels also carry identical copies).
    for pattern in ("libggml.so.?", "libggml.so", "libggml.*dylib", "ggml.dll", "libggml.so.*"):
        found = sorted(lib_dir.glob(pattern))
        if found:
            return found[0]
    raise OSError(f"llama.cpp's ggml library is not in {lib_dir}; reinstall llama-cpp-python")


def _ggml_registry() -> ctypes.CDLL:
    """ggml's registry calls, which llama-cpp-python does not bind, from the ggml that libllama uses.

    Outside Windows, a symbol looked up through libllama's handle resolves in its dependencies, so
    this is the very ggml instance models load into (a second copy of the file would be a second
    registry). Windows looks symbols up in one DLL only, and loads ggml.dll just once anyway.
    """
    ggml = ctypes.CDLL(str(ggml_library_path())) if sys.platform == "win32" else llama_cpp.llama_cpp._lib
    pointer, size = ctypes.c_void_p, ctypes.c_size_t
    signatures: tuple[tuple[Any, list[Any], Any], ...] = (
        (ggml.ggml_backend_reg_count, [], size),
        (ggml.ggml_backend_reg_get, [size], pointer),
        (ggml.ggml_backend_reg_name, [pointer], ctypes.c_char_p),
        (ggml.ggml_backend_dev_count, [], size),
        (ggml.ggml_backend_dev_get, [size], pointer),
        (ggml.ggml_backend_dev_type, [pointer], ctypes.c_int),
        (ggml.ggml_backend_dev_name, [pointer], ctypes.c_char_p),
        (ggml.ggml_backend_dev_description, [pointer], ctypes.c_char_p),
        (ggml.ggml_backend_dev_backend_reg, [pointer], pointer),
        (ggml.ggml_backend_dev_memory, [pointer, ctypes.POINTER(size), ctypes.POINTER(size)], None),
    )
    for fn, args, result in signatures:
        fn.argtypes = args
        fn.restype = result
    return ggml


# -- how many layers go to the GPU ---------------------------------------------------------------


@dataclass(frozen=True)
class LayerCosts:
    """The GPU memory a model needs, per repeating layer and in fixed parts (from its header)."""

    n_layers: int
    layer_bytes: int  # weights of one repeating layer (the average over `blk.N.*`)
    kv_bytes_per_layer: int  # that layer's share of the KV cache
    output_bytes: int  # output head and its norm: on the GPU only when every layer is
    compute_bytes: int  # compute buffer, on the GPU as soon as one layer is

    @property
    def per_layer(self) -> int:
        return self.layer_bytes + self.kv_bytes_per_layer


def layers_that_fit(costs: LayerCosts, vram_free: int, n_gpus: int = 1) -> int:
    """How many repeating layers fit in `vram_free` (summed over `n_gpus`), after the fixed costs."""
    budget = vram_free - costs.compute_bytes - GPU_RESERVE_BYTES * n_gpus
    if costs.per_layer <= 0 or budget <= 0:
        return 0
    return min(costs.n_layers, budget // costs.per_layer)


@dataclass(frozen=True)
class OffloadPlan:
    """What to pass as llama.cpp's `n_gpu_layers`, and why, in words for the user."""

    n_gpu_layers: int  # 0: CPU only; n_layers + 1: every layer and the output head
    n_layers: int
    backend: str
    cpu_reason: CpuReason | None  # set when nothing goes to the GPU
    explanation: str

    @property
    def layers_on_gpu(self) -> int:
        """Repeating layers on the GPU (the output head is not counted)."""
        return min(self.n_gpu_layers, self.n_layers)


def plan_offload(backend: BackendReport, costs: LayerCosts, requested: int | None = None) -> OffloadPlan:
    """Layers to offload: `requested` (None: as many as fit in free VRAM; 0: CPU only; N: N layers)."""
    n = costs.n_layers
    if requested == 0:
        return _cpu_plan(backend, n, CpuReason.USER_CHOICE, "CPU only is chosen in Settings")
    reason = backend.cpu_reason
    if reason is not None:
        return _cpu_plan(backend, n, reason, backend.why_cpu or reason.value)
    where = " + ".join(gpu.description or gpu.name for gpu in backend.gpus)
    if requested is not None:
        layers = n + 1 if requested < 0 else min(requested, n + 1)  # negative: llama.cpp's "all"
        text = f"{min(layers, n)} of {n} layers on {where} (set in Settings)"
        return OffloadPlan(layers, n, backend.name, None, text)
    vram_free = sum(gpu.memory_free for gpu in backend.gpus)
    fit = layers_that_fit(costs, vram_free, len(backend.gpus))
    if fit == 0:
        needs = format_bytes(costs.per_layer + costs.compute_bytes + GPU_RESERVE_BYTES * len(backend.gpus))
        text = (
            f"not enough free VRAM for even one layer: {where} has {format_bytes(vram_free)} free, "
            f"one layer needs {needs} with the buffers"
        )
        return _cpu_plan(backend, n, CpuReason.NOT_ENOUGH_VRAM, text)
    spare = vram_free - costs.compute_bytes - GPU_RESERVE_BYTES * len(backend.gpus) - fit * costs.per_layer
    if fit == n and spare >= costs.output_bytes:
        return OffloadPlan(n + 1, n, backend.name, None, f"all {n} layers on {where}")
    text = f"{fit} of {n} layers on {where}, the rest on the CPU ({format_bytes(vram_free)} of VRAM free)"
    return OffloadPlan(fit, n, backend.name, None, text)


def _cpu_plan(backend: BackendReport, n_layers: int, reason: CpuReason, why: str) -> OffloadPlan:
    return _cpu_plan_named(backend.name, n_layers, reason, why)


def _cpu_plan_named(backend: str, n_layers: int, reason: CpuReason, why: str) -> OffloadPlan:
    return OffloadPlan(0, n_layers, backend, reason, f"running on the CPU because {why}")


def gpu_failure_plan(plan: OffloadPlan) -> OffloadPlan:
    """The CPU plan after loading onto the GPU failed (out of VRAM or a driver error; the log has more)."""
    why = f"loading onto the {plan.backend} GPU failed (out of VRAM or a driver problem; see the log)"
    return _cpu_plan_named(plan.backend, plan.n_layers, CpuReason.DEVICE_ERROR, why)
