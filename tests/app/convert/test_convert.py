"""The checkpoint converter end to end: tiny real checkpoints in, GGUF out, judged by llama.cpp's logits.

Each tiny checkpoint (Meta Llama 2 with two shards, Meta Llama 3.1 with GQA and scaled RoPE,
Hugging Face safetensors with permuted Q/K) is converted, loaded by the real llama.cpp, and its
logits at every position compared with a numpy forward pass over the original weights. The
relative error is max |llama.cpp − reference| / max |reference|.
"""

from __future__ import annotations

import pickle
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import llama_cpp
import numpy as np
import pytest

import app.engine.session  # noqa: F401  (routes llama.cpp's log to ours)
from app.convert.checkpoint import ffn_width, meta_rope_scaling, open_checkpoint
from app.convert.pipeline import ConversionProgress, Stage, convert_checkpoint
from app.convert.quantize import quantize
from app.convert.safe_pickle import load_state_dict
from app.core.errors import (
    CheckpointFileMissingError,
    ConversionDiskSpaceError,
    ForbiddenPickleError,
    OperationCancelledError,
    QuantizeError,
    UnsupportedCheckpointError,
)
from tests.support.convert_checkpoints import (
    TinyLlama,
    state_dict_pickle,
    write_hf_llama,
    write_meta_llama2,
    write_meta_llama3,
    write_pth,
)
from tests.support.reference_llama import forward

TOKENS = [1, 7, 42, 99, 3, 250, 18, 64, 5, 300, 2, 77]
_GGML_TYPE_F32 = 0
_FLASH_ATTN_DISABLED = 0


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, TinyLlama]]:
    root = tmp_path_factory.mktemp("checkpoints")
    llama2 = write_meta_llama2(root / "meta2")
    llama3 = write_meta_llama3(root / "Meta-Llama-3.1-Tiny-Instruct")
    hf = write_hf_llama(root / "Llama-3-Tiny-Instruct")
    hf32 = write_hf_llama(root / "Llama-3.2-Tiny-Instruct", llama32=True)
    return {
        "meta-llama2": (root / "meta2" / "llama-2-tiny-chat", llama2),
        "meta-llama3.1": (root / "Meta-Llama-3.1-Tiny-Instruct", llama3),
        "hf": (root / "Llama-3-Tiny-Instruct", hf),
        "hf-llama3.2": (root / "Llama-3.2-Tiny-Instruct", hf32),
    }


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """An empty folder for the output (tmp_path also holds the data home)."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def llama_cpp_logits(path: Path, tokens: list[int]) -> np.ndarray[Any, Any]:
    """Logits for every position, from llama.cpp's C API (F32 KV cache, so only the weights differ)."""
    model_params = llama_cpp.llama_model_default_params()
    model_params.n_gpu_layers = 0
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), model_params)
    assert model, f"llama.cpp could not load {path}"
    ctx_params = llama_cpp.llama_context_default_params()
    ctx_params.n_ctx = ctx_params.n_batch = ctx_params.n_ubatch = 64
    ctx_params.type_k = ctx_params.type_v = _GGML_TYPE_F32
    ctx_params.flash_attn_type = _FLASH_ATTN_DISABLED
    ctx_params.n_threads = ctx_params.n_threads_batch = 2
    ctx = llama_cpp.llama_init_from_model(model, ctx_params)
    batch = llama_cpp.llama_batch_init(len(tokens), 0, 1)
    try:
        n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
        for i, token in enumerate(tokens):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, i, 1, 1
            batch.seq_id[i][0] = 0
        batch.n_tokens = len(tokens)
        assert llama_cpp.llama_decode(ctx, batch) == 0
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits(ctx), shape=(len(tokens), n_vocab)).copy()
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
        llama_cpp.llama_model_free(model)


def relative_error(actual: np.ndarray[Any, Any], expected: np.ndarray[Any, Any]) -> float:
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


@pytest.mark.parametrize("layout", ["meta-llama2", "meta-llama3.1", "hf", "hf-llama3.2"])
# F32 is held to 1e-5 (the issue asks 1e-3; llama.cpp lands near 3e-7): at 12 positions a wrong
# RoPE scale factor moves the logits by only 3e-5, so a looser bound would not notice it.
@pytest.mark.parametrize(("out_type", "bound"), [("F32", 1e-5), ("F16", 2e-3)])
def test_float_conversion_matches_reference(
    checkpoints: dict[str, tuple[Path, TinyLlama]], out_dir: Path, layout: str, out_type: str, bound: float
) -> None:
    src, model = checkpoints[layout]
    out = convert_checkpoint(src, out_dir / "model.gguf", out_type)
    error = relative_error(llama_cpp_logits(out, TOKENS), forward(model, TOKENS))
    print(f"{layout} {out_type}: max relative logit error {error:.2e}")
    assert error <= bound
    reader = gguf.GGUFReader(out)
    assert reader.fields["general.name"].contents() == src.name
    assert reader.fields["llama.attention.head_count_kv"].contents() == model.n_kv_heads
    names = {t.name for t in reader.tensors}
    assert ("rope_freqs.weight" in names) == (model.rope_scale is not None)
    assert ("output.weight" in names) == (layout != "hf-llama3.2")  # 3.2 ties it to the embeddings
    assert sorted(p.name for p in out_dir.iterdir()) == ["model.gguf"]  # no intermediate left


