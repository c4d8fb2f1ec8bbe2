"""The header-only GGUF inspector: exact parameter counts, memory estimates, and damaged files."""

from __future__ import annotations

import logging
import os
import random
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import gguf
import llama_cpp
import pytest

from app.core.errors import DamagedGGUFError, LlamaDeskError, ModelFileNotFoundError, NotAGGUFError
from app.engine.fit import Fit, estimate_memory, judge_fit, kv_cache_bytes
from app.engine.hardware import Device, DeviceKind, Hardware, probe_hardware
from app.engine.session import ModelSession
from app.gguf.header import read_header
from app.gguf.report import inspect_model
from tests.support.gguf_files import (
    LLAMA_SHAPES,
    write_header_only_copy,
    write_header_only_llama,
    write_small_gguf,
)

PUBLISHED_TOTALS = {
    "Llama-3.2-1B": 1_235_814_400,  # tied embeddings: no output matrix
    "Llama-2-7B": 6_738_415_616,
    "Llama-2-13B": 13_015_864_320,
    "Llama-3-8B": 8_030_261_248,
    "Llama-3-70B": 70_553_706_496,
}
GIB = 1 << 30


@pytest.mark.parametrize("model", sorted(PUBLISHED_TOTALS))
def test_published_parameter_counts_are_exact(tmp_path: Path, model: str) -> None:
    path = write_header_only_llama(tmp_path / f"{model}.gguf", LLAMA_SHAPES[model])
    assert path.stat().st_blocks * 512 < 1 << 20, "the data region should be a sparse hole"
    report = inspect_model(path)
    assert report.parameters == PUBLISHED_TOTALS[model]
    top_level = ("embeddings", "attention", "feed_forward", "norms", "output", "other")
    assert sum(report.breakdown[k] for k in top_level) == report.parameters
    b = report.breakdown
    assert b["attention"] == b["attention.q"] + b["attention.k"] + b["attention.v"] + b["attention.output"]
    assert b["feed_forward"] == b["feed_forward.gate"] + b["feed_forward.up"] + b["feed_forward.down"]
    shape = LLAMA_SHAPES[model]
    assert b["embeddings"] == shape.vocab * shape.dim
    assert b["output"] == (0 if shape.tied_embeddings else shape.vocab * shape.dim)
    assert b["norms"] == (2 * shape.layers + 1) * shape.dim
    assert report.file_type == "F16"
    assert report.weights_bytes == 2 * report.parameters


def test_tensor_table_matches_llama_cpp_listing(tmp_path: Path) -> None:
    report = inspect_model(write_header_only_llama(tmp_path / "m.gguf", LLAMA_SHAPES["Llama-2-7B"]))
    wq = next(t for t in report.tensors if t.name == "blk.0.attn_q.weight")
    assert (wq.shape, wq.type_name, wq.n_bytes) == ((4096, 4096), "F16", 4096 * 4096 * 2)
    ffn_down = next(t for t in report.tensors if t.name == "blk.0.ffn_down.weight")
    assert ffn_down.shape == (11008, 4096)  # GGUF order: the row length first
    assert len(report.tensors) == 2 + 32 * 9 + 1


def test_starter_model_counts_match_llama_cpp(starter_session: ModelSession, starter_path: Path) -> None:
    report = inspect_model(starter_path)
    assert report.parameters == llama_cpp.llama_model_n_params(starter_session._model)
    assert report.architecture == "llama"
    assert report.file_type == "Q4_1"
    assert report.context_length == 8192
    assert report.has_chat_template
    assert report.file_size == starter_path.stat().st_size


def test_kv_cache_matches_a_hand_computation(tmp_path: Path) -> None:
    report = inspect_model(write_header_only_llama(tmp_path / "m.gguf", LLAMA_SHAPES["Llama-3-8B"]))
    assert report.shape is not None
    # 32 layers x 8 KV heads x (128 key + 128 value) values x 2 bytes (F16), per position:
    per_token = 32 * 8 * (128 + 128) * 2
    assert per_token == 128 * 1024
    assert kv_cache_bytes(report.shape, 8192) == per_token * 8192 == GIB
    assert kv_cache_bytes(report.shape, 8192, "Q8_0") == 8192 * 32 * 8 * 256 // 32 * 34
    estimate = estimate_memory(report, 8192)
    assert estimate.total_bytes == estimate.weights_bytes + GIB + estimate.compute_bytes


