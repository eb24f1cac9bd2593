"""Black-box explanations: the model is seen only through ``Explained.score`` (batched, counted).

- ``occlusion``: leave one word out, ``f(x) - f(x without word i)``: F + 1 inputs, the cheap baseline
  (Zeiler & Fergus 2014 for images; Li, Monroe & Jurafsky 2016, "Understanding Neural Networks
  through Representation Erasure", for words).
- ``shap``: the ``shap`` package's partition explainer (Owen values over a hierarchy of the words)
  with its text masker (Lundberg & Lee 2017, "A Unified Approach to Interpreting Model Predictions").
- ``lime``: the ``lime`` package's text explainer, a weighted sparse-free linear model fitted to
  random word deletions (Ribeiro, Singh & Guestrin 2016, "Why Should I Trust You?").
- ``random``: seeded random attributions, the floor every faithfulness figure is compared with.

Both packages see the feature words joined by spaces and mark a removed word with a control
character; the text they build is parsed back into a keep mask, so the model sees the word
deleted, exactly as for occlusion and for the faithfulness metrics.
"""

from __future__ import annotations

import re
import time

import numpy as np

from caveat.errors import ConfigError
from caveat.explain.base import EXPLAINERS, Attribution
from caveat.explain.targets import Explained

MASK = "\x1a"  # not whitespace, never in a word we explain; numpy would strip a trailing "\x00"
_TOKEN = re.compile(r"\x1a|[^\s\x1a]+")


def _attribution(
    method: str, explained: Explained, values: np.ndarray, value: float, evaluations: int, started: float, **details
) -> Attribution:
    per_word = np.zeros(len(explained.words))
    per_word[explained.features] = values
    return Attribution(
        method=method,
        words=list(explained.words),
        word_attributions=per_word,
        features=explained.features.copy(),
        target=explained.target,
        value=float(value),
        evaluations=evaluations,
        seconds=time.perf_counter() - started,
        details=details,
    )


def _masked_scorer(explained: Explained):
    """A function of the texts shap/lime build (feature words, removed ones replaced by ``MASK``) -> values."""
    words = explained.feature_words
    if any(MASK in w for w in words):
        raise ConfigError("the text contains the control character \\x1a; remove it before explaining")

    def score(texts) -> np.ndarray:
        keep = np.ones((len(texts), len(words)), dtype=bool)
        for i, text in enumerate(texts):
            tokens = _TOKEN.findall(str(text))
            if len(tokens) != len(words):  # the packages changed how they mask: fail loudly, never misattribute
                raise RuntimeError(f"could not map a masked text back to its {len(words)} words: {text!r}")
            keep[i] = [t != MASK for t in tokens]
        return explained.score(keep)

    return score


def _check_features(explained: Explained, method: str) -> None:
    if explained.n_features == 0:
        raise ConfigError(f"{method}: nothing to explain, the input has no words besides the span")


@EXPLAINERS.register("occlusion")
def occlusion(explained: Explained, *, seed: int = 0) -> Attribution:
    """Leave-one-word-out: attribution of word i = ``f(x) - f(x without i)`` (deterministic)."""
    _check_features(explained, "occlusion")
    started = time.perf_counter()
    before = explained.evaluations
    f = explained.n_features
    keep = np.ones((f + 1, f), dtype=bool)
    keep[np.arange(1, f + 1), np.arange(f)] = False  # row 0: everything
    values = explained.score(keep)
    return _attribution(
        "occlusion", explained, values[0] - values[1:], values[0], explained.evaluations - before, started
    )


@EXPLAINERS.register("shap")
def shap_values(explained: Explained, *, max_evals: int = 500, seed: int = 0) -> Attribution:
    """Owen values from ``shap``'s partition explainer (``max_evals`` model inputs at most; its
    default is 500). Deterministic: the partition tree comes from the words, not from sampling."""
    import shap

    _check_features(explained, "shap")
    if isinstance(max_evals, bool) or not isinstance(max_evals, int) or max_evals < 2:
        raise ConfigError(f"max_evals must be an integer >= 2 (shap's default is 500). Got {max_evals!r}.")
    started = time.perf_counter()
    before = explained.evaluations
    masker = shap.maskers.Text(r"\s+", mask_token=MASK, collapse_mask_token=False)
    explainer = shap.Explainer(_masked_scorer(explained), masker, seed=seed)
    out = explainer([" ".join(explained.feature_words)], max_evals=max_evals, batch_size=128, silent=True)
    values = np.asarray(out.values[0], dtype=float)
    if values.shape != (explained.n_features,):
        raise RuntimeError(f"shap returned {values.shape} values for {explained.n_features} words")
    base = float(np.asarray(out.base_values).reshape(-1)[0])
    value = base + float(values.sum())  # efficiency: Owen values sum to f(x) - f(nothing)
    return _attribution(
        "shap", explained, values, value, explained.evaluations - before, started, base_value=base, max_evals=max_evals
    )


@EXPLAINERS.register("lime")
def lime_weights(explained: Explained, *, samples: int = 1000, seed: int = 0) -> Attribution:
    """Weights of ``lime``'s local linear model over ``samples`` random deletions (its default is
    5,000; 1,000 here keeps an explanation near a second on a CPU, and the benchmark reports how
    much the attributions move between seeds at both sizes)."""
    from lime.lime_text import LimeTextExplainer

    _check_features(explained, "lime")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ConfigError(f"samples must be an integer >= 2 (lime's default is 5000). Got {samples!r}.")
    started = time.perf_counter()
    before = explained.evaluations
    score = _masked_scorer(explained)

    def classifier(texts) -> np.ndarray:
        v = score(texts)
        return np.stack([1.0 - v, v], axis=1)  # lime explains column 1: the quantity itself

    lime = LimeTextExplainer(split_expression=r"\s+", bow=False, mask_string=MASK, random_state=seed)
    exp = lime.explain_instance(
        " ".join(explained.feature_words),
        classifier,
        labels=(1,),
        num_features=explained.n_features,
        num_samples=samples,
    )
    values = np.zeros(explained.n_features)
    for i, w in exp.local_exp[1]:
        values[i] = w
    return _attribution(
        "lime",
        explained,
        values,
        float(exp.predict_proba[1]),
        explained.evaluations - before,
        started,
        samples=samples,
        r2=float(exp.score),
        intercept=float(exp.intercept[1]),
    )


@EXPLAINERS.register("random")
def random_attribution(explained: Explained, *, seed: int = 0) -> Attribution:
    """Standard-normal attributions from ``seed``: no model call. The baseline of faithfulness."""
    _check_features(explained, "random")
    started = time.perf_counter()
    values = np.random.default_rng(seed).standard_normal(explained.n_features)
    return _attribution("random", explained, values, float("nan"), 0, started)
