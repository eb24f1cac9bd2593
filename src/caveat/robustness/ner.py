"""Adversarial attacks on NER (token-classification) runs: perturb context words, never the entities.

The text attacks' greedy substitution search (``attacks/search.py``, after TextFooler: Jin et al. 2020,
"Is BERT Really Robust? A Strong Baseline for Natural Language Attack on Text Classification and
Entailment") carried over to sequence labelling the way RockNER perturbs context (Lin et al. 2021,
"RockNER: A Simple Method to Create Adversarial Examples for Evaluating the Robustness of Named Entity
Recognition Models", EMNLP): only words whose gold tag is ``O`` are edited, by the same candidate
sources (``build_attack``) under the same ``Constraints``; the entity words are never edited and every
edit is a one-word substitution, so the gold spans keep their positions.

- A sentence is attacked when the model gets all of its spans right and it has at least one gold span.
- The objective the attacker lowers is the mean probability of the gold tag over the gold entity words
  (softmax of the word logits). ``order="importance"`` deletes each editable context word (one batched
  query; the entity words after it shift left by one) and visits words by how much the deletion lowers
  the objective; ``order="random"`` uses the seeded order of ``search.py``.
- A candidate *succeeds* when the predicted spans (constrained Viterbi, as ``caveat predict`` decodes)
  differ from the gold spans: a missed or mislabelled entity, or a spurious new one. The search stops at
  the first success (the most similar successful candidate is kept), else keeps the candidate lowering
  the objective most if it lowers it, until the change budget is spent.

Results are ``AttackResult`` records (``SpanAttackResult``) whose labels are span lists rendered like
``"PER:0-2 LOC:5-6"`` (type:start-end, end exclusive; ``""`` for none) and whose probabilities are the
objective, so ``attack_metrics`` summarises them; ``span_attack_metrics`` adds span-level figures.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from caveat.errors import ConfigError
from caveat.inference import softmax
from caveat.models.tags import bio_spans, decode_tags
from caveat.progress import phase
from caveat.robustness.attacks.base import AttackResult, Predicts
from caveat.robustness.attacks.search import Attack
from caveat.robustness.attacks.words import Words
from caveat.robustness.metrics import attack_metrics, example_rows

Span = tuple[int, int, str]  # (start, end exclusive, type)


def spans_text(spans: Sequence[Span]) -> str:
    """``[(0, 2, "PER"), (5, 6, "LOC")]`` -> ``"PER:0-2 LOC:5-6"`` (``""`` for no span)."""
    return " ".join(f"{typ}:{start}-{end}" for start, end, typ in spans)


class Tagging(NamedTuple):
    """The victim's view of one sentence: word tag probabilities (W, C) and the decoded BIO2 tags."""

    probs: np.ndarray
    tags: list[str]

    @property
    def spans(self) -> list[Span]:
        return bio_spans(self.tags)


class TagVictim:
    """An NER model under attack, seen only through its word probabilities (black box).

    Wraps a ``Predictor`` of a token-classification run (``predict(list of word lists)``) and counts
    every sentence it scores, so query counts are exact whatever the batching. Tags are decoded from
    the raw word logits by ``decode_tags`` (constrained Viterbi), exactly as ``caveat predict`` does.
    """

    def __init__(self, predictor: Predicts) -> None:
        self.predictor = predictor
        self.labels = list(predictor.labels)
        self.queries = 0

    def score(self, sentences: Sequence[Sequence[str]]) -> list[Tagging]:
        """One ``Tagging`` per sentence (a list of words). Counts ``len(sentences)`` queries."""
        if not sentences:
            return []
        sentences = [list(s) for s in sentences]
        preds = self.predictor.predict(sentences)
        self.queries += len(sentences)
        logits = (
            preds.logits[0] if preds.logits is not None else np.log(np.clip(preds.mean_probs, 1e-12, None))
        )  # (N, W, C)
        words = [logits[i, : len(s)] for i, s in enumerate(sentences)]
        return [Tagging(softmax(w), tags) for w, tags in zip(words, decode_tags(words, self.labels))]


@dataclass
class SpanAttackResult(AttackResult):
    """An ``AttackResult`` for one sentence, with the gold and predicted spans kept for span scoring
    (``as_dict`` leaves them out: the label strings render them)."""

    gold_spans: tuple[Span, ...] = ()
    original_spans: tuple[Span, ...] = ()
    adversarial_spans: tuple[Span, ...] = ()

    def as_dict(self) -> dict:
        out = super().as_dict()
        for key in ("gold_spans", "original_spans", "adversarial_spans"):
            out.pop(key)
        return out


