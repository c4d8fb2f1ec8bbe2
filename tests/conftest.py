"""Shared fixtures: every test gets its own data home; inference runs the real starter model.

The real `huggingface_hub` client talks to a fake Hub on 127.0.0.1, started here before
anything imports the client (it reads HF_ENDPOINT at import). Secrets go to the keyring backend the
tests choose (tests/support/keyring_backend.py, a file in a temporary folder), never to the data home.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tests.support.fake_hub import FakeHub, Faults

# Read at import by Qt, huggingface_hub and keyring: set before anything imports them.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
FAKE_HUB = FakeHub().start()
os.environ["HF_ENDPOINT"] = FAKE_HUB.url
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.pop("HF_TOKEN", None)
os.environ["PYTHON_KEYRING_BACKEND"] = "tests.support.keyring_backend.TestKeyring"
os.environ["LLAMA_DESK_TEST_KEYRING"] = tempfile.mkdtemp(prefix="llama-desk-test-keyring-")
# CLI processes the tests start (the console script too) must find that backend.
_REPO = str(Path(__file__).resolve().parents[1])
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_REPO, os.environ.get("PYTHONPATH")]))

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

from app.core.data_home import HOME_ENV_VAR, DataHome  # noqa: E402
from app.core.starter import starter_model_path  # noqa: E402
from app.engine.session import ModelSession  # noqa: E402
from tests.support.gguf_files import copy_gguf_without_keys  # noqa: E402


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DataHome:
    """A fresh, empty data home per test (the app must never write anywhere else)."""
    monkeypatch.setenv(HOME_ENV_VAR, str(tmp_path / "home"))
    return DataHome.resolve().ensure()


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    """The fake Hub, emptied and without faults for each test."""
    FAKE_HUB.repos.clear()
    FAKE_HUB.faults = Faults()
    FAKE_HUB.requests.clear()
    FAKE_HUB.bytes_sent = 0
    yield FAKE_HUB


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
