"""Quantize a GGUF with llama.cpp (`llama_model_quantize`) in a child process, so Cancel can stop it.

The C call blocks until done and cannot be interrupted from Python; running it in a spawned
process lets the caller poll a cancel flag, kill the child, and report progress from the size
of the growing output file.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from pathlib import Path

from app.core.errors import OperationCancelledError, QuantizeError

log = logging.getLogger("convert")

#: The quantizations offered, with llama.cpp's ftype and roughly how many bits a weight takes.
QUANT_TYPES: dict[str, tuple[int, float]] = {
    "Q4_K_M": (15, 4.9),
    "Q5_K_M": (17, 5.7),
    "Q6_K": (18, 6.6),
    "Q8_0": (7, 8.5),
}
DEFAULT_QUANT = "Q4_K_M"
_POLL_S = 0.1


def estimated_size(quant: str, n_parameters: int) -> int:
    return int(n_parameters * QUANT_TYPES[quant][1] / 8)


def _quantize_child(source: str, target: str, ftype: int, n_threads: int) -> None:
    """Runs in the child: one blocking llama.cpp call; the exit status carries its result."""
    import ctypes
    import sys

    import llama_cpp

    @llama_cpp.llama_log_callback
    def quiet(_level: int, _text: bytes, _user_data: ctypes.c_void_p) -> None:
        pass

    llama_cpp.llama_log_set(quiet, ctypes.c_void_p(0))
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = n_threads
    rc = llama_cpp.llama_model_quantize(source.encode(), target.encode(), ctypes.byref(params))
    sys.exit(0 if rc == 0 else 3)


def quantize(
    source: Path,
    target: Path,
    quant: str,
    *,
    n_parameters: int,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    n_threads: int = 0,
) -> None:
    """Write `source` quantized as `quant` to `target`; on failure or cancel `target` is removed.

    `progress(done, total)` follows the output's size against its expected size (`n_parameters`
    weights at the type's bits per weight), capped below the total until llama.cpp returns.
    """
    if quant not in QUANT_TYPES:
        raise ValueError(f"unknown quantization {quant!r}; choose one of {', '.join(QUANT_TYPES)}")
    expected = estimated_size(quant, n_parameters)
    child = multiprocessing.get_context("spawn").Process(
        target=_quantize_child,
        args=(str(source), str(target), QUANT_TYPES[quant][0], n_threads),
        name="llama-desk-quantize",
        daemon=True,
    )
    started = time.perf_counter()
    child.start()
    try:
        while child.is_alive():
            if cancel is not None and cancel.is_set():
                raise OperationCancelledError("the quantization")
            if progress is not None:
                size = target.stat().st_size if target.exists() else 0
                progress(min(size, expected * 99 // 100), expected)
            child.join(_POLL_S)
        if child.exitcode != 0:
            raise QuantizeError(f"exit status {child.exitcode}")
    except BaseException:
        if child.is_alive():
            child.kill()
            child.join()
        target.unlink(missing_ok=True)
        raise
    finally:
        child.close()
    if progress is not None:
        progress(expected, expected)
    log.info("quantized %s to %s in %.1f s", source.name, quant, time.perf_counter() - started)
