"""The one training loop, on HF Accelerate: one process or many run this same code.

``train.batch_size`` is the global batch: Accelerate splits each batch across processes
(``split_batches=True``), so N processes take the same optimizer steps as one process would.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from caveat.config import RunConfig
from caveat.data.fingerprint import fingerprint
from caveat.data.labels import LabelMap, check_labels
from caveat.data.load import load_data
from caveat.errors import ConfigError
from caveat.models.build import build_model
from caveat.models.encoding import Collator
from caveat.models.rundir import save_model, write_run_info
from caveat.progress import phase
from caveat.training.augment import Augmenter, planned_steps
from caveat.training.checkpoint import CHECKPOINT_DIR, has_checkpoint, load_checkpoint, save_checkpoint
from caveat.training.objectives import OBJECTIVES, build_objective
from caveat.training.optim import build_optimizer, linear_schedule
from caveat.training.scoring import encode_split, score_outputs, split_summary
from caveat.training.teacher import attach_soft_targets
from caveat.training.tracking import abort_tracking, accelerator_options, start_tracking
from caveat.training.validation_metric import validation_metric

log = logging.getLogger(__name__)


class EpochBatches(Sampler[list[int]]):
    """Batches of indices that depend only on ``(seed, epoch)``: resumable, and the same in every process.

    With ``lengths``, examples are grouped by length within windows of 50 batches before batching and
    the batches are shuffled (as HF Trainer's ``group_by_length``): far less padding on data such as
    CoNLL, whose sentences run from 1 to 100+ words, at almost no cost to randomness.
    """

    window = 50

    def __init__(self, n: int, batch_size: int, seed: int, lengths: list[int] | None = None):
        self.n, self.batch_size, self.seed, self.lengths, self.epoch = n, batch_size, seed, lengths, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.n)
        if self.lengths is None:
            return iter([order[i : i + self.batch_size].tolist() for i in range(0, self.n, self.batch_size)])
        span = self.batch_size * self.window
        batches = []
        for start in range(0, self.n, span):
            chunk = sorted(order[start : start + span].tolist(), key=lambda i: -self.lengths[i])
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        # the one short batch (if any) stays last so that every other batch is full
        full = [b for b in batches if len(b) == self.batch_size]
        short = [b for b in batches if len(b) < self.batch_size]
        return iter([full[i] for i in rng.permutation(len(full))] + short)

    def __len__(self) -> int:
        return (
            math.ceil(self.n / self.batch_size)
            if self.lengths is None
            else (self.n // self.batch_size + (1 if self.n % self.batch_size else 0))
        )


@dataclass
class TrainState:
    """Where the loop is; saved in checkpoints as JSON."""

    global_step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    selected_step: int | None = None  # the step whose weights are in model/
    evals_without_improvement: int = 0
    stopped_early: bool = False
    history: list[dict] = field(default_factory=list)
    augmented: dict | None = None  # this epoch's adversarial examples (train.augment), kept for resumption
    augment_history: list[dict] = field(default_factory=list)


@dataclass
class _Run:
    """What fit() builds once and its steps share (model, optimizer and loaders as Accelerate prepared them)."""

    accelerator: Any
    splits: Any
    label_map: LabelMap
    tokenizer: Any
    model: Any
    train_rows: list[dict]
    sampler: EpochBatches
    loader: Any
    val_loader: Any
    steps_per_epoch: int
    augmenter: Augmenter | None
    total: int  # optimizer steps the schedule plans for
    optimizer: Any
    scheduler: Any
    objective: Any


class Trainer:
    """Fine-tune ``config.model`` on ``config.data`` with ``config.train.objective`` into ``out_dir``.

    Stages: ``fit()`` trains and writes the run directory (model/, caveat.json, metrics.json, logs/).
    """

    def __init__(
        self,
        config: RunConfig,
        out_dir: str | Path,
        *,
        splits=None,
        progress: bool = True,
        callbacks: list[Callable[[TrainState, dict], None]] | None = None,
    ):
        self.config, self.out = config, Path(out_dir)
        self.splits, self.progress, self.callbacks = splits, progress, callbacks or []
        self.base: dict | None = None  # the frozen backbone of a LoRA run (caveat.json "base")
        self.teacher: dict | None = None  # train.objective=distill: the teacher (caveat.json training.teacher)
        self.metric = validation_metric(config.task, config.train.select_metric)  # picks the kept weights

    def fit(self, *, resume: bool = False) -> dict:
        """Train; with ``resume``, continue from ``out_dir/checkpoint`` exactly where it stopped."""
        if not resume and has_checkpoint(self.out):
            raise ConfigError(
                f"{self.out} holds an unfinished run; continue it with {{resume}} or choose another {{out}}",
                fields=("resume", "out"),
            )
        accelerator = self._start_accelerator()
        splits, label_map = self._load_splits()
        tokenizer, model = self._build_model(label_map)
        train_rows, sampler, loader, val_loader = self._build_loaders(accelerator, tokenizer, splits, label_map)
        steps_per_epoch = len(loader)
        augmenter, total = self._plan_schedule(tokenizer, splits, label_map, train_rows, steps_per_epoch)
        optimizer, scheduler, objective = self._build_optimization(model, total)
        model, optimizer, loader, val_loader = accelerator.prepare(model, optimizer, loader, val_loader)
        run = _Run(
            accelerator=accelerator,
            splits=splits,
            label_map=label_map,
            tokenizer=tokenizer,
            model=model,
            train_rows=train_rows,
            sampler=sampler,
            loader=loader,
            val_loader=val_loader,
            steps_per_epoch=steps_per_epoch,
            augmenter=augmenter,
            total=total,
            optimizer=optimizer,
            scheduler=scheduler,
            objective=objective,
        )
        state = self._resume_state(run, resume)
        self._open_outputs(accelerator)
        data_info = {"fingerprint": _fingerprint(splits), "splits": split_summary(splits)}
        started = time.perf_counter()
        try:
            self._train(run, state, started)
            summary = self._summary(run, state, started)
            self._finish(run, data_info, summary)
        except BaseException:
            abort_tracking(accelerator)  # else MLflow's run stays open and the next run in this process fails
            raise
        return summary

    def _start_accelerator(self):
        """Create the Accelerator (kept on ``self.accelerator``) and seed every RNG before anything draws from them."""
        from accelerate import Accelerator
        from accelerate.utils import DataLoaderConfiguration, set_seed

        # Accelerate only picks the gloo CPU backend under torchrun when asked for the CPU explicitly.
        multi_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
        accelerator = Accelerator(
            cpu=multi_cpu,
            dataloader_config=DataLoaderConfiguration(split_batches=True),
            **accelerator_options(self.config.train, self.out / "logs"),  # fails early if the tracker is missing
        )
        self.accelerator = accelerator
        set_seed(self.config.seed)
        return accelerator

    def _load_splits(self):
        """The run's splits and the label map of train, failing on labels the other splits add."""
        cfg = self.config
        splits = self.splits if self.splits is not None else load_data(cfg)
        label_map = LabelMap.from_splits(splits.train, cfg.task)
        for split in (splits.validation, splits.calibration, splits.test):
            if split is not None:
                check_labels(split, label_map, cfg.task)
        return splits, label_map

    def _build_model(self, label_map: LabelMap):
        """Load the backbone and put the task's head on it: (tokenizer, model)."""
        tokenizer, model, self.base = build_model(self.config.model, self.config.task, len(label_map))
        return tokenizer, model

    def _build_loaders(self, accelerator, tokenizer, splits, label_map: LabelMap):
        """Encode train and validation and batch them: (train_rows, sampler, loader, val_loader)."""
        cfg, tcfg = self.config, self.config.train
        collate = Collator(tokenizer.pad_token_id or 0)
        train_rows = encode_split(tokenizer, splits.train, label_map, cfg.task, tcfg.max_length)
        if tcfg.objective == "distill":  # the teacher's soft targets, once, on every row
            self.teacher = attach_soft_targets(
                train_rows, splits.train, label_map.labels, cfg, device=accelerator.device
            )
        val_rows = encode_split(tokenizer, splits.validation, label_map, cfg.task, tcfg.max_length)
        if tcfg.batch_size % accelerator.num_processes:
            raise ConfigError(
                f"train.batch_size={tcfg.batch_size} must be divisible by the {accelerator.num_processes} processes"
            )
        lengths = [len(r["input_ids"]) for r in train_rows] if tcfg.group_by_length else None
        sampler = EpochBatches(len(train_rows), tcfg.batch_size, cfg.seed, lengths)
        # Its own generator: creating an iterator draws a seed, which must not shift the global RNG
        # that dropout uses (else a resumed run would diverge from an uninterrupted one).
        loader = DataLoader(
            train_rows, batch_sampler=sampler, collate_fn=collate, generator=torch.Generator().manual_seed(cfg.seed)
        )
        val_loader = DataLoader(val_rows, batch_size=tcfg.eval_batch_size, collate_fn=collate)
        return train_rows, sampler, loader, val_loader

    def _plan_schedule(self, tokenizer, splits, label_map: LabelMap, train_rows: list[dict], steps_per_epoch: int):
        """The augmenter (None unless ``train.augment``) and the total optimizer steps the schedule plans for."""
        cfg, tcfg = self.config, self.config.train
        if not tcfg.augment.enabled:
            return None, tcfg.max_steps or max(1, math.ceil(tcfg.epochs * steps_per_epoch))
        augmenter = Augmenter(
            tcfg.augment,
            seed=cfg.seed,
            tokenizer=tokenizer,
            label_map=label_map,
            examples=splits.train.examples,
            train_rows=train_rows,
            max_length=tcfg.max_length,
            batch_size=tcfg.eval_batch_size,
            paired=OBJECTIVES.get(tcfg.objective).needs_views,  # consistency: edits become views of their rows
            task=cfg.task,
        )
        # augmented epochs are longer (unless paired); the schedule is planned as if every attack succeeded
        steps = planned_steps(tcfg.augment, len(train_rows), tcfg.batch_size, tcfg.epochs, paired=augmenter.paired)
        return augmenter, tcfg.max_steps or steps

    def _build_optimization(self, model, total: int):
        """The optimizer, its warmup-then-linear schedule over ``total`` steps and the training objective."""
        tcfg = self.config.train
        optimizer = build_optimizer(model, tcfg)
        scheduler = linear_schedule(optimizer, total, tcfg.warmup_ratio)
        return optimizer, scheduler, build_objective(tcfg, self.config.task)

    def _resume_state(self, run: _Run, resume: bool) -> TrainState:
        """A fresh TrainState, or the checkpoint's (restoring model, optimizer and schedule) with ``resume``."""
        if not resume:
            return TrainState()
        if not has_checkpoint(self.out):
            raise ConfigError(
                f"{{resume}}: {self.out} has no checkpoint to resume; start without {{resume}}", fields=("resume",)
            )
        state = TrainState(
            **load_checkpoint(
                self.out,
                model=run.accelerator.unwrap_model(run.model),
                optimizer=run.optimizer,
                scheduler=run.scheduler,
            )
        )
        log.info("resuming at step %d (epoch %d, batch %d)", state.global_step, state.epoch, state.step_in_epoch)
        return state

    def _open_outputs(self, accelerator) -> None:
        """Create the run directory (main process) and start the ``train.tracking`` trackers."""
        if accelerator.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
        start_tracking(accelerator, self.config, self.out)

    def _train(self, run: _Run, state: TrainState, started: float) -> None:
        """Take optimizer steps until the step budget, the planned epochs or early stopping ends training."""
        seen = 0
        shown = self.progress and run.accelerator.is_main_process
        with phase("optimizer steps", total=run.total, start=state.global_step, show=shown) as bar:
            run.model.train()
            stop = state.global_step >= run.total
            while not stop:
                batches, epoch_steps = self._begin_epoch(run, state)
                for batch in batches:
                    stats = self._optimizer_step(run, batch)
                    state.global_step += 1
                    state.step_in_epoch += 1
                    seen += batch["input_ids"].shape[0] * run.accelerator.num_processes
                    rate = seen / max(1e-9, time.perf_counter() - started)
                    bar.advance(info=f"loss {stats['loss']:.4f}  {rate:.0f} ex/s")
                    self._log_step(run, state, stats, rate)
                    at_eval = state.step_in_epoch in self._eval_points(epoch_steps) or state.global_step == run.total
                    if at_eval:
                        state.stopped_early = self._validate(run, state)
                    if state.step_in_epoch == epoch_steps:
                        state.epoch, state.step_in_epoch = state.epoch + 1, 0
                    stop = self._should_stop(run, state)
                    if not stop and (at_eval or self._checkpoint_due(state)):
                        self._save_checkpoint(run, state)
                    for callback in self.callbacks:
                        callback(state, stats)
                    if stop:
                        break

    def _begin_epoch(self, run: _Run, state: TrainState):
        """Augment this epoch's data if asked and position the loader: (batches, steps in this epoch)."""
        tcfg = self.config.train
        epoch_steps = run.steps_per_epoch
        if run.augmenter is not None:
            run.augmenter.begin_epoch(state, run.accelerator.unwrap_model(run.model), run.accelerator)
            run.sampler.n = len(run.train_rows)
            run.sampler.lengths = [len(r["input_ids"]) for r in run.train_rows] if tcfg.group_by_length else None
            epoch_steps = len(run.loader)
            run.model.train()
        batches = run.loader
        if state.step_in_epoch:
            batches = run.accelerator.skip_first_batches(run.loader, state.step_in_epoch)
        # Accelerate's loaders call set_epoch(own counter) on every __iter__; align that counter
        # with ours, or a resumed run would reshuffle with the wrong epoch.
        if hasattr(batches, "set_epoch"):
            batches.set_epoch(state.epoch)
        run.sampler.set_epoch(state.epoch)
        return batches, epoch_steps

    def _optimizer_step(self, run: _Run, batch) -> dict:
        """One objective step on ``batch``, with gradient clipping and the schedule; returns its stats."""
        max_grad_norm = self.config.train.max_grad_norm
        stats = run.objective.step(run.model, batch, run.accelerator)
        if max_grad_norm is not None:
            run.accelerator.clip_grad_norm_(run.model.parameters(), max_grad_norm)
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
        return stats

    def _log_step(self, run: _Run, state: TrainState, stats: dict, rate: float) -> None:
        """Send the step's stats, learning rate and throughput to the trackers every ``train.log_every`` steps."""
        if state.global_step % self.config.train.log_every == 0:
            logged = {f"train/{k}": v for k, v in stats.items()}
            run.accelerator.log(
                logged | {"train/lr": run.scheduler.get_last_lr()[0], "train/examples_per_s": rate},
                step=state.global_step,
            )

    def _eval_points(self, epoch_steps: int) -> set[int]:
        """Steps within an epoch after which to validate, ``train.evals_per_epoch`` evenly spread."""
        per_epoch = self.config.train.evals_per_epoch
        return {round(epoch_steps * k / per_epoch) for k in range(1, per_epoch + 1)}

    def _validate(self, run: _Run, state: TrainState) -> bool:
        """Evaluate, keep the best model by ``train.select_metric``; returns True when training should stop early."""
        cfg, tcfg = self.config, self.config.train
        metrics = score_outputs(
            run.model, run.val_loader, run.accelerator, run.label_map, cfg.task, run.splits.validation
        )
        key = self.metric.name
        value = metrics[key]
        state.history.append(
            {
                "step": state.global_step,
                "epoch": state.global_step / run.steps_per_epoch,
                f"validation_{key}": value,
                "validation_n": metrics["n"],
            }
        )
        run.accelerator.log({f"validation/{key}": value}, step=state.global_step)
        improved = self.metric.improves(value, state.best_metric)
        if improved:
            state.best_metric, state.best_step, state.evals_without_improvement = value, state.global_step, 0
        else:
            state.evals_without_improvement += 1
        if improved or tcfg.select == "last":
            state.selected_step = state.global_step
            if run.accelerator.is_main_process:
                save_model(self.out, run.accelerator.unwrap_model(run.model), run.tokenizer)
        run.accelerator.wait_for_everyone()
        patience = tcfg.early_stopping_patience
        return patience is not None and state.evals_without_improvement >= patience

    def _should_stop(self, run: _Run, state: TrainState) -> bool:
        """Whether early stopping, the step budget or (augmenting) the epoch count ends training now."""
        tcfg = self.config.train
        stop = state.stopped_early or state.global_step >= run.total
        if run.augmenter is not None and not tcfg.max_steps:
            stop = stop or state.epoch >= tcfg.epochs  # the planned schedule is an upper bound
        return stop

    def _checkpoint_due(self, state: TrainState) -> bool:
        """Whether ``train.checkpoint_every`` asks for a checkpoint at this step."""
        every = self.config.train.checkpoint_every
        return bool(every and state.global_step % every == 0)

    def _save_checkpoint(self, run: _Run, state: TrainState) -> None:
        """Save model, optimizer, schedule and loop state (main process) so that ``resume`` continues from here."""
        if run.accelerator.is_main_process:
            save_checkpoint(
                self.out,
                model=run.accelerator.unwrap_model(run.model),
                optimizer=run.optimizer,
                scheduler=run.scheduler,
                trainer_state=state.__dict__,
            )
        run.accelerator.wait_for_everyone()

    def _summary(self, run: _Run, state: TrainState, started: float) -> dict:
        """The training figures fit() returns and writes to caveat.json."""
        summary = {
            "steps": state.global_step,
            "steps_per_epoch": run.steps_per_epoch,
            "epochs": round(state.global_step / run.steps_per_epoch, 3),
            "best_step": state.best_step,
            "best_validation": state.best_metric,
            "validation_metric": self.metric.name,  # what best_validation and the history's validation_* are in
            "select": self.config.train.select,
            "selected_step": state.selected_step,  # the weights in model/: best_step, or the last evaluation's
            "stopped_early": state.stopped_early,
            "history": state.history,
            "seconds": round(time.perf_counter() - started, 1),
            "processes": run.accelerator.num_processes,
        }
        if run.augmenter is not None:
            summary["augment"] = state.augment_history  # per augmented epoch: attacked, successes, added, seconds
        if self.teacher is not None:
            summary["teacher"] = self.teacher
        return summary

    def _finish(self, run: _Run, data_info: dict, summary: dict) -> None:
        """Write the run info, drop the checkpoint and end the trackers and process group."""
        accelerator = run.accelerator
        if accelerator.is_main_process:
            write_run_info(
                self.out,
                config=self.config,
                labels=run.label_map.labels,
                data=data_info,
                training=summary,
                base=self.base,
            )
            shutil.rmtree(self.out / CHECKPOINT_DIR, ignore_errors=True)
        accelerator.wait_for_everyone()
        self.is_main_process = accelerator.is_main_process  # end_training tears the process group down
        accelerator.end_training()


def _fingerprint(splits) -> str:

    return fingerprint(splits)
