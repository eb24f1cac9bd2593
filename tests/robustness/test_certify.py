"""SAFER's certificate (Ye, Gong & Liu 2020) on a planted bag-of-words classifier and hand-written synonym sets,
where the smoothed probabilities, the sets' overlaps and the total-variation distances are computed exactly by
enumeration: the sets and Δ match the hand computation, p_A's bound is Clopper–Pearson's, and no substitution
within the sets and the budget changes a certified prediction."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import binomtest

from caveat.errors import ConfigError, DataError
from caveat.robustness.attacks import Lexicons
from caveat.robustness.certify import Drawn, certify, clopper_pearson_lower
from caveat.robustness.perturbation_sets import PerturbationSets, tv_bound
from caveat.types import Predictions

# a chain good - fine - nice - bland - dull, and a pair film - movie; with K = 3 the chain's balls are
#   T(good) = good fine nice    T(fine) = fine good nice    T(nice) = nice fine bland
#   T(bland) = bland nice dull  T(dull) = dull bland nice   T(film) = film movie (its whole component)
CHAIN = {
    "good": ["fine"],
    "fine": ["good", "nice"],
    "nice": ["fine", "bland"],
    "bland": ["nice", "dull"],
    "dull": ["bland"],
    "film": ["movie"],
    "movie": ["film"],
}
# q(w) = min over substitutes w' of |T(w) ∩ T(w')| / 3, worked out by hand from the balls above
OVERLAPS = {"good": 1.0, "fine": 2 / 3, "nice": 2 / 3, "bland": 2 / 3, "dull": 1.0, "film": 1.0, "plot": 1.0}
POSITIVE = {"good", "fine", "nice"}  # the planted classifier counts these


def count_classifier(k: int):
    """Positive iff at least ``k`` words of ``POSITIVE`` (any case, punctuation ignored): (N, 2) probabilities."""

    def probs(texts: list[str]) -> np.ndarray:
        counts = np.array([sum(w.strip(".,!").lower() in POSITIVE for w in t.split()) for t in texts])
        p = (counts >= k).astype(float)
        return np.stack([1 - p, p], axis=-1)

    return probs


def smoothing(words: tuple[str, ...], sets: PerturbationSets) -> dict[tuple[str, ...], float]:
    """Π(x) exactly: every text it draws with its probability (each word uniform over T(w), independently)."""
    balls = [sets.randomization(w) if len(sets.randomization(w)) > 1 else (w,) for w in words]
    p = 1.0 / math.prod(len(b) for b in balls)
    return dict.fromkeys(itertools.product(*balls), p)


def exact_positive(words: tuple[str, ...], sets: PerturbationSets, k: int) -> float:
    """P_{Z ~ Π(x)}[f(Z) = positive] by enumeration."""
    f = count_classifier(k)
    return sum(p for z, p in smoothing(words, sets).items() if f([" ".join(z)])[0, 1] == 1)


def attacked(words: tuple[str, ...], sets: PerturbationSets, budget: int):
    """Every text with at most ``budget`` words swapped, each for one of its substitutes S(w)."""
    for r in range(1, budget + 1):
        for where in itertools.combinations(range(len(words)), r):
            options = [sets.substitutes(words[i]) for i in where]
            for subs in itertools.product(*options):
                out = list(words)
                for i, s in zip(where, subs):
                    out[i] = s
                yield tuple(out)


def total_variation(p: dict, q: dict) -> float:
    return 0.5 * sum(abs(p.get(z, 0.0) - q.get(z, 0.0)) for z in set(p) | set(q))


@pytest.fixture
def chain() -> PerturbationSets:
    return PerturbationSets(CHAIN, size=3)


def test_sets_are_safers_balls_and_overlaps(chain):
    assert chain.randomization("good") == ("good", "fine", "nice")
    assert chain.randomization("Nice") == ("nice", "fine", "bland")  # keyed in lower case
    assert chain.randomization("dull") == ("dull", "bland", "nice")
    assert chain.randomization("film") == ("film", "movie")  # a component no larger than K: all of it
    assert chain.randomization("plot") == ("plot",) and chain.substitutes("plot") == ()
    for word, q in OVERLAPS.items():
        assert chain.overlap(word) == pytest.approx(q), word
    # a component of K words or fewer shares one set: swapping inside it moves nothing
    wide = PerturbationSets(CHAIN, size=5)
    assert {wide.overlap(w) for w in ("good", "fine", "nice", "bland", "dull")} == {1.0}


def test_overlap_is_one_minus_the_exact_total_variation_of_one_swap(chain):
    for word in ("good", "fine", "nice", "bland", "dull"):
        own = smoothing((word,), chain)
        worst = max(total_variation(own, smoothing((s,), chain)) for s in chain.substitutes(word))
        assert 1 - chain.overlap(word) == pytest.approx(worst)


def test_lexicon_sets_leave_out_stop_words_antonyms_and_non_words():
    lexicons = Lexicons.of(
        synonyms=[("good", "fine"), ("good", "well"), ("good", "bad"), ("good", "top-notch"), ("very", "highly")],
        antonyms=[("good", "bad")],
    )
    sets = PerturbationSets.from_lexicons(lexicons, size=10)
    assert sets.substitutes("good") == ("fine",)  # "well" is a stop word, "bad" an antonym, "top-notch" no word
    assert sets.substitutes("very") == () and sets.randomization("very") == ("very",)
    assert sets.describe() == {"source": "ppdb", "set_size": 10, "words": len(sets.graph)}
    with pytest.raises(ConfigError, match="PPDB synonym lexicon"):
        PerturbationSets.from_lexicons(Lexicons.of(antonyms=[("good", "bad")]))
    with pytest.raises(ConfigError, match="set_size must be an integer >= 1"):
        PerturbationSets(CHAIN, size=0)


def test_delta_is_one_minus_the_product_of_the_smallest_overlaps(chain):
    drawn = Drawn.of("Good, fine nice plot. Bland film", chain)
    assert drawn.words == 6
    assert sorted(drawn.overlaps) == pytest.approx([2 / 3, 2 / 3, 2 / 3, 1.0, 1.0])  # plot has no substitutes
    assert tv_bound(drawn.overlaps, 0) == 0.0
    assert tv_bound(drawn.overlaps, 1) == pytest.approx(1 / 3)
    assert tv_bound(drawn.overlaps, 2) == pytest.approx(1 - 4 / 9)
    assert tv_bound(drawn.overlaps, 9) == pytest.approx(1 - 8 / 27)  # more than there are: all of them
    texts = drawn.draw(50, np.random.default_rng(0))
    assert all(t.startswith(("Good, ", "Fine, ", "Nice, ")) and " plot. " in t for t in texts)  # case, punctuation


@pytest.mark.parametrize("k, n", [(0, 20), (1, 20), (13, 20), (20, 20), (180, 200), (200, 200), (37, 1000)])
@pytest.mark.parametrize("delta", [0.001, 0.05])
def test_p_a_bound_is_one_sided_clopper_pearson(k, n, delta):
    # scipy's exact interval at confidence 1 - 2 delta has the one-sided level-(1 - delta) bound as its lower end
    expected = binomtest(k, n).proportion_ci(confidence_level=1 - 2 * delta, method="exact").low
    assert clopper_pearson_lower(k, n, delta) == pytest.approx(expected, abs=1e-12)
    assert clopper_pearson_lower(np.array([k, k]), n, delta) == pytest.approx([expected, expected], abs=1e-12)


def test_planted_certificate_holds_exactly_where_the_exact_margin_says(chain):
    """Positive iff at least 2 of good/fine/nice. With one draw per word inside T, the smoothed probability and Δ
    are known exactly; 4000 draws bound p_A within a few hundredths, so the certificate must hold where
    p - Δ - 1/2 is well above that and must fail where it is below zero."""
    texts = ["good fine plot", "good fine nice plot", "good fine nice plot", "fine nice plot", "nice bland plot"]
    budgets = [2, 1, 2, 0, 1]
    labels = ["positive", "positive", "positive", "positive", "negative"]
    clf = count_classifier(2)
    model = lambda ts: Predictions(probs=clf(ts)[None], labels=["negative", "positive"])  # noqa: E731
    model.labels = ["negative", "positive"]
    rows = []
    for text, r, label in zip(texts, budgets, labels):
        rows += certify(model, [text], [label], sets=chain, samples=4000, max_changed=r, seed=1).examples
    for row, text, r in zip(rows, texts, budgets):
        words = tuple(text.split())
        p = exact_positive(words, chain, 2)
        top = max(p, 1 - p)
        delta_hand = 1 - math.prod(sorted(OVERLAPS[w] for w in words if w != "plot")[:r])
        assert row.tv_bound == pytest.approx(delta_hand)
        assert row.prediction == ("positive" if p > 0.5 else "negative")
        assert row.p_a_lower <= top <= row.p_a_lower + 0.04
        margin = top - delta_hand - 0.5
        assert row.certified == (margin > 0.05), (text, r, top, delta_hand)
        assert margin > 0.05 or margin < 0  # the planted cases sit clear of the line
    # by hand: good and fine always draw positive words, nice 2/3 of the time, bland 1/3. "good fine": p = 1,
    # Δ(2) = 1 - 1 * 2/3 -> certified. "good fine nice": p = 1, Δ(1) = 1/3 -> certified, Δ(2) = 5/9 -> not.
    # "fine nice" with no swap: p = 2/3, Δ = 0 -> certified. "nice bland": negative 7/9, Δ(1) = 1/3 -> not.
    assert [r.certified for r in rows] == [True, True, False, True, False]


def test_no_substitution_within_the_budget_changes_a_certified_prediction():
    """Soundness by exhaustion: for every text and budget, every attacked text's smoothing is within Δ in total
    variation (SAFER's theorem, exactly), and where certify says certified, the exact smoothed prediction of every
    attacked text is the certified one, although the base classifier itself is flipped by some of them."""
    texts = [
        "good fine plot",
        "Good fine nice film",
        "fine nice bland",
        "nice film plot",
        "good nice nice",
        "dull plot",
    ]
    clf = count_classifier(2)
    certified = flipped_base = 0
    for sets in (PerturbationSets(CHAIN, size=3), PerturbationSets(CHAIN, size=5)):  # balls; whole components
        for text in texts:
            words = tuple(w.lower() for w in text.split())
            p = exact_positive(words, sets, 2)
            clean = smoothing(words, sets)
            for budget in (1, 2, 3):
                (row,) = certify(clf, [text], [1], sets=sets, samples=2000, max_changed=budget, seed=3).examples
                top = int(p > 0.5)
                for other in attacked(words, sets, budget):
                    assert total_variation(clean, smoothing(other, sets)) <= row.tv_bound + 1e-12
                    q = exact_positive(other, sets, 2)
                    assert (q if top else 1 - q) >= max(p, 1 - p) - row.tv_bound - 1e-12  # Theorem 1, exactly
                    if row.certified:
                        assert int(q > 0.5) == row.prediction == top, (text, budget, other)
                        flipped_base += clf([" ".join(other)])[0].argmax() != clf([text])[0].argmax()
                certified += row.certified
    # not vacuous: "good nice nice" (K = 5) is certified at 2 swaps, and nice -> bland twice flips the base model
    assert certified >= 10 and flipped_base > 0


def test_one_predict_call_per_batch_whatever_the_batching_the_same_numbers(chain):
    texts = ["good fine plot", "nice bland film", "good movie", "dull plot", "fine nice bland"]
    calls = []

    def probs(batch: list[str]) -> np.ndarray:
        calls.append(len(batch))
        return np.stack([count_classifier(2)(batch)] * 3)  # (M, N, C): M samples of a stochastic model

    one = certify(probs, texts, [1, 0, 0, 0, 1], sets=chain, samples=60, selection=10)
    assert len(calls) == 1 and calls[0] == one.queries < len(texts) * 71  # identical draws scored once
    calls.clear()
    apart = certify(probs, texts, [1, 0, 0, 0, 1], sets=chain, samples=60, selection=10, texts_per_call=1)
    assert len(calls) == len(texts)
    assert [r.as_dict() for r in apart.examples] == [r.as_dict() for r in one.examples]
    figures = one.figures()
    assert figures["n"] == 5 and figures["examples"] == [r.as_dict() for r in one.examples]
    right = [r.prediction == r.label for r in one.examples]
    assert figures["smoothed_accuracy"] == pytest.approx(np.mean(right))
    assert figures["certified_accuracy"] == pytest.approx(
        np.mean([r.certified and ok for r, ok in zip(one.examples, right)])
    )
    assert figures["clean_accuracy"] == pytest.approx(np.mean([r.clean_prediction == r.label for r in one.examples]))
    # budget as a fraction of words: floor(0.34 * 3) = 1 word of "good fine plot"
    (row,) = certify(probs, ["good fine plot"], [1], sets=chain, samples=20, budget=0.34).examples
    assert row.changed == 1 and row.tv_bound == pytest.approx(1 / 3)


def test_selection_zero_bounds_the_clean_prediction(chain):
    # "nice nice plot": f says positive (two positive words); the smoothing keeps both only 4/9 of the time
    (row,) = certify(count_classifier(2), ["nice nice plot"], [1], sets=chain, samples=600, selection=0).examples
    assert row.clean_prediction == 1 and row.prediction == 0  # the majority of the draws
    assert row.p_a_lower < 4 / 9 and not row.certified  # the bound is for c_A = f(x), whose share is 4/9
    assert abs(row.votes / 600 - 5 / 9) < 0.06


@pytest.mark.parametrize(
    "options, match",
    [
        ({"samples": 0}, "samples must be an integer >= 1"),
        ({"selection": -1}, "selection must be an integer >= 0"),
        ({"delta": 1.0}, r"delta must be in \(0, 1\)"),
        ({"budget": 1.5}, r"budget must be in \[0, 1\]"),
        ({"max_changed": -2}, "max_changed must be an integer >= 0"),
        ({"seed": -1}, "seed must be an integer >= 0"),
    ],
)
def test_bad_settings_are_refused_before_any_pass(chain, options, match):
    def never(texts):
        raise AssertionError("no model pass expected")

    with pytest.raises(ConfigError, match=match):
        certify(never, ["good plot"], [1], sets=chain, **options)


def test_labels_must_be_the_models(chain):
    model = lambda ts: count_classifier(2)(ts)  # noqa: E731
    model.labels = ["negative", "positive"]
    with pytest.raises(DataError, match=r"label 'neutral' is not one of \['negative', 'positive'\]"):
        certify(model, ["good plot"], ["neutral"], sets=chain)
    with pytest.raises(DataError, match="label 2 is not one of"):
        certify(model, ["good plot"], [2], sets=chain)
    with pytest.raises(ConfigError, match="same length"):
        certify(model, ["good plot"], [], sets=chain)
