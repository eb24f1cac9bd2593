"""LoRA adapters on a frozen backbone, through the ``peft`` package.

LoRA (Hu et al. 2022, "LoRA: Low-Rank Adaptation of Large Language Models") trains low-rank updates of
chosen linear layers; the backbone stays frozen, and a run stores only the adapter and the head, with
the base's name and a fingerprint of its weights so that loading on another base is refused. Several
adapters can sit on one base in memory (a LoRA ensemble, Wang et al. 2023), switched per forward.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

from caveat.config import DEFAULT_LM_MODEL, DEFAULT_MODEL, PeftConfig
from caveat.errors import ConfigError, RunDirError
from caveat.models.backbone import resolve_source, weights_fingerprint

ADAPTER_CONFIG = "adapter_config.json"


def linear_names(model) -> list[str]:
    """The distinct last names of the model's linear layers (what ``target_modules`` can name)."""
    from torch import nn

    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)})


def add_lora(encoder, cfg: PeftConfig, *, adapter_name: str = "default"):
    """Wrap ``encoder`` in a ``peft`` model with one LoRA adapter; only the adapter's parameters train."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=cfg.target_modules, bias="none"
    )
    try:
        with quiet_peft():
            return get_peft_model(encoder, lora, adapter_name=adapter_name)
    except ValueError as err:
        raise ConfigError(
            f"model.peft.target_modules={cfg.target_modules!r} does not fit {type(encoder).__name__} "
            f"({str(err).splitlines()[0]}); name some of its linear layers, e.g. "
            f"--set 'model.peft.target_modules=[{', '.join(linear_names(encoder)[:4])}]', or all-linear"
        ) from None


def base_info(name_or_path: str, encoder_config) -> dict:
    """What identifies the frozen base of a LoRA run: its name (local folders made absolute), the SHA-256
    of its weight files (local) and the hub commit (hub names)."""
    source = resolve_source(name_or_path)
    name = name_or_path
    if name not in (DEFAULT_MODEL, DEFAULT_LM_MODEL) and source.local:
        name = str(Path(source.path).resolve())
    return {
        "name_or_path": name,
        "sha256": weights_fingerprint(source),
        "commit": getattr(encoder_config, "_commit_hash", None),
    }


def check_base(expected: dict, name_or_path: str, run_path: Path) -> None:
    """Refuse to put a run's adapter on a base whose weights differ from the one it was trained on."""
    found = weights_fingerprint(resolve_source(name_or_path))
    want = expected.get("sha256")
    if want and found and want != found:
        raise RunDirError(
            f"the run {run_path} was trained on a base model {expected.get('name_or_path')!r} with weights "
            f"sha256 {want[:12]}…, but {name_or_path!r} now has {found[:12]}…: its adapter would give wrong "
            "predictions; restore that base model (same files) or retrain the run on the new one"
        )


def load_lora(encoder, folder: Path, *, adapter_name: str = "default"):
    """Put the adapter saved in ``folder`` on ``encoder`` (a plain backbone, or a peft model that already holds
    other adapters: then it is added beside them). Returns the peft model, in eval mode."""
    from peft import PeftModel

    if not (Path(folder) / ADAPTER_CONFIG).is_file():
        raise RunDirError(f"{folder} has no {ADAPTER_CONFIG}: the LoRA run is incomplete; retrain it")
    with quiet_peft():
        if isinstance(encoder, PeftModel):
            if adapter_name not in encoder.peft_config:
                encoder.load_adapter(str(folder), adapter_name=adapter_name)
            return encoder.eval()
        return PeftModel.from_pretrained(encoder, str(folder), adapter_name=adapter_name).eval()


@contextmanager
def quiet_peft():
    """Hide the FutureWarnings peft's own calls into transformers raise, and its note on saving an adapter whose
    base is a GGUF file without config.json (nothing a caveat user can act on)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", message="Could not find a config file", category=UserWarning)
        yield
