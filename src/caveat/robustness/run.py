"""Attack a run directory on a split or a file; results merged into ``metrics.json`` under ``attack.<data>``.

Text-classification runs are attacked here; NER (token-classification) runs by ``ner.attack_ner``,
with the same options and output layout. A calibrated text run's attacks are also read through its policy
(``metrics.policy_metrics``): how many successful adversarial examples it withholds, and the error of what it
still answers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from caveat.calibration import Calibration
from caveat.data.resolve import resolve_split
from caveat.errors import ConfigError
from caveat.inference import Predictor
from caveat.io import read_json, write_json_atomic, write_text_atomic
from caveat.models.rundir import Run, open_run
from caveat.progress import phase, subject
from caveat.robustness.attacks import (
    AttackResult,
    AttackSetup,
    Constraints,
    EmbeddingNeighbours,
    Encoder,
    Lexicons,
    Victim,
    build_attack,
    parse_attacks,
)
from caveat.robustness.attacks.base import Predicts
from caveat.robustness.attacks.lexicon import lexicons_folder as lexicons_folder  # re-exported: its old home
from caveat.robustness.attacks.lexicon import load_lexicons
from caveat.robustness.lm_words import CausalWords
from caveat.robustness.metrics import attack_metrics, example_rows, policy_metrics
from caveat.robustness.ner import attack_ner
from caveat.robustness.similarity import SentenceEncoder
from caveat.types import Task

METRICS_FILE = "metrics.json"
NOT_CALIBRATED = (
    "the run is not calibrated, so its attacks are not read through a policy (no caught, answered_*): "
    "calibrate it first (caveat calibrate RUN) and attack again"
)
NER_POLICY = "NER runs: caught and answered_* are for text-classification runs (a span policy keeps spans, not inputs)"


def reads_policy(run: Run) -> bool:
    """Are this run's attacks read through a calibrated policy (``caught``, ``answered_*``)? A calibrated text- or
    relation-classification run's are."""
    return run.task.classifies_texts and bool(run.info.get("calibration"))