@pytest.mark.parametrize(
    ("layout", "quant", "bound"), [("meta-llama3.1", "Q8_0", 0.05), ("hf", "Q4_K_M", 0.4)]
)
def test_quantized_conversion_stays_close(
    checkpoints: dict[str, tuple[Path, TinyLlama]], out_dir: Path, layout: str, quant: str, bound: float
) -> None:
    src, model = checkpoints[layout]
    reports: list[ConversionProgress] = []
    out = convert_checkpoint(src, out_dir / "model.gguf", quant, reports.append)
    reader = gguf.GGUFReader(out)
    assert gguf.LlamaFileType(int(reader.fields["general.file_type"].contents())).name == f"MOSTLY_{quant}"
    error = relative_error(llama_cpp_logits(out, TOKENS), forward(model, TOKENS))
    print(f"{layout} {quant}: max relative logit error {error:.3f}")
    assert error <= bound
    assert list(dict.fromkeys(p.stage for p in reports)) == [
        Stage.READ,
        Stage.CONVERT,
        Stage.QUANTIZE,
        Stage.DONE,
    ]
    for stage in (Stage.CONVERT, Stage.QUANTIZE):  # each stage's progress only grows, and ends complete
        fractions = [p.fraction for p in reports if p.stage is stage]
        assert fractions == sorted(fractions)
        assert fractions[-1] == 1.0
    assert sorted(p.name for p in out_dir.iterdir()) == ["model.gguf"]


def test_hostile_pickle_is_refused_before_it_runs(tmp_path: Path) -> None:
    witness = tmp_path / "pwned"
    payload = b"\x80\x02cbuiltins\nopen\n(X" + _str(str(witness)) + b"X\x01\x00\x00\x00wtR."
    pickle.loads(payload).close()  # the payload is live: plain pickle runs it
    assert witness.exists()
    witness.unlink()

    with pytest.raises(ForbiddenPickleError, match=r"builtins\.open"):
        load_state_dict(payload)
    assert not witness.exists()

    folder = tmp_path / "llama-2-evil"
    folder.mkdir()
    (folder / "params.json").write_text(
        '{"dim": 8, "n_layers": 1, "n_heads": 1, "multiple_of": 8, "norm_eps": 1e-5}'
    )
    (folder / "tokenizer.model").write_bytes(b"")
    write_pth(folder / "consolidated.00.pth", {}, pickle_bytes=payload)
    with pytest.raises(ForbiddenPickleError):
        convert_checkpoint(folder, tmp_path / "evil.gguf", "F16")
    assert not witness.exists()
    assert not (tmp_path / "evil.gguf").exists()


