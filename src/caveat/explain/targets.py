"""What an explanation explains: one scalar quantity of one input, as a function of which words are present.

Every method explains the same thing, so that their attributions, faithfulness and cost compare:

- ``label``: the calibrated probability of a label (default: the predicted one), ``softmax(z / T)[c]``;
- ``uncertainty``: "which words make the model unsure": the entropy of the calibrated distribution
  (``entropy``), its least confidence ``1 - softmax(z / T)[ĉ]`` with ``ĉ`` the label predicted for the
  whole input (``least_confidence``), or the mutual information between prediction and weights under
  MC dropout (``mutual_information``; Gal & Ghahramani 2016). ``uncertainty`` itself names the score
  the method declares (``ExplainModel.explained``'s ``uncertainty``): entropy for the deletion-based
  methods, least confidence for integrated gradients, whose all-absent baseline is where the entropy
  peaks (see ``integrated_gradients.py``);
- ``span`` (NER): the calibrated confidence of a span's label, the product of its words' tag
  probabilities (as ``caveat calibrate`` scores spans). The span's own words stay fixed; only
  its context is explained.

``T`` is the run's fitted temperature when it was calibrated, 1 otherwise. Removing a word deletes
it from the input (ERASER's convention, DeYoung et al. 2020); black-box methods see the quantity
only through ``Explained.score``, a batched function of keep masks that counts every input scored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from caveat.errors import ConfigError
from caveat.inference import Predictor
from caveat.models.tags import viterbi_bio
from caveat.robustness.attacks.words import Words
from caveat.types import Task

UNCERTAINTY_SCORES = ("entropy", "least_confidence", "mutual_information")
MI_SAMPLES = 20  # MC-dropout passes behind the mutual information


def words_of(text: str) -> list[str]:
    """The whitespace-separated words of ``text``: what attributions are given for."""
    return re.findall(r"\S+", text)


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """(..., C) probabilities -> (...) Shannon entropy in nats."""
    return -(probs * torch.log(probs.clamp_min(1e-12))).sum(-1)


@dataclass
class Explained:
    """One input and the scalar quantity explained on it.

    Attributes
    ----------
    words : W words of the input.
    features : (W,) bool, the words that may be removed (all but a span's own words).
    target : JSON-ready description (``kind``, ``name``, ...), copied into every ``Attribution``.
    task : text or token classification.
    transform : torch function of the model's logits giving the quantity: (B, C) -> (B,) for text;
        for a span (B, T, C) token logits and (B, L) span token positions -> (B,).
    predictor : the run's ``Predictor``.
    span : (start, end) word indices of a span target, else None.
    span_tags : the tag indices the span's words are scored for.
    samples : MC-dropout passes (``mutual_information``), else 1.
    evaluations : inputs scored so far through ``score``.
    """

    words: list[str]
    features: np.ndarray
    target: dict
    task: Task
    transform: Callable
    predictor: Predictor
    span: tuple[int, int] | None = None
    span_tags: list[int] = field(default_factory=list)
    samples: int = 1
    evaluations: int = 0

    @property
    def n_features(self) -> int:
        return int(self.features.sum())

    @property
    def feature_words(self) -> list[str]:
        return [w for w, f in zip(self.words, self.features) if f]

    def _full_keep(self, keep: np.ndarray) -> np.ndarray:
        """(M, F) feature keep masks -> (M, W) word keep masks (non-features always kept)."""
        keep = np.asarray(keep, dtype=bool)
        if keep.ndim != 2 or keep.shape[1] != self.n_features:
            raise ValueError(
                f"keep masks must be (M, {self.n_features}) booleans over the feature words; got {keep.shape}"
            )
        full = np.ones((len(keep), len(self.words)), dtype=bool)
        full[:, self.features] = keep
        return full

    def inputs(self, keep: np.ndarray) -> list:
        """The inputs the model sees for ``keep``: texts (kept words joined by spaces) or word lists."""
        full = self._full_keep(keep)
        rows = [[w for w, k in zip(self.words, row) if k] for row in full]
        return rows if self.task is Task.TOKEN_CLASSIFICATION else [" ".join(r) for r in rows]

    @torch.no_grad()
    def score(self, keep: np.ndarray) -> np.ndarray:
        """(M, F) keep masks over the feature words -> (M,) values of the quantity, in batches."""
        keep = np.asarray(keep, dtype=bool)
        if len(keep) == 0:
            return np.zeros(0)
        self.evaluations += len(keep)
        inputs = self.inputs(keep)
        if self.task is Task.TOKEN_CLASSIFICATION:
            preds = self.predictor.predict(inputs)
            logits = torch.from_numpy(preds.logits[0])  # (M, W', C) word logits
            full = self._full_keep(keep)
            start, end = self.span
            # the span's words sit after the kept words before them
            positions = np.stack([np.cumsum(row)[start:end] - 1 for row in full])  # (M, L)
            return self.transform(logits, torch.from_numpy(positions)).double().numpy()
        preds = self.predictor.predict(inputs, samples=self.samples, seed=0)
        logits = torch.from_numpy(preds.logits)  # (K, M, C)
        return self.transform(logits if self.samples > 1 else logits[0]).double().numpy()

    def value(self) -> float:
        """``f(x)``, the quantity on the whole input (counted as one evaluation)."""
        return float(self.score(np.ones((1, self.n_features), dtype=bool))[0])


def _identity(z):
    return z


def _label_transform(index: int, scale: Callable) -> Callable:
    return lambda z: torch.softmax(scale(z.double()), -1)[..., index]


def _entropy_transform(scale: Callable) -> Callable:
    return lambda z: entropy(torch.softmax(scale(z.double()), -1))


def _least_confidence_transform(index: int, scale: Callable) -> Callable:
    return lambda z: 1.0 - torch.softmax(scale(z.double()), -1)[..., index]


def _mutual_information(z: torch.Tensor) -> torch.Tensor:
    """(K, B, C) MC-dropout logits -> (B,) ``H(mean p) - mean H(p)`` (BALD; Houlsby et al. 2011)."""
    p = torch.softmax(z.double(), -1)
    return entropy(p.mean(0)) - entropy(p).mean(0)


def _span_transform(tags: list[int], scale: Callable) -> Callable:
    def f(z: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(scale(z.double()), -1)  # (B, T, C)
        rows = torch.arange(len(p))[:, None]
        return p[rows, positions, torch.tensor(tags)[None]].prod(-1)  # (B, L) -> (B,)

    return f


def find_span(words: Sequence[str], span: str) -> tuple[int, int]:
    """(start, end) word indices of the first occurrence of ``span``'s words in ``words``."""
    want = span.split()
    if not want:
        raise ConfigError("{span} must name at least one word of the sentence, e.g. {span}='Paris'", fields=("span",))
    for s in range(len(words) - len(want) + 1):
        if list(words[s : s + len(want)]) == want:
            return s, s + len(want)
    raise ConfigError(f"span {span!r} is not in the sentence {' '.join(words)!r}; give words exactly as they appear")


@dataclass
class ExplainModel:
    """A run's predictor, with its calibration: makes the ``Explained`` quantity of any input."""

    predictor: Predictor

    @classmethod
    def from_run(cls, run: str | Path, *, batch_size: int | None = None) -> ExplainModel:
        return cls(Predictor.from_run(run, batch_size=batch_size))

    @property
    def calibrated(self) -> bool:
        return self.predictor.calibration is not None

    @property
    def temperature(self) -> float:
        """The fitted temperature, 1 for an uncalibrated run (shown with every explanation)."""
        return self.predictor.calibration.temperature if self.calibrated else 1.0

    @property
    def scale(self) -> Callable:
        """The run's calibration of logits (torch or numpy), the identity when uncalibrated."""
        return self.predictor.calibration.scale if self.calibrated else _identity

    @property
    def labels(self) -> list[str]:
        return self.predictor.labels

    def explained(
        self,
        text: str | Sequence[str],
        target: str = "predicted",
        *,
        span: str | None = None,
        label: str | None = None,
        uncertainty: str = "entropy",
    ) -> Explained:
        """The quantity to explain on ``text``.

        Parameters
        ----------
        text : a text (text classification) or a sentence as words or a whitespace-separated string (NER).
        target : ``predicted`` (the predicted label's probability), a label name, ``uncertainty``
            (the score named by ``uncertainty``), ``entropy``, ``least_confidence`` or
            ``mutual_information``. Text classification only; NER explains a span.
        span : NER: the span's words as they appear in the sentence, e.g. ``"Paris"``.
        label : NER: explain the span as this entity type (default: the type predicted for it).
        uncertainty : the score ``target='uncertainty'`` stands for, one of ``UNCERTAINTY_SCORES``;
            each method declares its own (``caveat.explain.explain``).
        """
        if uncertainty not in UNCERTAINTY_SCORES:
            raise ConfigError(
                f"uncertainty={uncertainty!r} is not an uncertainty score; use one of {', '.join(UNCERTAINTY_SCORES)}"
            )
        p, scale = self.predictor, self.scale
        base = {"temperature": self.temperature, "calibrated": self.calibrated}
        if p.task is Task.TOKEN_CLASSIFICATION:
            return self._span(text, span, label, base)
        if span is not None:
            raise ConfigError(
                "{span} is for NER runs; this run classifies whole texts (use {target})", fields=("span", "target")
            )
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"text to explain must be a non-empty string; got {text!r}")
        words = words_of(text)
        probs = torch.softmax(scale(torch.from_numpy(p.predict([text]).logits[0, 0]).double()), -1)
        predicted = int(probs.argmax())
        common = dict(words=words, features=_removable(text, len(words), p.task), task=p.task, predictor=p)
        if target == "uncertainty":
            target = uncertainty
        if target == "entropy":
            return Explained(
                **common,
                transform=_entropy_transform(scale),
                target={
                    "kind": "uncertainty",
                    "score": "entropy",
                    "name": "entropy of the calibrated prediction" if self.calibrated else "entropy of the prediction",
                    "predicted": p.labels[predicted],
                    **base,
                },
            )
        if target == "least_confidence":
            return Explained(
                **common,
                transform=_least_confidence_transform(predicted, scale),
                target={
                    "kind": "uncertainty",
                    "score": "least_confidence",
                    "label": p.labels[predicted],
                    "index": predicted,
                    "name": f"1 - {'calibrated ' if self.calibrated else ''}probability of the predicted "
                    f"label {p.labels[predicted]!r} (least confidence)",
                    "predicted": p.labels[predicted],
                    **base,
                },
            )
        if target == "mutual_information":
            return Explained(
                **common,
                transform=_mutual_information,
                samples=MI_SAMPLES,
                target={
                    "kind": "uncertainty",
                    "score": "mutual_information",
                    "samples": MI_SAMPLES,
                    "name": f"mutual information under MC dropout ({MI_SAMPLES} passes)",
                    "predicted": p.labels[predicted],
                },
            )
        if target == "predicted":
            index = predicted
        elif target in p.labels:
            index = p.labels.index(target)
        else:
            raise ConfigError(
                f"target {target!r} is neither 'predicted', 'uncertainty', 'entropy', 'least_confidence', "
                f"'mutual_information' nor a label of this run ({', '.join(p.labels[:10])}"
                f"{', ...' if len(p.labels) > 10 else ''})"
            )
        return Explained(
            **common,
            transform=_label_transform(index, scale),
            target={
                "kind": "label",
                "label": p.labels[index],
                "index": index,
                "predicted": p.labels[predicted],
                "name": f"probability of {p.labels[index]!r}",
                **base,
            },
        )

    def _span(self, text, span: str | None, label: str | None, base: dict) -> Explained:
        p = self.predictor
        words = words_of(text) if isinstance(text, str) else list(text)
        if not words:
            raise ConfigError("sentence to explain has no words")
        if span is None:
            raise ConfigError(
                "NER runs explain one span: pass {span} with its words, e.g. {span}='Paris'", fields=("span",)
            )
        start, end = find_span(words, span)
        logits = p.predict([words]).logits[0, 0, : len(words)]  # (W, C)
        z = self.scale(logits)
        log_probs = z - np.logaddexp.reduce(z, axis=-1, keepdims=True)
        tags = [p.labels[i] for i in viterbi_bio(log_probs, p.labels)]
        got = tags[start:end]
        predicted = got[0][2:] if got[0].startswith("B-") and all(g == f"I-{got[0][2:]}" for g in got[1:]) else None
        typ = label or predicted
        if typ is None:
            raise ConfigError(
                f"{span!r} is not a predicted span (its tags are {' '.join(got)}); "
                "pass {label}=TYPE to explain it as an entity of that type",
                fields=("label",),
            )
        want = [f"B-{typ}"] + [f"I-{typ}"] * (end - start - 1)
        missing = [w for w in want if w not in p.labels]
        if missing:
            raise ConfigError(f"label {typ!r} is not an entity type of this run (no tag {missing[0]!r})")
        features = np.ones(len(words), dtype=bool)
        features[start:end] = False
        return Explained(
            words=words,
            features=features,
            task=p.task,
            predictor=p,
            span=(start, end),
            span_tags=[p.labels.index(w) for w in want],
            transform=_span_transform([p.labels.index(w) for w in want], self.scale),
            target={
                "kind": "span",
                "span": " ".join(words[start:end]),
                "start": start,
                "end": end,
                "label": typ,
                "predicted": predicted,
                "name": f"confidence that {' '.join(words[start:end])!r} is {typ}",
                **base,
            },
        )


def _removable(text: str, n_words: int, task: Task) -> np.ndarray:
    """(W,) the words an explanation may remove: all of them, but for a relation input only its context. The
    marked entities (``<e1>…</e1>``, ``<e2>…</e2>``) stay, as a NER span's own words do: without them there is no
    relation to explain, and the attribution says which context words carry it (the attacks' ``Words.fixed``)."""
    keep = np.ones(n_words, dtype=bool)
    if task is Task.RELATION_CLASSIFICATION:
        keep[list(Words.of(text).fixed)] = False
    return keep
