"""Budgeted pretraining: budgets, the training loop, checkpoints and resume, initialisation."""

from ..budget import Budget, BudgetError, BudgetState
from .errors import TrainingError
from .loop import pretrain

__all__ = ["Budget", "BudgetError", "BudgetState", "TrainingError", "pretrain"]
