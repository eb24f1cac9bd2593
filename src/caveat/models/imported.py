"""A Hugging Face classification checkpoint, kept as it is, behind the interface of ``CaveatModel``.

``caveat import`` stores a ``...ForSequenceClassification`` or ``...ForTokenClassification`` model with its own
head and its own pooling; ``ImportedClassifier`` gives it what the rest of caveat calls: ``forward`` ->
``ModelOutput(logits, features)``, ``encoder`` (the base model), ``head`` (the final ``Linear``), ``dropout`` (the
dropout right before it) and ``pool_and_head`` (pooling + head from the last transformer layer's output, which
efficient MC dropout needs).

Families whose pooling is reproduced explicitly are registered in ``FAMILIES`` by ``config.model_type``; token
classification is dropout + a per-token ``Linear`` in every family. Any other checkpoint runs as a whole, with the
final ``Linear``'s input captured as ``features``; ``pool_and_head`` then raises (efficient MC dropout is
unavailable, naive MC dropout works).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from caveat.errors import ConfigError
from caveat.io import read_json
from caveat.models.classifier import ModelOutput, embed, last_token_index
from caveat.models.encoding import Collator
from caveat.registry import Registry
from caveat.types import Task

IMPORTED = "hf-classifier"  # caveat.json "architecture" of an imported run
IMPORTED_COMPLETE = "tokenizer_config.json"  # written last into model/ (after the weights)
TASKS = {"ForSequenceClassification": Task.TEXT_CLASSIFICATION, "ForTokenClassification": Task.TOKEN_CLASSIFICATION}
SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")

# (transformers model, hidden (B, T, D) after any final norm, attention_mask (B, T), input_ids (B, T) or None) -> (B, D)
Pool = Callable[[nn.Module, torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


@dataclass(frozen=True)
class Family:
    """How one architecture turns its base model's last hidden state into its final ``Linear``'s input.

    pool : sequence tasks: the pooling (and any dense layers) before the final dropout and ``Linear``.
    dropout : sequence tasks: path of the dropout right before the final ``Linear`` in the model, or None.
    """

    pool: Pool | None
    dropout: str | None = "dropout"


FAMILIES: Registry[Family] = Registry("imported architecture family")


def _bert_pool(model, hidden, attention_mask, input_ids):
    return model.base_model.pooler(hidden)  # [CLS] -> dense -> tanh


def _roberta_pool(model, hidden, attention_mask, input_ids):
    head = model.classifier
    return torch.tanh(head.dense(head.dropout(hidden[:, 0])))  # <s> -> dropout -> dense -> tanh


def _distilbert_pool(model, hidden, attention_mask, input_ids):
    return torch.relu(model.pre_classifier(hidden[:, 0]))  # [CLS] -> pre_classifier -> ReLU


def _deberta_pool(model, hidden, attention_mask, input_ids):
    return model.pooler(hidden)  # ContextPooler: [CLS] -> dropout -> dense -> activation


def _last_token_pool(model, hidden, attention_mask, input_ids):
    last = last_token_index(attention_mask, input_ids, model.config.pad_token_id)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, D)


FAMILIES.register("bert")(Family(_bert_pool))
FAMILIES.register("distilbert")(Family(_distilbert_pool))
FAMILIES.register("deberta-v2")(Family(_deberta_pool))
for _name in ("roberta", "xlm-roberta"):
    FAMILIES.register(_name)(Family(_roberta_pool, dropout="classifier.dropout"))
for _name in ("llama", "mistral", "qwen2", "qwen3"):
    FAMILIES.register(_name)(Family(_last_token_pool, dropout=None))
FAMILIES.register("gpt2")(Family(_last_token_pool, dropout=None))


def family_of(model: nn.Module, task: Task) -> Family | None:
    """The explicit family of a transformers classifier, or None when caveat cannot reproduce its pooling.

    Token classification is dropout + a per-token ``Linear`` in every family.
    """
    kind = model.config.model_type
    if Task(task) is Task.TOKEN_CLASSIFICATION:
        dropout = "dropout" if isinstance(getattr(model, "dropout", None), nn.Dropout) else None
        return Family(None, dropout=dropout)
    return FAMILIES.get(kind) if kind in FAMILIES else None


def final_linear(model: nn.Module, num_labels: int) -> str:
    """Path of the classifier's last ``nn.Linear`` with ``num_labels`` outputs (outside the base model)."""
    inside = {id(m) for m in model.base_model.modules()}
    names = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and module.out_features == num_labels and id(module) not in inside
    ]
    if not names:
        raise ConfigError(
            f"{type(model).__name__} has no Linear layer with {num_labels} outputs outside its base model; caveat "
            "needs the classifier's final Linear layer (head) for its features"
        )
    return names[-1]


