"""The linear layers of a LoRA posterior and what KFAC needs of them (used by ``laplace_lora``).

For each layer: its input at every position (one forward with hooks), the gradients of chosen combinations
of the logits at its output (one backward pass each), the eigendecompositions of its two Kronecker factors,
and its parameters packed as ``[W | b]`` (d_out, d_in (+1 with a bias)). Shapes: B inputs, T positions, K
backward passes, C classes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from caveat.errors import ConfigError

Batch = dict[str, torch.Tensor]


def posterior_layers(model: nn.Module, *, head: bool = False) -> dict[str, nn.Linear]:
    """The linear layers the posterior covers, by module name: the active adapter's LoRA ``nn.Linear``
    modules (every parameter whose name holds ``lora_``) and, with ``head=True``, ``model.head``."""
    adapter = getattr(model, "adapter", None)
    found = getattr(getattr(model, "encoder", None), "active_adapters", None)  # a list on peft models
    active = {adapter} if adapter else set(found) if isinstance(found, (list, tuple, set)) else set()
    layers, unsupported = {}, []
    for name, _ in model.named_parameters():
        parts = name.split(".")
        i = next((i for i, p in enumerate(parts) if p.startswith("lora_")), None)
        if i is None or (active and len(parts) > i + 1 and parts[i + 1] not in active):
            continue
        module_name = ".".join(parts[: i + 2])
        linear = parts[i] in ("lora_A", "lora_B") and len(parts) == i + 3
        if linear and isinstance(model.get_submodule(module_name), nn.Linear):
            layers[module_name] = model.get_submodule(module_name)
        else:
            unsupported.append(name)
    if unsupported:
        raise ConfigError(
            f"Laplace-LoRA covers LoRA adapters of linear layers; {unsupported[:3]} are not (LoRA on embeddings or "
            "convolutions, or DoRA): train the adapter with model.peft.target_modules naming linear layers"
        )
    if not layers:
        raise ConfigError(
            f"{type(model).__name__} has no LoRA parameters (no parameter name holds 'lora_'): Laplace-LoRA needs a "
            "model fine-tuned with model.peft.method=lora; for other models use the last-layer method laplace"
        )
    if head:
        if not isinstance(getattr(model, "head", None), nn.Linear):
            raise ConfigError(f"head=True needs a linear model.head; {type(model).__name__} has none: use head=False")
        layers["head"] = model.head
    return layers


@contextmanager
def differentiable(model: nn.Module, layers: dict[str, nn.Linear]):
    """Eval mode (no dropout) with the posterior's parameters requiring grad (a loaded adapter's do not,
    and the layers' outputs must join the graph); both restored afterwards."""
    training = model.training
    params = [p for m in layers.values() for p in m.parameters(recurse=False)]
    flags = [p.requires_grad for p in params]
    model.eval()
    for p in params:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
        model.train(training)


def as_positions(x: torch.Tensor) -> torch.Tensor:
    """(B, d) or (B, T, d) -> (B, T, d), float64 on the CPU: the head sees one position per input."""
    x = x.detach().double().cpu()
    return x[:, None] if x.dim() == 2 else x.reshape(x.shape[0], -1, x.shape[-1])


def model_inputs(model: nn.Module, batch: Batch) -> Batch:
    """The batch's ``input_ids`` and ``attention_mask`` on the model's device."""
    device = next(model.parameters()).device
    return {k: batch[k].to(device) for k in ("input_ids", "attention_mask")}


def hooked_forward(model: nn.Module, batch: Batch, layers: dict[str, nn.Linear]):
    """One forward with hooks: logits (B, C), each layer's input (B, T, d_in (+1 with a bias)) as float64, and
    each layer's output (kept in the graph for the vector-Jacobian products)."""
    inputs, outputs = {}, {}

    def hook(name: str):
        def record(module, args, out):
            if name in outputs:
                raise ConfigError(f"layer {name} runs twice in one forward; Laplace-LoRA needs each layer used once")
            inputs[name], outputs[name] = args[0], out

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in layers.items()]
    try:
        with torch.enable_grad():
            logits = model(**model_inputs(model, batch)).logits
    finally:
        for h in handles:
            h.remove()
    if logits.dim() != 2:
        raise ConfigError(
            f"Laplace-LoRA is for text classification, logits (B, C); got {tuple(logits.shape)} (token classification?)"
        )
    missing = sorted(set(layers) - set(outputs))
    if missing:
        raise ConfigError(f"the LoRA layers {missing[:3]} did not run (a merged or inactive adapter?); unmerge it")
    acts = {}
    for name, module in layers.items():
        a = as_positions(inputs[name])  # (B, T, d_in)
        acts[name] = torch.cat([a, a.new_ones(*a.shape[:2], 1)], dim=2) if module.bias is not None else a
    return logits, acts, outputs


def output_grads(logits: torch.Tensor, outputs: dict, cotangents: torch.Tensor) -> Iterator[dict[str, torch.Tensor]]:
    """For each k, one backward pass: the gradient of ``sum_b cotangents[k, b] . logits[b]`` at each layer's
    output; cotangents (K, B, C) -> K times {layer: (B, T, d_out)}, float64 on the CPU. Yielded one pass at a
    time, so the caller can reduce each before the next (memory: one pass's gradients)."""
    names = list(outputs)
    for k in range(len(cotangents)):
        grads = torch.autograd.grad(
            logits, [outputs[n] for n in names], cotangents[k].to(logits), retain_graph=True, allow_unused=True
        )
        yield {n: as_positions(torch.zeros_like(outputs[n]) if g is None else g) for n, g in zip(names, grads)}


def position_weights(acts: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) weights of each position in the input factor A: the attention mask, or 1 for the head."""
    if acts.shape[1] == attention_mask.shape[1]:
        return attention_mask.double().cpu()
    if acts.shape[1] == 1:
        return acts.new_ones(acts.shape[:2])
    raise ConfigError(f"a LoRA layer sees {acts.shape[1]} positions but the batch has {attention_mask.shape[1]}")


def eigen_factors(g: torch.Tensor, a: torch.Tensor) -> dict[str, np.ndarray]:
    """Eigendecompositions of the two KFAC factors (made symmetric; eigenvalues clipped at 0)."""
    sg, qg = torch.linalg.eigh((g + g.T) / 2)
    sa, qa = torch.linalg.eigh((a + a.T) / 2)
    return {
        "g_eigvals": sg.clamp(min=0).numpy(),
        "g_eigvecs": qg.numpy(),
        "a_eigvals": sa.clamp(min=0).numpy(),
        "a_eigvecs": qa.numpy(),
    }


def packed(module: nn.Linear) -> torch.Tensor:
    """A float64 copy of the layer's parameters as ``[W | b]`` (d_out, d_in (+1)), on the CPU."""
    w = module.weight.detach().double().cpu().clone()
    return torch.cat([w, module.bias.detach().double()[:, None]], dim=1) if module.bias is not None else w


def assign(module: nn.Linear, theta: torch.Tensor) -> None:
    """Set a layer's weight (and bias, the last column) from ``[W | b]`` (d_out, d_in (+1))."""
    module.weight.copy_(theta[:, : module.in_features].to(module.weight))
    if module.bias is not None:
        module.bias.copy_(theta[:, module.in_features].to(module.bias))
