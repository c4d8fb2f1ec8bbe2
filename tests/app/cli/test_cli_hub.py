"""`llama-desk models pull` and `llama-desk token` against the fake Hub, as separate processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core.data_home import DataHome
from app.downloads.licenses import NEEDS_ACCEPTANCE, LicenseBook
from tests.support.cli import run_cli
from tests.support.fake_hub import FakeFile, FakeHub, FakeRepo
from tests.support.gguf_files import write_small_gguf

TOKEN = "hf_SeCrEtToKeN1234567890"


cli = run_cli


@pytest.fixture
def model_bytes(tmp_path: Path) -> bytes:
    return write_small_gguf(tmp_path / "m.gguf").read_bytes()


@pytest.fixture(autouse=True)
def no_token_left_over() -> None:
    cli("token", "clear")


def test_pull_verifies_and_adds_the_model(fake_hub: FakeHub, model_bytes: bytes, data_home: DataHome) -> None:
    fake_hub.add_repo(FakeRepo("org/Tiny-GGUF", {"tiny-Q4_K_M.gguf": FakeFile(model_bytes)}))
    fake_hub.faults.cut_after = [3000]
    done = cli("models", "pull", "org/Tiny-GGUF")
    assert done.returncode == 0, done.stderr
    assert "Verified" in done.stdout
    [model] = [m for m in json.loads(cli("models", "list", "--json").stdout) if m["source"] == "huggingface"]
    assert Path(model["path"]).read_bytes() == model_bytes
    assert Path(model["path"]).parent == data_home.models_dir


@pytest.mark.parametrize(
    ("setup", "args", "code", "message"),
    [
        ("gated", ("org/Gated-GGUF",), 10, "needs to know who you are"),
        ("gated-stranger", ("org/Gated-GGUF",), 11, "has not been given access"),
        ("gated-pending", ("org/Gated-GGUF",), 11, "have not approved it yet"),
        ("plain", ("org/Missing-GGUF",), 12, "No model org/Missing-GGUF"),
        ("plain", ("org/Tiny-GGUF", "--quant", "Q2_K"), 12, "no file matches Q2_K"),
        ("corrupt", ("org/Tiny-GGUF",), 13, "arrived damaged"),
        ("huge", ("org/Tiny-GGUF",), 15, "Not enough free disk space"),
        ("llama-license", ("org/Tiny-GGUF",), 16, "Llama 3.2 Community License Agreement"),
    ],
)
def test_pull_failures_have_their_own_exit_code_and_message(
    fake_hub: FakeHub, model_bytes: bytes, setup: str, args: tuple[str, ...], code: int, message: str
) -> None:
    tiny = FakeFile(model_bytes)
    if setup == "corrupt":
        tiny = FakeFile(model_bytes, advertised_sha256="cd" * 32)
    if setup == "huge":
        tiny = FakeFile(model_bytes, advertised_size=1 << 50)
    fake_hub.add_repo(
        FakeRepo(
            "org/Tiny-GGUF",
            {"tiny-Q4_K_M.gguf": tiny},
            license="llama3.2" if setup == "llama-license" else "apache-2.0",
        )
    )
    fake_hub.add_repo(
        FakeRepo(
            "org/Gated-GGUF",
            {"g-Q4_K_M.gguf": FakeFile(model_bytes)},
            gated=True,
            approved_tokens={"hf_friend"},
            pending_tokens={TOKEN} if setup == "gated-pending" else set(),
        )
    )
    if setup in ("gated-stranger", "gated-pending"):
        assert cli("token", "set", stdin=TOKEN + "\n").returncode == 0
    done = cli("models", "pull", *args)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    [error] = [line for line in done.stderr.splitlines() if line.startswith("llama-desk: error:")]
    assert message in error


def test_no_network_exit_code(fake_hub: FakeHub) -> None:
    done = cli("models", "pull", "org/Tiny-GGUF", env={"HF_ENDPOINT": "http://127.0.0.1:9"})
    assert done.returncode == 14 and "Cannot reach Hugging Face" in done.stderr


def test_llama_license_is_recorded_when_accepted(
    fake_hub: FakeHub, model_bytes: bytes, data_home: DataHome
) -> None:
    fake_hub.add_repo(
        FakeRepo("org/Tiny-GGUF", {"tiny-Q4_K_M.gguf": FakeFile(model_bytes)}, license="llama3.2")
    )
    done = cli("models", "pull", "org/Tiny-GGUF", "--accept-license")
    assert done.returncode == 0, done.stderr
    assert "Accepted the Llama 3.2 Community License Agreement" in done.stderr
    acceptance = LicenseBook(data_home.library_db).acceptance(NEEDS_ACCEPTANCE["llama3.2"])
    assert acceptance is not None and acceptance.version == "2024-09-25"
    again = cli("models", "pull", "org/Tiny-GGUF")  # accepted once: no question; same file: no download
    assert again.returncode == 0, again.stderr
    assert "already in the library" in again.stdout
    assert len([r for r in fake_hub.requests if r.method == "GET" and "/resolve/" in r.path]) == 1


def test_gated_download_with_a_token_never_writes_the_token(
    fake_hub: FakeHub, model_bytes: bytes, data_home: DataHome
) -> None:
    fake_hub.add_repo(
        FakeRepo(
            "meta-llama/Gated-GGUF",
            {"g-Q4_K_M.gguf": FakeFile(model_bytes)},
            gated=True,
            approved_tokens={TOKEN},
        )
    )
    assert cli("token", "set", stdin=TOKEN + "\n").returncode == 0
    check = cli("token", "check", "meta-llama/Gated-GGUF")
    assert check.returncode == 0, check.stderr
    done = cli("--verbose", "models", "pull", "meta-llama/Gated-GGUF")
    assert done.returncode == 0, done.stderr
    assert any(r.authorization == f"Bearer {TOKEN}" for r in fake_hub.requests), "the keyring token was used"
    for path in data_home.root.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), f"the token leaked into {path}"
    assert TOKEN not in done.stdout + done.stderr


@pytest.mark.parametrize(
    "backend",
    ["keyrings.alt.file.PlaintextKeyring", "keyring.backends.null.Keyring"],
    ids=["plaintext", "null"],
)
def test_a_plaintext_or_null_keyring_is_refused_and_nothing_is_written(
    backend: str, tmp_path: Path, data_home: DataHome
) -> None:
    env = {"PYTHON_KEYRING_BACKEND": backend, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    done = cli("token", "set", stdin=TOKEN + "\n", env=env)
    assert done.returncode == 17, done.stderr
    assert "No secure keyring" in done.stderr and "HF_TOKEN" in done.stderr and backend in done.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), f"the token was written to {path}"


def test_hf_token_in_the_environment_is_used_for_the_run_and_never_stored(
    fake_hub: FakeHub, model_bytes: bytes, tmp_path: Path
) -> None:
    fake_hub.add_repo(
        FakeRepo(
            "meta-llama/Gated-GGUF",
            {"m-Q4_K_M.gguf": FakeFile(model_bytes)},
            gated=True,
            approved_tokens={TOKEN},
        )
    )
    env = {"PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring", "HF_TOKEN": TOKEN}
    check = cli("token", "check", "meta-llama/Gated-GGUF", env=env)
    assert check.returncode == 0, check.stderr
