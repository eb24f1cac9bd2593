"""Attack metrics: pure functions of the per-example results (see docs/attacks.md for the keys)."""

from __future__ import annotations

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
