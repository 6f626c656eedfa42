"""Fine-tuning and evaluation: task metrics, protocols, the fine-tuning loop, suites (GLUE, offline)."""

from .metrics import MetricError, compute_metrics, glue_score, task_score
from .settings import PROTOCOLS, FinetuneConfig, FinetuneError, make_config
from .suite import SUITES, evaluate_suite
from .trainer import finetune

__all__ = [
    "PROTOCOLS",
    "SUITES",
    "FinetuneConfig",
    "FinetuneError",
    "MetricError",
    "compute_metrics",
    "evaluate_suite",
    "finetune",
    "glue_score",
    "make_config",
    "task_score",
]
