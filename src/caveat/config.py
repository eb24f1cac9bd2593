"""Typed configuration: a YAML file and ``--set key=value`` overrides are two spellings of one RunConfig.

Defaults are tuned for the packaged default backbone (all-MiniLM-L6-v2, 6 layers, 384 wide): it wants a
larger learning rate than BERT-base recipes, and a freshly initialised head wants a larger one still.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from caveat.errors import ConfigError
from caveat.robustness.attacks import attack_sources, parse_attacks
from caveat.training.objectives import OBJECTIVES
from caveat.training.validation_metric import AUTO, validation_metric
from caveat.types import Task

DEFAULT_MODEL = "default"
DEFAULT_LM_MODEL = "default-lm"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    root: str | None = Field(None, description="Folder that relative data paths are read from.")
    format: Literal["auto", "jsonl", "json", "csv", "tsv", "label-sentence", "conll", "semeval"] = Field(
        "auto",
        description="File format; auto picks by extension (CoNLL for token tasks; SemEval-2010 Task 8 files, "
        'ID<TAB>"sentence" blocks, for relation tasks).',
    )
    train: str | None = Field(
        None,
        description="Training file; 'file.json#key' picks one split of a JSON dict; 'hf:FOLDER#split', "
        "'hf:file.parquet', 'hf:file.arrow' or 'hf:owner/name:config#split' (Hub) read with `datasets` "
        "(also for every split and ood set).",
    )
    validation: str | None = Field(
        None, description="Validation file (early stopping, alpha tuning); carved from train when absent."
    )
    calibration: str | None = Field(None, description="Calibration file; carved from validation when absent.")
    test: str | None = Field(None, description="Test file.")
    ood: dict[str, str] = Field(
        default_factory=dict, description="Named out-of-scope sets, e.g. {oos_test: clinc150/data_full.json#oos_test}."
    )
    text_field: str = Field("text", description="Field holding the text (JSONL/CSV/TSV/hf:).")
    label_field: str = Field("label", description="Field holding the label (JSONL/CSV/TSV/hf:).")
    tokens_field: str = Field("tokens", description="Field holding the token list (JSONL/hf:, token tasks).")
    tags_field: str = Field("tags", description="Field holding the tag list (JSONL/hf:, token tasks).")
    head_field: str = Field(
        "head",
        description="Relation tasks: field holding the first entity's character span, [start, end] or "
        '{"start": s, "end": e} (JSONL/CSV); records without it mark the entities <e1>…</e1> <e2>…</e2> in the text.',
    )
    tail_field: str = Field("tail", description="Relation tasks: field holding the second entity's character span.")
    validation_fraction: float = Field(
        0.1, gt=0, lt=1, description="Share of train carved out as validation when none is given."
    )
    calibration_fraction: float = Field(
        0.5, gt=0, lt=1, description="Share of validation carved out as calibration when none is given."
    )
    test_fraction: float = Field(
        0.0, ge=0, lt=1, description="Share of train carved out as test when none is given (0: no test split)."
    )
    split_seed: int | None = Field(
        None,
        ge=0,
        description="Seed of the carved splits (validation, calibration, test, train_fraction); None: the run's seed. "
        "The members of a deep ensemble share member 0's, so none of them trains on its calibration or test examples.",
    )
    max_examples: int | None = Field(
        None, gt=0, description="Keep only the first N examples of each file (quick runs)."
    )
    train_fraction: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Keep a seeded share of train (stratified by label for text classification), after validation "
        "and test are carved: learning curves, or a CPU budget. Unlike max_examples it does not depend on file order.",
    )
    skip_invalid: bool = Field(False, description="Skip malformed records (counted and reported) instead of failing.")


class PeftConfig(_Section):
    """Parameter-efficient fine-tuning through the ``peft`` package: LoRA (Hu et al. 2022, "LoRA: Low-Rank
    Adaptation of Large Language Models"). The backbone is frozen; the adapters and the head train."""

    method: Literal["none", "lora"] = Field("none", description="none (full fine-tuning) or lora.")
    r: int = Field(8, ge=1, le=1024, description="LoRA rank.")
    alpha: float = Field(16.0, gt=0, description="LoRA scaling numerator: updates are scaled by alpha / r.")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA branch (MC dropout samples it).")
    target_modules: list[str] | Literal["all-linear"] | None = Field(
        None,
        description="Module names that get adapters, e.g. [q_proj, v_proj]; 'all-linear'; None: peft's default "
        "for the architecture (attention query and value projections).",
    )


class ModelConfig(_Section):
    name_or_path: str = Field(
        DEFAULT_MODEL,
        description="'default' (packaged all-MiniLM-L6-v2), 'default-lm' (packaged SmolLM2-135M-Instruct, a decoder), "
        "a local folder, or a hub name.",
    )
    pooling: Literal["auto", "mean", "cls", "last"] = Field(
        "auto",
        description="Sentence pooling for text classification: auto is mean for encoders and last (the last "
        "non-padding token) for decoders, whose causal attention leaves only the last token to see the whole text.",
    )
    truncation_side: Literal["right", "left"] = Field(
        "right", description="Which end of a too-long input is cut (left keeps the end of the text)."
    )
    dropout: float | None = Field(
        None, ge=0, lt=1, description="Backbone hidden/attention dropout; None keeps the backbone's."
    )
    head_dropout: float = Field(0.1, ge=0, lt=1, description="Dropout before the classification head.")
    peft: PeftConfig = Field(default_factory=PeftConfig)


class AdversarialConfig(_Section):
    # MiniLM's word embeddings have L2 norm ~1.1 per token: a radius of 1.0 per example sent FGM on
    # SST-2 to chance (50.9% validation vs 82.8% ERM, 2,000 examples, 1 epoch); 0.1 gave 84.9%.
    epsilon: float = Field(
        0.1, gt=0, description="L2 radius of the embedding perturbation, per example (word-embedding space)."
    )
    steps: int = Field(3, ge=1, le=20, description="Ascent steps K for PGD and FreeLB.")
    step_size: float = Field(0.03, gt=0, description="Ascent step size (L2) for PGD and FreeLB.")
    init_scale: float = Field(
        0.1, ge=0, description="FreeLB random start: norm of the initial perturbation as a share of epsilon."
    )


class MixupConfig(_Section):
    beta: float = Field(0.4, gt=0, description="Mixing weight lambda ~ Beta(beta, beta).")


class AugmentConfig(_Section):
    """Adversarial data augmentation, A2T-style (Yoo & Qi 2021): see ``caveat.training.augment``."""

    enabled: bool = Field(
        False, description="Add successful adversarial examples of the training set to each epoch's training."
    )
    attack: str = Field(
        "charswap",
        description="Attack by registry name (charswap is cheap; greedy, wordsub, pwws, char_*, NAME@SOURCE such as "
        "greedy@ppdb), or a comma-separated mixture (greedy,charswap,pwws@ppdb; all: every family): each augmented "
        "example draws one of them at random, seeded.",
    )
    mode: Literal["attack", "random"] = Field(
        "attack",
        description="attack: add the chosen examples' successful adversarial examples (A2T); random: add a random edit "
        "of each chosen example from the attack's substitutes under the same constraints, without querying the model "
        "(Jia et al. 2019's augmentation baseline; far cheaper).",
    )
    fraction: float = Field(
        0.2, gt=0, le=1, description="Share of the training examples attacked (or edited) at the start of each epoch."
    )
    start_epoch: int = Field(1, ge=0, description="First augmented epoch (0-based; 1: the first epoch trains clean).")
    max_change: float = Field(
        0.2, gt=0, le=1, description="Largest fraction of words an adversarial example may change."
    )
    min_similarity: float = Field(0.8, ge=0, le=1, description="Smallest sentence similarity to the original text.")
    max_candidates: int = Field(20, ge=1, description="Substitute candidates tried per word.")
    similarity_model: str = Field(
        "default",
        description="Sentence encoder of the similarity constraint: 'default' (packaged MiniLM) or a local folder.",
    )
    lexicons: str | None = Field(
        None,
        description="Folder of the word lexicons (antonyms never proposed; ppdb_synonyms.txt for @ppdb and pwws); "
        "None: $CAVEAT_LEXICONS, else $CAVEAT_DATA/lexicons.",
    )

    @field_validator("attack")
    @classmethod
    def _known_attacks(cls, value: str) -> str:
        names = parse_attacks(value)  # raises ConfigError listing the names; "all" spelled out
        with_lm = [name for name in names if "lm" in attack_sources(name)]
        if with_lm:  # bae: augmentation loads no language model
            raise ConfigError(
                f"{with_lm[0]} proposes words with a language model, which augmentation does not load; use greedy, "
                "wordsub, pwws, charswap or NAME@SOURCE"
            )
        return ",".join(names)

    @field_validator("lexicons")
    @classmethod
    def _anchored(cls, value: str | None) -> str | None:
        return None if value is None else str(Path(value).expanduser().resolve())


class DistillConfig(_Section):
    """Knowledge distillation (Hinton, Vinyals & Dean 2015): see ``caveat.training.objectives.distill``."""

    teacher: str | None = Field(
        None,
        description="Run directory of the teacher for train.objective=distill: an ensemble (the mean of its members' "
        "probabilities) or a single run. Relative paths are read from the working directory (stored absolute).",
    )
    temperature: float = Field(
        1.0, gt=0, description="Softmax temperature T of teacher and student in the soft-target term (scaled by T^2)."
    )
    weight: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of the soft-target loss: (1 - weight) CE(y) + weight T^2 KL(teacher_T || student_T).",
    )
    calibrated: bool = Field(
        False,
        description="Soft targets from the teacher as caveat serves it: its calibrated predictive (an ensemble's "
        "members pooled, then divided by the ensemble's own temperature; a single run divided by its temperature), "
        "then softened by train.distill.temperature. Needs caveat calibrate TEACHER first. false: the members' "
        "uncalibrated probabilities.",
    )

    @field_validator("teacher")
    @classmethod
    def _anchored(cls, value: str | None) -> str | None:
        return None if value is None else str(Path(value).expanduser().resolve())


