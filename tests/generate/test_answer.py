"""What ``caveat generate`` and POST /v1/generate share: model names as a policy records them, and the
estimators a policy needs."""

from __future__ import annotations

import numpy as np
import pytest

from caveat.errors import ConfigError
from caveat.generate.answer import estimator_names
from caveat.generate.lm import SMOLLM2_GGUF, same_lm, split_lm_name
from caveat.generate.policy import GenerationPolicy
from caveat.generate.sampling import SamplingConfig


def test_a_recorded_model_name_splits_back_into_folder_and_gguf_file(tmp_path):
    assert split_lm_name(f"default:{SMOLLM2_GGUF}") == ("default", SMOLLM2_GGUF)  # what load_lm('default') records
    assert split_lm_name("org/model") == ("org/model", None)
    assert split_lm_name("C:/models/m") == ("C:/models/m", None)  # a colon alone names no GGUF file
    assert same_lm("default", f"default:{SMOLLM2_GGUF}")
    (tmp_path / "m").mkdir()
    assert same_lm(str(tmp_path / "m"), f"{tmp_path}/./m")
    assert not same_lm("default", str(tmp_path / "m"))


def test_the_policys_estimator_is_always_computed_once():
    s = np.linspace(0, 2, 200)
    policy = GenerationPolicy.fit(
        s,
        s > 1,
        lm="m",
        sampling=SamplingConfig(samples=2),
        estimator="msp",
        rule="contains",
        target_risk=0.1,
        delta=0.1,
    )
    assert estimator_names("perplexity", samples=2, policy=policy) == ["perplexity", "msp"]
    assert estimator_names("msp,perplexity", samples=2, policy=policy) == ["msp", "perplexity"]
    with pytest.raises(ConfigError, match="unknown estimator 'nope'; choose one of: .*msp"):
        estimator_names(["nope"], samples=2, policy=policy)
