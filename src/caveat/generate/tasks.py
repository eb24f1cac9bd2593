"""What ``generate-eval`` can evaluate, by name: answering questions or summarising documents.

Each task names its reader, its evaluation, its default answer length and the options that belong to
it (a correctness rule for questions, quality measures and record fields for documents), so a face can
refuse an option given to the wrong task instead of ignoring it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from caveat.generate.data import read_questions
from caveat.generate.documents import read_documents
from caveat.generate.evaluate import SUMMARY_MAX_NEW_TOKENS, evaluate_generation, evaluate_summaries
from caveat.registry import Registry


@dataclass(frozen=True)
class GenerationTask:
    """A kind of generation ``generate-eval`` measures.

    Attributes
    ----------
    name : its name in ``TASKS``.
    what : what its inputs are called in messages (``"questions"``, ``"documents"``).
    max_new_tokens : the default longest output, in tokens.
    read : ``(path, *, limit, seed, **read_options) -> list`` of inputs.
    evaluate : ``(inputs, lm, *, sampling, estimators, cache, context, template, n_boot, **evaluate_options)
        -> dict``.
    read_options, evaluate_options : the keyword options only this task takes.
    """

    name: str
    what: str
    max_new_tokens: int
    read: Callable[..., list]
    evaluate: Callable[..., dict]
    read_options: tuple[str, ...] = ()
    evaluate_options: tuple[str, ...] = ()

    @property
    def options(self) -> tuple[str, ...]:
        return self.read_options + self.evaluate_options


TASKS: Registry[GenerationTask] = Registry("generation task")
TASKS.register("qa")(
    GenerationTask("qa", "questions", 32, read_questions, evaluate_generation, evaluate_options=("rule",))
)
TASKS.register("summarise")(
    GenerationTask(
        "summarise",
        "documents",
        SUMMARY_MAX_NEW_TOKENS,
        read_documents,
        evaluate_summaries,
        read_options=("document_field", "summary_field", "id_field"),
        evaluate_options=("quality",),
    )
)
