"""Questions with reference answers for generated-answer uncertainty: SQuAD JSON and NQ-open JSONL.

Readers take the decoded file text and the file name (for messages) and return ``Question``
records; ``read_questions`` finds the file, picks the reader by name or suffix and samples.
Relative paths that do not exist are looked up under ``$CAVEAT_DATA`` (default
``../shared/data``), the data root the Makefile, benchmarks and ``caveat demo`` use.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from caveat.data.readers._common import _decode, _error, _lines
from caveat.errors import ConfigError, DataError
from caveat.io import DATA_ROOT_ENV, data_root
from caveat.registry import Registry


@dataclass(frozen=True)
class Question:
    """One question and the answers that count as right.

    Attributes
    ----------
    id : str
        Unique within a file (SQuAD ``qas[].id``; ``nq-<line>`` for NQ-open).
    question : str
    answers : tuple of str
        Reference answers, at least one, duplicates removed (first occurrence kept).
    context : str or None
        The passage for reading comprehension (SQuAD); None for closed-book questions.
    """

    id: str
    question: str
    answers: tuple[str, ...]
    context: str | None = None


T = TypeVar("T")
Reader = Callable[[str, str], list[Question]]
READERS: Registry[Reader] = Registry("question reader")
_SUFFIXES = {".json": "squad", ".jsonl": "nq-open"}


def _answers(texts: Iterable[str]) -> tuple[str, ...]:
    """Non-blank answer texts, duplicates removed, first occurrence kept."""
    return tuple(dict.fromkeys(t for t in texts if t.strip()))


def _parse_json(text: str, file: str, line: int | None = None):
    """``json.loads`` with a ``DataError`` that names the line (``line`` is the JSONL line)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        where = line if line is not None else e.lineno  # a JSONL line holds no newline
        raise _error(
            file,
            where,
            f"not valid JSON ({e.msg} at column {e.colno})",
            "fix the JSON at that place (or remove the line)",
        ) from None


