"""Held-out attacks: which attacks a recipe's training saw, and what it gains on those it did not.

A defence tuned against its own candidate source can learn that source instead of robustness: robustness gained
against one kind of perturbation need not carry over to another (Tramèr & Boneh 2019, "Adversarial Training and
Robustness for Multiple Perturbations", NeurIPS), and A2T is judged on attacks beside the one it trains with
(Yoo & Qi 2021, "Towards Improving Adversarial Training of NLP Models"). So a comparison reports each recipe's
after-attack gain over the baseline apart on the attacks whose candidate sources its training drew from ("seen")
and on the others ("held-out"): only the held-out gain says the robustness transfers.

A run's training sources are those of its augmentation (``train.augment.attack``, each attack of a mixture; see
``attacks.attack_sources``): ``greedy`` -> ``embedding``, ``charswap`` -> ``char``, ``pwws`` -> ``ppdb``. An
objective that perturbs in embedding space (``fgm``, ``pgd``, ``freelb``) or mixes examples draws from no discrete
source, so every attack is held-out for it. An attack is seen when any of its sources is one of the run's.
"""

from __future__ import annotations

from collections.abc import Sequence

from caveat.config import TrainConfig
from caveat.robustness.attacks import attack_sources, parse_attacks

NOTE = (
    "held-out: an attack none of whose candidate sources (embedding neighbours, ppdb synonyms, char misspellings) "
    "the run's training drew from (train.augment.attack; embedding-space objectives such as fgm draw from none); "
    "seen: the others. Gains: after-attack {score} minus the baseline's ({baseline}), averaged over the run's "
    "held-out and its seen attacks"
)


def training_sources(train: TrainConfig) -> list[str]:
    """The candidate sources a run's training drew from, sorted: its augmentation attacks' (every attack of a
    mixture), none without augmentation."""
    if not train.augment.enabled:
        return []
    return sorted({s for name in parse_attacks(train.augment.attack) for s in attack_sources(name)})


def is_held_out(attack: str, sources: Sequence[str]) -> bool:
    """Did training from ``sources`` draw from none of ``attack``'s candidate sources?"""
    return not set(attack_sources(attack)) & set(sources)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def mark_held_out(rows: list[dict], attacks: Sequence[str], baseline: str, *, score: str) -> None:
    """Add the held-out bookkeeping to compare rows, in place.

    Parameters
    ----------
    rows : compare rows, each with ``run``, ``training_sources`` and ``attack.<name>.<score>``.
    attacks : the attack names of the comparison.
    baseline : the ``run`` of the row the gains are measured against.
    score : the after-attack figure (``after_attack_accuracy``; NER: ``after_attack_span_f1``).

    Each ``attack.<name>`` gets ``held_out`` (bool) and ``gain`` (its score minus the baseline's; None where either
    is missing); each row ``held_out_attacks`` and ``seen_attacks`` (names) and ``held_out_gain`` and ``seen_gain``
    (mean gains over them; None where there is none).
    """
    base = next(r for r in rows if r["run"] == baseline)
    for row in rows:
        gains: dict[bool, list[float]] = {True: [], False: []}
        for name in attacks:
            figures = row["attack"][name]
            mine, theirs = figures.get(score), base["attack"][name].get(score)
            figures["held_out"] = is_held_out(name, row["training_sources"])
            figures["gain"] = None if mine is None or theirs is None else mine - theirs
            if figures["gain"] is not None:
                gains[figures["held_out"]].append(figures["gain"])
        row["held_out_attacks"] = [a for a in attacks if row["attack"][a]["held_out"]]
        row["seen_attacks"] = [a for a in attacks if not row["attack"][a]["held_out"]]
        row["held_out_gain"], row["seen_gain"] = _mean(gains[True]), _mean(gains[False])
