"""Shared fixtures: every test gets its own data home; inference runs the real starter model."""

from __future__ import annotations

import os

# Read at import by Qt and huggingface_hub: set before anything imports them.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.data_home import HOME_ENV_VAR, DataHome
from app.engine import ModelSession
from app.starter import starter_model_path
from tests.gguf_files import copy_gguf_without_keys


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DataHome:
    """A fresh, empty data home per test (the app must never write anywhere else)."""
    monkeypatch.setenv(HOME_ENV_VAR, str(tmp_path / "home"))
    return DataHome.resolve().ensure()


@pytest.fixture(scope="session")
def starter_path() -> Path:
    return starter_model_path()


@pytest.fixture(scope="session")
def starter_session(starter_path: Path) -> Iterator[ModelSession]:
    """One loaded starter model shared by the engine tests (loading is the slow part)."""
    with ModelSession(starter_path, n_ctx=2048) as session:
        yield session


@pytest.fixture(scope="session")
def templateless_model(starter_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The starter model rewritten without `tokenizer.chat_template`, as many side-loaded GGUFs are."""
    out = tmp_path_factory.mktemp("models") / "no-template.gguf"
    copy_gguf_without_keys(starter_path, out, {"tokenizer.chat_template"})
    return out
