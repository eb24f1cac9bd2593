"""Graph-based estimators (Lin, Trivedi & Sun 2024) on planted similarity graphs: block-diagonal cliques,
clusters that split step by step, and 3x3 cases worked by hand. No model: a fake equivalence plants W."""

from __future__ import annotations

import math

import numpy as np
import pytest

from caveat.errors import ConfigError
from caveat.generate import graph
from caveat.generate.estimators import ESTIMATORS, Context, parse_estimators
from caveat.generate.sampling import Answer, Generation
from caveat.generate.semantic import EmbeddingEquivalence, similarities

NAMES = ("eigv", "degree", "eccentricity")


class PlantedSimilarity:
    """An equivalence whose ``similarity`` returns a planted (K, K) matrix; counts calls."""

    def __init__(self, w) -> None:
        self.w, self.calls = np.asarray(w, dtype=float), []

    def similarity(self, texts, *, question=None):
        self.calls.append((list(texts), question))
        return self.w


def _answer(text: str) -> Answer:
    return Answer(text, [0], np.array([-1.0]), np.array([1.0]), True)


def _scores(w) -> dict[str, float]:
    """Every graph estimator on a generation of K distinct samples whose similarity graph is ``w``."""
    k = len(w)
    g = Generation("p", _answer("greedy"), [_answer(f"answer {i}") for i in range(k)], 0.0)
    ctx = Context(equivalence=PlantedSimilarity(w))
    return {n: ESTIMATORS.get(n).fn(g, ctx, "q") for n in NAMES}


def _blocks(sizes, order=None) -> np.ndarray:
    """All-ones cliques of the given sizes, no edges between them; ``order`` permutes the answers."""
    labels = np.repeat(np.arange(len(sizes)), sizes)
    if order is not None:
        labels = labels[order]
    return (labels[:, None] == labels[None, :]).astype(float)


@pytest.mark.parametrize("sizes", [[1, 1], [3, 3], [4, 1, 2], [2, 2, 2, 2], [1] * 6, [5, 1]])
def test_disconnected_cliques_count_exactly(sizes):
    k, c = sum(sizes), len(sizes)
    order = np.random.default_rng(c).permutation(k)  # the answers' order does not matter
    for w in (_blocks(sizes), _blocks(sizes, order)):
        got = _scores(w)
        assert got["eigv"] == pytest.approx(c, abs=1e-9)  # L: eigenvalue 0 c times, 1 otherwise
        assert got["degree"] == pytest.approx(1 - sum(n * n for n in sizes) / k**2, abs=1e-12)
        # null space of L: one indicator per clique, row j = e_b / sqrt(n_b); centred norm^2 = c - sum_b n_b / K
        assert got["eccentricity"] == pytest.approx(math.sqrt(c - 1), abs=1e-9)


@pytest.mark.parametrize("k", [2, 5, 8])
def test_identical_answers_are_one_meaning_and_no_spread(k):
    got = _scores(np.ones((k, k)))
    assert got["eigv"] == pytest.approx(1.0, abs=1e-9)
    assert got["degree"] == pytest.approx(0.0, abs=1e-12)
    assert got["eccentricity"] == pytest.approx(0.0, abs=1e-9)


def test_scores_grow_as_planted_clusters_split():
    hard = [_blocks(s) for s in ([6], [3, 3], [2, 2, 2], [2, 2, 1, 1], [2, 1, 1, 1, 1], [1] * 6)]
    got = {n: [_scores(w)[n] for w in hard] for n in NAMES}
    for n in NAMES:
        assert np.all(np.diff(got[n]) > 1e-6), (n, got[n])
    # two cliques of 3 whose cross-similarity fades from 1 to 0: L's second eigenvalue is 2e/(1+e)
    soft = []
    for e in (1.0, 0.75, 0.5, 0.25, 0.0):
        w = _blocks([3, 3])
        w[w == 0] = e
        soft.append(_scores(w))
    for n in ("eigv", "degree"):
        assert np.all(np.diff([s[n] for s in soft]) > 1e-6), n
        assert soft[0][n] == pytest.approx(_scores(np.ones((6, 6)))[n])
    ecc = [s["eccentricity"] for s in soft]  # a step: the second eigenvector joins once 2e/(1+e) < 0.9
    assert np.all(np.diff(ecc) >= -1e-9) and ecc[0] == pytest.approx(0, abs=1e-9) and ecc[1] == pytest.approx(1)
    assert [s["eigv"] for s in soft] == pytest.approx([1 + (1 - e) / (1 + e) for e in (1.0, 0.75, 0.5, 0.25, 0.0)])


