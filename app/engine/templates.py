"""Turn a list of chat turns into the prompt text a model was trained on.

The model's own template (GGUF `tokenizer.chat_template`, Jinja, run sandboxed) is used when there
is one. Otherwise one of llama.cpp's built-in templates (`llama_chat_builtin_templates`, applied by
`llama_chat_apply_template`) is picked from the turn markers the vocabulary has, so Gemma, Phi,
Mistral, Qwen, DeepSeek and Llama 2/3 base models each get their family's format; its name and the
reason are reported, so the user knows why replies may be off.
"""

from __future__ import annotations

import ctypes
import datetime
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

import jinja2
import llama_cpp
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.core.errors import ChatTemplateError
from app.engine.generation import ChatTurn

#: (name, marker tokens that must each be one special token in the vocabulary, llama.cpp's built-in)
#: in order: more specific markers first (Phi 4 and ChatML share <|im_start|>).
BUILTIN_BY_MARKERS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("Llama 4", ("<|header_start|>", "<|eot|>"), "llama4"),
    ("Llama 3", ("<|start_header_id|>", "<|eot_id|>"), "llama3"),
    ("Phi 4", ("<|im_start|>", "<|im_sep|>"), "phi4"),
    ("ChatML", ("<|im_start|>", "<|im_end|>"), "chatml"),
    ("Gemma", ("<start_of_turn>", "<end_of_turn>"), "gemma"),
    ("Phi 3", ("<|user|>", "<|assistant|>", "<|end|>"), "phi3"),
    ("DeepSeek 3", ("<｜User｜>", "<｜Assistant｜>"), "deepseek3"),
    ("Mistral v7", ("[SYSTEM_PROMPT]", "[INST]", "[/INST]"), "mistral-v7"),
    ("Mistral", ("[INST]", "[/INST]"), "mistral-v3"),
    ("Command R", ("<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>"), "command-r"),
)
#: Without any turn markers: Llama 2's format, which llama-family base models were mostly tuned on.
LAST_RESORT = ("Llama 2", "llama2-sys-bos")


@dataclass(frozen=True)
class ChatTemplate:
    source: str  # the Jinja text, or the name of a llama.cpp built-in template
    name: str  # "the model's own template" or the family's name
    is_fallback: bool
    bos_token: str
    eos_token: str
    reason: str = ""  # why this fallback: "the vocabulary has <start_of_turn> and <end_of_turn>"

    def render(self, turns: Sequence[ChatTurn]) -> str:
        if self.is_fallback:  # one of llama.cpp's built-in templates
            return _apply_builtin(self.source, turns)
        try:
            return _compile(self.source).render(
                messages=[{"role": t.role, "content": t.content} for t in turns],
                add_generation_prompt=True,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
            )
        except jinja2.TemplateError as exc:
            raise ChatTemplateError(f"the chat template ({self.name}) failed: {exc}") from exc


def choose_template(
    model_template: str | None, is_special_token: Callable[[str], bool], bos_token: str, eos_token: str
) -> ChatTemplate:
    """The model's template if it has one, else llama.cpp's built-in for the first family whose turn
    markers the vocabulary has as special tokens."""
    if model_template:
        return ChatTemplate(model_template, "the model's own template", False, bos_token, eos_token)
    for name, markers, builtin in BUILTIN_BY_MARKERS:
        if all(is_special_token(m) for m in markers):
            reason = f"its vocabulary has {' and '.join(markers)}"
            return ChatTemplate(builtin, name, True, bos_token, eos_token, reason)
    name, builtin = LAST_RESORT
    reason = "its vocabulary has no known turn markers, so it is probably a base model"
    return ChatTemplate(builtin, name, True, bos_token, eos_token, reason)


def builtin_template_names() -> list[str]:
    """The templates this llama.cpp has built in ("llama3", "gemma", "chatml", ...)."""
    count = llama_cpp.llama_chat_builtin_templates(None, 0)
    names = (ctypes.c_char_p * count)()
    llama_cpp.llama_chat_builtin_templates(names, count)
    return [n.decode() for n in names if n]


def _apply_builtin(name: str, turns: Sequence[ChatTurn]) -> str:
    """`turns` in llama.cpp's built-in template `name`, with the assistant's turn opened."""
    keep = [(t.role.encode(), t.content.encode()) for t in turns]  # alive while C reads them
    messages = (llama_cpp.llama_chat_message * len(keep))()
    for message, (role, content) in zip(messages, keep, strict=True):
        message.role, message.content = role, content
    size = max(256, 2 * sum(len(r) + len(c) for r, c in keep))
    for _attempt in range(2):
        buffer = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_chat_apply_template(name.encode(), messages, len(keep), True, buffer, size)
        if n < 0:
            raise ChatTemplateError(f"llama.cpp does not know the built-in template {name!r}")
        if n <= size:
            return buffer.raw[:n].decode("utf-8", "replace")
        size = n  # the answer is how long it needs to be
    raise ChatTemplateError(f"llama.cpp's {name!r} template gave a prompt of no stable length")


def _raise_exception(message: str) -> NoReturn:
    raise jinja2.TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


@functools.lru_cache(maxsize=16)
def _compile(source: str) -> jinja2.Template:
    """Compile once per template text; model templates are untrusted, hence the sandbox."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)
    try:
        return env.from_string(source)
    except jinja2.TemplateError as exc:
        raise ChatTemplateError(f"the model's chat template does not compile: {exc}") from exc