def test_kv_cache_matches_what_llama_cpp_allocates(
    starter_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="llama.cpp")
    with ModelSession(starter_path, n_ctx=1024):
        pass
    sizes = re.findall(r"llama_kv_cache: size =\s+([\d.]+) MiB", caplog.text)
    assert sizes, "llama.cpp's KV cache report was not logged"
    report = inspect_model(starter_path)
    assert report.shape is not None
    assert kv_cache_bytes(report.shape, 1024) / (1 << 20) == pytest.approx(float(sizes[0]), abs=0.01)


def _machine(ram_total: int, ram_free: int, vram: int | None = None) -> Hardware:
    devices = (Device("CPU", "cpu", DeviceKind.CPU, ram_total, ram_free),)
    if vram is not None:
        devices += (Device("CUDA0", "Test GPU", DeviceKind.GPU, vram, vram),)
    return Hardware(ram_total, ram_free, devices)


def test_fit_verdicts_against_ram_and_vram(tmp_path: Path) -> None:
    report = inspect_model(write_header_only_llama(tmp_path / "m.gguf", LLAMA_SHAPES["Llama-3-8B"]))
    estimate = estimate_memory(report, 8192)  # ~16 GB of F16 weights + 1 GiB of cache
    assert judge_fit(report, estimate, _machine(64 * GIB, 48 * GIB)).fit is Fit.FITS
    tight = judge_fit(report, estimate, _machine(32 * GIB, 10 * GIB))
    assert tight.fit is Fit.TIGHT and "Close other programs" in tight.explanation
    assert judge_fit(report, estimate, _machine(8 * GIB, 6 * GIB)).fit is Fit.TOO_LARGE
    big_gpu = judge_fit(report, estimate, _machine(16 * GIB, 8 * GIB, vram=24 * GIB))
    assert big_gpu.fit is Fit.FITS and big_gpu.gpu_layers == 32
    small_gpu = judge_fit(report, estimate, _machine(32 * GIB, 24 * GIB, vram=8 * GIB))
    layer = sum(t.n_bytes for t in report.tensors if t.name.startswith("blk.0.")) + GIB // 32
    expected = (8 * GIB - estimate.compute_bytes - (512 << 20)) // layer
    assert small_gpu.gpu_layers == expected and 0 < expected < 32
    assert small_gpu.fit is Fit.FITS


def test_hardware_probe_reports_this_machine() -> None:
    hardware = probe_hardware()
    assert 0 < hardware.ram_available <= hardware.ram_total
    assert any(d.kind is DeviceKind.CPU for d in hardware.devices)


# -- damaged and hostile files ---------------------------------------------------------------------


def test_missing_empty_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(ModelFileNotFoundError):
        read_header(tmp_path / "absent.gguf")
    (tmp_path / "empty.gguf").write_bytes(b"")
    with pytest.raises(NotAGGUFError, match="only 0 bytes"):
        read_header(tmp_path / "empty.gguf")
    (tmp_path / "page.gguf").write_bytes(b"<html>Not found</html>")
    with pytest.raises(NotAGGUFError, match="signature"):
        read_header(tmp_path / "page.gguf")
    with pytest.raises(NotAGGUFError, match="folder"):
        read_header(tmp_path)


def _patched(tmp_path: Path, source: Path, offset: int, value: bytes) -> Path:
    data = bytearray(source.read_bytes())
    data[offset : offset + len(value)] = value
    out = tmp_path / "patched.gguf"
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize(
    ("offset", "value", "problem"),
    [
        (4, struct.pack("<I", 99), "version 99"),
        (8, struct.pack("<Q", 1 << 40), "tensors, which no real model has"),
        (16, struct.pack("<Q", 1 << 40), "metadata entries, which no real model has"),
        (24, struct.pack("<Q", 1 << 60), "claims to be"),
        (24, struct.pack("<Q", 10_000_000), "ends early"),
    ],
)
def test_absurd_header_values_are_named(tmp_path: Path, offset: int, value: bytes, problem: str) -> None:
    seed = write_small_gguf(tmp_path / "seed.gguf")
    with pytest.raises(LlamaDeskError, match=problem) as info:
        read_header(_patched(tmp_path, seed, offset, value))
    assert "patched.gguf" in str(info.value)


