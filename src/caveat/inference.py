"""The one batched inference engine: run directory (or model) + inputs -> Predictions.

Uncertainty methods, evaluation, attacks, explanations and the service all call this; none of them
tokenises or batches on its own. A predictor made from a run carries the run's fitted calibration
(``Predictor.calibration``); ``predict(..., calibrated=True)`` applies it, and nobody else divides
logits by a temperature.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from caveat.calibration import RunCalibration, load_calibration
from caveat.errors import ConfigError, NotCalibratedError
from caveat.models.encoding import Collator, encode_sequences, encode_words
from caveat.models.rundir import Run, load_members, load_model, open_run
from caveat.progress import phase
from caveat.types import Predictions, Task
from caveat.uncertainty.methods.mc_dropout import sample_top_layers


@torch.no_grad()
def iter_outputs(model, loader, accelerator=None) -> Iterator[dict[str, np.ndarray]]:
    """Yield per batch ``logits`` (B, C) or (B, T, C), ``features`` (B, D) for sequences, and the
    batch's ``word_index``/``labels`` when present; gathered across processes without the padded
    duplicates of the last batch when an ``accelerator`` is given."""
    was_training = model.training
    model.eval()
    distributed = accelerator is not None and accelerator.num_processes > 1
    for batch in loader:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        item = {"logits": out.logits.float()}
        if out.features.dim() == 2:
            item["features"] = out.features.float()
        for key in ("word_index", "labels"):
            if key in batch:
                item[key] = batch[key]
        if distributed:
            if out.logits.dim() == 3:  # token tasks: widths differ between processes
                item = {
                    k: accelerator.pad_across_processes(v, dim=1, pad_index=-1 if k == "word_index" else -100)
                    for k, v in item.items()
                }
            item = accelerator.gather_for_metrics(item)
        yield {k: v.cpu().numpy() for k, v in item.items()}
    model.train(was_training)


def word_logits(logits: np.ndarray, word_index: np.ndarray, n_words: int) -> tuple[np.ndarray, np.ndarray]:
    """Pick each word's first sub-token: logits (T, C), word_index (T,) -> (n_words, C) and a (n_words,) mask
    that is False for words cut off by ``max_length``."""
    out = np.zeros((n_words, logits.shape[-1]), dtype=logits.dtype)
    seen = np.zeros(n_words, dtype=bool)
    pos = np.nonzero(word_index >= 0)[0]
    out[word_index[pos]] = logits[pos]
    seen[word_index[pos]] = True
    return out, seen


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


class Predictor:
    """Batched, length-sorted inference for one model.

    Parameters
    ----------
    model : a ``CaveatModel``.
    tokenizer : its fast tokenizer.
    labels : class names (C).
    task : sequence or token classification.
    """

    def __init__(
        self,
        model,
        tokenizer,
        labels: Sequence[str],
        task: Task,
        *,
        max_length: int = 128,
        batch_size: int = 64,
        calibration: RunCalibration | None = None,
    ):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.labels, self.task = list(labels), Task(task)
        self.max_length, self.batch_size = max_length, batch_size
        self.collate = Collator(tokenizer.pad_token_id or 0)
        self.calibration = calibration
        self.run: Run | None = None

    @classmethod
    def from_run(cls, run: str | Path | Run, *, batch_size: int | None = None, calibrated: bool = True) -> Predictor:
        """The run's model and, unless ``calibrated=False`` (for refitting it), its fitted calibration."""
        run = run if isinstance(run, Run) else open_run(run)
        tokenizer, model = load_model(run)
        cfg = run.config.train
        predictor = cls(
            model,
            tokenizer,
            run.labels,
            run.task,
            max_length=cfg.max_length,
            batch_size=batch_size or cfg.eval_batch_size,
            calibration=load_calibration(run) if calibrated else None,
        )
        predictor.run = run
        return predictor

    def ensemble(self, run: Run | None = None) -> list[Predictor]:
        """Predictors of the run's deep-ensemble members (this one first); [self] when it has none.

        Members of a LoRA ensemble share this predictor's base model in memory: each holds only its adapter and
        head, and activates its adapter before each forward (Wang et al. 2023, "LoRA ensembles for large
        language model fine-tuning").
        """
        run = run or self.run
        names = run.info.get("ensemble", {}).get("members", []) if run is not None else []
        if not names:
            return [self]
        if run.config.model.peft.method != "lora":
            return [self] + [
                Predictor.from_run(run.path / m, batch_size=self.batch_size, calibrated=False) for m in names
            ]
        members = [open_run(run.path / m) for m in names]
        out = [self]
        for member, (tokenizer, model) in zip(members, load_members(run, self.model, members)):
            predictor = Predictor(
                model,
                tokenizer or self.tokenizer,
                member.labels,
                member.task,
                max_length=member.config.train.max_length,
                batch_size=self.batch_size,
            )
            predictor.run = member
            out.append(predictor)
        return out

    def calibrate(self, preds: Predictions) -> Predictions:
        """``preds`` with the run's fitted calibration applied; NotCalibratedError when it has none."""
        if self.calibration is None:
            where = f" {self.run.path}" if self.run is not None else ""
            raise NotCalibratedError(
                f"the run{where} is not calibrated: fit its calibration first "
                f"(caveat calibrate{where}, or model.calibrate() in Python)"
            )
        return self.calibration.apply(preds)

    def _batches(self, rows: list[dict]) -> Iterator[tuple[np.ndarray, dict]]:
        order = np.argsort([len(r["input_ids"]) for r in rows], kind="stable")  # less padding
        for i in range(0, len(rows), self.batch_size):
            idx = order[i : i + self.batch_size]
            yield idx, self.collate([rows[j] for j in idx])

    def predict(
        self,
        inputs: Sequence[str] | Sequence[Sequence[str]],
        *,
        samples: int = 1,
        seed: int = 0,
        top_layers: int | None = None,
        calibrated: bool = False,
    ) -> Predictions:
        """Predict a list of texts (sequence task; relation tasks: marked ``<e1>…</e1> … <e2>…</e2>``) or of word
        lists (token task; strings are split on whitespace). For tokens, T indexes words and ``mask`` marks real
        (not truncated) words.

        ``samples = 1``: the deterministic model, M = 1. ``samples = K > 1``: MC dropout (Gal &
        Ghahramani 2016, "Dropout as a Bayesian Approximation"): dropout stays on and the K passes run
        as one forward over the batch repeated K times; probs are (K, N, C), features the mean over
        samples. Seeded on a forked RNG: the same call gives the same numbers and the caller's random
        state is untouched. ``top_layers = L`` (efficient mode) samples dropout only in the top L
        encoder layers and the head, running the layers below once (see uncertainty/methods/mc_dropout.py).
        ``calibrated=True`` applies the run's fitted calibration (temperature-scaled logits and probs).
        """
        preds = self._predict(inputs, samples=samples, seed=seed, top_layers=top_layers)
        return self.calibrate(preds) if calibrated else preds

    def _predict(self, inputs, *, samples: int, seed: int, top_layers: int | None) -> Predictions:
        if not inputs:
            raise ValueError("nothing to predict: pass at least one input")
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(
                f"samples must be an integer >= 1 (1 = deterministic, K > 1 = MC dropout). Got {samples!r}."
            )
        if self.task is Task.TOKEN_CLASSIFICATION:
            if samples > 1:
                raise ValueError("MC dropout (samples > 1) is for text-classification runs so far; use samples=1")
            return self._predict_words([s.split() if isinstance(s, str) else list(s) for s in inputs])
        rows = encode_sequences(self.tokenizer, list(inputs), self.max_length, task=self.task)
        if samples == 1:
            return self._predict_texts(rows, 1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model.train()  # dropout on (MC dropout); no batch norm in these encoders
            try:
                return self._predict_texts(rows, samples, top_layers)
            finally:
                self.model.eval()

    @torch.no_grad()
    def _predict_texts(self, rows: list[dict], samples: int, top_layers: int | None = None) -> Predictions:
        n, c = len(rows), len(self.labels)
        logits = np.zeros((samples, n, c), dtype=np.float32)  # (M, N, C)
        features = None
        step = max(1, self.batch_size // samples)  # inputs per forward: samples * step rows
        order = np.argsort([len(r["input_ids"]) for r in rows], kind="stable")  # less padding
        what = "predict" if samples == 1 else f"predict {samples} MC dropout samples"
        with phase(what, total=n) as bar:
            for i in range(0, n, step):
                idx = order[i : i + step]
                batch = self.collate([rows[j] for j in idx])
                if top_layers is not None:
                    sampled, feats = sample_top_layers(
                        self.model, batch["input_ids"], batch["attention_mask"], samples=samples, top_layers=top_layers
                    )
                    logits[:, idx], feats = sampled.float().numpy(), feats.float().numpy()
                else:
                    ids, att = batch["input_ids"].repeat(samples, 1), batch["attention_mask"].repeat(samples, 1)
                    out = self.model(input_ids=ids, attention_mask=att)  # (M*B, T) in
                    logits[:, idx] = out.logits.float().view(samples, len(idx), c).numpy()  # sample-major: (M, B, C)
                    feats = out.features.float().view(samples, len(idx), -1).mean(0).numpy()  # (B, D)
                if features is None:
                    features = np.zeros((n, feats.shape[-1]), dtype=np.float32)
                features[idx] = feats
                bar.advance(len(idx))
        return Predictions(probs=softmax(logits), logits=logits, features=features, labels=self.labels)

    def _predict_words(self, sentences: list[list[str]]) -> Predictions:
        rows = encode_words(self.tokenizer, sentences, self.max_length)
        width = max(1, max(len(s) for s in sentences))
        logits = np.zeros((len(rows), width, len(self.labels)), dtype=np.float32)  # (N, W, C)
        mask = np.zeros((len(rows), width), dtype=bool)
        with phase("predict", total=len(rows)) as bar:
            for idx, batch in self._batches(rows):
                out = next(iter_outputs(self.model, [batch]))
                for k, j in enumerate(idx):
                    n = len(sentences[j])
                    logits[j, :n], mask[j, :n] = word_logits(out["logits"][k], out["word_index"][k], n)
                bar.advance(len(idx))
        return Predictions(probs=softmax(logits)[None], logits=logits[None], mask=mask, labels=self.labels)


def ensemble_predict(
    members: Sequence[Predictor], inputs: Sequence[str], *, first: Predictions | None = None
) -> Predictions:
    """Stack the members' deterministic predictions: probs (M members, N, C); features of member 0.
    ``first``: member 0's raw predictions of ``inputs`` when the caller already has them (no second pass)."""
    return stack_members(member_predictions(members, inputs, first=first))


def member_predictions(
    members: Sequence[Predictor], inputs: Sequence[str], *, first: Predictions | None = None
) -> list[Predictions]:
    """Each member's deterministic predictions of ``inputs`` (each with its own features); ``first`` as in
    ``ensemble_predict``."""
    if len(members) < 2:
        raise ConfigError("this run has no ensemble members; train one with caveat train ... --ensemble N")
    return [first if first is not None else members[0].predict(inputs)] + [m.predict(inputs) for m in members[1:]]


def stack_members(preds: Sequence[Predictions]) -> Predictions:
    """Members' predictions stacked: probs and logits (M, N, C); features and mask of member 0."""
    return Predictions(
        probs=np.concatenate([p.probs for p in preds]),
        logits=np.concatenate([p.logits for p in preds]),
        features=preds[0].features,
        mask=preds[0].mask,
        labels=preds[0].labels,
    )
