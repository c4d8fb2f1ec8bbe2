"""The keyring backend the tests choose explicitly (PYTHON_KEYRING_BACKEND): a JSON file in a temporary
folder named by LLAMA_DESK_TEST_KEYRING, shared by the test process and the CLI processes it starts.

It is not a backend `keyring` would ever pick by itself (priority below zero), and the app's refusal
of plaintext backends names keyrings.alt's, not this one: the tests check that refusal separately.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

FOLDER_ENV = "LLAMA_DESK_TEST_KEYRING"


class TestKeyring(KeyringBackend):
    priority = -1  # type: ignore[assignment]  # only when asked for by name

    @property
    def _file(self) -> Path:
        return Path(os.environ[FOLDER_ENV]) / "keyring.json"

    def _load(self) -> dict[str, str]:
        try:
            data: dict[str, str] = json.loads(self._file.read_text(encoding="utf-8"))
            return data
        except FileNotFoundError:
            return {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}\0{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}\0{username}"] = password
        self._file.write_text(json.dumps(data), encoding="utf-8")

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        if data.pop(f"{service}\0{username}", None) is None:
            raise PasswordDeleteError(username)
        self._file.write_text(json.dumps(data), encoding="utf-8")
