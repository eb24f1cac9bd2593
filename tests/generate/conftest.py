"""Tiny random causal LMs, built once per session from a config (tests/fakes.py); ``tiny_lm_dir`` is in
tests/conftest.py, shared with the service tests."""

from __future__ import annotations

import pytest

from tests.fakes import make_causal_lm

CHAT = (
    "{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<s> assistant : {% endif %}"
)


@pytest.fixture(scope="session")
def tiny_chat_lm_dir(tmp_path_factory):
    return make_causal_lm(
        tmp_path_factory.mktemp("tiny-chat-lm"),
        ["True", "False", "user", "assistant", "system"],
        chat_template=CHAT,
        seed=1,
    )


@pytest.fixture(scope="session")
def tiny_lm(tiny_lm_dir):
    from caveat.generate.lm import load_lm

    return load_lm(str(tiny_lm_dir))


@pytest.fixture(scope="session")
def tiny_chat_lm(tiny_chat_lm_dir):
    from caveat.generate.lm import load_lm

    return load_lm(str(tiny_chat_lm_dir))
