"""Fakes for attack tests: a keyword classifier, a bag-of-words sentence encoder, a synonym table, a planted LM."""

from __future__ import annotations

import re
import zlib

import numpy as np
import pytest

from caveat.robustness.attacks import AttackSetup, Constraints, Lexicons
from caveat.types import Predictions

SYNONYMS = {
    "good": ["fine", "nice"],
    "great": ["grand", "big", "large"],
    "movie": ["film", "picture"],
    "cast": ["crew", "actors"],
    "fun": ["joy"],
    "story": ["tale", "plot"],
    "ending": ["finale"],
}

# (text, true label); the keyword model gets all of them right
SENTENCES = [
    ("the movie was good and the cast was great fun", "positive"),
    ("A good story, with great actors and a fine ending.", "positive"),
    ("good   movie", "positive"),  # 2 words: a budget of 0 under 0.2
    ("the plot was dull and the acting slow", "negative"),
    ("really good fun , a great great cast and a good movie with a story", "positive"),
]


class KeywordModel:
    """P(positive) = sigmoid(bias + sum of the weights of the words present): "good" decides alone."""

    labels = ["negative", "positive"]

    def __init__(self, weights: dict[str, float] | None = None, bias: float = -2.0) -> None:
        self.weights = weights or {"good": 3.0, "great": 1.0}
        self.bias = bias
        self.calls: list[int] = []

    def predict(self, texts: list[str]) -> Predictions:
        self.calls.append(len(texts))
        logit = np.array(
            [self.bias + sum(self.weights.get(w, 0.0) for w in set(re.findall(r"[a-z]+", t.lower()))) for t in texts]
        )
        p = 1 / (1 + np.exp(-logit))
        return Predictions(probs=np.stack([1 - p, p], axis=-1)[None], labels=self.labels)  # (1, N, 2)


class BagOfWords:
    """Hashed word counts, L2-normalised: one word replaced in ten distinct words gives cosine 0.9."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), 4096))
        for i, t in enumerate(texts):
            for w in re.findall(r"\S+", t.lower()):
                out[i, zlib.crc32(w.encode()) % 4096] += 1
        return out / np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-12)


def synonyms(word: str) -> list[str]:
    return list(SYNONYMS.get(word.lower(), []))


class ShortWordsLM:
    """Stands in for the ``lm`` source (a ``WordLM``): after any context it proposes ``words`` in order, and a text's
    log-likelihood is minus its length, so the reranking puts the shortest proposals first whatever the context."""

    def __init__(self, words: list[str] | None = None) -> None:
        self.words = words if words is not None else [s for subs in SYNONYMS.values() for s in subs]
        self.calls: list[tuple[str, int]] = []  # ("next", prefixes) or ("ll", texts)

    def next_words(self, prefixes, k):
        self.calls.append(("next", len(prefixes)))
        return [self.words[:k] for _ in prefixes]

    def log_likelihood(self, texts):
        self.calls.append(("ll", len(texts)))
        return -np.array([len(t) for t in texts], dtype=float)


@pytest.fixture
def make_setup():
    def make(**constraints) -> AttackSetup:
        seed = constraints.pop("seed", 0)
        lexicons = Lexicons.of(synonyms=[(w, s) for w, subs in SYNONYMS.items() for s in subs])  # the ppdb source
        return AttackSetup(
            Constraints(**constraints),
            BagOfWords(),
            word_candidates=lambda: synonyms,
            seed=seed,
            lexicons=lexicons,
            language_model=ShortWordsLM,  # the lm source (bae)
        )

    return make


@pytest.fixture(scope="package")
def trained_runs(tiny_backbone, text_data, tmp_path_factory):
    """Shift / compare tests: (uncalibrated, calibrated) copies of one tiny run (4 epochs, all of the
    test split right), and a second, different run (fgm, 2 epochs). Tests that write copy them first."""
    import shutil
    import warnings

    from caveat.calibration.run import calibrate_run
    from caveat.config import load_config
    from caveat.training.loop import Trainer
    from tests.conftest import tiny_overrides

    root = tmp_path_factory.mktemp("robust-runs")
    Trainer(
        load_config(overrides=tiny_overrides(tiny_backbone, text_data, epochs=4)), root / "erm", progress=False
    ).fit()
    shutil.copytree(root / "erm", root / "erm-calibrated")
    with warnings.catch_warnings():  # a tiny model's temperature may sit on the search bound
        warnings.filterwarnings("ignore", "fitted temperature", UserWarning)
        calibrate_run(root / "erm-calibrated", target_risk=0.2, alpha=0.2)
    Trainer(
        load_config(overrides=tiny_overrides(tiny_backbone, text_data, epochs=2, objective="fgm")),
        root / "fgm",
        progress=False,
    ).fit()
    return root / "erm", root / "erm-calibrated", root / "fgm"


@pytest.fixture(scope="package")
def mixed_file(tmp_path_factory):
    """A shifted set: the test texts' kind, each with a second, conflicting keyword (twice), label of the first."""
    import random

    from tests.fakes import planted_texts, write_jsonl

    rng = random.Random(5)
    rows = []
    for row in planted_texts(60, seed=7):
        other = rng.choice([w for w in ("alpha", "beta", "gamma") if w not in row["text"].split()])
        rows.append({"text": f"{row['text']} {other} {other}", "label": row["label"]})
    return write_jsonl(tmp_path_factory.mktemp("shifted") / "mixed.jsonl", rows)


@pytest.fixture(scope="package")
def ner_fgm_run(tiny_backbone, ner_data, tmp_path_factory):
    """A second tiny NER run, different from the session's ``ner_run`` (fgm, 4 epochs), for compare tests."""
    from caveat.config import load_config
    from caveat.training.loop import Trainer
    from tests.conftest import one_thread, tiny_overrides

    run = tmp_path_factory.mktemp("robust-ner") / "fgm"
    overrides = tiny_overrides(tiny_backbone, ner_data, "token-classification", epochs=4, objective="fgm")
    with one_thread():
        Trainer(load_config(overrides=overrides), run, progress=False).fit()
    return run
