"""Adversarial data augmentation inside the training loop, A2T-style.

A2T (Yoo & Qi 2021, "Towards Improving Adversarial Training of NLP Models", Findings of EMNLP 2021):
after some clean epochs, at the start of each epoch attack a random share of the training set with
the *current* model, using a cheap attack, and train that epoch on the clean examples plus the
successful adversarial examples (with their original labels). The adversarial set is rebuilt every
epoch, never accumulated.

With ``mode="random"`` no attack is run: each chosen example gets one random edit from the attack's
substitutes under the same constraints (``Attack.perturb``), without querying the model, and every
example that could be edited adds its edit (Jia et al. 2019's data-augmentation baseline). It costs a
few sentence-encoder passes per example instead of dozens of model queries.

With ``paired=True`` (``train.objective=consistency``, whose objective ``needs_views``) the epoch's edits are not
added as rows: each becomes the perturbed view of its clean row (``perturbed_input_ids``), so the epoch keeps
its length and the objective compares the two predictions (TRADES-style, ``training.objectives.consistency``).

Candidates pass the antonym filter of the word lexicons (``robustness.attacks.lexicon``: WordNet and PPDB
antonyms, as counter-fitting uses them, Mrkšić et al. 2016), so augmentation never teaches the model that
``bad`` may replace ``good`` with the label kept, and ``train.augment.attack`` may draw from PPDB synonyms
(``greedy@ppdb``, ``pwws``). A comma-separated ``attack`` is a mixture: each chosen example draws one of the
attacks at random (seeded by ``(seed, epoch, example)``), so the epoch's adversarial examples come from several
candidate sources, not only the one an evaluation attack may share (issue 19: robustness that transfers).

Determinism and resumption: the attacked subset is drawn from ``(seed, epoch)``, the attack is seeded
from ``(seed, epoch)``, each example's attack in a mixture from ``(seed, epoch, example)``, and the model is the
one at the start of the epoch; the epoch's adversarial
examples are also kept in the trainer state, so a run resumed mid-epoch trains on exactly the same
set. Several processes: each attacks an interleaved shard of the subset and the results are gathered
onto every process, so all of them train on the same set (same length, same batches).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from caveat.config import AugmentConfig
from caveat.inference import Predictor
from caveat.models.encoding import encode_sequences
from caveat.robustness.attacks import (
    AttackSetup,
    Constraints,
    EmbeddingNeighbours,
    Lexicons,
    Victim,
    attack_sources,
    build_attack,
    load_lexicons,
    parse_attacks,
)
from caveat.robustness.similarity import SentenceEncoder
from caveat.types import Task

log = logging.getLogger(__name__)


def pick(n: int, fraction: float, seed: int, epoch: int) -> np.ndarray:
    """Sorted indices of the ``round(fraction * n)`` (at least 1) training examples attacked in ``epoch``."""
    k = min(n, max(1, round(fraction * n)))
    rng = np.random.default_rng([seed, epoch, 0xA27])  # its own stream: not EpochBatches' shuffle
    return np.sort(rng.choice(n, size=k, replace=False))


def attack_seed(seed: int, epoch: int) -> int:
    """The attack's seed in ``epoch`` (character edits, random word order): a function of ``(seed, epoch)``."""
    return int(np.random.default_rng([seed, epoch, 0xA7]).integers(2**31))


def draw(names: Sequence[str], seed: int, epoch: int, index: int) -> str:
    """The attack example ``index`` is augmented with in ``epoch``: one of ``names`` at random, a function of
    ``(seed, epoch, index)`` alone (so sharding across processes does not change it); ``names[0]`` when alone."""
    if len(names) == 1:
        return names[0]
    return names[int(np.random.default_rng([seed, epoch, index, 0xD7A]).integers(len(names)))]


def planned_steps(cfg: AugmentConfig, n: int, batch_size: int, epochs: float, *, paired: bool = False) -> int:
    """Optimizer steps of ``epochs`` epochs if every attack succeeded: the schedule's length (an upper bound).
    ``paired``: the edits are views of their rows, so no epoch is longer than a clean one."""
    extra = 0 if paired else len(pick(n, cfg.fraction, 0, 0))
    clean, augmented = math.ceil(n / batch_size), math.ceil((n + extra) / batch_size)
    whole, part = int(epochs), epochs - int(epochs)
    steps = sum(augmented if e >= cfg.start_epoch else clean for e in range(whole))
    if part:
        steps += math.ceil(part * (augmented if whole >= cfg.start_epoch else clean))
    return max(1, steps)


@dataclass
class Augmentation:
    """One epoch's adversarial examples (successful attacks only, original labels) and its figures;
    ``index``: the training example each text edits."""

    epoch: int
    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    index: list[int] = field(default_factory=list)
    attacked: int = 0
    successes: int = 0
    queries: int = 0
    seconds: float = 0.0
    by_attack: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> {"attacked", "added"}
    antonym_filter: bool = False
    antonyms_filtered: int = 0  # distinct (word, antonym) substitutes withheld this epoch

    def stats(self) -> dict:
        """The history entry: ``epoch, attacked, successes, added, queries, seconds``, and per attack of the
        mixture ``by_attack`` (``attacked``, ``added``), ``antonym_filter`` and ``antonyms_filtered``."""
        return {
            "epoch": self.epoch,
            "attacked": self.attacked,
            "successes": self.successes,
            "added": len(self.texts),
            "queries": self.queries,
            "seconds": round(self.seconds, 2),
            "by_attack": self.by_attack,
            "antonym_filter": self.antonym_filter,
            "antonyms_filtered": self.antonyms_filtered,
        }


