"""Fallback template choice and rendering (the model's own template is tested on the real model)."""

from __future__ import annotations

import pytest

from app.core.errors import ChatTemplateError
from app.engine.generation import ChatTurn
from app.engine.templates import choose_template

TURNS = [
    ChatTurn("system", "Be kind."),
    ChatTurn("user", "Hi"),
    ChatTurn("assistant", "Hello!"),
    ChatTurn("user", "Bye"),
]


def specials(*tokens: str) -> object:
    return lambda text: text in tokens


def test_llama3_markers_pick_the_llama3_format() -> None:
    template = choose_template(
        None, specials("<|start_header_id|>", "<|eot_id|>"), "<|begin_of_text|>", "<|end_of_text|>"
    )
    assert template.is_fallback and template.name == "Llama 3"
    prompt = template.render(TURNS)
    assert prompt.startswith(
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe kind.<|eot_id|>"
    )
    assert prompt.endswith(
        "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_vocabulary_without_markers_falls_back_to_llama2() -> None:
    template = choose_template(None, specials(), "<s>", "</s>")
    assert template.name == "Llama 2"
    assert (
        template.render(TURNS)
        == "<s>[INST] <<SYS>>\nBe kind.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]"
    )


def test_models_own_template_wins() -> None:
    template = choose_template(
        "{{ messages[0]['content'] }}!", specials("<|im_start|>", "<|im_end|>"), "", ""
    )
    assert not template.is_fallback
    assert template.render([ChatTurn("user", "Hi")]) == "Hi!"


def test_broken_template_is_a_clear_error() -> None:
    template = choose_template("{% for %}", specials(), "", "")
    with pytest.raises(ChatTemplateError, match="does not compile"):
        template.render(TURNS)


def test_template_raise_exception_becomes_a_clear_error() -> None:
    template = choose_template("{{ raise_exception('roles must alternate') }}", specials(), "", "")
    with pytest.raises(ChatTemplateError, match="roles must alternate"):
        template.render(TURNS)
