"""Where Llama Desk keeps what it writes: one folder, never the source tree or the current directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

#: Set this to keep all of the app's data in one chosen folder (tests, portable installs).
HOME_ENV_VAR = "LLAMA_DESK_HOME"
APP_NAME = "llama-desk"


@dataclass(frozen=True)
class DataHome:
    """The folder that holds the library, chats database, settings and logs."""

    root: Path

    @classmethod
    def resolve(cls) -> DataHome:
        """`$LLAMA_DESK_HOME` if set, else the platform's per-user data folder."""
        override = os.environ.get(HOME_ENV_VAR)
        root = Path(override).expanduser() if override else Path(platformdirs.user_data_dir(APP_NAME, False))
        return cls(root.resolve())

    def ensure(self) -> DataHome:
        for folder in (self.root, self.models_dir, self.logs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def chats_db(self) -> Path:
        return self.root / "chats.sqlite3"

    @property
    def library_db(self) -> Path:
        return self.root / "library.sqlite3"

    @property
    def settings_file(self) -> Path:
        return self.root / "settings.json"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def chat_cache_dir(self) -> Path:
        """llama.cpp caches of recent chats (app/chat/saved_state.py); safe to delete at any time."""
        return self.root / "chat-cache"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"
