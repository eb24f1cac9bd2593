"""``caveat compare``: runs side by side (clean, attacked, shifted, cost); compare.json, compare.md and report.html."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

log = logging.getLogger(__name__)


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_command)


def compare_command(
    runs: Annotated[
        list[Path],
        typer.Argument(help="Run directories written by caveat train, all of one task (text classification or NER)."),
    ],
    data: Annotated[
        str, typer.Option(help="Split name (train, validation, calibration, test) or a labelled file.")
    ] = "test",
    attack: Annotated[
        Optional[str],
        typer.Option(
            "--attack",
            help=(
                "Attacks, comma-separated (e.g. greedy,charswap,pwws; all: every family); none by default. A run's "
                "saved attack with the same settings is reused."
            ),
        ),
    ] = None,
    held_out_attacks: Annotated[
        bool,
        typer.Option(
            "--held-out-attacks",
            help=(
                "Mark each run's attacks seen (they share a candidate source with its training's augmentation) or "
                "held-out, and report its mean after-attack gain over the baseline on each kind."
            ),
        ),
    ] = False,
    shift: Annotated[
        list[str], typer.Option(help="Shifted labelled set NAME=FILE (repeatable), e.g. cr=custrev.all.")
    ] = [],
    adversarial: Annotated[
        list[str],
        typer.Option(
            help=(
                "Human-made adversarial labelled set NAME=FILE (repeatable; text runs): accuracy, ECE and what the "
                "calibrated policy answers on it."
            )
        ),
    ] = [],
    max_examples: Annotated[int, typer.Option(help="Attack the first N examples of the data.")] = 500,
    max_change: Annotated[float, typer.Option(help="Attacks: largest fraction of words changed, in (0, 1].")] = 0.2,
    min_similarity: Annotated[
        float, typer.Option(help="Attacks: smallest sentence-embedding cosine to the original, in [0, 1].")
    ] = 0.8,
    max_candidates: Annotated[int, typer.Option(help="Attacks: substitutes tried per word.")] = 20,
    seed: Annotated[int, typer.Option(help="Attacks: seed of the character edits and of wordsub's order.")] = 0,
    similarity_model: Annotated[
        str, typer.Option(help="Attacks: sentence encoder, default (all-MiniLM-L6-v2) or a local model folder.")
    ] = "default",
    lexicons: Annotated[
        Optional[Path],
        typer.Option(
            help="Attacks: folder of the word lexicons (antonyms never proposed; ppdb_synonyms.txt for pwws and "
            "@ppdb). Default $CAVEAT_LEXICONS, else $CAVEAT_DATA/lexicons."
        ),
    ] = None,
    baseline: Annotated[
        Optional[str],
        typer.Option(
            help="Run the others are measured against on the page (its folder name or path); default: the first."
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Folder for compare.json, compare.md and report.html (its data: report.json).")
    ] = Path("compare"),
    batch_size: Annotated[Optional[int], typer.Option(help="Inference batch size.")] = None,
) -> None:
    """Compare runs of one task in one table: clean accuracy and ECE, after-attack accuracy, shifted accuracy and
    ECE, adversarial-set accuracy and ECE (NER runs: span F1 and span ECE, after-attack span F1 and sentence accuracy,
    shifted span F1 and span ECE), seconds per training step; with --held-out-attacks, gains on held-out and on seen
    attacks. Writes OUT/compare.json, OUT/compare.md and the page OUT/report.html (the change of
    each run against --baseline, the attacks with adversarial examples, the shifted sets, cost) and prints the
    markdown."""
    from caveat.robustness.compare import AttackSettings, compare_runs, to_markdown, write_compare
    from caveat.training.run import is_main_process

    settings = AttackSettings(
        max_examples=max_examples,
        max_change=max_change,
        min_similarity=min_similarity,
        max_candidates=max_candidates,
        seed=seed,
        lexicons=None if lexicons is None else str(lexicons),
    )
    result = compare_runs(
        runs,
        data,
        attacks=attack,
        shift=shift,
        adversarial=adversarial,
        held_out_attacks=held_out_attacks,
        settings=settings,
        similarity_model=similarity_model,
        batch_size=batch_size,
        baseline=baseline,
    )
    if not is_main_process():
        return
    paths = write_compare(result, out)
    log.info("wrote %s, %s and %s", *paths)
    typer.echo(to_markdown(result), nl=False)
