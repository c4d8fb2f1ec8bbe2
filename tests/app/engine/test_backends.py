"""Backend detection against llama.cpp's real device report, and the GPU layer planner by hand."""

from __future__ import annotations

from pathlib import Path

import llama_cpp
import pytest

from app.core.errors import SelfTestError
from app.engine.backends import (
    GPU_RESERVE_BYTES,
    BackendReport,
    CpuReason,
    GpuDevice,
    LayerCosts,
    detect_backend,
    gpu_failure_plan,
    plan_offload,
)
from app.engine.fit import estimate_memory, layer_costs, plan_model_offload
from app.engine.hardware import DeviceKind, llama_cpp_devices
from app.engine.self_test import run_self_test
from app.engine.session import ModelSession
from app.gguf.report import inspect_model

MIB = 1 << 20
GIB = 1 << 30

# A made-up model: 32 layers of 200 MiB weights + 8 MiB KV cache, a 500 MiB output head, 300 MiB compute.
COSTS = LayerCosts(
    n_layers=32,
    layer_bytes=200 * MIB,
    kv_bytes_per_layer=8 * MIB,
    output_bytes=500 * MIB,
    compute_bytes=300 * MIB,
)
PER_LAYER = 208 * MIB
FIXED = 300 * MIB + GPU_RESERVE_BYTES  # compute buffer + what llama.cpp and the driver keep: 812 MiB
# The tests that read this machine's llama.cpp expect the CPU build `make run` installs.
cpu_build_only = pytest.mark.skipif(
    bool(llama_cpp.llama_supports_gpu_offload()), reason="llama.cpp here is a GPU build, not CPU"
)


def _cuda(*free: int) -> BackendReport:
    gpus = tuple(GpuDevice("CUDA", f"CUDA{i}", "Test GPU", 80 * GIB, f, False) for i, f in enumerate(free))
    return BackendReport(gpu_offload=True, registries=("CUDA", "CPU"), gpus=gpus)


# -- detection on this machine: a CPU-only build of llama.cpp -----------------------------------------


@cpu_build_only
def test_this_cpu_build_is_detected_as_cpu_with_its_reason() -> None:
    report = detect_backend()
    assert report.gpu_offload is bool(llama_cpp.llama_supports_gpu_offload()) is False
    assert report.registries == ("CPU",)  # what ggml's registry lists in this build
    assert report.gpus == ()
    assert report.name == "CPU"
    assert report.cpu_reason is CpuReason.NO_GPU_BUILD
    assert report.describe() == "CPU (this build of llama.cpp has no GPU support)"
    # The same registry hardware.py reads: one CPU device and no GPU.
    assert [d.kind for d in llama_cpp_devices()] == [DeviceKind.CPU]


@cpu_build_only
def test_the_engine_records_where_layers_run_and_why(starter_path: Path) -> None:
    with ModelSession(starter_path, n_ctx=256) as session:
        info = session.info
    assert (info.backend, info.gpu_layers, info.n_layers) == ("CPU", 0, 30)
    assert info.cpu_reason is CpuReason.NO_GPU_BUILD
    assert info.offload == "running on the CPU because this build of llama.cpp has no GPU support"
    with ModelSession(starter_path, n_ctx=256, n_gpu_layers=0) as session:
        assert session.info.cpu_reason is CpuReason.USER_CHOICE
        assert session.info.offload == "running on the CPU because CPU only is chosen in Settings"


@pytest.mark.parametrize(
    ("report", "reason", "words"),
    [
        (BackendReport(False, ("CPU",), ()), CpuReason.NO_GPU_BUILD, "has no GPU support"),
        (BackendReport(True, ("CUDA", "CPU"), ()), CpuReason.NO_GPU_FOUND, "this CUDA build found no GPU"),
        (BackendReport(True, (), (), error="libcuda.so.1: cannot open"), CpuReason.DEVICE_ERROR, "libcuda"),
    ],
)
def test_each_cpu_reason_is_told_in_words(report: BackendReport, reason: CpuReason, words: str) -> None:
    plan = plan_offload(report, COSTS)
    assert (plan.n_gpu_layers, plan.cpu_reason) == (0, reason)
    assert plan.explanation.startswith("running on the CPU because ") and words in plan.explanation
    assert words in report.describe()


def test_a_gpu_is_described_with_its_memory() -> None:
    report = _cuda(20 * GIB)
    assert report.name == "CUDA" and report.cpu_reason is None
    assert report.describe() == "CUDA: Test GPU (20.0 GiB free of 80.0 GiB)"


# -- the planner, against hand computations -------------------------------------------------------


@pytest.mark.parametrize(
    ("vram_free", "n_gpu_layers"),
    [
        (FIXED + PER_LAYER, 1),  # exactly one layer
        (FIXED + 2 * PER_LAYER - 1, 1),  # a byte short of two
        (FIXED + 16 * PER_LAYER, 16),  # half
        (FIXED + 32 * PER_LAYER + 499 * MIB, 32),  # every layer, but the output head does not fit
        (FIXED + 32 * PER_LAYER + 500 * MIB, 33),  # everything: llama.cpp's n_layers + 1
        (24 * GIB, 33),
        (8 * GIB, 35),  # (8192 - 812) // 208 = 35 layers' worth, capped below
    ],
)
def test_auto_plan_offloads_what_fits(vram_free: int, n_gpu_layers: int) -> None:
    plan = plan_offload(_cuda(vram_free), COSTS)
    assert plan.n_gpu_layers == min(n_gpu_layers, 33)
    assert plan.cpu_reason is None and plan.backend == "CUDA"
    assert plan.layers_on_gpu == min(n_gpu_layers, 32)


