"""MC dropout whose lower layers run once (efficient mode).

MC dropout (Gal & Ghahramani 2016, "Dropout as a Bayesian Approximation") needs K stochastic passes.
When dropout is sampled only in the top ``L`` encoder layers and the head, everything below them is
deterministic and can run once: the input of layer ``n - L`` is captured from one eval-mode pass,
repeated K times, and only the top layers and the head run on the (K*B) rows. The embeddings and the
lower layers carry no dropout in this mode.
"""

from __future__ import annotations

import torch
from torch import nn

from caveat.errors import ConfigError


class _Captured(Exception):
    """Stops the deterministic pass once the input of the first sampled layer is known."""


def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The encoder's list of transformer layers (the ModuleList with ``num_hidden_layers`` entries)."""
    n = getattr(encoder.config, "num_hidden_layers", None)
    for module in encoder.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n:
            return module
    raise ConfigError(
        f"efficient MC dropout cannot find the {n} transformer layers of {type(encoder).__name__}; use top_layers=None "
        "(naive)"
    )


def final_norm(encoder: nn.Module) -> nn.Module | None:
    """The norm a decoder applies after its last layer (Llama/Qwen/Mistral ``norm``, GPT-2 ``ln_f``); encoders
    (BERT-like: each layer ends in its own LayerNorm) have none."""
    base = encoder.get_base_model() if hasattr(encoder, "get_base_model") else encoder
    for name in ("norm", "ln_f", "final_layer_norm"):
        module = getattr(base, name, None)
        if isinstance(module, nn.Module):
            return module
    return None


def _repeat(x, k: int, b: int):
    """Repeat batch-first tensors K times, sample-major (row ``k * B + i`` is input ``i``)."""
    if torch.is_tensor(x) and x.dim() > 0 and x.shape[0] == b:
        return x.repeat(k, *([1] * (x.dim() - 1)))
    return x


@torch.no_grad()
def sample_top_layers(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, samples: int, top_layers: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """K dropout samples of the top ``top_layers`` layers and the head.

    Returns logits (K, B, C) and features (B, D) (the mean over samples). ``top_layers = 0`` samples
    only the head's dropout over deterministic features.
    """
    layers = encoder_layers(model.encoder)
    n, b = len(layers), input_ids.shape[0]
    if not 0 <= top_layers <= n:
        raise ConfigError(f"top_layers must be between 0 and the {n} encoder layers. Got {top_layers}.")
    model.eval()
    if top_layers == 0:
        features = model(input_ids=input_ids, attention_mask=attention_mask).features  # (B, D), deterministic
        model.train()
        logits = model.head(model.dropout(features.repeat(samples, 1)))  # (K*B, C)
        return logits.view(samples, b, -1), features
    captured = {}

    def capture(module, args, kwargs):
        captured["args"], captured["kwargs"] = args, kwargs
        raise _Captured

    hook = layers[n - top_layers].register_forward_pre_hook(capture, with_kwargs=True)
    try:
        model(input_ids=input_ids, attention_mask=attention_mask)
    except _Captured:
        pass
    finally:
        hook.remove()
    hidden, *rest = captured["args"]
    args = [_repeat(a, samples, b) for a in rest]
    kwargs = {k: _repeat(v, samples, b) for k, v in captured["kwargs"].items()}
    hidden = hidden.repeat(samples, 1, 1)  # (K*B, T, D)
    model.train()
    for layer in layers[n - top_layers :]:
        out = layer(hidden, *args, **kwargs)
        hidden = out[0] if isinstance(out, tuple) else out
    norm = final_norm(model.encoder)
    if norm is not None:
        hidden = norm(hidden)
    features, logits = model.pool_and_head(hidden, attention_mask.repeat(samples, 1), input_ids.repeat(samples, 1))
    return logits.view(samples, b, -1), features.view(samples, b, -1).mean(0)
