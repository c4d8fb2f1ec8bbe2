"""The Hugging Face token, kept in the OS keyring (never in a file of ours or a log)."""

from __future__ import annotations

import contextlib
import logging

import keyring
import keyring.errors

log = logging.getLogger("secrets")

SERVICE = "llama-desk"
HF_TOKEN_USER = "huggingface-token"


class TokenStore:
    def get(self) -> str | None:
        try:
            return keyring.get_password(SERVICE, HF_TOKEN_USER)
        except keyring.errors.KeyringError as exc:
            log.warning("the OS keyring could not be read: %s", type(exc).__name__)
            return None

    def set(self, token: str) -> None:
        keyring.set_password(SERVICE, HF_TOKEN_USER, token.strip())
        log.info("Hugging Face token saved in the OS keyring")

    def delete(self) -> None:
        with contextlib.suppress(keyring.errors.PasswordDeleteError):
            keyring.delete_password(SERVICE, HF_TOKEN_USER)
        log.info("Hugging Face token removed from the OS keyring")
