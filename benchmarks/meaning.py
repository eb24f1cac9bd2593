"""Issue 19: how many of an attack's successes keep the meaning? A reader's judgments against ``caveat attack
--examples-out`` files.

After-attack accuracy counts every label flip as the model's error. When an edit changes what the sentence says
(``best films`` -> ``anti films``), the flip is the model reading correctly. Here a person reads each success of an
attack (the original, its edits) and says ``kept`` (a reader gives the edited text the original label) or
``changed`` (the other label, or none: the sentiment words replaced by neutral or broken ones). The judgments live in
``benchmarks/results/meaning_judgments.json`` by example index, with the command that made the attacked file; no
text of the data set is stored there.

    caveat attack benchmarks/work/sst2-transfer --attack bae --max-examples 100 \\
        --examples-out benchmarks/work/analysis19/erm-bae.jsonl
    python -m benchmarks.meaning benchmarks/work/analysis19/erm-bae.jsonl --attack bae --set erm-bae

The figures refuse a file whose successes are not exactly the judged ones (a retrained run flips other sentences).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

JUDGMENTS = Path(__file__).resolve().parent / "results" / "meaning_judgments.json"


def meaning_figures(rows: list[dict], changed: list[int], kept: list[int]) -> dict:
    """Figures of one attack's examples (``--examples-out`` rows of one attack) under a reader's judgments of its
    successes: ``after_attack_accuracy`` as reported, and ``after_attack_accuracy_meaning_kept``, which counts only
    the successes whose meaning was kept as the model's errors (the others are sentences the attack changed)."""
    won = sorted(r["index"] for r in rows if r["success"])
    judged = sorted([*changed, *kept])
    if set(changed) & set(kept):
        raise ValueError(f"judged both changed and kept: {sorted(set(changed) & set(kept))}")
    if won != judged:
        missing, extra = sorted(set(won) - set(judged)), sorted(set(judged) - set(won))
        raise ValueError(
            f"the file's successes are not the judged ones (unjudged successes {missing}, judged but not successes "
            f"{extra}): the judgments were made on another attack or run"
        )
    n, attacked = len(rows), sum(r["attacked"] for r in rows)
    return {
        "n": n,
        "attacked": attacked,
        "successes": len(won),
        "changed": len(changed),
        "kept": len(kept),
        "changed_share": len(changed) / len(won) if won else None,
        "after_attack_accuracy": (attacked - len(won)) / n,
        "after_attack_accuracy_meaning_kept": (attacked - len(kept)) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("examples", type=Path, help="a caveat attack --examples-out file")
    parser.add_argument("--attack", required=True, help="which attack's rows of the file")
    parser.add_argument("--set", required=True, help="the judged set's name in meaning_judgments.json")
    args = parser.parse_args()
    sets = {s["name"]: s for s in json.loads(JUDGMENTS.read_text())["sets"]}
    if args.set not in sets:
        raise SystemExit(f"no judged set {args.set!r}; choose from {', '.join(sets)}")
    rows = [json.loads(line) for line in args.examples.read_text().splitlines()]
    mine = [r for r in rows if r["attack"] == args.attack]
    if not mine:
        raise SystemExit(f"{args.examples} holds no rows of attack {args.attack!r}")
    judged = sets[args.set]
    if "first" in judged:  # a set judged on the first examples of a larger file
        mine = [r for r in mine if r["index"] < judged["first"]]
    print(json.dumps(meaning_figures(mine, judged["changed"], judged["kept"]), indent=2))


if __name__ == "__main__":
    main()