@dataclass
class _Edit:
    """A random edit (``mode="random"``), shaped like the ``AttackResult`` fields ``build`` reads: it
    counts as a success when it changed a word, and it made no query."""

    adversarial: str
    changed: int
    similarity: float
    label: str
    queries: int = 0

    @property
    def success(self) -> bool:
        return self.changed > 0


class _OnDevice(nn.Module):
    """The in-training model as the ``Predictor`` expects it: CPU tensors in, CPU outputs out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model

    @property
    def encoder(self) -> nn.Module:  # for EmbeddingNeighbours.from_predictor
        return self.inner.encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        device = next(self.inner.parameters()).device
        out = self.inner(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device))
        out.logits = out.logits.cpu()
        out.features = out.features.cpu()
        return out


class Augmenter:
    """Builds each epoch's adversarial examples with the current model and puts them into ``train_rows``.

    Parameters
    ----------
    cfg : ``train.augment``.
    seed : the run's seed.
    tokenizer, label_map : the run's; labels are class names, rows carry label ids.
    examples : the clean training examples (``.text``, ``.label``), aligned with the first rows.
    train_rows : the training loader's dataset (a list), extended in place each epoch.
    max_length, batch_size : for the ``Predictor`` and the rows.
    encoder : overrides the sentence encoder (else ``SentenceEncoder(cfg.similarity_model)``).
    lexicons : overrides the word lexicons (else ``load_lexicons(cfg.lexicons)``, read here: an attack drawing from
        ``ppdb`` without the synonym lexicon fails before training starts).
    paired : attach each edit to its clean row as ``perturbed_input_ids`` instead of adding it as a row (for an
        objective that ``needs_views``, e.g. ``consistency``).
    task : text or relation classification (a relation input's entity words are never edited: ``Words.fixed``).
    """

    def __init__(
        self,
        cfg: AugmentConfig,
        *,
        seed: int,
        tokenizer,
        label_map,
        examples: Sequence,
        train_rows: list[dict],
        max_length: int,
        batch_size: int,
        encoder=None,
        lexicons: Lexicons | None = None,
        paired: bool = False,
        task: Task = Task.TEXT_CLASSIFICATION,
    ) -> None:
        self.cfg, self.seed, self.tokenizer, self.label_map, self.paired = cfg, seed, tokenizer, label_map, paired
        self.task = Task(task)  # relation runs: marked texts, encoded with their markers; entity words never edited
        self.examples, self.rows, self.n_clean = list(examples), train_rows, len(train_rows)
        self.max_length, self.batch_size, self._encoder = max_length, batch_size, encoder
        self.names = parse_attacks(cfg.attack)  # a mixture when several
        self.lexicons = lexicons if lexicons is not None else load_lexicons(cfg.lexicons)
        if any("ppdb" in attack_sources(name) for name in self.names):
            # the ppdb source's own error (naming the folder and the alternatives), before any epoch is trained
            AttackSetup(Constraints(), None, lexicons=self.lexicons).source("ppdb")
        if self.lexicons.antonyms is None:
            log.warning("train.augment: %s", self.lexicons.note)

    def active(self, epoch: int) -> bool:
        return epoch >= self.cfg.start_epoch

    def encoder(self):
        if self._encoder is None:
            self._encoder = SentenceEncoder(self.cfg.similarity_model, max_length=self.max_length)
        return self._encoder

    def setup(self, predictor: Predictor, epoch: int) -> AttackSetup:
        """The attacks' setup in ``epoch``: the constraints, the sentence encoder, the lexicons (antonym filter,
        ``ppdb``) and the in-training model's embedding neighbours (``embedding``)."""
        return AttackSetup(
            Constraints(max_change=self.cfg.max_change, min_similarity=self.cfg.min_similarity),
            self.encoder(),
            max_candidates=self.cfg.max_candidates,
            seed=attack_seed(self.seed, epoch),
            # twice the candidates: the antonyms filtered out are replaced by the next nearest words (as attack_run)
            word_candidates=lambda: EmbeddingNeighbours.from_predictor(predictor, k=2 * self.cfg.max_candidates),
            lexicons=self.lexicons,
            unknown=getattr(self.tokenizer, "unk_token", None) or "[UNK]",
        )

    def generate(
        self, model: nn.Module, epoch: int, *, rank: int = 0, world: int = 1
    ) -> tuple[list[int], list[str], list, set[tuple[str, str]]]:
        """Attack this process's shard (every ``world``-th) of the epoch's subset with ``model``.

        Returns the shard's example indices, the attack each drew (``draw``), their ``AttackResult``s (``_Edit``s
        in random mode) and the (word, antonym) substitutes the antonym filter withheld. Runs in eval mode, on a
        forked RNG (loading the sentence encoder must not move the random state dropout uses), and puts the model
        back in the mode it was in.
        """

        index = pick(len(self.examples), self.cfg.fraction, self.seed, epoch)[rank::world].tolist()
        drawn = [draw(self.names, self.seed, epoch, i) for i in index]
        results: list = [None] * len(index)
        withheld: set[tuple[str, str]] = set()
        was_training = model.training
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            with torch.random.fork_rng(devices=[]):
                predictor = Predictor(
                    _OnDevice(model),
                    self.tokenizer,
                    self.label_map.labels,
                    self.task,
                    max_length=self.max_length,
                    batch_size=self.batch_size,
                )
                setup = self.setup(predictor, epoch)
                attacks = [build_attack(name, setup) for name in self.names]  # every one: a bad source fails alike
                for attack in attacks:
                    mine = [j for j, name in enumerate(drawn) if name == attack.name]
                    for j, result in zip(mine, self._run(attack, predictor, [index[j] for j in mine], setup.seed)):
                        results[j] = result
                    withheld.update(attack.antonyms.withheld if attack.antonyms is not None else ())
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
            model.train(was_training)
        return index, drawn, results, withheld

    def _run(self, attack, predictor: Predictor, index: list[int], seed: int) -> list:
        """``attack`` on the examples ``index``: their ``AttackResult``s, or ``_Edit``s in random mode."""
        chosen = [self.examples[i] for i in index]
        if not chosen:
            return []
        if self.cfg.mode == "random":  # seeded by example, so sharding does not change the edits
            edits = attack.perturb_all([ex.text for ex in chosen], [random.Random(f"{seed}:{i}") for i in index])
            return [_Edit(*edit, ex.label) for edit, ex in zip(edits, chosen)]
        victim = Victim(predictor)
        clean = victim.probs([ex.text for ex in chosen])  # (K, C), one batched pass
        return [attack.attack(victim, ex.text, ex.label, probs=p) for ex, p in zip(chosen, clean)]

    def build(self, model: nn.Module, epoch: int, accelerator=None) -> Augmentation:
        """The epoch's ``Augmentation``; with an ``accelerator``, shards gathered onto every process."""
        start = time.perf_counter()
        rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)
        index, drawn, results, withheld = self.generate(model, epoch, rank=rank, world=world)
        shard = list(zip(index, drawn, results))  # [(index, attack, result)]
        withheld = sorted(withheld)
        if world > 1:
            from accelerate.utils import gather_object

            shard, withheld = gather_object(shard), gather_object(withheld)
        shard = sorted(shard, key=lambda item: item[0])  # the subset's order, whatever the sharding
        won = [(i, r) for i, _, r in shard if r.success]
        by_attack = {name: {"attacked": 0, "added": 0} for name in self.names}
        for _, name, r in shard:
            by_attack[name]["attacked"] += 1
            by_attack[name]["added"] += int(r.success)
        return Augmentation(
            epoch,
            [r.adversarial for _, r in won],
            [r.label for _, r in won],
            [i for i, _ in won],
            attacked=len(shard),
            successes=len(won),
            queries=sum(r.queries for _, _, r in shard),
            seconds=time.perf_counter() - start,
            by_attack=by_attack,
            antonym_filter=self.lexicons.antonyms is not None,
            antonyms_filtered=len({tuple(pair) for pair in withheld}),
        )

    def begin_epoch(self, state, model: nn.Module, accelerator=None) -> None:
        """Set ``train_rows`` to the clean rows plus this epoch's adversarial ones (``paired``: the clean rows,
        each edited one with its edit as ``perturbed_input_ids``).

        The set is rebuilt unless ``state.augmented`` already holds it (a run resumed mid-epoch); new
        sets go to ``state.augmented`` and their figures to ``state.augment_history``.
        """
        del self.rows[self.n_clean :]
        for row in self.rows:
            row.pop("perturbed_input_ids", None)  # last epoch's views
        if not self.active(state.epoch):
            return
        if not state.augmented or state.augmented["epoch"] != state.epoch:
            aug = self.build(model, state.epoch, accelerator)
            state.augmented = asdict(aug)
            state.augment_history.append(aug.stats())
            log.info(
                "epoch %d: %d attacked, %d adversarial examples added (%.0f s)",
                state.epoch,
                aug.attacked,
                len(aug.texts),
                aug.seconds,
            )
        aug = Augmentation(**state.augmented)
        if self.paired:
            views = encode_sequences(self.tokenizer, aug.texts, self.max_length, task=self.task) if aug.texts else []
            for i, view in zip(aug.index, views):
                self.rows[i]["perturbed_input_ids"] = view["input_ids"]
            return
        ids = [self.label_map.to_id(y, where="adversarial example") for y in aug.labels]
        if aug.texts:
            self.rows.extend(encode_sequences(self.tokenizer, aug.texts, self.max_length, ids, task=self.task))