class ImportedClassifier(nn.Module):
    """A transformers ``...For{Sequence,Token}Classification`` model as a caveat model (see the module docstring).

    Parameters
    ----------
    model : the transformers classifier, used as it is.
    task : sequence or token classification (from the architecture's name).
    explicit : False runs the model as a whole even when its family is registered.
    """

    def __init__(self, model: nn.Module, *, task: Task, explicit: bool = True):
        super().__init__()
        self.model = model
        self.task = Task(task)
        self.head_name = final_linear(model, model.config.num_labels)
        self.family = family_of(model, self.task) if explicit else None

    @property
    def encoder(self) -> nn.Module:
        """The base model (``get_input_embeddings()``, ``config.num_hidden_layers``)."""
        return self.model.base_model

    @property
    def head(self) -> nn.Linear:
        """The final ``Linear``: ``logits = head(dropout(features))``."""
        return self.model.get_submodule(self.head_name)

    @property
    def dropout(self) -> nn.Module:
        """The dropout right before ``head`` (``nn.Identity`` when there is none or the family is not known)."""
        path = self.family.dropout if self.family is not None else None
        return self.model.get_submodule(path) if path else nn.Identity()

    def pool_and_head(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, input_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The base model's last hidden state (B, T, D; after a decoder's final norm, as ``last_hidden_state``) ->
        (features, logits), as the checkpoint computes them: (B, D) / (B, C) for sequences, (B, T, D) / (B, T, C)
        for tokens. ``input_ids`` lets decoders skip trailing pad tokens as transformers does (without them: the
        last attended token). Dropout applies in training mode."""
        if self.family is None:
            raise ConfigError(
                f"caveat does not reproduce the pooling of {type(self.model).__name__} "
                f"(model_type {self.model.config.model_type!r}) from hidden states, so efficient MC dropout "
                f"(top layers only) is unavailable for it: use naive MC dropout. Families reproduced: "
                f"{', '.join(FAMILIES.names())}"
            )
        if self.task is Task.TOKEN_CLASSIFICATION:
            features = hidden  # (B, T, D)
        else:
            features = self.family.pool(self.model, hidden, attention_mask, input_ids)  # (B, D)
        return features, self.head(self.dropout(features))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        *,
        delta: torch.Tensor | None = None,
        keep_embeddings: bool = False,
        mixup: tuple[torch.Tensor, float] | None = None,
        **_: torch.Tensor,
    ) -> ModelOutput:
        """Run the model; the parameters are ``CaveatModel.forward``'s (``mixup`` is not supported).

        ``features`` is the final ``Linear``'s input: (B, D) for sequences, (B, T, D) for tokens.
        """
        if mixup is not None:
            raise ConfigError("mixup is not supported for imported models: train them with another objective")
        embeds = None
        if self.family is not None or delta is not None or keep_embeddings:
            embeds = embed(self.encoder, input_ids, keep_embeddings)  # (B, T, D)
        inputs = embeds if delta is None else embeds + delta
        if self.family is None:
            features, logits = self._run_whole(input_ids, attention_mask, inputs)
        else:
            hidden = self.encoder(inputs_embeds=inputs, attention_mask=attention_mask).last_hidden_state  # (B, T, D)
            features, logits = self.pool_and_head(hidden, attention_mask, input_ids)
        return ModelOutput(logits=logits, features=features, embeddings=embeds if keep_embeddings else None)

    def _run_whole(self, input_ids, attention_mask, inputs_embeds) -> tuple[torch.Tensor, torch.Tensor]:
        """The transformers model as a whole, the final ``Linear``'s input captured by a hook as the features.
        Token ids go in unless embeddings are perturbed: decoders find their last token in the ids."""
        captured = {}
        hook = self.head.register_forward_pre_hook(lambda module, args: captured.setdefault("features", args[0]))
        try:
            if inputs_embeds is None:
                logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
            else:
                logits = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask).logits
        finally:
            hook.remove()
        features = captured["features"]
        if self.task is Task.TEXT_CLASSIFICATION and features.dim() == 3:  # scored every token, then picked one
            last = last_token_index(attention_mask, input_ids, self.model.config.pad_token_id)
            features = features[torch.arange(features.shape[0], device=features.device), last]  # (B, D)
        return features, logits


@torch.no_grad()
def reproduces(model: ImportedClassifier, rows: list[list[int]], pad_token_id: int) -> bool:
    """Whether ``model`` on the right-padded batch of token id ``rows`` gives the logits that the transformers model
    gives each row alone (no padding), and ``head(features)`` gives them too (what last-layer Laplace assumes)."""
    model.eval()
    batch = Collator(pad_token_id)([{"input_ids": r} for r in rows])
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    if not torch.allclose(model.head(out.features), out.logits, atol=1e-4, rtol=1e-4):
        return False
    for i, row in enumerate(rows):
        alone = model.model(input_ids=torch.tensor([row])).logits[0]  # (C,) or (T, C)
        mine = out.logits[i] if model.task is Task.TEXT_CLASSIFICATION else out.logits[i, : len(row)]
        if not torch.allclose(mine, alone, atol=1e-4, rtol=1e-4):
            return False
    return True


def checkpoint_task(folder: Path) -> tuple[Task, str]:
    """``(task, architecture)`` of a checkpoint folder, after checking it is one caveat imports (config.json names a
    classification architecture; safetensors weights). The errors say what was found and the fix."""
    if not folder.is_dir():
        raise ConfigError(f"checkpoint folder {str(folder)!r}: no such folder")
    if not (folder / "config.json").is_file():
        raise ConfigError(
            f"checkpoint folder {str(folder)!r} has no config.json; point it at a folder written by save_pretrained "
            "of an AutoModelForSequenceClassification or AutoModelForTokenClassification (with its tokenizer)",
        )
    config = read_json(folder / "config.json")
    architecture = (config.get("architectures") or ["(none)"])[0]
    task = next((t for suffix, t in TASKS.items() if architecture.endswith(suffix)), None)
    if task is None:
        raise ConfigError(
            f"checkpoint folder {str(folder)!r} holds a {architecture} (config.json architectures); caveat imports "
            f"...ForSequenceClassification (text-classification) and ...ForTokenClassification (token-classification)",
        )
    _check_outputs(folder, config, architecture)
    _check_weights(folder)
    return task, architecture


def _check_outputs(folder: Path, config: dict, architecture: str) -> None:
    """Refuse regression and multi-label heads: caveat's probabilities are a softmax over single labels."""
    problem = config.get("problem_type")
    labels = config.get("id2label") or {}
    if problem in ("regression", "multi_label_classification") or len(labels) == 1:
        kind = problem or "regression (one output)"
        raise ConfigError(
            f"checkpoint folder {str(folder)!r} holds a {architecture} for {kind}; caveat imports single-label "
            "classifiers (softmax over two or more classes)",
        )