def test_unknown_value_and_tensor_types(tmp_path: Path) -> None:
    seed = write_small_gguf(tmp_path / "seed.gguf")
    data = seed.read_bytes()
    key_end = 24 + 8 + len(b"general.architecture")  # first entry: its type follows its name
    with pytest.raises(DamagedGGUFError, match="unknown value type 77"):
        read_header(_patched(tmp_path, seed, key_end, struct.pack("<I", 77)))
    name = b"output_norm.weight"
    type_at = data.index(name) + len(name) + 4 + 8  # after n_dims (u32) and one dimension (u64)
    with pytest.raises(DamagedGGUFError, match="tensor type 200"):
        read_header(_patched(tmp_path, seed, type_at, struct.pack("<I", 200)))


def test_truncated_tensor_data_is_named(tmp_path: Path) -> None:
    seed = write_small_gguf(tmp_path / "seed.gguf")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(seed.read_bytes()[:-100])
    with pytest.raises(DamagedGGUFError, match=r"'output_norm.weight' ends 100 bytes beyond the end"):
        read_header(cut)


@pytest.mark.parametrize("keep", [9, 30, 200, 0.5, 0.9])
def test_truncated_headers_are_named(tmp_path: Path, keep: float) -> None:
    seed = write_small_gguf(tmp_path / "seed.gguf")
    data = seed.read_bytes()
    header_end = read_header(seed).data_offset
    n = int(keep if keep >= 1 else header_end * keep)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[:n])
    with pytest.raises(LlamaDeskError, match=r"cut\.gguf"):
        read_header(cut)


def _mutate(data: bytearray, rng: random.Random, header_end: int) -> bytearray:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if len(out) <= 5:
            break
        kind = rng.random()
        at = rng.randrange(4, min(header_end, len(out)))
        if kind < 0.4:
            out[at] = rng.randrange(256)
        elif kind < 0.7:
            out[at : at + 8] = struct.pack(
                "<Q", rng.choice([0, 1, 2**31, 2**32 - 1, 2**63, 2**64 - 1, rng.randrange(2**64)])
            )
        elif kind < 0.85:
            del out[at : at + rng.randint(1, 16)]
        else:
            out = out[: rng.randrange(4, len(out))]
    return out


def test_fuzzed_headers_fail_cleanly(tmp_path: Path) -> None:
    seed = write_small_gguf(tmp_path / "seed.gguf")
    data = bytearray(seed.read_bytes())
    header_end = read_header(seed).data_offset
    rng = random.Random(20261124)
    target = tmp_path / "fuzz.gguf"
    outcomes = {"parsed": 0, "rejected": 0}
    for _ in range(3000):
        target.write_bytes(_mutate(data, rng, header_end))
        try:
            read_header(target)
            outcomes["parsed"] += 1
        except (NotAGGUFError, DamagedGGUFError) as exc:
            assert "fuzz.gguf" in str(exc)
            outcomes["rejected"] += 1
    assert outcomes["rejected"] > 1000, outcomes


def test_fuzzed_real_model_headers_fail_cleanly(tmp_path: Path, starter_path: Path) -> None:
    sparse = write_header_only_copy(starter_path, tmp_path / "starter-header.gguf")
    header = read_header(sparse)
    with sparse.open("rb") as f:
        original = bytearray(f.read(header.data_offset))
    rng = random.Random(7)
    target = tmp_path / "fuzz.gguf"
    rejected = 0
    for _ in range(200):
        target.write_bytes(_mutate(original, rng, header.data_offset))
        os.truncate(target, header.file_size)  # the data region stays a sparse hole
        try:
            read_header(target)
        except (NotAGGUFError, DamagedGGUFError) as exc:
            assert "fuzz.gguf" in str(exc)
            rejected += 1
    assert rejected >= 50, f"only {rejected} of 200 mutations were caught: the fuzzer is not biting"