def _str(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(4, "little") + data


def test_safe_pickle_reads_state_dict_descriptions() -> None:
    refs = load_state_dict(state_dict_pickle({"a.weight": ("0", (3, 4), 2, 14), "b": ("1", (5,), 0, 5)}))
    assert refs["a.weight"].shape == (3, 4)
    assert refs["a.weight"].stride == (4, 1)
    assert refs["a.weight"].offset == 2
    assert refs["a.weight"].storage.dtype == "BF16"
    assert refs["b"].storage.key == "1"


def _pstr(text: str) -> bytes:
    return b"X" + _str(text)


_MUTATION = b"}" + _pstr("dtype") + _pstr("F32") + b"s" + _pstr("itemsize") + b"K\x04s"  # {dtype: F32, ...}
_TENSORS = {"a.weight": ("0", (3, 4), 0, 12)}


@pytest.mark.parametrize(
    "target",
    [b"ctorch\nBFloat16Storage\n", b"ctorch\nTensor\n", b"ctorch._utils\n_rebuild_tensor_v2\n"],
    ids=["storage-type", "class", "function"],
)
@pytest.mark.parametrize("state", [_MUTATION, b"N" + _MUTATION + b"\x86"], ids=["dict-state", "slot-state"])
def test_a_pickle_cannot_set_state_on_a_shared_allowed_object(target: bytes, state: bytes) -> None:
    # BUILD on the target, POP it, then an ordinary state dict
    hostile = b"\x80\x02" + target + state + b"b0" + state_dict_pickle(_TENSORS)[2:]
    with pytest.raises(ForbiddenPickleError, match="BUILD"):
        load_state_dict(hostile)
    later = load_state_dict(state_dict_pickle(_TENSORS))  # the next checkpoint in this process
    assert later["a.weight"].storage.dtype == "BF16" and later["a.weight"].storage.itemsize == 2


def test_a_state_dict_with_metadata_state_is_read() -> None:
    """torch.save of `module.state_dict()` sets `_metadata` on the OrderedDict with BUILD."""
    plain = state_dict_pickle(_TENSORS)
    assert plain.endswith(b"u.")
    with_metadata = plain[:-1] + b"}" + _pstr("_metadata") + b"}" + _pstr("") + b"}" + b"ss" + b"b."
    assert load_state_dict(with_metadata)["a.weight"].shape == (3, 4)
    not_a_dict = plain[:-1] + b"K\x07b."
    with pytest.raises(ForbiddenPickleError, match="BUILD with a int"):
        load_state_dict(not_a_dict)


@pytest.mark.parametrize("stage", [Stage.READ, Stage.CONVERT, Stage.QUANTIZE])
def test_cancel_in_each_stage_leaves_nothing(
    checkpoints: dict[str, tuple[Path, TinyLlama]], out_dir: Path, stage: Stage
) -> None:
    src, _ = checkpoints["meta-llama2"]
    cancel = threading.Event()
    seen: list[ConversionProgress] = []

    def on_progress(p: ConversionProgress) -> None:
        seen.append(p)
        if p.stage is stage:
            cancel.set()

    with pytest.raises(OperationCancelledError):
        convert_checkpoint(src, out_dir / "model.gguf", "Q8_0", on_progress, cancel)
    assert list(out_dir.iterdir()) == []
    assert seen[-1].stage is stage


def test_failure_mid_conversion_leaves_nothing(
    checkpoints: dict[str, tuple[Path, TinyLlama]], out_dir: Path
) -> None:
    src, _ = checkpoints["hf"]

    def explode(p: ConversionProgress) -> None:
        if p.stage is Stage.CONVERT and p.done > 0:
            raise RuntimeError("the progress receiver broke")

    with pytest.raises(RuntimeError, match="receiver broke"):
        convert_checkpoint(src, out_dir / "model.gguf", "Q4_K_M", explode)
    assert list(out_dir.iterdir()) == []


def test_quantize_failure_is_reported_and_cleaned_up(out_dir: Path) -> None:
    garbage = out_dir / "garbage.gguf"
    garbage.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(QuantizeError):
        quantize(garbage, out_dir / "out.gguf", "Q8_0", n_parameters=1000)
    assert [p.name for p in out_dir.iterdir()] == ["garbage.gguf"]


def test_unsupported_and_incomplete_folders_are_named(tmp_path: Path, checkpoints: dict[str, Any]) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnsupportedCheckpointError, match=r"neither params\.json nor config\.json"):
        convert_checkpoint(tmp_path / "empty", tmp_path / "x.gguf")
    with pytest.raises(CheckpointFileMissingError):
        convert_checkpoint(tmp_path / "nowhere", tmp_path / "x.gguf")

    # A zip whose tensor entry is deflated cannot be memory-mapped: refused politely.
    src, _ = checkpoints["meta-llama3.1"]
    bad = tmp_path / "deflated"
    bad.mkdir()
    for name in ("params.json", "tokenizer.model", "consolidated.01.pth"):
        (bad / name).write_bytes((src / name).read_bytes())
    with (
        zipfile.ZipFile(src / "consolidated.00.pth") as original,
        zipfile.ZipFile(bad / "consolidated.00.pth", "w", zipfile.ZIP_DEFLATED) as copy,
    ):
        for info in original.infolist():
            copy.writestr(info.filename, original.read(info))
    with pytest.raises(UnsupportedCheckpointError, match="compressed"):
        open_checkpoint(bad)
    assert not (tmp_path / "x.gguf").exists()


def test_not_enough_disk_is_refused_before_writing(
    checkpoints: dict[str, tuple[Path, TinyLlama]], out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, _ = checkpoints["hf"]
    import shutil

    real: Callable[[Any], Any] = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1 << 20))
    with pytest.raises(ConversionDiskSpaceError, match="converting needs"):
        convert_checkpoint(src, out_dir / "model.gguf", "Q4_K_M")
    assert list(out_dir.iterdir()) == []


def test_ffn_width_matches_meta_releases() -> None:
    assert ffn_width(4096, 256, None) == 11008  # Llama 2 7B
    assert ffn_width(4096, 1024, 1.3) == 14336  # Llama 3 8B
    assert ffn_width(8192, 4096, 1.3) == 28672  # Llama 3 70B


def test_meta_rope_scaling_by_release() -> None:
    def factor(params: dict[str, Any]) -> float | None:
        scaling = meta_rope_scaling(params, params["dim"])
        return None if scaling is None else scaling.factor

    assert factor({"dim": 4096}) is None  # Llama 3
    assert factor({"dim": 4096, "use_scaled_rope": True}) == 8.0  # Llama 3.1 8B
    assert factor({"dim": 2048, "use_scaled_rope": True}) == 32.0  # Llama 3.2 1B
    assert factor({"dim": 2048, "use_scaled_rope": True, "rope_scaling_factor": 16}) == 16.0
