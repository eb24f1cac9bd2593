"""The Typer application; each subcommand lives in its own module."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from caveat import progress
from caveat._version import __version__
from caveat.cli import (
    attack,
    calibrate,
    certify,
    compare,
    demo,
    evaluate,
    explain,
    export,
    generate,
    generate_calibrate,
    generate_tune,
    import_,
    info,
    predict,
    report,
    serve,
    train,
    tune,
)
from caveat.errors import CaveatError, RenamedWarning

app = typer.Typer(
    name="caveat",
    help="Fine-tune language models that are robust by construction and say when not to trust them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
for module in (
    train,
    import_,
    tune,
    calibrate,
    predict,
    evaluate,
    explain,
    generate,
    generate_calibrate,
    generate_tune,
    attack,
    certify,
    compare,
    report,
    export,
    demo,
    serve,
    info,
):
    module.register(app)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"caveat {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help=f"No progress on stderr (as env {progress.QUIET_ENV}=1); stdout is unchanged."
        ),
    ] = False,
) -> None:
    # the app's help is Typer(help=...); this callback only carries the options every command shares.
    # Progress shows for the command's run only: held by the context, so library calls after it stay quiet.
    ctx.with_resource(progress.showing(not quiet, command=ctx.invoked_subcommand))
    ctx.with_resource(_renamed_said())


@contextmanager
def _renamed_said() -> Iterator[None]:
    """During a command, an old name typed on the command line (``--score msp``) is said on stderr as one
    ``warning: ...`` line (Python would hide the library's DeprecationWarning); other warnings go as before."""
    with warnings.catch_warnings():
        show = warnings.showwarning

        def said(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, RenamedWarning):
                typer.echo(f"warning: {message}", err=True)
            else:
                show(message, category, filename, lineno, file, line)

        warnings.showwarning = said
        warnings.simplefilter("default", RenamedWarning)  # once per place it is raised from
        yield


# library arguments whose flag is not their name
FLAGS = {"explain": "--explain-faithfulness", "overrides": "--set", "attacks": "--attack", "actors": "--ray-actors"}


def flag_message(err: CaveatError) -> str:
    """The error's message with each library argument spelled as its command-line flag (``top_k`` -> ``--top-k``)."""
    return err.render({field: FLAGS.get(field, "--" + field.replace("_", "-")) for field in err.fields})


def main() -> None:
    """Entry point: user errors become one clear line on stderr and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "urllib3", "filelock", "accelerate"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        app()
    except CaveatError as err:
        typer.secho(f"error: {flag_message(err)}", fg=typer.colors.RED, err=True)
        raise SystemExit(2) from None