def test_split_model_is_one_model(tmp_path: Path) -> None:
    seed = write_small_gguf(tmp_path / "seed.gguf")
    reader = gguf.GGUFReader(seed)
    names = [t.name for t in reader.tensors]
    for index, part in enumerate(([names[0]], names[1:]), start=1):
        writer = gguf.GGUFWriter(tmp_path / f"model-{index:05d}-of-00002.gguf", arch="llama")
        writer.add_key_value("split.no", index - 1, gguf.GGUFValueType.UINT16)
        writer.add_key_value("split.count", 2, gguf.GGUFValueType.UINT16)
        for tensor in reader.tensors:
            if tensor.name in part:
                writer.add_tensor(tensor.name, tensor.data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    whole = inspect_model(seed)
    split = inspect_model(tmp_path / "model-00001-of-00002.gguf")
    assert split.parameters == whole.parameters
    assert len(split.paths) == 2
    (tmp_path / "model-00002-of-00002.gguf").unlink()
    with pytest.raises(DamagedGGUFError, match=r"missing 1 of its 2 files: model-00002-of-00002\.gguf"):
        inspect_model(tmp_path / "model-00001-of-00002.gguf")


# -- bounded in time: crafted headers whose work is out of all proportion to their bytes ---------


def _hostile_header(path: Path, body: bytes, n_tensors: int = 0, n_kv: int = 1, size: int = 2 * GIB) -> Path:
    """A GGUF v3 header (`body` after the counts) at the start of a sparse file of `size` bytes."""
    with path.open("wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv) + body)
        f.truncate(size)
    return path


def _key(name: str) -> bytes:
    return struct.pack("<Q", len(name)) + name.encode()


def _counting_steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A one-item list counting the items the parser really walks one by one."""
    from app.gguf import header as gguf_header

    walked = [0]
    real = gguf_header._Parser._walk

    def walk(self: gguf_header._Parser, count: int, min_bytes: int, what: str) -> Iterator[int]:
        for index in real(self, count, min_bytes, what):
            walked[0] += 1
            yield index

    monkeypatch.setattr(gguf_header._Parser, "_walk", walk)
    return walked


HOSTILE_HEADERS = {
    # 45 bytes: one key whose value is an array of 2^26 empty strings (all zero lengths, in the hole).
    "empty-strings": (_key("x") + struct.pack("<IIQ", 9, 8, 1 << 26), 0, 1),
    # an array of 2^26 empty nested arrays
    "empty-arrays": (_key("x") + struct.pack("<IIQ", 9, 9, 1 << 26), 0, 1),
    # 2^20 tensors declared, their infos in the hole
    "tensor-list": (b"", 1 << 20, 0),
    # 65,536 metadata entries declared, in the hole
    "entries": (b"", 0, 65_536),
}


@pytest.mark.parametrize("family", sorted(HOSTILE_HEADERS))
def test_a_sparse_file_cannot_make_the_parser_walk_its_holes(
    family: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body, n_tensors, n_kv = HOSTILE_HEADERS[family]
    walked = _counting_steps(monkeypatch)
    path = _hostile_header(tmp_path / f"{family}.gguf", body, n_tensors, n_kv)
    with pytest.raises(DamagedGGUFError, match=r"sparse or damaged file|any real model has"):
        inspect_model(path)
    assert walked[0] <= 1, f"the parser walked {walked[0]:,} items before refusing"


def test_real_bytes_cannot_buy_more_than_the_step_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written (not sparse) arrays of empty strings, each under the length limit, over the total."""
    from app.gguf import header as gguf_header

    monkeypatch.setattr(gguf_header, "MAX_HEADER_STEPS", 200_000)
    per_array, arrays = 60_000, 4
    body = b"".join(
        _key(f"k{i}") + struct.pack("<IIQ", 9, 8, per_array) + b"\0" * (8 * per_array) for i in range(arrays)
    )
    path = tmp_path / "dense.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, arrays) + body)
    walked = _counting_steps(monkeypatch)
    with pytest.raises(DamagedGGUFError, match="more than the 200,000 any real model has"):
        inspect_model(path)
    assert walked[0] <= 200_000, "the walk stopped at the budget, not after it"


def test_a_file_with_no_weights_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "vocab-only.gguf"
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_token_list(["a", "b"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    assert read_header(path).tensors == []
    with pytest.raises(DamagedGGUFError, match="no weights"):
        inspect_model(path)
