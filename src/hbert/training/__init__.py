"""Budgeted pretraining: budgets and schedules, the training loop, checkpoints and resume, initialisation."""

from .budget import Budget, BudgetError, BudgetState, lr_multiplier
from .loop import TrainingError, pretrain

__all__ = ["Budget", "BudgetError", "BudgetState", "TrainingError", "lr_multiplier", "pretrain"]
