"""Sections of the ``caveat compare`` page about robustness that transfers (issue 19): held-out attacks (which
attacks each run's training saw, ``robustness/held_out.py``, and its gain on the others) and the human-made
adversarial sets. Built from the comparison alone, as the rest of the page (``report/compare.py``).
"""

from __future__ import annotations

from caveat.report.schema import MeanGroup, MeansFigure, Section, Table
from caveat.report.sections.base import num


def _delta(a, b):
    return None if a is None or b is None else a - b


def held_out_section(result: dict, base: dict, *, score_label: str, attacked: str) -> Section | None:
    """Per run the sources its training drew from and its mean after-attack gains on held-out and seen attacks; per
    attack and run whether the attack was held out, its after-attack figure (``attacked``: the attack's key, named
    ``score_label``) and its gain over the ``base`` row."""
    if not result.get("held_out_attacks") or not result["attacks"]:
        return None
    rows = result["rows"]
    summary = Table(
        key="held_out",
        title="Gain over the baseline, held-out and seen attacks",
        columns=["run", "recipe", "trained on", "held-out attacks", "held-out gain", "seen attacks", "seen gain"],
        rows=[
            [
                r["run"],
                r["recipe"],
                ", ".join(r["training_sources"]) or "—",
                ", ".join(r["held_out_attacks"]) or "—",
                num(r["held_out_gain"]),
                ", ".join(r["seen_attacks"]) or "—",
                num(r["seen_gain"]),
            ]
            for r in rows
        ],
        note=f"Gains: after-attack {score_label} minus {base['run']}'s, averaged over the attacks of each kind.",
    )
    per_attack = Table(
        key="held_out_attacks",
        title="Attacks per run",
        columns=["attack", "sources", "run", "held-out", f"after-attack {score_label}", "gain"],
        rows=[
            [
                a,
                ", ".join(r["attack"][a].get("sources") or []) or None,
                r["run"],
                "held-out" if r["attack"][a]["held_out"] else "seen",
                num(r["attack"][a][attacked]),
                num(r["attack"][a]["gain"]),
            ]
            for a in result["attacks"]
            for r in rows
        ],
    )
    figure = MeansFigure(
        key="held_out",
        title=f"Gain over {base['run']}: held-out and seen attacks",
        xlabel="run",
        ylabel=f"Δ after-attack {score_label}",
        categories=[r["run"] for r in rows],
        groups=[
            MeanGroup(name="held-out attacks", means=[num(r["held_out_gain"]) for r in rows]),
            MeanGroup(name="seen attacks", means=[num(r["seen_gain"]) for r in rows]),
        ],
        note="Only the held-out gain says the robustness carries over to substitutes the recipe never trained on.",
    )
    return Section(
        key="held_out",
        title="Held-out attacks",
        notes=[
            "An attack is seen by a run when one of its candidate sources (embedding neighbours, ppdb synonyms, char "
            "misspellings) is one its training's augmentation drew from (train.augment.attack), held-out otherwise; "
            "embedding-space objectives (fgm, pgd, freelb) draw from none."
        ],
        figures=[figure],
        tables=[summary, per_attack],
    )


def adversarial_section(result: dict) -> Section | None:
    """Each run on each human-made adversarial set: accuracy, ECE, and what its calibrated policy answers."""
    sets = result.get("adversarial") or {}
    if not sets:
        return None
    table = []
    for name, path in sets.items():
        for r in result["rows"]:
            s = r["adversarial"][name]
            cells = [f"{name} ({path})", r["run"], s["n"], s["accuracy"], _delta(s["accuracy"], r["accuracy"])]
            cells += [s["ece"], s["calibrated_ece"], s["answered"], s["answered_error"]]
            table.append([num(c) for c in cells])
    return Section(
        key="adversarial",
        title="Adversarial sets",
        notes=[
            "Human-made adversarial examples, scored like a shifted set. answered: share of the set the calibrated "
            "policy answers; answered error: error among those (— for runs that are not calibrated)."
        ],
        tables=[
            Table(
                key="adversarial",
                title="Adversarial sets",
                columns=[
                    "set",
                    "run",
                    "examples",
                    "accuracy",
                    "Δ accuracy (vs in-domain)",
                    "ECE",
                    "ECE (calibrated)",
                    "answered",
                    "answered error",
                ],
                rows=table,
            )
        ],
    )