@READERS.register("squad")
def read_squad(text: str, file: str) -> list[Question]:
    """SQuAD v1.1 JSON (Rajpurkar et al. 2016, "SQuAD: 100,000+ Questions for Machine Comprehension
    of Text", EMNLP): ``data[].paragraphs[].{context, qas[].{id, question, answers[].text}}``.

    The paragraph's ``context`` becomes ``Question.context``. XQuAD (Artetxe et al. 2020) uses the
    same layout. Unanswerable SQuAD v2 questions (empty ``answers``) raise ``DataError``.
    """
    doc = _parse_json(text, file)
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise _error(
            file,
            None,
            'has no top-level "data" list',
            'give a SQuAD-format file {"data": [{"paragraphs": [...]}]} or format=\'nq-open\'',
        )
    out: list[Question] = []
    for i, article in enumerate(doc["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise _error(file, None, f'data[{i}] has no "paragraphs" list', "check the SQuAD layout")
        for j, para in enumerate(paragraphs):
            where = f"data[{i}].paragraphs[{j}]"
            if (
                not isinstance(para, dict)
                or not isinstance(para.get("context"), str)
                or not isinstance(para.get("qas"), list)
            ):
                raise _error(file, None, f'{where} needs a "context" string and a "qas" list', "check the SQuAD layout")
            for k, qa in enumerate(para["qas"]):
                out.append(_squad_question(qa, para["context"], file, f"{where}.qas[{k}]"))
    return out


def _squad_question(qa, context: str, file: str, where: str) -> Question:
    if (
        not isinstance(qa, dict)
        or not isinstance(qa.get("id"), str)
        or not isinstance(qa.get("question"), str)
        or not qa["question"].strip()
    ):
        raise _error(file, None, f'{where} needs an "id" and a non-empty "question" string', "check the SQuAD layout")
    raw = qa.get("answers")
    if not isinstance(raw, list) or not all(isinstance(a, dict) and isinstance(a.get("text"), str) for a in raw):
        raise _error(
            file,
            None,
            f'{where} (id {qa["id"]!r}): "answers" must be a list of {{"text": ...}} objects',
            "check the SQuAD layout",
        )
    answers = _answers(a["text"] for a in raw)
    if not answers:
        raise _error(
            file,
            None,
            f"question {qa['id']!r} ({where}) has no answers",
            "drop unanswerable questions (SQuAD v2 is_impossible) before reading",
        )
    return Question(id=qa["id"], question=qa["question"], answers=answers, context=context)


@READERS.register("nq-open")
def read_nq_open(text: str, file: str) -> list[Question]:
    """NQ-open JSONL (Lee, Chang & Toutanova 2019, "Latent Retrieval for Weakly Supervised Open
    Domain Question Answering", ACL; questions from Kwiatkowski et al. 2019, Natural Questions):
    one ``{"question": str, "answer": [str, ...]}`` per line, closed book (``context`` is None).

    ``id`` is ``nq-<line>`` with the 1-based line number in the file, so ids stay fixed when blank
    lines are added. Lines are split on ``\\n`` only (U+0085 may occur inside texts).
    """
    out: list[Question] = []
    for number, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        rec = _parse_json(line, file, number)
        if not isinstance(rec, dict) or not isinstance(rec.get("question"), str) or not rec["question"].strip():
            raise _error(
                file,
                number,
                'needs a non-empty "question" string',
                'write one {"question": ..., "answer": [...]} object per line',
            )
        raw = rec.get("answer")
        if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
            raise _error(
                file,
                number,
                f'"answer" must be a list of strings; got {raw!r}',
                'write the reference answers as a JSON list, e.g. "answer": ["1972"]',
            )
        answers = _answers(raw)
        if not answers:
            raise _error(
                file,
                number,
                "question has no answers",
                "give at least one non-blank reference answer or remove the line",
            )
        out.append(Question(id=f"nq-{number}", question=rec["question"], answers=answers))
    return out


def resolve_data_path(path: str | Path) -> Path:
    """``path`` if it exists, else (when relative) ``$CAVEAT_DATA/path``; raises ``DataError``.

    ``$CAVEAT_DATA`` defaults to ``../shared/data``, as in the Makefile and ``benchmarks/run.py``.
    """
    given = Path(path).expanduser()
    if given.exists():
        return given
    tried = [str(given.absolute())]
    if not given.is_absolute():
        under = data_root() / given
        if under.exists():
            return under
        tried.append(str(under.absolute()))
    raise DataError(
        f"{path}: file not found (looked at {' and '.join(tried)}). Fix: check the path, "
        f"or set {DATA_ROOT_ENV} to the folder that holds it"
    )


def read_questions(
    path: str | Path,
    *,
    format: str | None = None,
    limit: int | None = None,
    seed: int | None = None,
) -> list[Question]:
    """Read questions with reference answers from a SQuAD JSON or NQ-open JSONL file.

    Parameters
    ----------
    path : str or Path
        The file; a relative path that does not exist is tried under ``$CAVEAT_DATA``.
    format : str, optional
        One of ``READERS.names()`` (``"nq-open"``, ``"squad"``); by default from the suffix:
        ``.json`` is squad, ``.jsonl`` is nq-open.
    limit : int >= 1, optional
        Keep at most this many questions: the first ``limit`` in file order, or, with ``seed``,
        a uniform random sample without replacement, returned in file order. All questions when
        the file has no more than ``limit``.
    seed : int, optional
        Seed of the sample (``numpy.random.default_rng``); only used with ``limit``.

    Returns
    -------
    list of Question, length ``min(limit, N)`` (or N), in file order.

    Raises
    ------
    DataError
        ``file[:line]: problem. Fix: ...`` for a missing, empty, non-UTF-8 or malformed file, a
        question without answers, or a repeated question id.
    ConfigError
        An unknown format, a suffix the format cannot be inferred from, or a bad ``limit``.
    """
    check_limit(limit, "questions")
    file = resolve_data_path(path)
    if format is None:
        format = _SUFFIXES.get(file.suffix.lower())
        if format is None:
            choices = ", ".join(READERS.names())
            raise ConfigError(
                f"cannot infer the question format of {str(path)!r} from its suffix "
                f"{file.suffix or '(none)'!r}; pass format= one of: {choices}"
            )
    reader = READERS.get(format)
    text = _decode(file, str(file))
    if not text.strip():
        raise _error(str(file), None, "file is empty", "give a file with at least one question")
    questions = reader(text, str(file))
    if not questions:
        raise _error(str(file), None, "holds no questions", "give a file with at least one question")
    check_unique(questions, str(file), "question")
    return sample(questions, limit, seed)


def check_limit(limit, what: str) -> None:
    """Raise ``ConfigError`` unless ``limit`` is None or an integer >= 1."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ConfigError(f"limit must be an integer >= 1 (or None for all {what}); got {limit!r}")


def sample(items: list[T], limit: int | None, seed: int | None) -> list[T]:
    """The first ``limit`` items, or with ``seed`` a uniform sample without replacement in file order;
    all of them when there are no more than ``limit``."""
    if limit is None or limit >= len(items):
        return items
    if seed is None:
        return items[:limit]
    keep = np.sort(np.random.default_rng(seed).choice(len(items), size=limit, replace=False))
    return [items[i] for i in keep]


def check_unique(items: Iterable, file: str, what: str) -> None:
    """Answers and scores are joined to questions (documents) by id, so a repeated id would mix them up."""
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise _error(file, None, f"{what} id {item.id!r} occurs more than once", f"give every {what} a unique id")
        seen.add(item.id)