def attack_sentence(
    attack: Attack, victim: TagVictim, tokens: Sequence[str], tags: Sequence[str], *, scored: Tagging | None = None
) -> SpanAttackResult:
    """Attack one tagged sentence (words and their gold BIO2 tags) with ``attack``'s candidates,
    order and constraints.

    ``scored`` is the victim's ``Tagging`` of ``tokens`` when the caller already scored it (in a batch);
    that query is still counted in the result. Sentences whose spans the model gets wrong, and
    sentences without a gold span, are returned unattacked.
    """
    if len(tokens) != len(tags):
        raise ValueError(f"{len(tokens)} words but {len(tags)} tags")
    if any(not t or any(ch.isspace() for ch in t) for t in tokens):
        raise ValueError("words must be non-empty and contain no whitespace")
    scored_by_caller = scored is not None
    start = victim.queries
    if scored is None:
        scored = victim.score([tokens])[0]
    result = _SpanSearch(attack, victim, tuple(tokens), tuple(tags), scored).run()
    result.queries = victim.queries - start + int(scored_by_caller)
    return result


class _SpanSearch:
    """The state of one greedy search (one sentence)."""

    def __init__(
        self, attack: Attack, victim: TagVictim, tokens: tuple[str, ...], tags: tuple[str, ...], scored: Tagging
    ) -> None:
        self.attack, self.victim, self.tags, self.original = attack, victim, tags, scored
        self.words = Words(tokens, ("",) + (" ",) * max(len(tokens) - 1, 0) + ("",))  # text == " ".join(tokens)
        self.gold = bio_spans(list(tags))
        index = {lab: k for k, lab in enumerate(victim.labels)}
        entity = [i for i, t in enumerate(tags) if t != "O"]
        self.scored_words = entity or list(range(len(tags)))  # an entity-free sentence (never attacked): all words
        self.gold_ids = [index[tags[i]] for i in self.scored_words]

    def objective(self, probs: np.ndarray, deleted: int | None = None) -> float:
        """Mean gold-tag probability over the entity words; ``deleted``: the word removed from the
        sentence ``probs`` belongs to (words after it moved left by one)."""
        if not self.scored_words:
            return 1.0
        rows = self.scored_words if deleted is None else [w - (w > deleted) for w in self.scored_words]
        return float(probs[rows, self.gold_ids].mean())

    def result(
        self, current: Words, scored: Tagging, changed: int, similarity: float, attacked: bool
    ) -> SpanAttackResult:
        before, after = self.original.spans, scored.spans
        return SpanAttackResult(
            original=self.words.text,
            adversarial=current.text,
            label=spans_text(self.gold),
            original_label=spans_text(before),
            original_prob=self.objective(self.original.probs),
            adversarial_label=spans_text(after),
            adversarial_prob=self.objective(scored.probs),
            attacked=attacked,
            success=attacked and after != self.gold,
            queries=0,
            words=self.words.n_words,
            changed=changed,
            similarity=float(similarity),
            gold_spans=tuple(self.gold),
            original_spans=tuple(before),
            adversarial_spans=tuple(after),
        )

    def order(self, positions: list[int]) -> list[int]:
        if self.attack.order == "random":
            rng = random.Random(f"{self.attack.seed}:{self.words.text}")  # as search.py
            return rng.sample(positions, len(positions))
        tokens = self.words.tokens
        deleted = self.victim.score([tokens[:i] + tokens[i + 1 :] for i in positions])
        dropped = np.array([self.objective(s.probs, deleted=i) for s, i in zip(deleted, positions)])  # (P,)
        return [positions[j] for j in np.argsort(dropped, kind="stable")]  # lowest objective first

    def run(self) -> SpanAttackResult:
        words, constraints = self.words, self.attack.constraints
        if not self.gold or self.original.spans != self.gold:
            return self.result(words, self.original, 0, 1.0, attacked=False)
        budget = constraints.budget(words.n_words)
        positions = [i for i in self.attack.positions(words) if self.tags[i] == "O"]  # context words only
        current, scored, changed, similarity = words, self.original, 0, 1.0
        value = self.objective(scored.probs)
        if budget == 0 or not positions:
            return self.result(current, scored, changed, similarity, attacked=True)
        reference = None
        for i in self.order(positions):
            if changed >= budget:
                break
            texts, sims, reference = self.attack.substitutes(words, current, i, reference)
            if not texts:
                continue
            tagged = self.victim.score([t.tokens for t in texts])
            broken = np.array([k for k, s in enumerate(tagged) if s.spans != self.gold], dtype=int)
            if len(broken):
                best = int(broken[np.argmax(sims[broken])])  # the most similar success (TextFooler)
                return self.result(texts[best], tagged[best], changed + 1, sims[best], attacked=True)
            values = [self.objective(s.probs) for s in tagged]
            best = int(np.argmin(values))
            if values[best] < value:
                current, scored, value = texts[best], tagged[best], values[best]
                changed, similarity = changed + 1, sims[best]
        return self.result(current, scored, changed, similarity, attacked=True)


