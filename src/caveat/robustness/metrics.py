"""Attack metrics: pure functions of the per-example results (see docs/attacks.md for the keys)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import numpy as np

from caveat.robustness.attacks.base import AttackResult


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def attack_metrics(results: Sequence[AttackResult], seconds: float, *, n_examples: int = 5) -> dict:
    """Summarise one attack over a set of examples.

    Accuracies are over all ``n`` examples; the success rate and mean queries over the attacked ones
    (those the model got right); words changed and similarity over the successful ones (what an
    adversarial example costs). ``examples`` holds the first ``n_examples`` successful attacks.
    """
    n = len(results)
    attacked = [r for r in results if r.attacked]
    won = [r for r in attacked if r.success]
    return {
        "n": n,
        "clean_accuracy": len(attacked) / n if n else None,
        "after_attack_accuracy": (len(attacked) - len(won)) / n if n else None,
        "attacked": len(attacked),
        "successes": len(won),
        "success_rate": len(won) / len(attacked) if attacked else None,
        "mean_queries": _mean([r.queries for r in attacked]),
        "mean_changed_fraction": _mean([r.changed_fraction for r in won]),
        "mean_similarity": _mean([r.similarity for r in won]),
        "seconds": seconds,
        "examples_per_s": len(attacked) / seconds if seconds > 0 else None,
        "examples": [r.as_dict() for r in won[:n_examples]],
    }


def word_edits(original: str, adversarial: str) -> list[str]:
    """The words an attack changed, as ``"from -> to"`` strings in text order: the whitespace-separated words of
    the two texts aligned (``difflib``), one string per changed run (``"a b -> c"``; ``"-> c"`` for a word
    inserted, ``"a ->"`` for one deleted). Punctuation stays attached to its word, as the attacks edit it."""
    a, b = original.split(), adversarial.split()
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    return [
        f"{' '.join(a[i1:i2])} -> {' '.join(b[j1:j2])}".strip()
        for op, i1, i2, j1, j2 in matcher.get_opcodes()
        if op != "equal"
    ]


def example_rows(
    name: str,
    results: Sequence[AttackResult],
    answered_clean: np.ndarray | None = None,
    answered_after: np.ndarray | None = None,
) -> list[dict]:
    """One row per example of one attack, for a reader who checks the adversarial examples by eye: the attack's
    name, the example's position in the data (``index``), its ``edits`` (``word_edits``) and every field of its
    ``AttackResult``. With a calibrated policy's decisions (``policy_metrics``' (N,) bool arrays), each row adds
    ``answered_clean`` and ``answered_after_attack``; a success the policy does not answer is one it caught."""
    rows = [
        {"attack": name, "index": i, "edits": word_edits(r.original, r.adversarial), **r.as_dict()}
        for i, r in enumerate(results)
    ]
    if answered_clean is not None and answered_after is not None:
        for row, before, after in zip(rows, answered_clean, answered_after, strict=True):
            row["answered_clean"], row["answered_after_attack"] = bool(before), bool(after)
    return rows


POLICY_KEYS = (
    "caught",
    "answered_clean",
    "answered_error_clean",
    "answered_after_attack",
    "answered_error_after_attack",
)


def _error(wrong: np.ndarray, answered: np.ndarray) -> float | None:
    return float(wrong[answered].mean()) if answered.any() else None


def policy_metrics(results: Sequence[AttackResult], answered_clean: np.ndarray, answered_after: np.ndarray) -> dict:
    """The attack read through a calibrated policy: what it withholds, and the error of what it still answers.

    Parameters
    ----------
    results : N examples after one attack (text classification: ``attacked`` means the model got it right).
    answered_clean : (N,) bool, the policy answers the original text.
    answered_after : (N,) bool, the policy answers the text after the attack: the adversarial text where the
        example was attacked, else the original.

    ``caught`` is the share of successful attacks the policy withholds (abstains on or routes), None without
    a success; ``answered_*`` count the answered inputs among the N and ``answered_error_*`` are the error rates
    among them (None when none is answered). The policy answers the top label, which temperature scaling keeps,
    so an answered input is wrong exactly when the attack's own top label is.
    """
    answered_clean, answered_after = np.asarray(answered_clean, bool), np.asarray(answered_after, bool)
    if answered_clean.shape != (len(results),) or answered_after.shape != (len(results),):
        raise ValueError(
            f"answered_clean and answered_after must be ({len(results)},), one per result. "
            f"Got {answered_clean.shape} and {answered_after.shape}."
        )
    wrong_clean = np.array([not r.attacked for r in results], dtype=bool)  # (N,)
    success = np.array([r.success for r in results], dtype=bool)  # (N,)
    wrong_after = wrong_clean | success
    return {
        "caught": float((~answered_after[success]).mean()) if success.any() else None,
        "answered_clean": int(answered_clean.sum()),
        "answered_error_clean": _error(wrong_clean, answered_clean),
        "answered_after_attack": int(answered_after.sum()),
        "answered_error_after_attack": _error(wrong_after, answered_after),
    }
