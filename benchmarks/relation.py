"""Issue 21's caveat figures for SemEval-2010 Task 8 (MiniLM, CPU): calibration, risk-controlled abstention,
the greedy attack on context words, and the cost of a relation step against a text-classification step.

    python -m benchmarks.run --only semeval_caveats        # not in the default list: ~20 min on 2 cores

Reuses the ``semeval`` task bench's run (``work/semeval``, trained when missing or trained with another config)
and calibrates a copy of it (``work/semeval-calibrated``), so the task bench's own run and its figures are left
as they are. ``robust=True`` also trains ``work/semeval-robust`` (``ROBUST``, ~25 min) and reports its
after-attack accuracy against ERM's.
"""

from __future__ import annotations

import contextlib
import json
import re
import statistics
from collections.abc import Iterator, Sequence
from pathlib import Path

from benchmarks.robust import RUNS
from benchmarks.tasks import uncalibrated_copy
from caveat.config import load_config
from caveat.data.markers import E1, E1_END, E2, E2_END

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "examples/semeval.yaml"
# bench_task's own quick overrides (so that a quick run here is the quick `semeval` run), plus a cap on every
# file so that the calibration, attack and timing passes stay small
QUICK = ["train.max_steps=10", "train.eval_batch_size=256"]
QUICK_DATA = ["data.max_examples=300"]
# The SST-2 robust recipe (benchmarks/robust.py, "sst2-rsub-ls": a random edit of every example from the greedy
# attack's candidates each epoch, plus label smoothing 0.1) with SemEval's own epochs; the edits never touch an
# entity word (Words.fixed). Each epoch trains on twice the rows: about twice the ERM run's time.
ROBUST = [o for o in RUNS["sst2-rsub-ls"] if not o.startswith("train.epochs=")]
ROBUST_NOTE = "robust recipe = sst2-rsub-ls (random greedy-candidate edits of context words + label smoothing 0.1)"
TARGETS = {"ece_calibrated": 0.02, "realised_risk": 0.05, "entity_word_edits": 0, "step_ratio": 1.2}
_ENTITY = {
    k: re.compile(re.escape(a) + r"(.*?)" + re.escape(b), re.S) for k, a, b in (("e1", E1, E1_END), ("e2", E2, E2_END))
}
_MARKER = re.compile("|".join(re.escape(m) for m in (E1, E1_END, E2, E2_END)))


def strip_markers(text: str) -> tuple[str, tuple[int, int], tuple[int, int]]:
    """``text`` without its ``<e1>…</e1> <e2>…</e2>`` markers, and the character spans (end exclusive) of the
    two entities in the stripped text: ``strip_markers(t)[0][s:e]`` is the entity's text."""
    out, spans, opened, last, pos = [], {}, {}, 0, 0
    for m in _MARKER.finditer(text):
        out.append(text[last : m.start()])
        pos += m.start() - last
        last = m.end()
        tag = m.group()
        if tag in (E1, E2):
            opened[tag] = pos
        else:
            start = E1 if tag == E1_END else E2
            spans[start] = (opened[start], pos)
    out.append(text[last:])
    if set(spans) != {E1, E2}:
        raise ValueError(f"not a marked relation example (each of {E1} {E1_END} {E2} {E2_END} once): {text!r}")
    return "".join(out), spans[E1], spans[E2]


def entity_word_edits(original: str, adversarial: str) -> int:
    """How many words of the two marked entities of ``original`` the attack changed in ``adversarial``: words
    compared position by position inside each entity, a changed word count difference counted too, and an entity
    whose markers are gone from ``adversarial`` counted whole."""
    edits = 0
    for pattern in _ENTITY.values():
        before = pattern.search(original)
        if before is None:
            raise ValueError(f"not a marked relation example: {original!r}")
        words = before.group(1).split()
        after = pattern.search(adversarial)
        if after is None:
            edits += len(words)
            continue
        new = after.group(1).split()
        edits += sum(a != b for a, b in zip(words, new)) + abs(len(words) - len(new))
    return edits


