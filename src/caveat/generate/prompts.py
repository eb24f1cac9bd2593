"""User messages that make a model answer a question briefly.

Small instruct models restate the question and run out of tokens unless told to be brief, so both
templates ask for a few words and end with "Answer:". Reading comprehension puts the passage before
the question. On 40 XQuAD questions, SmolLM2-135M-Instruct was right by containment as often with this
prompt as with one asking for "a short phrase copied from the passage, no sentence" (0.35), with more
exact matches and shorter answers. A template is plain ``str.format`` text
with ``{question}`` (and ``{context}`` for passages), so users can pass their own.
"""

from __future__ import annotations

from caveat.errors import ConfigError
from caveat.generate.data import Question

READING = (
    "Answer the question in a few words, using the passage.\n\nPassage: {context}\n\nQuestion: {question}\nAnswer:"
)
CLOSED_BOOK = "Answer the question in a few words.\n\nQuestion: {question}\nAnswer:"


def message(question: Question, *, template: str | None = None) -> str:
    """The user message for ``question``: ``template`` or the default for its kind (passage or not)."""
    if template is None:
        template = READING if question.context else CLOSED_BOOK
    try:
        return template.format(question=question.question, context=question.context or "")
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(
            f"prompt template {template!r} cannot be filled ({e}); use the fields "
            "{question} and {context} only, and double other braces"
        ) from None
