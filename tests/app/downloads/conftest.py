"""Fixtures the download tests share: a small valid GGUF's bytes to serve, and the model library."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.core.data_home import DataHome
from app.library.store import ModelLibrary
from tests.support.gguf_files import write_small_gguf


@pytest.fixture
def model_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_small_gguf(tmp_path_factory.mktemp("src") / "m.gguf").read_bytes()


@pytest.fixture
def library(data_home: DataHome) -> Iterator[ModelLibrary]:
    lib = ModelLibrary(data_home.library_db, data_home.models_dir)
    yield lib
    lib.close()
