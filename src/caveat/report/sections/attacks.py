"""Adversarial attacks: what ``caveat attack`` saved in metrics.json for the report's split (read, not
recomputed), and a few of the adversarial examples it found."""

from __future__ import annotations

from caveat.report.context import Context
from caveat.report.schema import Section, Table
from caveat.report.sections.base import num, saved_metrics, shorten
from caveat.types import Task

EXAMPLES_PER_ATTACK = 3
POLICY_COLUMNS = {  # attack.<data>.<name> key -> column of the policy table
    "successes": "successes",
    "caught": "caught",
    "answered_clean": "answered (clean)",
    "answered_error_clean": "answered error (clean)",
    "answered_after_attack": "answered (after attack)",
    "answered_error_after_attack": "answered error (after attack)",
}


def marked(original: str, adversarial: str) -> str:
    """``adversarial`` with the words that differ from ``original`` in [brackets] (when both have the
    same number of words, as substitutions keep; else as it is)."""
    before, after = original.split(), adversarial.split()
    if len(before) != len(after):
        return adversarial
    return " ".join(f"[{a}]" if a != b else a for b, a in zip(before, after))


def example_cells(ex: dict) -> list:
    """A successful attack (``attack.<data>.<name>.examples[i]``) as table cells: original, adversarial with the
    changed words marked, true label, predicted label (probability), similarity."""
    return [
        shorten(ex["original"]),
        shorten(marked(ex["original"], ex["adversarial"])),
        ex["label"],
        f"{ex['adversarial_label']} ({ex['adversarial_prob']:.2f})",
        num(ex["similarity"]),
    ]


def policy_table(saved: dict) -> Table | None:
    """The attacks read through the calibrated policy (``caveat attack`` on a calibrated run): per attack the
    share of successful attacks withheld, and the inputs answered with their error rate, clean and after the
    attack. None when no saved attack holds those figures."""
    read = {name: a for name, a in saved.items() if "answered_clean" in a}
    if not read:
        return None
    return Table(
        key="attack_policy",
        title="Read through the calibrated policy",
        columns=["attack", *POLICY_COLUMNS.values()],
        rows=[[name, *(num(a.get(k)) for k in POLICY_COLUMNS)] for name, a in read.items()],
        note=(
            "caught: share of the successful adversarial examples the policy withholds (abstains on or routes). "
            "answered: of the examples, those the policy answers, on the original texts and after the attack; "
            "answered error: the error rate among them."
        ),
    )


def attacks(ctx: Context) -> Section | None:
    """Shown when metrics.json holds ``attack.<data>.*``: per attack accuracy before and after, success
    rate, cost and the constraints; for a calibrated run, the attacks read through its policy; then
    successful examples, original and adversarial."""
    saved = saved_metrics(ctx.run).get("attack", {}).get(ctx.data) or {}
    if not saved:
        return None
    rows, examples = [], []
    for name, a in saved.items():
        c = a.get("constraints", {})
        rows.append(
            [
                name,
                a["n"],
                a["clean_accuracy"],
                a["after_attack_accuracy"],
                a["success_rate"],
                a["mean_queries"],
                a["mean_changed_fraction"],
                a["mean_similarity"],
                c.get("max_change"),
                c.get("min_similarity"),
            ]
        )
        for ex in a.get("examples", [])[:EXAMPLES_PER_ATTACK]:
            examples.append([name, *example_cells(ex)])
    notes = [
        f"From `{ctx.run.path}/metrics.json`, as `caveat attack {ctx.run.path} --data {ctx.data}` wrote it. Only "
        "examples the model gets right are attacked; accuracies are over the first `n` examples. Read the examples "
        "before quoting after-attack accuracy: word substitutes can change the meaning (docs/attacks.md)."
    ]
    policy = policy_table(saved) if ctx.task is Task.TEXT_CLASSIFICATION else None
    unread = [name for name, a in saved.items() if "answered_clean" not in a]
    if ctx.task is Task.TEXT_CLASSIFICATION and not ctx.calibrated:
        notes.append(
            "The run is not calibrated, so the attacks are not read through a policy (how many successful attacks "
            f"it would withhold): `caveat calibrate {ctx.run.path}`, then attack again."
        )
    elif ctx.task is Task.TEXT_CLASSIFICATION and unread:
        notes.append(
            f"Saved before the run was calibrated, so not read through its policy: {', '.join(unread)}; attack "
            "again to see how many successful attacks it withholds."
        )
    return Section(
        key="attacks",
        title="Adversarial attacks",
        notes=notes,
        tables=[
            Table(
                key="attacks",
                title="Accuracy under attack",
                columns=[
                    "attack",
                    "examples",
                    "clean accuracy",
                    "after-attack accuracy",
                    "success rate",
                    "mean queries",
                    "words changed",
                    "similarity",
                    "max change",
                    "min similarity",
                ],
                rows=[[num(c) for c in r] for r in rows],
                note="words changed and similarity: means over the successful attacks.",
            ),
            *([policy] if policy is not None else []),
            Table(
                key="adversarial_examples",
                title="Successful adversarial examples",
                rows=examples,
                columns=["attack", "original", "adversarial", "true label", "predicted (probability)", "similarity"],
                note="Changed words in [brackets]." if examples else "No attack succeeded.",
            ),
        ],
    )
