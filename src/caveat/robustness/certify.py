"""Certified robustness to word substitutions by randomized smoothing: SAFER (Ye, Gong & Liu 2020, "SAFER: A
Structure-free Approach for Certified Robustness to Adversarial Word Substitutions", ACL).

The smoothed classifier reads a text ``x`` through random synonyms: ``g(x) = argmax_c P_{z ~ Π(x)}[f(z) = c]``,
where ``Π(x)`` replaces every word ``x_i`` independently by a uniform draw from its random perturbation set
``T(x_i)`` (``PerturbationSets.randomization``). An attacker swaps at most ``r`` words, each for one of its
substitutes ``S(x_i)``. SAFER's Theorem 1: ``P_{Π(x')}[f = c] >= P_{Π(x)}[f = c] - Δ`` for every such ``x'``, with

    Δ = 1 - prod over the r words of least overlap of q(x_i),   q(w) = min_{w' in S(w)} |T(w) ∩ T(w')| / |T(w)|

(``perturbation_sets.tv_bound``; Δ bounds the total-variation distance between ``Π(x)`` and ``Π(x')``). So when
the top class's probability ``p_A`` satisfies ``p_A - Δ > 1/2``, every class but ``c_A`` stays below 1/2 under any
such attack, and ``g`` keeps predicting ``c_A``: the prediction is certified.

``p_A`` is estimated by Monte Carlo as in Cohen, Rosenfeld & Kolter 2019 ("Certified Adversarial Robustness via
Randomized Smoothing", ICML): ``selection`` draws choose the class ``c_A`` (their majority; ties go to the clean
prediction ``f(x)``; with ``selection=0``, ``f(x)`` itself), ``samples`` further draws count its votes ``k``, and
``p_A`` is the one-sided Clopper–Pearson lower bound of level ``1 - delta`` from ``k`` of ``samples``. A
certificate is then wrong with probability at most ``delta`` per example. The smoothed prediction reported is the
majority of the ``samples`` draws (``g``'s estimate; it is ``c_A`` whenever ``p_A > 1/2``, so always when
certified). Nothing abstains: an uncertified example keeps its prediction and says ``certified: false``.

Differences from the paper, said here: SAFER's code chooses the class and estimates ``p_A`` from the same draws
with a fixed Monte Carlo margin; here the two are separate draws and the margin is Clopper–Pearson's at
``delta``. SAFER certifies against any number of swaps (``r`` = every word); here ``r`` is the attacks' change
budget, ``floor(budget * words)`` (or ``max_changed``). The sets are built as ``perturbation_sets`` says.

Cost: ``selection + samples`` model passes per example (fewer when a text has few words to swap: identical draws
are scored once); every draw of a batch of examples is scored in one ``predict`` call.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import beta

from caveat.errors import ConfigError, DataError
from caveat.progress import phase
from caveat.robustness.attacks.words import Words, match_case
from caveat.robustness.perturbation_sets import PerturbationSets, tv_bound
from caveat.types import Predictions

DEFAULT_SAMPLES = 200  # draws that estimate p_A: all for c_A bounds p_A at 0.985 (delta 0.05)
DEFAULT_SELECTION = 20  # draws that choose c_A
TEXTS_PER_CALL = 4096  # draws of a batch of examples scored in one predict call (before duplicates are dropped)
N_EXAMPLES = 10  # example rows a report keeps
# certify=True: fewer draws than ``caveat certify`` (200 + 20), for latency. With all 100 draws for the
# prediction, p_A's Clopper-Pearson lower bound at delta 0.05 is 0.970 (0.985 with 200): only texts whose
# bound on the attack's shift (tv_bound) is under 0.47 can be certified. Seeds: ``certify_seed``.
CERTIFY = {"samples": 100, "selection": 10, "delta": 0.05, "budget": 0.2}

Scores = Callable[[list[str]], np.ndarray]  # texts -> class probabilities (N, C)


def clopper_pearson_lower(k: int | np.ndarray, n: int, delta: float) -> float | np.ndarray:
    """One-sided Clopper–Pearson lower bound (level ``1 - delta``) of a binomial proportion from ``k`` successes
    in ``n`` trials: the ``delta`` quantile of Beta(k, n - k + 1); 0 when ``k = 0``."""
    k = np.asarray(k)
    out = np.where(k > 0, beta.ppf(delta, np.maximum(k, 1), n - k + 1), 0.0)
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class Drawn:
    """A text split for the smoothing: ``pieces`` alternate gaps and tokens (gap, token, ..., gap); the tokens at
    ``slots`` are drawn from ``choices`` (``T`` of the word, in its case); ``overlaps`` holds ``q`` of every word
    an attacker may swap; ``words`` counts the words (tokens with a letter: the budget's denominator)."""

    pieces: tuple[str, ...]
    slots: tuple[int, ...]
    choices: tuple[tuple[str, ...], ...]
    overlaps: tuple[float, ...]
    words: int

    @classmethod
    def of(cls, text: str, sets: PerturbationSets) -> Drawn:
        split = Words.of(text)
        pieces = [split.gaps[0]]
        slots, choices, overlaps = [], [], []
        for i, (token, gap) in enumerate(zip(split.tokens, split.gaps[1:])):
            core = split.core(i)
            ball = sets.randomization(core) if core is not None else ()
            if len(ball) > 1:
                start = token.index(core)
                slots.append(len(pieces))
                choices.append(tuple(token[:start] + match_case(core, w) + token[start + len(core) :] for w in ball))
            if core is not None and sets.substitutes(core):
                overlaps.append(sets.overlap(core))
            pieces += [token, gap]
        return cls(tuple(pieces), tuple(slots), tuple(choices), tuple(overlaps), split.n_words)

    def draw(self, n: int, rng: np.random.Generator) -> list[str]:
        """``n`` texts from ``Π(x)``: each slot replaced by a uniform draw from its choices."""
        if not self.slots:
            return ["".join(self.pieces)] * n
        sizes = np.array([len(c) for c in self.choices])
        picks = rng.integers(0, sizes, size=(n, len(sizes)))  # (n, slots)
        out = []
        pieces = list(self.pieces)
        for row in picks:
            for slot, options, j in zip(self.slots, self.choices, row):
                pieces[slot] = options[j]
            out.append("".join(pieces))
        return out


@dataclass
class Certified:
    """One example: the clean prediction of ``f``; the smoothed prediction (majority of the ``samples`` draws)
    with its ``votes``; ``p_a_lower``, the lower bound of ``P(f(Z) = c_A)`` for the class ``c_A`` the selection
    draws chose (the prediction whenever the bound exceeds 1/2); the budget ``changed`` (of ``words``;
    ``substitutable`` words have substitutes); ``tv_bound`` (Δ); and whether ``p_a_lower - tv_bound > 1/2``."""

    text: str
    label: str | int
    clean_prediction: str | int
    prediction: str | int
    votes: int
    p_a_lower: float
    tv_bound: float
    changed: int
    words: int
    substitutable: int
    certified: bool

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Certification:
    """Every example's ``Certified`` and what was asked (``settings``); ``queries`` counts the distinct texts
    scored, ``seconds`` the time taken."""

    examples: list[Certified]
    settings: dict
    queries: int
    seconds: float

    def figures(self, n_examples: int = N_EXAMPLES) -> dict:
        """``n``; ``clean_accuracy`` (of ``f``), ``smoothed_accuracy`` (of ``g``), ``certified_accuracy`` (share
        both right and certified), ``certified_rate`` (share certified, right or not); means of ``p_a_lower``,
        ``tv_bound``, ``substitutable`` and ``changed``; cost; the settings; the first ``n_examples`` rows."""
        rows = self.examples
        n = len(rows)

        def share(flags) -> float | None:
            return float(np.mean(list(flags))) if n else None

        def mean(values) -> float | None:
            return float(np.mean(list(values))) if n else None

        return {
            "n": n,
            "clean_accuracy": share(r.clean_prediction == r.label for r in rows),
            "smoothed_accuracy": share(r.prediction == r.label for r in rows),
            "certified_accuracy": share(r.certified and r.prediction == r.label for r in rows),
            "certified_rate": share(r.certified for r in rows),
            "mean_p_a_lower": mean(r.p_a_lower for r in rows),
            "mean_tv_bound": mean(r.tv_bound for r in rows),
            "mean_substitutable": mean(r.substitutable for r in rows),
            "mean_changed": mean(r.changed for r in rows),
            "queries": self.queries,
            "seconds": self.seconds,
            "examples_per_s": n / self.seconds if self.seconds > 0 else None,
            **self.settings,
            "examples": [r.as_dict() for r in rows[:n_examples]],
        }


def certify(
    model,
    texts: Sequence[str],
    labels: Sequence[str | int],
    *,
    sets: PerturbationSets,
    samples: int = DEFAULT_SAMPLES,
    selection: int = DEFAULT_SELECTION,
    delta: float = 0.05,
    budget: float = 0.2,
    max_changed: int | None = None,
    seed: int = 0,
    texts_per_call: int = TEXTS_PER_CALL,
) -> Certification:
    """SAFER's certificate for each labelled text (see the module docstring).

    Parameters
    ----------
    model : a ``Predictor`` (anything whose ``predict(texts)`` returns ``Predictions``; its ``labels`` name the
        classes), or a function ``texts -> probabilities`` of shape (N, C) or (M, N, C). ``f(z)`` is the argmax of
        the probabilities averaged over M.
    texts, labels : the examples; a label is a class name (of ``model.labels``) or a class index.
    sets : the substitutes and random perturbation sets (``PerturbationSets.from_lexicons`` for PPDB).
    samples : draws that estimate ``p_A`` (>= 1). selection : draws that choose ``c_A`` (>= 0; 0: ``f(x)``).
    delta : the certificate's error probability per example, in (0, 1).
    budget : largest fraction of a text's words swapped, in [0, 1]: ``floor(budget * words)`` words;
        ``max_changed`` (>= 0) fixes the number instead.
    seed : the draws of example ``i`` come from ``numpy.random.default_rng([seed, i])``, whatever the batching.
    texts_per_call : draws per ``predict`` call; examples are batched up to it (at least one per call).
    """
    _check(samples=samples, selection=selection, delta=delta, budget=budget, max_changed=max_changed, seed=seed)
    if len(texts) != len(labels):
        raise ConfigError(f"texts and labels must have the same length. Got {len(texts)} and {len(labels)}.")
    classes = list(getattr(model, "labels", None) or []) or None
    targets = [_label_index(label, classes) for label in labels]
    score = _scores(model)
    per_example = 1 + selection + samples
    group = max(1, texts_per_call // per_example)
    start, queries, rows = time.perf_counter(), 0, []
    with phase("certify", total=len(texts)) as bar:
        for first in range(0, len(texts), group):
            chunk = range(first, min(first + group, len(texts)))
            drawn = [Drawn.of(texts[i], sets) for i in chunk]
            batch = []
            for i, d in zip(chunk, drawn):
                batch += [texts[i], *d.draw(selection + samples, np.random.default_rng([seed, i]))]
            distinct = list(dict.fromkeys(batch))
            where = {t: j for j, t in enumerate(distinct)}
            votes = score(distinct).argmax(axis=-1)[[where[t] for t in batch]]  # (B * per_example,)
            queries += len(distinct)
            for i, d, row in zip(chunk, drawn, votes.reshape(len(chunk), per_example)):  # (B, 1 + n0 + n)
                rows.append(_certified(texts[i], targets[i], d, row, selection, delta, budget, max_changed, classes))
            bar.advance(len(chunk))
    settings = {
        "samples": samples,
        "selection": selection,
        "delta": delta,
        "budget": budget,
        "max_changed": max_changed,
        "seed": seed,
        "sets": sets.describe(),
    }
    return Certification(rows, settings, queries, time.perf_counter() - start)


def _certified(
    text: str,
    target: int,
    drawn: Drawn,
    votes: np.ndarray,
    selection: int,
    delta: float,
    budget: float,
    max_changed: int | None,
    classes: list[str] | None,
) -> Certified:
    """One example from its votes: ``votes[0]`` is ``f(x)``, then ``selection`` and ``samples`` draws."""
    clean, chosen, counted = int(votes[0]), votes[1 : 1 + selection], votes[1 + selection :]
    n_classes = int(max(votes.max(), target, clean)) + 1
    top = _majority(chosen, n_classes, prefer=clean)  # c_A, chosen before the counted draws are looked at
    p_a = float(clopper_pearson_lower(int((counted == top).sum()), len(counted), delta))
    smoothed = _majority(counted, n_classes, prefer=top)  # is c_A whenever p_a > 1/2
    changed = max_changed if max_changed is not None else math.floor(budget * drawn.words + 1e-9)
    bound = tv_bound(drawn.overlaps, changed)

    def name(index: int) -> str | int:
        return classes[index] if classes is not None else index

    return Certified(
        text=text,
        label=name(target),
        clean_prediction=name(clean),
        prediction=name(smoothed),
        votes=int((counted == smoothed).sum()),
        p_a_lower=p_a,
        tv_bound=bound,
        changed=changed,
        words=drawn.words,
        substitutable=len(drawn.overlaps),
        certified=p_a - bound > 0.5,
    )


def _majority(votes: np.ndarray, n_classes: int, *, prefer: int) -> int:
    """The class most voted for; a tie (or no votes) goes to ``prefer``."""
    tally = np.bincount(votes, minlength=n_classes) + 0.5 * (np.arange(n_classes) == prefer)
    return int(tally.argmax())


def _scores(model) -> Scores:
    """``texts -> (N, C)`` probabilities from a ``Predictor``-like object or a function."""
    predict = model.predict if hasattr(model, "predict") else model
    if not callable(predict):
        raise ConfigError(f"model must have predict(texts) or be a function texts -> probabilities. Got {model!r}.")

    def score(texts: list[str]) -> np.ndarray:
        out = predict(texts)
        probs = out.probs if isinstance(out, Predictions) else np.asarray(out)
        return probs.mean(axis=0) if probs.ndim == 3 else probs  # (M, N, C) -> (N, C)

    return score


def _label_index(label, classes: list[str] | None) -> int:
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool) and label >= 0:
        if classes is None or label < len(classes):
            return int(label)
    if classes is not None and label in classes:
        return classes.index(label)
    known = f"one of {classes}" if classes is not None else "a class index (the model names no classes)"
    raise DataError(f"label {label!r} is not {known}; certify labelled examples of this model's task")


def _check(*, samples: int, selection: int, delta: float, budget: float, max_changed: int | None, seed: int) -> None:
    """Refuse bad settings before any model pass, naming the value."""

    def integer(x) -> bool:
        return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

    if not integer(samples) or samples < 1:
        raise ConfigError(f"{{samples}} must be an integer >= 1. Got {samples!r}.", fields=("samples",))
    if not integer(selection) or selection < 0:
        raise ConfigError(
            f"{{selection}} must be an integer >= 0 (0: the clean prediction). Got {selection!r}.",
            fields=("selection",),
        )
    if isinstance(delta, bool) or not 0 < delta < 1:
        raise ConfigError(f"{{delta}} must be in (0, 1). Got {delta!r}.", fields=("delta",))
    if isinstance(budget, bool) or not 0 <= budget <= 1:
        raise ConfigError(
            f"{{budget}} must be in [0, 1] (the largest fraction of words swapped). Got {budget!r}.",
            fields=("budget",),
        )
    if max_changed is not None and (not integer(max_changed) or max_changed < 0):
        raise ConfigError(
            f"{{max_changed}} must be an integer >= 0 (words swapped). Got {max_changed!r}.", fields=("max_changed",)
        )
    if not integer(seed) or seed < 0:
        raise ConfigError(f"{{seed}} must be an integer >= 0. Got {seed!r}.", fields=("seed",))


def certify_seed(text: str, seed: int = 0) -> int:
    """The seed of ``text``'s certification draws, in ``[0, 2**63)``: a function of the text (and ``seed``)
    only, so a text draws the same in any request, and two texts with the same slots do not draw alike (their
    certificates' errors are not tied together)."""
    return int.from_bytes(hashlib.sha256(f"{seed}\n{text}".encode()).digest()[:8], "big") >> 1


def add_certified(predictor, rows: list[dict], sets: PerturbationSets) -> None:
    """Add ``certified`` to each text row: SAFER's certificate (``caveat.robustness.certify``, settings
    ``CERTIFY``) that the smoothed prediction stays put under any swap of up to ``budget`` of the words. It
    certifies the smoothed model, not that the label is right; the row's label is passed as the label.

    Each text is certified alone, seeded by ``certify_seed(text)`` (``certify`` seeds example ``i`` of a call
    from ``[seed, i]`` and scores a call's draws together), so a row's certificate depends on its text only: not
    on its position, nor on the other inputs of the request, file or service batch. That costs little: one
    text's draws fill the model's batches already (``samples + selection + 1`` texts, fewer when draws repeat)."""
    for row in rows:
        text = row["text"]
        one = certify(predictor, [text], [row["label"]], sets=sets, seed=certify_seed(text), **CERTIFY).examples[0]
        row["certified"] = {
            "certified": one.certified,
            "prediction": one.prediction,
            "p_a_lower": one.p_a_lower,
            "tv_bound": one.tv_bound,
            "changed": one.changed,
            "words": one.words,
            "samples": CERTIFY["samples"],
            "delta": CERTIFY["delta"],
        }