def _check_weights(folder: Path) -> None:
    """Safetensors only: a pickled ``pytorch_model.bin`` could run code when loaded, so it is never read."""
    if any((folder / name).is_file() for name in SAFE_WEIGHTS):
        return
    found = [name for name in PICKLED_WEIGHTS if (folder / name).is_file()]
    if found:
        raise ConfigError(
            f"checkpoint folder {str(folder)!r} holds its weights only as {found[0]} (a pickle, which caveat never "
            "loads); save them as safetensors first: model.save_pretrained(folder, safe_serialization=True)",
        )
    raise ConfigError(
        f"checkpoint folder {str(folder)!r} holds no model weights ({' or '.join(SAFE_WEIGHTS)}); save the model "
        "there with model.save_pretrained(folder)",
    )


def load_checkpoint(folder: Path, task: Task):
    """``(tokenizer, transformers model)`` of a classification checkpoint folder, in float32 and eval mode:
    safetensors only (``use_safetensors=True``), never remote code."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    auto = (
        AutoModelForTokenClassification
        if Task(task) is Task.TOKEN_CLASSIFICATION
        else AutoModelForSequenceClassification
    )
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, TypeError) as err:
        raise ConfigError(
            f"checkpoint folder {str(folder)!r}: no tokenizer could be loaded ({type(err).__name__}: "
            f"{_first_line(err)}); save the checkpoint's tokenizer there too: tokenizer.save_pretrained(folder)",
        ) from None
    try:
        model = auto.from_pretrained(folder, use_safetensors=True, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(
            f"checkpoint folder {str(folder)!r}: transformers cannot load it as {auto.__name__} "
            f"({type(err).__name__}: {_first_line(err)})",
        ) from None
    return tokenizer, model.eval()


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [""])[0]


def load_imported(model_dir: Path, info: dict):
    """``(tokenizer, ImportedClassifier)`` of an imported run's ``model/``, in eval mode on the CPU; ``info`` is the
    run's caveat.json (its task, and whether the import found the explicit pooling reproduces the checkpoint)."""
    task = Task(info["task"])
    tokenizer, model = load_checkpoint(model_dir, task)
    explicit = info.get("imported", {}).get("explicit", True)
    return tokenizer, ImportedClassifier(model, task=task, explicit=explicit).eval()
