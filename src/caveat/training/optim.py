"""AdamW with decoupled weight decay (Loshchilov & Hutter 2019), a separate head learning rate,
and linear warm-up then linear decay."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LambdaLR

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


def build_optimizer(model, config) -> torch.optim.Optimizer:
    """Four groups: backbone/head x decay/no-decay. Biases and norm weights get no weight decay."""
    groups: dict[tuple[bool, bool], list] = {(h, d): [] for h in (False, True) for d in (False, True)}
    for name, param in model.named_parameters():
        if param.requires_grad:
            is_head = name.startswith("head.")
            decays = not any(name.endswith(k) for k in NO_DECAY)
            groups[(is_head, decays)].append(param)
    return torch.optim.AdamW(
        [
            {
                "params": params,
                "lr": config.head_lr if is_head else config.lr,
                "weight_decay": config.weight_decay if decays else 0.0,
            }
            for (is_head, decays), params in groups.items()
            if params
        ],
        betas=(0.9, 0.999),
        eps=1e-8,
    )


def linear_schedule(optimizer, total_steps: int, warmup_ratio: float) -> LambdaLR:
    """Multiplier rising 0 -> 1 over the warm-up steps, then falling linearly to 0 at ``total_steps``."""
    warmup = int(round(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return LambdaLR(optimizer, factor)