def test_partial_and_full_offload_are_explained() -> None:
    half = plan_offload(_cuda(FIXED + 16 * PER_LAYER), COSTS)
    assert half.explanation == "16 of 32 layers on Test GPU, the rest on the CPU (4.0 GiB of VRAM free)"
    assert plan_offload(_cuda(24 * GIB), COSTS).explanation == "all 32 layers on Test GPU"


@pytest.mark.parametrize("vram_free", [0, 512 * MIB, FIXED, FIXED + PER_LAYER - 1])
def test_not_even_one_layer_fits(vram_free: int) -> None:
    plan = plan_offload(_cuda(vram_free), COSTS)
    assert (plan.n_gpu_layers, plan.cpu_reason) == (0, CpuReason.NOT_ENOUGH_VRAM)
    assert "not enough free VRAM for even one layer" in plan.explanation
    assert "one layer needs 1020.0 MiB with the buffers" in plan.explanation  # 208 + 300 + 512


def test_two_gpus_pool_their_memory_and_each_keeps_a_reserve() -> None:
    # 2 x 4 GiB: 8192 - 300 - 2 * 512 = 6868 MiB for layers = 33 layers' worth; the head (500) does not fit
    # beside 32 layers (6868 - 32 * 208 = 212 MiB left).
    plan = plan_offload(_cuda(4 * GIB, 4 * GIB), COSTS)
    assert plan.n_gpu_layers == 32
    assert plan.explanation.startswith("32 of 32 layers on Test GPU + Test GPU")


def test_user_override_is_obeyed_and_said() -> None:
    gpu = _cuda(24 * GIB)
    cpu_only = plan_offload(gpu, COSTS, requested=0)
    assert (cpu_only.n_gpu_layers, cpu_only.cpu_reason) == (0, CpuReason.USER_CHOICE)
    assert cpu_only.explanation == "running on the CPU because CPU only is chosen in Settings"
    ten = plan_offload(_cuda(512 * MIB), COSTS, requested=10)  # the user's number wins over the estimate
    assert ten.n_gpu_layers == 10 and ten.explanation == "10 of 32 layers on Test GPU (set in Settings)"
    assert plan_offload(gpu, COSTS, requested=500).n_gpu_layers == 33
    assert plan_offload(gpu, COSTS, requested=-1).n_gpu_layers == 33  # llama.cpp's "all"
    # A number means nothing without a GPU: the plan says why it is the CPU.
    no_build = plan_offload(BackendReport(False, ("CPU",), ()), COSTS, requested=10)
    assert (no_build.n_gpu_layers, no_build.cpu_reason) == (0, CpuReason.NO_GPU_BUILD)


def test_a_failed_gpu_load_becomes_a_cpu_plan_that_says_so() -> None:
    failed = gpu_failure_plan(plan_offload(_cuda(24 * GIB), COSTS))
    assert (failed.n_gpu_layers, failed.cpu_reason, failed.backend) == (0, CpuReason.DEVICE_ERROR, "CUDA")
    assert "loading onto the CUDA GPU failed" in failed.explanation


def test_layer_costs_of_the_real_starter_model(starter_path: Path) -> None:
    report = inspect_model(starter_path)
    estimate = estimate_memory(report, 2048)
    costs = layer_costs(report, estimate)
    assert costs is not None and report.shape is not None
    blk = sum(t.n_bytes for t in report.tensors if t.name.startswith("blk."))
    assert costs.n_layers == report.shape.n_layers == 30
    assert costs.layer_bytes == blk // 30
    assert costs.kv_bytes_per_layer * 30 == estimate.kv_cache_bytes
    # SmolLM2 ties its output to the embeddings, which llama.cpp copies to the GPU as the output head.
    embd = next(t.n_bytes for t in report.tensors if t.name == "token_embd.weight")
    norm = next(t.n_bytes for t in report.tensors if t.name == "output_norm.weight")
    assert costs.output_bytes == embd + norm
    budget = 1 * GIB - estimate.compute_bytes - GPU_RESERVE_BYTES
    expected = min(30, budget // costs.per_layer)
    assert plan_model_offload(report, estimate, _cuda(1 * GIB)).layers_on_gpu == expected


# -- the self-test's core ------------------------------------------------------------------------


@cpu_build_only
def test_self_test_runs_the_starter_and_lists_the_loaded_llama_cpp() -> None:
    report = run_self_test(max_tokens=4)
    assert report.completion_tokens > 0 and report.text.strip()
    assert report.backend.name == "CPU"
    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    assert any(Path(p).name.startswith("libllama") and Path(p).parent == lib_dir for p in report.libraries)
    lines = report.lines()
    assert lines[1] == "backend: CPU (this build of llama.cpp has no GPU support)"
    assert any(line.startswith("generated ") for line in lines)


def test_self_test_names_the_failing_step(tmp_path: Path) -> None:
    with pytest.raises(SelfTestError, match=r"while running absent\.gguf: Model file not found") as caught:
        run_self_test(tmp_path / "absent.gguf")
    assert caught.value.exit_code == 5
