"""PWWS (Ren et al. 2019) on a planted linear bag-of-words victim: the ranking computed by hand, the greedy
swaps in that order, the budget, the similarity floor, exact query counts, and constraints rechecked."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from caveat.errors import ConfigError
from caveat.robustness.attacks import PWWS, AttackSetup, Constraints, Lexicons, Victim, Words, build_attack
from caveat.robustness.attacks.pwws import weighted_saliency
from caveat.robustness.ner import attack_ner
from caveat.types import Predictions
from tests.robustness.conftest import SENTENCES, SYNONYMS, BagOfWords, KeywordModel

TEXT = "the superb acting and lovely music carried a dull plot"  # 10 distinct words; the, and, a: stop words
WEIGHTS = {"superb": 2.0, "acting": 0.5, "lovely": 1.0, "music": 0.3, "dull": -1.0, "plot": 0.0}
WEIGHTS |= {"fine": 0.5, "grand": 1.5, "nice": 0.2, "pleasant": 0.8, "score": 0.4, "performance": 0.6}
WEIGHTS |= {"boring": -1.2, "awful": -2.7, "story": 0.1}
LEXICON = {  # word -> synonyms, in lexicon order; "carried" has none
    "superb": ["grand", "fine"],
    "lovely": ["pleasant", "nice"],
    "music": ["score"],
    "acting": ["performance"],
    "dull": ["boring", "awful"],
    "plot": ["story"],
}


class LinearBag:
    """logit(positive) = bias + the sum of the weights of the words (with repeats); logit(negative) = 0.
    Records every batch of texts it scores."""

    labels = ["negative", "positive"]

    def __init__(self, bias: float = -1.0) -> None:
        self.bias = bias
        self.seen: list[list[str]] = []

    def score(self, text: str) -> float:
        return self.bias + sum(WEIGHTS.get(w, 0.0) for w in re.findall(r"[a-z]+", text.lower()))

    def predict(self, texts: list[str]) -> Predictions:
        self.seen.append(list(texts))
        p = np.array([1 / (1 + math.exp(-self.score(t))) for t in texts])
        return Predictions(probs=np.stack([1 - p, p], axis=-1)[None], labels=self.labels)  # (1, N, 2)


def pwws_setup(**constraints) -> AttackSetup:
    lexicons = Lexicons.of(synonyms=[(w, s) for w, subs in LEXICON.items() for s in subs])
    return AttackSetup(Constraints(**constraints), BagOfWords(), lexicons=lexicons)


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def by_hand(bias: float = -1.0) -> list[tuple[str, str, float, float, float]]:
    """(word, best swap, saliency, Δp*, score) in PWWS order, from the weights alone.

    s = bias + Σ weights = 1.8 and p = σ(s). Replacing w by the unknown token takes its weight away:
    S(w) = σ(s) − σ(s − weight(w)). Swapping w for c: Δp = σ(s) − σ(s − weight(w) + weight(c)); the best swap has
    the largest Δp. Every word with a synonym enters the softmax of the saliencies; "music", "acting" and "plot"
    have no swap lowering p (Δp* ≤ 0) and are never swapped.
    """
    s = bias + sum(WEIGHTS[w] for w in ("superb", "acting", "lovely", "music", "dull", "plot"))
    p = sigmoid(s)
    rows = {}
    for word, subs in LEXICON.items():
        saliency = p - sigmoid(s - WEIGHTS[word])
        deltas = {c: p - sigmoid(s - WEIGHTS[word] + WEIGHTS[c]) for c in subs}
        best = max(deltas, key=deltas.get)
        rows[word] = (best, saliency, deltas[best])
    z = sum(math.exp(saliency) for _, saliency, _ in rows.values())
    scored = [(w, best, sal, d, math.exp(sal) / z * d) for w, (best, sal, d) in rows.items() if d > 0]
    return sorted(scored, key=lambda row: -row[4])


def test_ranking_matches_the_hand_computation():
    expected = by_hand()
    # the three orders differ: by the score, by Δp* alone (dull's awful first), by saliency alone (lovely second)
    assert [w for w, *_ in expected] == ["superb", "dull", "lovely"]
    assert sorted(expected, key=lambda r: -r[3])[0][0] == "dull" and sorted(expected, key=lambda r: -r[2])[1][0] == (
        "lovely"
    )
    attack = build_attack("pwws", pwws_setup())
    ranked = attack.rank(Victim(LinearBag()), TEXT, "positive")
    assert [(r.word, r.substitute) for r in ranked] == [(w, best) for w, best, *_ in expected]
    assert [r.position for r in ranked] == [1, 8, 4]
    for r, (_, _, saliency, delta, score) in zip(ranked, expected):
        assert (r.saliency, r.delta, r.score) == pytest.approx((saliency, delta, score), rel=1e-9, abs=1e-12)
        assert r.similarity == pytest.approx(0.9)  # one of 10 distinct words swapped


def test_weighted_saliency_on_arrays():
    saliency, delta, score = weighted_saliency(0.9, np.array([0.5, 0.9, 1.0]), np.array([0.2, 0.6, 0.95]))
    assert saliency == pytest.approx([0.4, 0.0, -0.1]) and delta == pytest.approx([0.7, 0.3, -0.05])
    weights = np.exp([0.4, 0.0, -0.1]) / np.exp([0.4, 0.0, -0.1]).sum()
    assert score == pytest.approx(weights * [0.7, 0.3, -0.05])
    assert [len(a) for a in weighted_saliency(0.5, np.zeros(0), np.zeros(0))] == [0, 0, 0]


def test_swaps_follow_the_ranking_until_the_label_flips():
    model = LinearBag()
    victim = Victim(model)
    r = build_attack("pwws", pwws_setup(min_similarity=0.75)).attack(victim, TEXT, "positive")
    # superb -> fine (s = 0.3, still positive), then dull -> awful (s = -1.4): flipped at the budget, 2 of 10 words
    assert r.success and r.changed == 2 and r.adversarial == "the fine acting and lovely music carried a awful plot"
    assert r.adversarial_prob == pytest.approx(1 - sigmoid(-1.4)) and r.similarity == pytest.approx(0.8)
    # queries: the original; one batch of the 6 words with [UNK] and their 9 swaps; the second swap alone
    # (the first swap's text was in the batch)
    assert [len(batch) for batch in model.seen] == [1, 6 + 9, 1]
    assert r.queries == victim.queries == 17
    assert model.seen[1][:6] == [Words.of(TEXT).replace(i, "[UNK]").text for i in (1, 2, 4, 5, 8, 9)]
    assert model.seen[2] == [r.adversarial]


def test_stops_at_the_budget():
    model = LinearBag(bias=5.0)  # no swap flips it
    victim = Victim(model)
    r = build_attack("pwws", pwws_setup(max_change=0.2, min_similarity=0.5)).attack(victim, TEXT, "positive")
    assert not r.success and r.changed == 2 == Constraints(max_change=0.2).budget(10)
    assert r.adversarial == "the fine acting and lovely music carried a awful plot"  # the top two; lovely kept
    assert r.queries == 1 + 15 + 1 and [len(b) for b in model.seen] == [1, 15, 1]
    # a larger budget swaps the third ranked word too, and no word whose best swap does not lower p
    model = LinearBag(bias=5.0)
    r = build_attack("pwws", pwws_setup(max_change=0.9, min_similarity=0.5)).attack(Victim(model), TEXT, "positive")
    assert r.changed == 3 and r.adversarial == "the fine acting and nice music carried a awful plot"
    assert [len(b) for b in model.seen] == [1, 15, 1, 1]


def test_a_swap_that_breaks_the_similarity_floor_is_passed_over():
    model, encoder = LinearBag(bias=5.0), BagOfWords()
    setup = AttackSetup(Constraints(max_change=0.5, min_similarity=0.85), encoder, lexicons=pwws_setup().lexicons)
    r = build_attack("pwws", setup).attack(Victim(model), TEXT, "positive")
    # one swap: cosine 0.9; two: 0.8 < 0.85, so the second and third ranked are measured, passed over, never scored
    (top, swap, *_), *rest = by_hand(bias=5.0)
    assert [w for w, *_ in rest] == ["superb", "lovely"]  # saturated: dull's awful now ranks first
    assert r.changed == 1 and r.adversarial == TEXT.replace(top, swap) and r.similarity == pytest.approx(0.9)
    assert [len(b) for b in model.seen] == [1, 15] and r.queries == 16
    assert encoder.calls == [1 + 9, 1, 1]  # the original and every single swap at once, then each cumulative text


def check_constraints(r, text: str, label: str, model, constraints: Constraints, synonyms: dict[str, list[str]]):
    """Recompute what a PWWS result claims, without the attack's code."""
    encoder = BagOfWords()
    before, after = text.split(), r.adversarial.split()
    assert len(before) == len(after)
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    n_words = sum(any(ch.isalpha() for ch in t) for t in before)
    assert r.changed == len(changed) <= math.floor(constraints.max_change * n_words + 1e-9)
    for i in changed:
        old, new = re.sub(r"[^A-Za-z]", "", before[i]), re.sub(r"[^A-Za-z]", "", after[i])
        assert old.lower() not in constraints.stop_words and len(old) > 1
        assert new.lower() in [s.lower() for s in synonyms[old.lower()]]  # a lexicon synonym of the word
    similarity = float(encoder.encode([r.adversarial])[0] @ encoder.encode([text])[0])
    assert r.similarity == pytest.approx(similarity) and (not changed or similarity >= constraints.min_similarity)
    probs = model.predict([r.adversarial]).mean_probs[0]
    assert r.adversarial_label == model.labels[int(np.argmax(probs))]
    assert r.adversarial_prob == pytest.approx(float(probs.max()))
    assert r.success == (r.attacked and r.adversarial_label != label)