def test_three_answers_worked_by_hand():
    # answers 0 and 1 half alike, 2 unrelated: degrees (1.5, 1.5, 1); D^-1/2 W D^-1/2 has the block
    # [[2/3, 1/3], [1/3, 2/3]] (eigenvalues 1, 1/3) and 1, so L has eigenvalues 0, 2/3, 0
    half = [[1, 0.5, 0], [0.5, 1, 0], [0, 0, 1]]
    got = _scores(half)
    assert got["eigv"] == pytest.approx(1 + 1 / 3 + 1)
    assert got["degree"] == pytest.approx(1 - (1.5 + 1.5 + 1) / 9)  # 5/9
    # all three eigenvalues < 0.9: V is a whole orthonormal basis, centred norm^2 = 3 - |V' 1|^2 / 3 = 2
    assert got["eccentricity"] == pytest.approx(math.sqrt(2))
    # 0 and 1 nearly alike: L's eigenvalues 0, 0, 1.8/1.9 > 0.9, so only the two null vectors embed:
    # rows (1/sqrt2, 0), (1/sqrt2, 0), (0, 1) -> centred rows (sqrt2/6, -1/3) twice, (-sqrt2/3, 2/3): norm^2 1
    near = [[1, 0.9, 0], [0.9, 1, 0], [0, 0, 1]]
    got = _scores(near)
    assert got["eigv"] == pytest.approx(2 + (1 - 1.8 / 1.9))
    assert got["degree"] == pytest.approx(1 - (1.9 + 1.9 + 1) / 9)  # 7/15
    assert got["eccentricity"] == pytest.approx(1.0)
    # three equally similar answers, W = (1 - a) I + a J: L has eigenvalues 0 and 3a/(1+2a) twice
    a = 0.3
    equal = (1 - a) * np.eye(3) + a * np.ones((3, 3))
    got = _scores(equal)
    assert got["eigv"] == pytest.approx(1 + 2 * (1 - 3 * a / (1 + 2 * a)))
    assert got["degree"] == pytest.approx(2 * (1 - a) / 3)
    assert got["eccentricity"] == pytest.approx(math.sqrt(2))  # 3a/(1+2a) = 0.5625 < 0.9: every eigenvector
    assert graph.eccentricity(equal, threshold=0.5) == pytest.approx(0.0, abs=1e-9)  # only the constant one
    # a chain, 0 ~ 1 ~ 2 but 0 !~ 2: degrees (2, 3, 2); D^-1/2 W D^-1/2 has eigenvalues 1 (sqrt d), 1/2
    # ((1, 0, -1) / sqrt2) and 4/3 - 3/2 = -1/6 (its trace), so L has 0, 1/2 and 7/6 > 1, which max(0, .) drops
    chain = [[1, 1, 0], [1, 1, 1], [0, 1, 1]]
    got = _scores(chain)
    assert got["eigv"] == pytest.approx(1 + 1 / 2 + 0)
    assert got["degree"] == pytest.approx(1 - 7 / 9)
    # rows (sqrt(2/7), 1/sqrt2), (sqrt(3/7), 0), (sqrt(2/7), -1/sqrt2); norm^2 = 2 - 3 |mean|^2
    assert got["eccentricity"] == pytest.approx(math.sqrt(2 - (11 + 4 * math.sqrt(6)) / 21))


