"""Budgets (wall-clock, tokens or steps), what a run has spent of one, and the every-so-often events counted
against it.

A run's progress is the share of its budget spent (in [0, 1]); the learning-rate schedules that follow it are in
``hbert.optim``.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SCALE = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "B": 1e9, "T": 1e12}
_LIMIT = 1e15  # seconds, tokens or steps: beyond any real run, and still exact as a float
ACCEPTED = "a time such as 90s, 10m, 1h30m, 24h; a token count such as 50M-tokens; a step count such as 20000-steps"


class BudgetError(ValueError):
    pass


@dataclass(frozen=True)
class Budget:
    kind: str  # time | tokens | steps
    amount: float  # seconds, tokens or steps

    @classmethod
    def parse(cls, text: str) -> Budget:
        raw = str(text).strip()
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKMGBT]?)[-_ ]?(tokens|steps)", raw)
        if m:
            amount = float(m.group(1)) * _SCALE[m.group(2)]
            if not amount < _LIMIT:
                raise BudgetError(f"budget {raw[:40]!r} is too large; accepted: {ACCEPTED} (at most {_LIMIT:.0e})")
            if amount <= 0:
                raise BudgetError(f"budget {text!r} is not positive; accepted: {ACCEPTED}")
            return cls(m.group(3), amount if m.group(3) == "tokens" else float(math.ceil(amount)))
        parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhd])", raw)
        if parts and re.fullmatch(r"(?:\s*\d+(?:\.\d+)?\s*[smhd])+\s*", raw):
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
            if not seconds < _LIMIT:
                raise BudgetError(f"budget {raw[:40]!r} is too large; accepted: {ACCEPTED} (at most {_LIMIT:.0e})")
            if seconds > 0:
                return cls("time", seconds)
        raise BudgetError(f"cannot parse budget {text!r}; accepted: {ACCEPTED}")


@dataclass
class BudgetState:
    """What has been spent; saved in checkpoints so that a resumed run keeps its clock."""

    steps: int = 0
    tokens: int = 0
    charged_seconds: float = 0.0  # wall-clock counted against the budget
    scoring_seconds: float = 0.0  # teacher / scorer forwards (charged unless configured otherwise)
    eval_seconds: float = 0.0  # held-out evaluation (not charged by default)
    compile_seconds: float = (
        0.0  # the untimed warm-up (compilation, CUDA start-up) before the clock starts; never charged
    )

    def progress(self, budget: Budget) -> float:
        used = {"time": self.charged_seconds, "tokens": self.tokens, "steps": self.steps}[budget.kind]
        return min(1.0, used / budget.amount)

    def exhausted(self, budget: Budget) -> bool:
        return self.progress(budget) >= 1.0


def parse_interval(text: str) -> tuple[str, float]:
    """``"5m"`` -> ("time", 300); ``"500-steps"`` -> ("steps", 500); ``"0"`` -> ("off", 0)."""
    raw = str(text).strip()
    if raw in ("", "0", "off", "none"):
        return "off", 0.0
    budget = Budget.parse(raw)
    if budget.kind == "tokens":
        raise BudgetError(f"interval {text!r}: use a time (5m) or a step count (500-steps)")
    return budget.kind, budget.amount


@dataclass
class Interval:
    """An every-so-often event of a run (evaluation, checkpoint): ``kind`` time | steps | off, counted from
    ``last`` (a step number, or a ``time.time()``)."""

    kind: str
    every: float
    last: float = 0.0

    @classmethod
    def parse(cls, text: str, state: BudgetState) -> Interval:
        interval = cls(*parse_interval(text))
        interval.restart(state)
        return interval

    def due(self, state: BudgetState, now: float) -> bool:
        if self.kind == "steps":
            return state.steps - self.last >= self.every
        if self.kind == "time":
            return now - self.last >= self.every
        return False

    def restart(self, state: BudgetState) -> None:
        self.last = state.steps if self.kind == "steps" else time.time()
