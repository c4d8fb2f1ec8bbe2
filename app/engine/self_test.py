"""`llama-desk --self-test`: prove that an installed app works on this machine, in a few seconds.

It catches what a packaged app gets wrong and unit tests cannot see: a llama.cpp library left out
of the bundle, a backend that does not load, a starter model that is missing. It loads the starter
model (or another), generates a few tokens, and reports the backend, the GPUs and the shared
libraries the process really loaded. The Qt half (open the window, grab it) is in ui/launcher.py.
"""

from __future__ import annotations

import logging
import platform
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from app.core.errors import LlamaDeskError, SelfTestError
from app.engine.backends import BackendReport, detect_backend
from app.engine.generation import ChatTurn, GenerationParams

log = logging.getLogger("self_test")

#: Substrings naming the libraries worth reporting: llama.cpp's, its OpenMP runtime, GPU runtimes, Qt's.
_INTERESTING_LIBRARIES = ("llama", "ggml", "mtmd", "gomp", "omp", "cuda", "cublas", "vulkan", "metal", "qt6")
_PROMPT = "Say hello in three words."


@dataclass(frozen=True)
class SelfTestReport:
    model: Path
    backend: BackendReport
    offload: str  # where the model's layers ran, and why
    load_s: float
    text: str
    completion_tokens: int
    tokens_per_s: float
    libraries: tuple[str, ...]

    def lines(self) -> list[str]:
        """The report as `--self-test` prints it (one fact per line, easy to grep in CI)."""
        frozen = "frozen app" if getattr(sys, "frozen", False) else "from source"
        return [
            f"python: {platform.python_version()} on {platform.platform()} ({frozen})",
            f"backend: {self.backend.describe()}",
            f"llama.cpp backends compiled in: {', '.join(self.backend.registries) or 'none reported'}",
            f"model: {self.model.name} loaded in {self.load_s:.2f} s; {self.offload}",
            f"generated {self.completion_tokens} tokens at {self.tokens_per_s:.1f} tok/s: "
            f"{self.text.strip()!r}",
            *(f"library: {path}" for path in self.libraries),
        ]


def run_self_test(model: Path | None = None, *, max_tokens: int = 8) -> SelfTestReport:
    """Load `model` (default: the bundled starter), generate `max_tokens` tokens, report what ran."""
    try:
        from app.core.starter import starter_model_path
        from app.engine.session import (
            ModelSession,  # imports llama.cpp: the first thing that breaks in a bad bundle
        )

        path = model if model is not None else starter_model_path()
        backend = detect_backend()
    except (ImportError, OSError, LlamaDeskError) as exc:
        raise SelfTestError("loading llama.cpp", str(exc)) from exc
    started = time.perf_counter()
    try:
        with ModelSession(path, n_ctx=512) as session:
            load_s = time.perf_counter() - started
            result = session.generate(
                [ChatTurn("user", _PROMPT)], GenerationParams(temperature=0.0, max_tokens=max_tokens, seed=1)
            )
            offload = session.info.offload
    except LlamaDeskError as exc:
        raise SelfTestError(f"running {path.name}", str(exc)) from exc
    if result.stats.completion_tokens == 0:
        raise SelfTestError(f"running {path.name}", "the model generated no tokens")
    report = SelfTestReport(
        model=path,
        backend=backend,
        offload=offload,
        load_s=load_s,
        text=result.text,
        completion_tokens=result.stats.completion_tokens,
        tokens_per_s=result.stats.tokens_per_s,
        libraries=tuple(loaded_libraries()),
    )
    log.info("self-test passed: %s", "; ".join(report.lines()[:5]))
    return report


def loaded_libraries(interesting: Iterable[str] = _INTERESTING_LIBRARIES) -> list[str]:
    """Paths of the shared libraries this process has loaded whose names mention `interesting`.

    These are the files really in use, so a frozen app shows it uses its own bundled copies.
    """
    keys = tuple(word.lower() for word in interesting)
    own = Path(sys.executable).name  # a frozen app's own executable is called llama-desk
    return sorted(
        p for p in loaded_files() if Path(p).name != own and any(key in Path(p).name.lower() for key in keys)
    )


def loaded_files() -> set[str]:
    """Every file mapped into this process (on macOS, where psutil cannot tell: llama.cpp's libraries)."""
    try:
        return {m.path for m in psutil.Process().memory_maps()}
    except (psutil.Error, AttributeError, NotImplementedError):
        import llama_cpp

        return {str(p) for p in (Path(llama_cpp.__file__).parent / "lib").iterdir()}
