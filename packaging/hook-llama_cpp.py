"""PyInstaller hook for llama-cpp-python, which ships none upstream (llama-cpp-python #1475, #1565).

Without it the frozen app dies with "Shared library with base name 'llama' not found". The
libraries are collected as *binaries*, keeping the package's `llama_cpp/lib/` layout (the bindings
look there): on macOS only binaries land in Contents/Frameworks and get signed and notarized.

Wheels and sdist builds carry each Linux library up to three times (`libggml.so`, `libggml.so.0`,
`libggml.so.0.25.3`), as copies, not links. We keep the names something opens: `libllama.so` (the
bindings open it by that name), the sonames of the rest (`libggml.so.0`, which the libraries name as
NEEDED), and unversioned modules without a soname (the backends of a GGML_BACKEND_DL build, such as
`libggml-cuda.so`). Left out: `libllama.so.0`, a second libllama that only libmtmd needs, and libmtmd
(multimodal; llama-cpp-python imports it only for image chat, which the app does not use).
"""

import re
from pathlib import Path

from PyInstaller.utils.hooks import collect_dynamic_libs

_SONAME = re.compile(r"^(lib[\w.+-]+?\.so)\.\d+$")


def _keep(source: str, names: set[str]) -> bool:
    name = Path(source).name
    if name.startswith(("libmtmd", "mtmd")) or name.startswith("libllama.so."):
        return False  # libllama.so.0 would be a second libllama: the bindings open libllama.so
    if not name.startswith("lib") or ".so" not in name:
        return True  # .dylib and .dll: one file per library already
    if name == "libllama.so" or _SONAME.match(name):
        return True
    return name.endswith(".so") and not any(other.startswith(name + ".") for other in names)


_all = collect_dynamic_libs("llama_cpp", search_patterns=["*.dll", "*.dylib", "lib*.so", "lib*.so.*"])
_names = {Path(source).name for source, _ in _all}
binaries = [(source, dest) for source, dest in _all if _keep(source, _names)]