def test_graph_estimators_need_two_samples():
    for k in (0, 1):
        g = Generation("p", _answer("x"), [_answer("y")] * k, 0.0)
        for n in NAMES:
            with pytest.raises(ConfigError, match=f"estimator '{n}' needs sampled answers; generate with samples >= 2"):
                ESTIMATORS.get(n).fn(g, Context(equivalence=PlantedSimilarity(np.ones((k, k)))), "q")
    assert not set(NAMES) & set(parse_estimators(None, samples=1))
    assert set(NAMES) <= set(parse_estimators(None, samples=2))
    with pytest.raises(ConfigError, match="needs sampled answers"):
        parse_estimators("eigv", samples=1)


def test_similarity_is_computed_once_per_generation_on_distinct_texts():
    eq = PlantedSimilarity([[1, 0.2], [0.2, 1]])
    g = Generation("p", _answer("x"), [_answer("Paris"), _answer("paris."), _answer("Rome")], 0.0)
    ctx = Context(equivalence=eq)
    w = ctx.similarity(g, "where ?")
    for n in NAMES:
        ESTIMATORS.get(n).fn(g, ctx, "where ?")
    assert eq.calls == [(["Paris", "Rome"], "where ?")]  # equal after normalisation: asked once, similarity 1
    np.testing.assert_allclose(w, [[1, 1, 0.2], [1, 1, 0.2], [0.2, 0.2, 1]])


def test_embedding_similarity_is_clipped_cosine():
    class Encoder:
        def encode(self, texts):
            vecs = {"a": [1.0, 0.0], "b": [0.6, 0.8], "c": [-1.0, 0.0]}
            return np.array([vecs[t] for t in texts])

    sim = EmbeddingEquivalence(0.9, encoder=Encoder()).similarity(["a", "b", "c"])
    np.testing.assert_allclose(sim, [[1, 0.6, 0], [0.6, 1, 0], [0, 0, 1]])  # opposite answers: 0, not -1
    assert similarities(["a"], EmbeddingEquivalence(0.9, encoder=Encoder())).tolist() == [[1.0]]


def test_entailment_similarity_averages_both_directions():
    import torch

    from caveat.generate.semantic import EntailmentEquivalence

    class Tok:
        def __call__(self, premises, hypotheses, **kwargs):
            return {"pairs": list(zip(premises, hypotheses))}

    p_entail = {("a", "b"): 0.9, ("b", "a"): 0.4, ("a", "c"): 0.1, ("c", "a"): 0.3, ("b", "c"): 0.0, ("c", "b"): 0.2}

    class Model:
        def __call__(self, pairs):  # two labels, entailment = 1, logits planted to give p_entail
            p = torch.tensor([p_entail[(a[-1], b[-1])] for a, b in pairs], dtype=torch.float64)
            logits = torch.stack([torch.log1p(-p + 1e-12), torch.log(p + 1e-12)], dim=1)
            return type("Out", (), {"logits": logits})()

    nli = EntailmentEquivalence.__new__(EntailmentEquivalence)
    nli.tokenizer, nli.model, nli.entailment, nli.batch_size = Tok(), Model(), 1, 4
    sim = nli.similarity(["a", "b", "c"], question="q ?")
    np.testing.assert_allclose(sim, [[1, 0.65, 0.2], [0.65, 1, 0.1], [0.2, 0.1, 1]], atol=1e-6)
    np.testing.assert_array_equal(nli.matrix(["a", "b", "c"], question="q ?"), np.eye(3, dtype=bool))


@pytest.mark.parametrize(
    ("w", "match"),
    [
        (np.ones((2, 3)), r"\(K, K\) matrix"),
        ([[1, 1.5], [1.5, 1]], r"lie in \[0, 1\]"),
        ([[1, 0.2], [0.4, 1]], "symmetric"),
        ([[0, 0.2], [0.2, 0]], "W_ii = 1"),
    ],
)
def test_bad_similarity_graphs_are_refused(w, match):
    with pytest.raises(ConfigError, match=match):
        graph.eigv(w)