def edit_check(results: Sequence) -> dict:
    """Over attack results (``AttackResult`` or their dicts): the attacked texts the attack changed, and those
    that edited an entity word (``violations``, with up to 5 of them)."""
    rows = [r if isinstance(r, dict) else r.as_dict() for r in results]
    changed = [r for r in rows if r["adversarial"] != r["original"]]
    bad = [(r, entity_word_edits(r["original"], r["adversarial"])) for r in changed]
    bad = [(r, n) for r, n in bad if n]
    return {
        "checked": len(rows),
        "changed": len(changed),
        "violations": len(bad),
        "entity_words_edited": sum(n for _, n in bad),
        "violation_examples": [{"original": r["original"], "adversarial": r["adversarial"]} for r, _ in bad[:5]],
    }


@contextlib.contextmanager
def recording_attacks() -> Iterator[dict[str, list]]:
    """While open, every attack ``caveat.robustness.run.attack_run`` builds records its results (all of them, not
    only the few ``attack_metrics`` keeps as examples) under its name in the yielded dict."""
    import caveat.robustness.run as attack_module

    recorded: dict[str, list] = {}
    build = attack_module.build_attack

    class Recording:
        def __init__(self, attack):
            self._attack = attack
            recorded[attack.name] = []

        def __getattr__(self, name):
            return getattr(self._attack, name)

        def attack(self, *args, **kwargs):
            result = self._attack.attack(*args, **kwargs)
            recorded[self._attack.name].append(result)
            return result

    attack_module.build_attack = lambda *a, **k: Recording(build(*a, **k))
    try:
        yield recorded
    finally:
        attack_module.build_attack = build


def _train(data_root: Path, run_dir: Path, extra: Sequence[str], quick: bool):
    """``CONFIG`` plus ``extra`` in ``run_dir``, trained unless an identical finished run is there; its config.
    With no ``extra`` and not quick, exactly the ``semeval`` task bench's config (``bench_task``)."""
    from benchmarks.tasks import _same_run
    from caveat.training.run import run_training

    overrides = [f"data.root={data_root}", *extra] + ([*QUICK, *QUICK_DATA] if quick else [])
    cfg = load_config(ROOT / CONFIG, overrides)
    if not _same_run(run_dir, cfg):
        run_training(cfg, run_dir, progress=False)
    return cfg, overrides


def _attack(run_dir: Path, max_examples: int) -> dict:
    """The greedy attack on the first ``max_examples`` test sentences (context words only) and the entity-word
    check over every attacked text."""
    from caveat.robustness.run import attack_run

    with recording_attacks() as recorded:
        out = attack_run(run_dir, "test", "greedy", max_examples=max_examples, write=False)
    g = out["attacks"]["greedy"]
    keep = ("n", "clean_accuracy", "after_attack_accuracy", "attacked", "successes", "success_rate", "mean_queries")
    keep += ("mean_changed_fraction", "mean_similarity", "seconds", "examples_per_s", "antonym_filter")
    keep += ("caught", "answered_clean", "answered_error_clean", "answered_after_attack", "answered_error_after_attack")
    return {
        **{k: g.get(k) for k in keep},
        "constraints": g.get("constraints"),
        "entity_check": edit_check(recorded.get("greedy", [])),
        "examples": g.get("examples", [])[:3],
    }


