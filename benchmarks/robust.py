"""Issue 5: robust objectives side by side with ERM on SST-2 (clean, greedy attack, CR shift, cost).

Compares whichever of the SST-2 runs exist in benchmarks/work (ERM = ``sst2``; ``sst2-fgm``: FGM,
epsilon 0.1, alpha 1; ``sst2-a2t``: A2T augmentation with the greedy attack, 30% of the training set
per epoch from epoch 1, ``train.select=last``), attacks the first 500 test sentences with the greedy
word attack (<= 20% words, similarity >= 0.8) and evaluates on CR. Saved attacks with the same
settings are reused (``caveat compare``). The figure to reach: the best robust run's after-attack
accuracy >= ERM's + 15 points, clean accuracy within 1.5 points, CR ECE no worse.
"""

from __future__ import annotations

from pathlib import Path

RUNS = ("sst2", "sst2-fgm", "sst2-a2t")


def bench_robust_compare(work: Path, data_root: Path, *, max_examples: int = 500) -> dict:
    from caveat.robustness.compare import AttackSettings, compare_runs

    runs = [work / r for r in RUNS if (work / r / "caveat.json").is_file()]
    out = compare_runs(runs, "test", attacks="greedy", shift=[f"cr={data_root / 'cr' / 'custrev.all'}"],
                       settings=AttackSettings(max_examples=max_examples))
    rows = {Path(r["path"]).name: r for r in out["rows"]}
    erm = rows.get("sst2")
    verdicts = {}
    for name, r in rows.items():
        if name == "sst2" or erm is None:
            continue
        gain = r["attack"]["greedy"]["after_attack_accuracy"] - erm["attack"]["greedy"]["after_attack_accuracy"]
        clean = r["accuracy"] - erm["accuracy"]
        cr_ece = r["shift"]["cr"]["ece"] - erm["shift"]["cr"]["ece"]
        verdicts[name] = {"after_attack_gain": gain, "clean_change": clean, "cr_ece_change": cr_ece,
                          "met": bool(gain >= 0.15 and clean >= -0.015 and cr_ece <= 0)}
    return {"runs": [str(r) for r in runs], "rows": out["rows"], "table": out["table"], "notes": out["notes"],
            "verdicts": verdicts, "max_examples": max_examples}


def bench_ner_attack(conll_run: Path, *, max_examples: int = 200) -> dict:
    """NER attacks on the CoNLL-2003 run: context words only, span errors clean vs after attack."""
    from caveat.robustness.run import attack_run

    out = attack_run(conll_run, "test", "charswap,greedy", max_examples=max_examples, write=False)
    return {"run": str(conll_run), "max_examples": max_examples,
            "attacks": {k: {m: v for m, v in a.items() if m != "examples"} | {"examples": a.get("examples", [])[:3]}
                        for k, a in out["attacks"].items()}}