class TrainConfig(_Section):
    objective: str = Field(
        "erm",
        description="erm, mixup, rdrop, fgm, pgd, freelb, distill or consistency (KL between each example and its "
        "train.augment edit, TRADES-style; needs train.augment.enabled=true).",
    )
    alpha: float = Field(1.0, ge=0, description="Robustness strength: loss = task_loss + alpha * R.")
    epochs: float = Field(3, gt=0, le=1000, description="Training epochs (fractions allowed).")
    batch_size: int = Field(32, ge=1, le=4096, description="Global batch size (split across processes).")
    eval_batch_size: int = Field(128, ge=1, description="Batch size for validation and prediction.")
    lr: float = Field(1e-4, gt=0, lt=1, description="Peak learning rate of the backbone.")
    head_lr: float = Field(2e-3, gt=0, lt=1, description="Peak learning rate of the freshly initialised head.")
    weight_decay: float = Field(0.01, ge=0, lt=1, description="Decoupled L2 (AdamW); not applied to biases and norms.")
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="Share of steps with linear warm-up, then linear decay.")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Gradient clipping norm; None disables.")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing of the cross-entropy.")
    group_by_length: bool = Field(True, description="Batch examples of similar length together (less padding, faster).")
    max_length: int = Field(128, ge=8, le=4096, description="Sub-word tokens per input (longer inputs are truncated).")
    early_stopping_patience: int | None = Field(
        None, ge=1, description="Stop after this many evaluations without improvement; None trains all epochs."
    )
    evals_per_epoch: int = Field(1, ge=1, le=100, description="Validation evaluations per epoch (best model kept).")
    select: Literal["best", "last"] = Field(
        "best",
        description="Weights kept: the best clean validation score (train.select_metric), or the last "
        "evaluation's (for robust training, whose gains clean validation does not see).",
    )
    select_metric: str = Field(
        AUTO,
        description="The validation metric that picks the kept weights and drives early stopping: auto (accuracy "
        "for text-classification, the official relation_macro_f1 for relation-classification, entity f1 for "
        "token-classification) or a name such as accuracy, macro_f1, relation_macro_f1, f1 or nll (lower is better).",
    )
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (overrides epochs).")
    checkpoint_every: int | None = Field(
        None, ge=1, description="Save a resumable checkpoint every N steps (also at each evaluation)."
    )
    log_every: int = Field(10, ge=1, description="Log loss and throughput every N steps.")
    tracking: Literal["tensorboard", "mlflow", "wandb", "none"] = Field(
        "tensorboard",
        description="Where loss, throughput, validation metrics and the config go: tensorboard (RUN/logs/train), "
        "mlflow (train.tracking_uri; default a local store in RUN/logs/mlruns), wandb (RUN/logs/wandb, offline "
        "unless WANDB_MODE is set) or none. mlflow and wandb need their package (pip install caveat[tracking]).",
    )
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI (a server or a store); None keeps a local store in RUN/logs/mlruns."
    )
    adv: AdversarialConfig = Field(default_factory=AdversarialConfig)
    mixup: MixupConfig = Field(default_factory=MixupConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)

    @field_validator("objective")
    @classmethod
    def _known_objective(cls, value: str) -> str:

        OBJECTIVES.get(value)  # raises ConfigError listing the names
        return value

    @field_validator("tracking_uri")
    @classmethod
    def _tracking_uri_needs_mlflow(cls, value: str | None, info: ValidationInfo) -> str | None:
        tracking = info.data.get("tracking", "mlflow")  # absent: tracking itself failed and is reported
        if value is not None and tracking != "mlflow":
            raise ValueError(f"only train.tracking=mlflow reads it, this run has {tracking}; set both or neither")
        return value


