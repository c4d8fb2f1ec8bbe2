"""Will a model fit? Memory for weights + KV cache + compute buffers, against RAM and VRAM.

The KV cache is exact for llama.cpp's layout: for every layer and every context
position, one key and one value vector per KV head. Compute buffers are an
estimate dominated by the logits of one micro-batch (n_ubatch x n_vocab floats).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import gguf

from app.engine.backends import (
    BackendReport,
    LayerCosts,
    OffloadPlan,
    detect_backend,
    layers_that_fit,
    plan_offload,
)
from app.engine.hardware import Hardware
from app.gguf.report import ModelReport, ModelShape

GIB = 1 << 30
DEFAULT_UBATCH = 512
#: Memory kept free for the OS and other apps when judging "fits".
HEADROOM_BYTES = GIB // 2


class Fit(StrEnum):
    FITS = "fits"
    TIGHT = "tight"  # needs memory other programs are using now
    TOO_LARGE = "too large"


@dataclass(frozen=True)
class MemoryEstimate:
    n_ctx: int
    weights_bytes: int
    kv_cache_bytes: int
    compute_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.compute_bytes


@dataclass(frozen=True)
class FitVerdict:
    fit: Fit
    estimate: MemoryEstimate
    gpu_layers: int  # suggested layers to offload; 0 on a CPU-only machine
    n_layers: int
    explanation: str


def kv_cache_bytes(shape: ModelShape, n_ctx: int, cache_type: str = "F16") -> int:
    """Bytes of the K and V caches for `n_ctx` positions (`cache_type`: F16, Q8_0, Q4_0, ...)."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[cache_type]]
    per_position = shape.n_layers * shape.n_head_kv * (shape.head_dim_k + shape.head_dim_v)
    return per_position * n_ctx * type_size // block_size


def compute_bytes(shape: ModelShape, n_ubatch: int = DEFAULT_UBATCH) -> int:
    """llama.cpp's compute buffer: logits for a micro-batch plus a few activations (an estimate)."""
    return 4 * n_ubatch * (shape.n_vocab + 2 * shape.n_embd)


def estimate_memory(report: ModelReport, n_ctx: int | None = None, cache_type: str = "F16") -> MemoryEstimate:
    """Memory to run `report`'s model with `n_ctx` tokens of context (default: its trained length)."""
    shape = report.shape
    if shape is None:
        return MemoryEstimate(n_ctx or 0, report.weights_bytes, 0, 0)
    ctx = n_ctx or shape.context_length
    return MemoryEstimate(
        ctx, report.weights_bytes, kv_cache_bytes(shape, ctx, cache_type), compute_bytes(shape)
    )


def judge_fit(report: ModelReport, estimate: MemoryEstimate, hardware: Hardware) -> FitVerdict:
    n_layers = report.shape.n_layers if report.shape else 0
    gpu = max(hardware.gpus, key=lambda d: d.memory_free, default=None)
    if gpu is not None and n_layers:
        layers = _gpu_layers(report, estimate, gpu.memory_free)
        vram = f"{gpu.description or gpu.name}'s {_gib(gpu.memory_free)} free"
        if layers >= n_layers:
            explanation = f"Fits: needs about {_gib(estimate.total_bytes)}; all layers fit in {vram}."
            return FitVerdict(Fit.FITS, estimate, layers, n_layers, explanation)
        on_gpu = f"{layers} of {n_layers} layers fit in {vram}"
        host_share = estimate.weights_bytes * (n_layers - layers) // n_layers
        return _judge_ram(estimate, hardware, host_share + estimate.kv_cache_bytes, layers, n_layers, on_gpu)
    return _judge_ram(estimate, hardware, estimate.total_bytes, 0, n_layers, "no GPU: runs on the CPU")


def _judge_ram(
    estimate: MemoryEstimate, hardware: Hardware, needed: int, layers: int, n_layers: int, where: str
) -> FitVerdict:
    numbers = (
        f"needs about {_gib(needed)} of RAM ({where}); {_gib(hardware.ram_available)} free "
        f"of {_gib(hardware.ram_total)}"
    )
    if needed + HEADROOM_BYTES <= hardware.ram_available:
        return FitVerdict(Fit.FITS, estimate, layers, n_layers, f"Fits: {numbers}.")
    if needed + HEADROOM_BYTES <= hardware.ram_total:
        return FitVerdict(
            Fit.TIGHT, estimate, layers, n_layers, f"Tight: {numbers}. Close other programs first."
        )
    return FitVerdict(
        Fit.TOO_LARGE,
        estimate,
        layers,
        n_layers,
        f"Too large: {numbers}. Pick a smaller quantization or a shorter context.",
    )


def layer_costs(report: ModelReport, estimate: MemoryEstimate) -> LayerCosts | None:
    """What each layer of `report`'s model costs on a GPU at `estimate`'s context (None: shape unknown)."""
    shape = report.shape
    if shape is None or shape.n_layers <= 0:
        return None
    by_name = {t.name: t.n_bytes for t in report.tensors}
    layer_bytes = sum(n for name, n in by_name.items() if name.startswith("blk.")) // shape.n_layers
    # A model without its own output matrix reuses the embeddings, which llama.cpp then copies to the GPU.
    head = by_name.get("output.weight", by_name.get("token_embd.weight", 0))
    return LayerCosts(
        n_layers=shape.n_layers,
        layer_bytes=layer_bytes,
        kv_bytes_per_layer=estimate.kv_cache_bytes // shape.n_layers,
        output_bytes=head + by_name.get("output_norm.weight", 0),
        compute_bytes=estimate.compute_bytes,
    )


def plan_model_offload(
    report: ModelReport, estimate: MemoryEstimate, backend: BackendReport, requested: int | None = None
) -> OffloadPlan:
    """`plan_offload` for a model; a model of unknown shape goes wholly to the GPU when there is one."""
    costs = layer_costs(report, estimate)
    if costs is not None:
        return plan_offload(backend, costs, requested)
    if requested == 0 or backend.cpu_reason is not None:
        return plan_offload(backend, LayerCosts(0, 0, 0, 0, 0), 0 if requested == 0 else None)
    return OffloadPlan(-1, 0, backend.name, None, "all layers on the GPU (the model's shape is unknown)")


def plan_file_offload(report: ModelReport, n_ctx: int, requested: int | None = None) -> OffloadPlan:
    """The offload plan for loading `report`'s model with `n_ctx` tokens of context on this machine, now."""
    trained = report.context_length
    return plan_model_offload(
        report,
        estimate_memory(report, min(n_ctx, trained) if trained else n_ctx),
        detect_backend(),
        requested,
    )


def _gpu_layers(report: ModelReport, estimate: MemoryEstimate, vram_free: int) -> int:
    """How many repeating layers fit in `vram_free`, each with its share of the KV cache."""
    costs = layer_costs(report, estimate)
    return layers_that_fit(costs, vram_free) if costs else 0


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB // 10 else f"{n / (1 << 20):.0f} MiB"
