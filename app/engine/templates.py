"""Turn a list of chat turns into the prompt text a model was trained on.

The model's own template (GGUF `tokenizer.chat_template`, Jinja) is used when there
is one. Otherwise a fallback is picked from the special tokens the vocabulary has,
and its name is reported so the user knows replies may be off.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.core.errors import ChatTemplateError
from app.engine.generation import ChatTurn

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>"
    "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAMA2_TEMPLATE = (
    "{% set system = messages[0]['content'] if messages and messages[0]['role'] == 'system' else '' %}"
    "{% for m in messages if m['role'] != 'system' %}"
    "{% if m['role'] == 'user' %}{{ bos_token }}[INST] "
    "{% if loop.first and system %}<<SYS>>\n{{ system }}\n<</SYS>>\n\n{% endif %}"
    "{{ m['content'] | trim }} [/INST]"
    "{% else %} {{ m['content'] | trim }} {{ eos_token }}{% endif %}{% endfor %}"
)

#: (name, marker tokens that must be single special tokens in the vocabulary, template)
FALLBACKS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("Llama 3", ("<|start_header_id|>", "<|eot_id|>"), LLAMA3_TEMPLATE),
    ("ChatML", ("<|im_start|>", "<|im_end|>"), CHATML_TEMPLATE),
)
FINAL_FALLBACK = ("Llama 2", LLAMA2_TEMPLATE)


@dataclass(frozen=True)
class ChatTemplate:
    source: str  # the Jinja text
    name: str  # "the model's own template" or the fallback's name
    is_fallback: bool
    bos_token: str
    eos_token: str

    def render(self, turns: Sequence[ChatTurn]) -> str:
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
    """The model's template if it has one, else the first fallback whose markers the vocabulary knows."""
    if model_template:
        return ChatTemplate(model_template, "the model's own template", False, bos_token, eos_token)
    for name, markers, source in FALLBACKS:
        if all(is_special_token(m) for m in markers):
            return ChatTemplate(source, name, True, bos_token, eos_token)
    name, source = FINAL_FALLBACK
    return ChatTemplate(source, name, True, bos_token, eos_token)


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