class RunConfig(_Section):
    task: Task = Field(
        Task.TEXT_CLASSIFICATION, description="text-classification, token-classification or relation-classification."
    )
    seed: int = Field(13, ge=0, description="Seed for splits, initialisation, shuffling and dropout.")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _views_need_augmentation(self) -> RunConfig:
        # before _augment_needs_classification: its fix (augment off) would not help this objective
        name = self.train.objective
        if not OBJECTIVES.get(name).needs_views:
            return self
        if not self.task.classifies_texts:
            raise ValueError(
                f"train.objective={name} takes its perturbed views from train.augment, which is for text- and "
                f"relation-classification runs for now; this is a {self.task.value} run: choose another "
                "train.objective (rdrop compares two dropout passes and needs no augmentation)"
            )
        if not self.train.augment.enabled:
            raise ValueError(
                f"train.objective={name} compares each example with a perturbed view made by train.augment, which is "
                "off: set train.augment.enabled=true (e.g. with train.augment.mode=random, train.augment.fraction=1.0 "
                "and train.augment.start_epoch=0 for a random edit of every example from the first epoch)"
            )
        return self

    @model_validator(mode="after")
    def _augment_needs_classification(self) -> RunConfig:
        if self.train.augment.enabled and not self.task.classifies_texts:
            raise ValueError(
                f"train.augment is for text- and relation-classification runs for now; this is a {self.task.value} "
                "run: set train.augment.enabled=false"
            )
        return self

    @model_validator(mode="after")
    def _select_metric_fits_the_task(self) -> RunConfig:
        validation_metric(self.task, self.train.select_metric)  # raises ConfigError naming the task's metrics
        return self

    @model_validator(mode="after")
    def _relations_train_the_embeddings(self) -> RunConfig:
        # the entity markers are new tokens whose embeddings must be learned; LoRA freezes the embeddings
        if self.task is Task.RELATION_CLASSIFICATION and self.model.peft.method == "lora":
            raise ValueError(
                "relation-classification runs fine-tune the whole backbone for now (the entity markers are new "
                "tokens whose embeddings LoRA would leave frozen): set model.peft.method=none"
            )
        return self

    @model_validator(mode="after")
    def _distill_needs_a_teacher(self) -> RunConfig:
        if self.train.objective != "distill":
            return self
        if self.train.distill.teacher is None:
            raise ValueError(
                "train.objective=distill needs a teacher: set train.distill.teacher=RUN, a run directory (e.g. an "
                "ensemble trained with caveat train CONFIG --ensemble N --out RUN)"
            )
        if self.task is not Task.TEXT_CLASSIFICATION:
            raise ValueError(
                f"train.objective=distill is for text-classification runs for now; this is a {self.task.value} run: "
                "choose another train.objective"
            )
        if self.train.augment.enabled:
            raise ValueError(
                "train.augment cannot be combined with train.objective=distill: augmented rows have no teacher "
                "targets; set train.augment.enabled=false"
            )
        return self