def _stripped_data(cfg, folder: Path, *, n_train: int | None, n_validation: int) -> None:
    """The run's train split (and a small validation split) as JSONL twice: ``marked/`` with the entity markers
    (a relation run reads them) and ``plain/`` without them, labels the relation labels."""
    from caveat.data.load import load_data

    splits = load_data(cfg)
    parts = {"train": splits.train.examples[:n_train], "validation": splits.validation.examples[:n_validation]}
    for kind in ("marked", "plain"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for name, examples in parts.items():
            with open(folder / kind / f"{name}.jsonl", "w", encoding="utf-8") as f:
                for ex in examples:
                    text = ex.text if kind == "marked" else strip_markers(ex.text)[0]
                    f.write(json.dumps({"text": text, "label": ex.label}) + "\n")


def step_ratio(cfg, work: Path, *, steps: int, repeats: int, quick: bool) -> dict:
    """Median seconds per training step of the relation run's config on its own train sentences, against the same
    config as text classification of the same sentences with the markers stripped (same batches, lengths aside:
    the four markers are tokens of the relation inputs). Interleaved across repeats; one epoch is the same number
    of steps for both, so the ratio is the ratio of time per epoch."""
    from benchmarks.step_cost import _caveat_step_times

    folder = work / "semeval-step-data"
    _stripped_data(cfg, folder, n_train=32 * (steps + 2) if quick else None, n_validation=32)
    common = [
        "data.format=jsonl",
        "data.train=train.jsonl",
        "data.validation=validation.jsonl",
        "data.test=validation.jsonl",
        f"train.max_steps={steps}",
        "train.log_every=1000",
        "train.tracking=none",
    ]
    variants = {
        "relation": load_config(ROOT / CONFIG, [f"data.root={folder / 'marked'}", *common]),
        "text": load_config(ROOT / CONFIG, [f"data.root={folder / 'plain'}", *common, "task=text-classification"]),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for name, variant in variants.items():
            times[name] += _caveat_step_times(variant, work / f"semeval-cost-{name}", steps)
    median = {k: statistics.median(v) for k, v in times.items()}
    return {
        "data": f"SemEval-2010 Task 8 train split ({'first ' + str(32 * (steps + 2)) if quick else 'all'} sentences), "
        f"batch {cfg.train.batch_size}, max_length {cfg.train.max_length}",
        "steps_timed_per_repeat": steps - 2,
        "repeats": repeats,
        "median_seconds_per_step": median,
        "relation_over_text": median["relation"] / median["text"],
    }


def bench_semeval_caveats(
    data_root: Path,
    work: Path,
    *,
    quick: bool = False,
    robust: bool = False,
    max_examples: int | None = None,
    steps: int | None = None,
    repeats: int | None = None,
) -> dict:
    """Issue 21's figures beyond the official score, on the ``semeval`` task bench's run (``work/semeval``, reused
    when it holds a finished run of the same config; quick: that of ``QUICK`` with every file cut to 300 lines):

    - a copy ``work/semeval-calibrated`` calibrated with ``calibrate_run(target_risk=0.05, delta=0.05)``, test
      evaluated: ECE raw and calibrated, temperature, conformal coverage / set size, and the policy's error on
      answered inputs (``abstention.risk``) and coverage, with evaluate's ``relation_decisions``;
    - the greedy attack on the first ``max_examples`` (300; quick 20) test sentences of that copy, with the check
      that no entity word was edited; ``robust``: also of ``work/semeval-robust`` (``ROBUST``), and its gain;
    - ``step_ratio``: ``steps`` (30; quick 5) steps, ``repeats`` (3; quick 1) times each.
    """
    from caveat.calibration.run import calibrate_run
    from caveat.evaluation.run import evaluate_run

    max_examples = max_examples or (20 if quick else 300)
    steps = steps or (5 if quick else 30)
    repeats = repeats or (1 if quick else 3)
    cfg, overrides = _train(data_root, work / "semeval", [], quick)

    copy = uncalibrated_copy(work / "semeval", work / "semeval-calibrated")
    summary = calibrate_run(copy, target_risk=0.05, delta=0.05)
    test = evaluate_run(copy, "test", write=False)
    attack = _attack(copy, max_examples)

    robust_record = None
    if robust:
        _, robust_overrides = _train(data_root, work / "semeval-robust", ROBUST, quick)
        r_attack = _attack(work / "semeval-robust", max_examples)
        r_test = evaluate_run(work / "semeval-robust", "test", write=False)
        robust_record = {
            "overrides": ROBUST,
            "note": ROBUST_NOTE,
            "accuracy": r_test["accuracy"],
            "relation_macro_f1": r_test["relation_macro_f1"],
            "attack": r_attack,
            "after_attack_gain": r_attack["after_attack_accuracy"] - attack["after_attack_accuracy"],
            "clean_change": r_attack["clean_accuracy"] - attack["clean_accuracy"],
            "train_seconds": json.loads((work / "semeval-robust" / "caveat.json").read_text())["training"]["seconds"],
        }
    cost = step_ratio(cfg, work, steps=steps, repeats=repeats, quick=quick)

    cal, ab = test["calibrated"], test["abstention"]
    violations = attack["entity_check"]["violations"] + (
        robust_record["attack"]["entity_check"]["violations"] if robust else 0
    )
    checks = {
        "ece_calibrated_le_0.02": bool(cal["ece"] <= TARGETS["ece_calibrated"]),
        "realised_risk_le_0.05": bool(ab["risk"] is not None and ab["risk"] <= TARGETS["realised_risk"]),
        "no_entity_word_edited": violations == 0,
        "step_ratio_le_1.2": bool(cost["relation_over_text"] <= TARGETS["step_ratio"]),
    }
    return {
        "task": "semeval_caveats",
        "config": CONFIG,
        "run": str(work / "semeval"),
        "calibrated_copy": str(copy),
        "overrides": overrides,
        "accuracy": test["accuracy"],
        "relation_macro_f1": test["relation_macro_f1"],
        "ece": test["ece"],
        "ece_calibrated": cal["ece"],
        "nll": test["nll"],
        "nll_calibrated": cal["nll"],
        "temperature": cal["temperature"],
        "conformal": test.get("conformal"),
        "abstention": {
            "target_risk": 0.05,
            "delta": 0.05,
            "score": ab["score"],
            "realised_risk": ab["risk"],
            "coverage": ab["coverage"],
            "guarantee": ab["guarantee"],
            "threshold": summary.get("risk", {}).get("threshold"),
            "decisions": test.get("decisions", {}).get("in_scope"),
            "relation_split": test["relation_decisions"],  # evaluate's relation way of counting decisions
        },
        "calibration_summary": {k: v for k, v in summary.items() if not isinstance(v, (dict, list))},
        "attack": attack,
        "robust": robust_record,
        "step_cost": cost,
        "targets": TARGETS,
        "checks": checks,
        "met": None if quick else all(checks.values()),
        "quick": quick,
        "commands": [
            "python -m benchmarks.run --only semeval_caveats",
            f"caveat train {CONFIG} --out runs/re",
            "caveat calibrate runs/re --target-risk 0.05 --delta 0.05",
            "caveat evaluate runs/re --data test",
            "caveat attack runs/re --data test --attack greedy --max-examples 300",
        ],
    }


def rows(r: dict) -> list[str]:
    """Rows of the benchmark table (benchmarks/run.py) for ``semeval_caveats``."""
    ab, at, step = r["abstention"], r["attack"], r["step_cost"]
    split = ab["relation_split"]
    out = [
        f"| SemEval-2010 Task 8: ECE after calibration ({r['calibration_summary']['n']} calibration sentences) | "
        f"test | {r['ece_calibrated']:.4f} (raw {r['ece']:.4f}) | ≤ 0.02 | "
        f"{'yes' if r['ece_calibrated'] <= 0.02 else 'no'} | |",
        f"| SemEval: risk-controlled abstention at 5% (δ 0.05) | realised error; coverage | {ab['realised_risk']:.4f}; "
        f"{ab['coverage']:.3f} | ≤ 0.05 | {'yes' if ab['realised_risk'] <= 0.05 else 'no'} | |",
        f"| SemEval: answered errors, Other vs a relation / between relations | test | "
        f"{split['answered_errors_other_vs_relation']} / {split['answered_errors_between_relations']} | report | | |",
        f"| SemEval: greedy attack on {at['n']} test sentences (context words only) | after-attack accuracy; entity "
        f"words edited | {at['after_attack_accuracy']:.4f} (clean {at['clean_accuracy']:.4f}); "
        f"{at['entity_check']['entity_words_edited']} | report; 0 | "
        f"{'yes' if at['entity_check']['entity_words_edited'] == 0 else 'no'} | |",
        f"| SemEval: training step, relation / text classification of the same sentences | ratio | "
        f"{step['relation_over_text']:.2f}× | ≤ 1.2× | {'yes' if step['relation_over_text'] <= 1.2 else 'no'} | |",
    ]
    if r.get("robust"):
        rob = r["robust"]
        ra = rob["attack"]
        out.append(
            f"| SemEval: robust recipe vs ERM, greedy on {ra['n']} test sentences | after-attack accuracy; gain; "
            f"clean change; macro-F1 | {ra['after_attack_accuracy']:.4f} vs {at['after_attack_accuracy']:.4f}; "
            f"{rob['after_attack_gain']:+.4f}; {rob['clean_change']:+.4f}; {rob['relation_macro_f1']:.4f} | "
            "report | | |"
        )
    return out