def attack_run(
    run_dir: str | Path | Run,
    data: str = "test",
    attacks: str | Sequence[str] = "greedy",
    *,
    max_examples: int | None = 500,
    max_change: float = 0.2,
    min_similarity: float = 0.8,
    protected: Sequence[str] = (),
    max_candidates: int = 20,
    seed: int = 0,
    encoder: Encoder | None = None,
    similarity_model: str = "default",
    batch_size: int | None = None,
    lexicons: str | Path | Lexicons | None = None,
    lm: str = "default",
    lm_top_k: int = 20,
    examples_out: str | Path | None = None,
    write: bool = True,
) -> dict:
    """Attack the first ``max_examples`` examples of ``data`` with each attack in ``attacks``.

    The clean pass scores every example once (batched); only correctly classified ones are attacked.
    Each attack's figures (``attack_metrics``) and constraints go under ``attacks.<name>``, and into
    ``RUN/metrics.json`` as ``attack.<data>.<name>`` (other attacks already there are kept).
    NER runs: sentences are attacked on their context words only (``ner.attack_ner``; figures from
    ``ner.span_attack_metrics``, which adds span-level ones), in the same layout.
    ``encoder`` overrides the sentence encoder (else ``similarity_model``: ``"default"`` = the
    packaged all-MiniLM-L6-v2, or a local model folder).
    A calibrated text run's figures add ``metrics.POLICY_KEYS`` (the policy on the clean and the attacked
    inputs); the result says ``calibrated`` and, when those keys are absent, why in ``note``.
    ``lexicons`` (a folder, or loaded ``Lexicons``; default ``lexicons_folder()``) gives the antonyms no attack
    proposes and the ``ppdb`` synonyms; each attack's figures say its ``sources`` and whether the antonym filter
    was on (``antonym_filter``, with ``antonyms_filtered``, or ``antonym_filter_note`` saying why not).
    ``lm`` is the causal LM that proposes ``bae``'s words in context (``"default"``: the packaged
    SmolLM2-135M-Instruct, or a local model folder), loaded once and only when ``bae`` is asked for, before the
    clean pass; ``lm_top_k`` the words it proposes per position. ``bae``'s figures add ``lm``, ``lm_top_k``,
    ``lm_calls``, ``lm_texts`` and ``mean_lm_calls`` (per attacked example).
    ``examples_out`` (a ``.jsonl`` path) keeps every example of every attack, not only the first few successes
    that the figures hold: one JSON line each (``metrics.example_rows``: attack, index in the data, the edits as
    ``"from -> to"``, label and prediction before and after, success, queries, words changed, similarity), written
    atomically once the attacks finish; the result names it under ``examples_out``. Read the successes before
    quoting after-attack accuracy: an edit that changes the meaning is a label change, not an attack.
    """

    names = parse_attacks(attacks)
    constraints = Constraints(max_change=max_change, min_similarity=min_similarity, protected=frozenset(protected))
    if max_examples is not None and max_examples < 1:
        raise ConfigError(f"max_examples must be >= 1 (or None for all). Got {max_examples!r}.")
    if examples_out is not None:
        examples_out = Path(examples_out)
        if examples_out.is_dir() or examples_out.suffix != ".jsonl":
            raise ConfigError(
                "examples_out must be a .jsonl file path (one JSON line per attacked example). "
                f"Got {str(examples_out)!r}."
            )
    run = run_dir if isinstance(run_dir, Run) else open_run(run_dir)
    split = resolve_split(run, data)
    examples = split.examples[:max_examples]
    lexicons = load_lexicons(lexicons)
    predictor = Predictor.from_run(run, batch_size=batch_size)
    setup = AttackSetup(
        constraints,
        encoder or SentenceEncoder(similarity_model),
        seed=seed,
        max_candidates=max_candidates,
        # twice the candidates: the antonyms filtered out are replaced by the next nearest words
        word_candidates=lambda: EmbeddingNeighbours.from_predictor(predictor, k=2 * max_candidates),
        lexicons=lexicons,
        unknown=getattr(getattr(predictor, "tokenizer", None), "unk_token", None) or "[UNK]",
        language_model=lambda: CausalWords.load(lm),  # the lm source (bae): loaded once, on first use
        lm_top_k=lm_top_k,
    )
    built = [build_attack(name, setup) for name in names]  # before the clean pass: fail early

    kept: dict[str, list[dict]] | None = {} if examples_out is not None else None  # attack -> its example_rows
    with subject(data):  # what the passes and attacks work on, for the progress lines
        if run.task is Task.TOKEN_CLASSIFICATION:
            figures = attack_ner(predictor, examples, built, kept=kept)
        else:
            figures = attack_texts(predictor, examples, built, calibration=predictor.calibration, kept=kept)
    settings = {"constraints": constraints.as_dict(), "max_candidates": max_candidates, "seed": seed}
    reports = {attack.name: attack.report() for attack in built}
    for name, report in reports.items():
        if "lm_calls" in report:  # per attacked example, as mean_queries
            attacked = figures[name]["attacked"]
            report["mean_lm_calls"] = report["lm_calls"] / attacked if attacked else None
    out = {name: {**m, **settings, **reports[name]} for name, m in figures.items()}
    first = next(iter(out.values()))
    result = {
        "data": data,
        "source": split.source,
        "task": run.task.value,
        "n": first["n"],
        "clean_accuracy": first["clean_accuracy"],
        "calibrated": predictor.calibration is not None,
        "lexicons": {"folder": lexicons.folder, "files": list(lexicons.files)},
        "attacks": out,
    }
    if kept is not None:
        rows = [row for attack_rows in kept.values() for row in attack_rows]
        write_text_atomic(examples_out, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        result["examples_out"] = {"path": str(examples_out), "rows": len(rows)}
    if not reads_policy(run):
        result["note"] = NER_POLICY if run.task is Task.TOKEN_CLASSIFICATION else NOT_CALIBRATED
    if write:
        path = run.path / METRICS_FILE
        existing = read_json(path) if path.is_file() else {}
        existing.setdefault("attack", {}).setdefault(data, {}).update(out)
        write_json_atomic(path, existing)
    return result


def attack_texts(
    predictor: Predicts,
    examples: Sequence,
    attacks: Sequence,
    *,
    calibration: Calibration | None = None,
    kept: dict[str, list[dict]] | None = None,
) -> dict[str, dict]:
    """``{attack name: figures}`` over labelled texts, each attack's ``attack_metrics`` plus, with a
    ``calibration``, its ``policy_metrics``. ``kept``, when given, receives every attack's ``example_rows`` (with
    the policy's decision on each example when calibrated).

    The clean pass scores every example once (batched) and is counted in each attack's ``seconds`` (as if
    run alone); the policy's pass over the attacked texts is not (it is not part of the attack).
    """
    texts = [ex.text for ex in examples]
    start = time.perf_counter()
    clean_preds = predictor.predict(texts)
    clean = clean_preds.mean_probs  # (N, C)
    clean_seconds = time.perf_counter() - start
    answered_clean = None if calibration is None else calibration.decide(clean_preds)[2].answered  # (N,)
    victim = Victim(predictor)
    out = {}
    for attack in attacks:
        start = time.perf_counter()
        results = []
        with phase(f"{attack.name} attack", total=len(examples)) as bar:
            for ex, probs in zip(examples, clean):
                results.append(attack.attack(victim, ex.text, ex.label, probs=probs))
                bar.advance()
        out[attack.name] = attack_metrics(results, time.perf_counter() - start + clean_seconds)
        after = None
        if calibration is not None:
            after = _answered_after(predictor, calibration, results, answered_clean)
            out[attack.name].update(policy_metrics(results, answered_clean, after))
        if kept is not None:
            kept[attack.name] = example_rows(attack.name, results, answered_clean, after)
    return out


def _answered_after(
    predictor: Predicts, calibration: Calibration, results: Sequence[AttackResult], answered_clean: np.ndarray
) -> np.ndarray:
    """(N,) bool: does the policy answer each text after the attack? One batched pass over the texts the attack
    changed; the others keep their clean decision."""
    answered = answered_clean.copy()
    changed = [i for i, r in enumerate(results) if r.adversarial != r.original]
    if changed:
        with subject("attacked texts"):
            preds = predictor.predict([results[i].adversarial for i in changed])
        answered[changed] = calibration.decide(preds)[2].answered
    return answered
