"""Fallback template choice and rendering (the model's own template is tested on the real model)."""

from __future__ import annotations

import pytest

from app.core.errors import ChatTemplateError
from app.engine.generation import ChatTurn
from app.engine.templates import builtin_template_names, choose_template

TURNS = [
    ChatTurn("system", "Be kind."),
    ChatTurn("user", "Hi"),
    ChatTurn("assistant", "Hello!"),
    ChatTurn("user", "Bye"),
]


def specials(*tokens: str) -> object:
    return lambda text: text in tokens


@pytest.mark.parametrize(
    ("markers", "family", "builtin", "expected_end"),
    [
        (
            ("<|start_header_id|>", "<|eot_id|>"),
            "Llama 3",
            "llama3",
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
        ),
        (("<|im_start|>", "<|im_end|>"), "ChatML", "chatml", "<|im_start|>assistant\n"),
        (("<|im_start|>", "<|im_end|>", "<|im_sep|>"), "Phi 4", "phi4", "<|im_start|>assistant<|im_sep|>"),
        (("<start_of_turn>", "<end_of_turn>"), "Gemma", "gemma", "<start_of_turn>model\n"),
        (("<|user|>", "<|assistant|>", "<|end|>"), "Phi 3", "phi3", "<|assistant|>\n"),
        (("[INST]", "[/INST]"), "Mistral", "mistral-v3", "[INST] Bye[/INST]"),
        (("[SYSTEM_PROMPT]", "[INST]", "[/INST]"), "Mistral v7", "mistral-v7", "[INST] Bye[/INST]"),
        (("<｜User｜>", "<｜Assistant｜>"), "DeepSeek 3", "deepseek3", "<｜User｜>Bye<｜Assistant｜>"),
    ],
)
def test_a_vocabulary_s_turn_markers_pick_llama_cpp_s_builtin_for_the_family(
    markers: tuple[str, ...], family: str, builtin: str, expected_end: str
) -> None:
    assert builtin in builtin_template_names()
    template = choose_template(None, specials(*markers), "<s>", "</s>")
    assert template.is_fallback and template.name == family and template.source == builtin
    assert markers[0] in template.reason
    prompt = template.render(TURNS)
    assert prompt.endswith(expected_end), prompt
    assert "Be kind." in prompt and "Hello!" in prompt


def test_a_vocabulary_without_markers_gets_llama_2_and_says_why() -> None:
    template = choose_template(None, specials(), "<s>", "</s>")
    assert template.name == "Llama 2" and "no known turn markers" in template.reason
    assert (
        template.render(TURNS)
        == "[INST] <<SYS>>\nBe kind.\n<</SYS>>\n\nHi [/INST]Hello!</s><s>[INST] Bye [/INST]"
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
