"""User messages that make a model answer a question briefly, or summarise a document in one sentence.

Small instruct models restate the question and run out of tokens unless told to be brief, so both
templates ask for a few words and end with "Answer:". Reading comprehension puts the passage before
the question. On 40 XQuAD questions, SmolLM2-135M-Instruct was right by containment as often with this
prompt as with one asking for "a short phrase copied from the passage, no sentence" (0.35), with more
exact matches and shorter answers. A template is plain ``str.format`` text
with ``{question}`` (and ``{context}`` for passages), so users can pass their own.

Summaries (:class:`~caveat.generate.documents.Document`) get ``SUMMARY``, with ``{document}``: XSum's
references are one sentence, so the prompt asks for one, in the words of lm-polygraph's XSum prompt,
and ends with a cue as the questions do. Every template is the *user message* only: the model's chat
template, when it has one, is applied once around it by :meth:`~caveat.generate.lm.LanguageModel.prompt`
(with its own default system message, if any), so a template holds no role markers.
"""

from __future__ import annotations

from caveat.errors import ConfigError
from caveat.generate.data import Question
from caveat.generate.documents import Document

READING = (
    "Answer the question in a few words, using the passage.\n\nPassage: {context}\n\nQuestion: {question}\nAnswer:"
)
CLOSED_BOOK = "Answer the question in a few words.\n\nQuestion: {question}\nAnswer:"
SUMMARY = "Summarise the text in one sentence.\n\nText: {document}\n\nOne-sentence summary:"


def message(item: Question | Document, *, template: str | None = None) -> str:
    """The user message for a question or a document: ``template`` or the default for its kind."""
    if isinstance(item, Document):
        return _fill(template or SUMMARY, "{document}", document=item.document)
    if template is None:
        template = READING if item.context else CLOSED_BOOK
    return _fill(template, "{question} and {context}", question=item.question, context=item.context or "")


def _fill(template: str, names: str, **values: str) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(
            f"prompt template {template!r} cannot be filled ({e}); use the fields {names} only, and double other braces"
        ) from None