def valid_keys(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    """Every dotted key a config accepts, e.g. ``train.adv.epsilon``."""
    keys = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += valid_keys(ann, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _format_errors(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown key {key!r}; valid keys: {', '.join(valid_keys())}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"{key}={e.get('input')!r}: {msg}" if key else msg)  # whole-config checks name their keys
    return f"invalid configuration ({source}):\n  " + "\n  ".join(lines)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Turn ``["train.lr=3e-5", "data.ood={a: b.json}"]`` into a nested dict (values parsed as YAML)."""
    nested: dict[str, Any] = {}
    keys = set(valid_keys())
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(
                f"{{overrides}} {pair!r} has no '='; write key=value, e.g. train.lr=3e-5", fields=("overrides",)
            )
        key, raw = pair.split("=", 1)
        key = key.strip()
        if key not in keys and not any(key.startswith(k + ".") for k in keys if k == "data.ood"):
            raise ConfigError(
                f"unknown key {key!r} in {{overrides}}; valid keys: {', '.join(sorted(keys))}", fields=("overrides",)
            )
        value = yaml.safe_load(raw) if raw.strip() else None
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, **extra: Any) -> RunConfig:
    """Read a YAML config (optional), apply ``--set`` overrides and keyword sections, validate.

    Relative ``data.root`` in a file is resolved against the file's folder; on the command line,
    against the working directory.
    """
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} not found; pass a YAML file such as examples/clinc150.yaml")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err}); fix the syntax") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections (data:, model:, train:)")
        root = (raw.get("data") or {}).get("root")
        if root is not None and not Path(root).is_absolute():
            raw.setdefault("data", {})["root"] = str((path.parent / root).resolve())
        source = str(path)
    raw = _merge(raw, extra)
    if overrides:
        raw = _merge(raw, parse_overrides(overrides))
        source += " + --set"
    # Anchor relative data paths now, so that a run's stored config works from any folder later.
    data = raw.setdefault("data", {}) if isinstance(raw.get("data", {}), dict) else raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("root", ""), (str, type(None))):
        data["root"] = str(Path(data.get("root") or ".").expanduser().resolve())
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None


def with_overrides(config: RunConfig, overrides: list[str]) -> RunConfig:
    """``config`` with ``--set``-style ``overrides`` applied and validated again (a ConfigError names a bad one)."""
    try:
        return RunConfig.model_validate(_merge(config.model_dump(mode="json"), parse_overrides(overrides)))
    except ValidationError as err:
        raise ConfigError(_format_errors(err, " ".join(f"--set {o}" for o in overrides))) from None
