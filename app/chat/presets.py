"""Named system prompts: a few built in, and the ones the user saves (kept in the settings)."""

from __future__ import annotations

from app.core.errors import PresetNameError
from app.core.settings import Settings

BUILT_IN_PRESETS: dict[str, str] = {
    "Helpful assistant": "You are a helpful, honest assistant. Answer clearly and say when you are not sure.",
    "Concise": "Answer in as few words as possible. No preamble, no summary at the end.",
    "Coding helper": (
        "You are an expert programmer. Give working code in fenced code blocks with the language named,"
        " then explain briefly. Point out bugs and edge cases."
    ),
    "Writing editor": (
        "You are a careful editor. Improve the clarity and flow of the text you are given, keep its meaning"
        " and voice, and list the main changes you made."
    ),
    "Translator": (
        "Translate the user's text into English, or into the language they ask for. Only the translation."
    ),
}
_NAME_LENGTH = 60


def all_presets(settings: Settings) -> dict[str, str]:
    """Built-in presets first, then the user's, in the order they were saved."""
    return {**BUILT_IN_PRESETS, **settings.system_prompt_presets}


def is_built_in(name: str) -> bool:
    return name in BUILT_IN_PRESETS


def save_preset(settings: Settings, name: str, text: str) -> str:
    """Save (or replace) the user's preset `name`; returns the cleaned name."""
    name = " ".join(name.split())
    if not name:
        raise PresetNameError("A preset needs a name.")
    if len(name) > _NAME_LENGTH:
        raise PresetNameError(f"Preset names are at most {_NAME_LENGTH} characters.")
    if is_built_in(name):
        raise PresetNameError(f"“{name}” is a built-in preset; save yours under another name.")
    if not text.strip():
        raise PresetNameError("An empty system prompt cannot be saved as a preset.")
    settings.system_prompt_presets[name] = text.strip()
    return name


def delete_preset(settings: Settings, name: str) -> None:
    if is_built_in(name):
        raise PresetNameError(f"“{name}” is built in and cannot be deleted.")
    settings.system_prompt_presets.pop(name, None)
