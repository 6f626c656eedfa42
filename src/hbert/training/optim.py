"""The optimizer and its learning rate, shared by pretraining and fine-tuning: AdamW with no weight decay on norms
and biases (the 1-D parameters), and a multiplier set on every parameter group before each step (the schedules
themselves are in ``budget``)."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def adamw(
    parameters: Iterable[torch.nn.Parameter],
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    fused: bool | None = None,
) -> torch.optim.AdamW:
    """AdamW over the parameters that require gradients: matrices decay, 1-D parameters (norms, biases) do not."""
    decay, no_decay = [], []
    for p in parameters:
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=fused)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