def span_scores(gold: Sequence[Sequence[Span]], pred: Sequence[Sequence[Span]]) -> dict:
    """Strict span ``precision``/``recall``/``f1`` (micro; a span counts when start, end and type all
    match, as seqeval's strict mode), and ``missed`` gold spans, ``spurious`` predicted spans and
    ``span_errors = missed + spurious`` (a mislabelled entity is one of each)."""
    g = sum(len(set(s)) for s in gold)
    p = sum(len(set(s)) for s in pred)
    tp = sum(len(set(a) & set(b)) for a, b in zip(gold, pred))
    precision = tp / p if p else 0.0
    recall = tp / g if g else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "missed": g - tp,
        "spurious": p - tp,
        "span_errors": g - tp + p - tp,
    }


def span_attack_metrics(results: Sequence[SpanAttackResult], seconds: float, *, n_examples: int = 5) -> dict:
    """``attack_metrics`` of NER results, with sentence accuracy and span figures.

    ``clean_accuracy`` is the share of the ``n`` sentences whose predicted spans are all right (those
    without a gold span and none predicted included, though they are not attacked), and
    ``after_attack_accuracy`` that share less the successful attacks. Span figures are over all ``n``
    sentences, clean (the model's spans) and after the attack (the adversarial sentence's spans where
    one was attacked, else the clean ones): ``{clean,after_attack}_span_{precision,recall,f1,errors}``,
    ``{clean,after_attack}_{missed,spurious}_spans`` and ``gold_spans``.
    """
    out = attack_metrics(results, seconds, n_examples=n_examples)
    n = len(results)
    right = sum(r.original_spans == r.gold_spans for r in results)
    out["clean_accuracy"] = right / n if n else None
    out["after_attack_accuracy"] = (right - out["successes"]) / n if n else None
    gold = [r.gold_spans for r in results]
    out["gold_spans"] = sum(len(set(g)) for g in gold)
    for name, pred in (
        ("clean", [r.original_spans for r in results]),
        ("after_attack", [r.adversarial_spans for r in results]),
    ):
        s = span_scores(gold, pred)
        out.update(
            {
                f"{name}_span_precision": s["precision"],
                f"{name}_span_recall": s["recall"],
                f"{name}_span_f1": s["f1"],
                f"{name}_span_errors": s["span_errors"],
                f"{name}_missed_spans": s["missed"],
                f"{name}_spurious_spans": s["spurious"],
            }
        )
    return out


def attack_ner(
    predictor: Predicts,
    examples: Sequence,
    attacks: Sequence[Attack],
    *,
    n_examples: int = 5,
    kept: dict[str, list[dict]] | None = None,
) -> dict[str, dict]:
    """Attack tagged sentences (``TokenExample``s: ``tokens`` and gold ``tags``) with each attack; ``kept``, when
    given, receives every attack's per-sentence ``metrics.example_rows``.

    The clean pass scores every sentence once (batched) and is shared by the attacks; each attack's
    ``seconds`` include it (as if run alone). Returns ``{attack name: span_attack_metrics(...)}``.
    """
    if any(ex.tags is None for ex in examples):
        raise ConfigError("attacking an NER model needs gold tags for every sentence (an unlabelled file was given)")
    refused = [a.name for a in attacks if not a.tags_sentences]
    if refused:
        raise ConfigError(
            f"{', '.join(refused)} ranks words by one label's probability, so it attacks text-classification runs "
            "only; on an NER run use greedy@ppdb (the same substitutes, ranked by the span objective), greedy or "
            "charswap"
        )
    victim = TagVictim(predictor)
    start = time.perf_counter()
    clean = victim.score([ex.tokens for ex in examples])
    clean_seconds = time.perf_counter() - start
    out = {}
    for attack in attacks:
        start = time.perf_counter()
        results = []
        with phase(f"{attack.name} attack", total=len(examples)) as bar:
            for ex, scored in zip(examples, clean):
                results.append(attack_sentence(attack, victim, ex.tokens, ex.tags, scored=scored))
                bar.advance()
        out[attack.name] = span_attack_metrics(
            results, time.perf_counter() - start + clean_seconds, n_examples=n_examples
        )
        if kept is not None:
            kept[attack.name] = example_rows(attack.name, results)
    return out
