"""The optimizer and its learning rate, shared by pretraining and fine-tuning: AdamW with no weight decay on norms
and biases (the 1-D parameters), a multiplier set on every parameter group before each step, and the schedules
that give the multiplier.

Pretraining's schedules follow the share of the budget spent (progress in [0, 1]) and reach zero exactly when the
budget is spent, whatever the budget's kind; ``SCHEDULES`` names them (``train.schedule``). Fine-tuning's schedule
counts optimizer steps (``step_lr_multiplier``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch


class ScheduleError(ValueError):
    pass


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


# ------------------------------------------------------------------------------------------ schedules


def _after_warmup(p: float, warmup: float) -> float:
    """The share of the post-warm-up part of the budget spent at progress ``p`` (past the warm-up)."""
    return (p - warmup) / (1.0 - warmup) if warmup < 1 else 1.0


def linear(p: float, warmup: float) -> float:
    """Warm-up over the first ``warmup`` of the budget, then straight down to zero."""
    if warmup > 0 and p < warmup:
        return p / warmup
    return max(0.0, 1.0 - _after_warmup(p, warmup))


def cosine(p: float, warmup: float) -> float:
    """Warm-up over the first ``warmup`` of the budget, then half a cosine down to zero."""
    if warmup > 0 and p < warmup:
        return p / warmup
    return 0.5 * (1.0 + math.cos(math.pi * _after_warmup(p, warmup)))


def triangle(p: float, warmup: float) -> float:
    """One-cycle: straight up to the midpoint, straight down after it (ignores ``warmup``)."""
    return 1.0 - abs(2.0 * p - 1.0)


SCHEDULES: dict[str, Callable[[float, float], float]] = {"linear": linear, "cosine": cosine, "triangle": triangle}


def lr_multiplier(progress: float, schedule: str, warmup: float) -> float:
    """The learning-rate multiplier of schedule ``schedule`` (a name in ``SCHEDULES``) at ``progress`` (clamped to
    [0, 1]): zero exactly at progress 1."""
    if schedule not in SCHEDULES:
        raise ScheduleError(f"unknown schedule {schedule!r}; accepted: {', '.join(SCHEDULES)}")
    return SCHEDULES[schedule](min(max(progress, 0.0), 1.0), warmup)


def step_lr_multiplier(step: int, warmup_steps: int, total_steps: int) -> float:
    """The fine-tuning schedule, counted in optimizer steps: linear warm-up over ``warmup_steps`` (reaching 1 at
    the end of the warm-up), then linear decay to zero at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / max(1, warmup_steps)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
