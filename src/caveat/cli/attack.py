"""``caveat attack``: adversarial attacks on a text-classification run (JSON; merged into metrics.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from caveat.cli.common import emit


def register(app: typer.Typer) -> None:
    app.command("attack")(attack_command)


def attack_command(
    run: Annotated[
        Path,
        typer.Argument(help="Run directory written by caveat train (text classification or NER: context words only)."),
    ],
    data: Annotated[
        str, typer.Option(help="Split name (train, validation, calibration, test) or a labelled file.")
    ] = "test",
    attack: Annotated[
        str,
        typer.Option(
            "--attack",
            help=(
                "Attacks, comma-separated: charswap, wordsub, greedy (also char_adjacent, char_insert, char_delete, "
                "char_keyboard)."
            ),
        ),
    ] = "greedy",
    max_examples: Annotated[int, typer.Option(help="Attack the first N examples of the data.")] = 500,
    max_change: Annotated[float, typer.Option(help="Largest fraction of words changed, in (0, 1].")] = 0.2,
    min_similarity: Annotated[
        float, typer.Option(help="Smallest sentence-embedding cosine to the original, in [0, 1].")
    ] = 0.8,
    protect: Annotated[
        Optional[str], typer.Option(help="Words never edited, comma-separated (stop words never are).")
    ] = None,
    max_candidates: Annotated[
        int, typer.Option(help="Substitutes tried per word (character attacks: at most 8).")
    ] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the character edits and of wordsub's visiting order.")] = 0,
    similarity_model: Annotated[
        str,
        typer.Option(
            help="Sentence encoder of the similarity constraint: default (all-MiniLM-L6-v2) or a local model folder."
        ),
    ] = "default",
    batch_size: Annotated[Optional[int], typer.Option(help="Inference batch size.")] = None,
) -> None:
    """Attack a run; also merged into RUN/metrics.json under attack.<data>. Keys: docs/attacks.md."""
    from caveat.robustness.run import attack_run

    protected = [w.strip() for w in (protect or "").split(",") if w.strip()]
    emit(
        attack_run(
            run,
            data,
            attack,
            max_examples=max_examples,
            max_change=max_change,
            min_similarity=min_similarity,
            protected=protected,
            max_candidates=max_candidates,
            seed=seed,
            similarity_model=similarity_model,
            batch_size=batch_size,
        )
    )