@pytest.mark.parametrize("max_change,min_similarity", [(0.2, 0.8), (0.3, 0.85), (0.5, 0.6), (1.0, 0.0)])
def test_constraints_recomputed_independently(max_change, min_similarity):
    constraints = Constraints(max_change=max_change, min_similarity=min_similarity)
    symmetric: dict[str, list[str]] = {}
    for w, subs in SYNONYMS.items():
        for s in subs:
            symmetric.setdefault(w, []).append(s)
            symmetric.setdefault(s, []).append(w)
    setup = AttackSetup(
        constraints, BagOfWords(), lexicons=Lexicons.of(synonyms=[(w, s) for w, subs in SYNONYMS.items() for s in subs])
    )
    attack = build_attack("pwws", setup)
    model = KeywordModel()
    victim = Victim(model)
    results = [attack.attack(victim, text, label) for text, label in SENTENCES]
    assert any(r.success for r in results)
    for (text, label), r in zip(SENTENCES, results):
        check_constraints(r, text, label, KeywordModel(), constraints, symmetric)
    assert sum(r.queries for r in results) == victim.queries == sum(model.calls)
    planted = build_attack("pwws", pwws_setup(max_change=max_change, min_similarity=min_similarity))
    r = planted.attack(Victim(LinearBag()), TEXT, "positive")
    assert r.changed or min_similarity > 0.8  # not vacuous: one swap keeps 0.9
    check_constraints(r, TEXT, "positive", LinearBag(), constraints, LEXICON)


def test_registered_with_its_sources_and_refused_on_ner():
    attack = build_attack("pwws", pwws_setup())
    assert isinstance(attack, PWWS) and attack.report()["sources"] == ["ppdb"] and attack.unknown == "[UNK]"
    near = build_attack("pwws@embedding", AttackSetup(Constraints(), BagOfWords(), word_candidates=lambda: str.split))
    assert isinstance(near, PWWS) and near.report()["sources"] == ["embedding"]
    with pytest.raises(ConfigError, match="pwws ranks words by one label's probability, .* use greedy@ppdb"):
        attack_ner(KeywordModel(), [], [attack])
