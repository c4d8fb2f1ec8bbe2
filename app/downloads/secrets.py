"""The Hugging Face token, kept in the OS keyring (never in a file of ours or a log).

`keyring` picks whatever backend it finds; on a desktop without a Secret Service that can be a
file that stores passwords in plaintext (keyrings.alt) or no store at all. The app checks which
backend it got and refuses those with a message that says what to do, instead of saying "system
keyring" while writing the token to a file. `HF_TOKEN` in the environment is used for that run and
never stored, as huggingface_hub does.
"""

from __future__ import annotations

import contextlib
import logging
import os

import keyring
import keyring.backend
import keyring.errors

from app.core.errors import InsecureKeyringError, KeyringUnavailableError

log = logging.getLogger("secrets")

SERVICE = "llama-desk"
HF_TOKEN_USER = "huggingface-token"
TOKEN_ENV = "HF_TOKEN"

#: Backends that keep secrets readable by anyone who can read the file, or keep none at all.
_REFUSED = {
    "keyrings.alt.file.PlaintextKeyring": "a plaintext file",
    "keyrings.alt.file.EncryptedKeyring": "a file behind a password typed on the terminal",
    "keyrings.alt.Gnome.Keyring": "an unmaintained store",
    "keyring.backends.null.Keyring": "no store at all",
    "keyring.backends.fail.Keyring": "no store at all",
}


def _name(backend: keyring.backend.KeyringBackend) -> str:
    return f"{type(backend).__module__}.{type(backend).__qualname__}"


def backend_problem(backend: keyring.backend.KeyringBackend | None = None) -> str | None:
    """Why this backend must not hold the token, or None when it is a real OS keyring."""
    backend = backend or keyring.get_keyring()
    chained = getattr(backend, "backends", None)
    if chained is not None:  # a ChainerBackend writes to the first of its backends
        usable = [b for b in chained if _name(b) not in _REFUSED]
        return None if usable else backend_problem(chained[0]) if chained else "no store at all"
    what = _REFUSED.get(_name(backend))
    return None if what is None else f"{_name(backend)} ({what})"


class TokenStore:
    @property
    def from_environment(self) -> bool:
        return bool(os.environ.get(TOKEN_ENV, "").strip())

    def get(self) -> str | None:
        env = os.environ.get(TOKEN_ENV, "").strip()
        if env:
            return env
        if backend_problem() is not None:
            return None  # a token an earlier version left in a plaintext file is not read back
        try:
            return keyring.get_password(SERVICE, HF_TOKEN_USER)
        except keyring.errors.KeyringError as exc:
            log.warning("the OS keyring could not be read: %s", type(exc).__name__)
            return None

    def set(self, token: str) -> None:
        """Store `token` in the OS keyring; raises InsecureKeyringError or KeyringUnavailableError."""
        self._require_secure()
        try:
            keyring.set_password(SERVICE, HF_TOKEN_USER, token.strip())
        except keyring.errors.KeyringError as exc:
            raise KeyringUnavailableError(type(exc).__name__) from exc
        log.info("Hugging Face token saved in the OS keyring")

    def delete(self) -> None:
        if backend_problem() is not None:
            return
        try:
            with contextlib.suppress(keyring.errors.PasswordDeleteError):
                keyring.delete_password(SERVICE, HF_TOKEN_USER)
        except keyring.errors.KeyringError as exc:
            raise KeyringUnavailableError(type(exc).__name__) from exc
        log.info("Hugging Face token removed from the OS keyring")

    @staticmethod
    def _require_secure() -> None:
        problem = backend_problem()
        if problem is not None:
            raise InsecureKeyringError(problem)
