"""Task metrics computed locally with scikit-learn and scipy (no network, no ``evaluate.load``), and the GLUE score.

GLUE score conventions: each task contributes one number, the mean of its metrics where it has two (MRPC and QQP:
F1 and accuracy; STS-B: Pearson and Spearman); MNLI contributes the mean of its matched and mismatched accuracy;
the score is the mean over tasks, reported with and without WNLI. Scores are on a 0-100 scale.
"""

from __future__ import annotations

import statistics

import numpy as np

from .._optional import require

CLASS_METRICS = ("accuracy", "f1", "matthews_correlation")
REGRESSION_METRICS = ("pearson", "spearmanr")


class MetricError(ValueError):
    pass


def compute_metrics(names: tuple[str, ...] | list[str], predictions, labels, kind: str) -> dict[str, float]:
    """``predictions``: class ids (classification) or floats (regression), against ``labels``."""
    require("scipy", "task metrics")
    require("sklearn", "task metrics")
    from scipy.stats import pearsonr, spearmanr  # optional (the eval extra): required above
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef  # optional, as scipy

    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if len(predictions) != len(labels) or len(labels) == 0:
        raise MetricError(f"{len(predictions)} predictions for {len(labels)} labels")
    out = {}
    for name in names:
        if name in CLASS_METRICS and kind != "classification":
            raise MetricError(
                f"metric {name} needs class labels but the task is a {kind}; accepted: pearson, spearmanr"
            )
        if name in REGRESSION_METRICS and kind != "regression":
            raise MetricError(f"metric {name} needs real-valued labels but the task has classes; "
                              f"accepted: accuracy, f1, matthews_correlation")  # fmt: skip
        if name == "accuracy":
            out[name] = float(accuracy_score(labels, predictions))
        elif name == "f1":
            out[name] = float(f1_score(labels, predictions, average="binary", zero_division=0))
        elif name == "matthews_correlation":
            out[name] = float(matthews_corrcoef(labels, predictions))
        elif name == "pearson":
            out[name] = float(pearsonr(predictions, labels)[0]) if np.ptp(predictions) > 0 else 0.0
        elif name == "spearmanr":
            out[name] = float(spearmanr(predictions, labels)[0]) if np.ptp(predictions) > 0 else 0.0
        else:
            raise MetricError(f"unknown metric {name!r}; accepted: {', '.join(CLASS_METRICS + REGRESSION_METRICS)}")
    return out


def task_score(metrics: dict[str, float], names: tuple[str, ...], average: bool) -> float:
    """A task's single score (0-100): its main metric, or the mean of its metrics when ``average``."""
    values = [metrics[n] for n in names] if average else [metrics[names[0]]]
    return 100.0 * float(np.mean(values))


def glue_score(task_scores: dict[str, float]) -> dict[str, float]:
    """``task_scores``: task -> score (0-100), with ``mnli`` given as ``mnli-m`` and ``mnli-mm`` (or ``mnli``).
    Returns the GLUE score with and without WNLI, over the tasks present."""
    scores = dict(task_scores)
    if "mnli-m" in scores or "mnli-mm" in scores:
        parts = [scores.pop(k) for k in ("mnli-m", "mnli-mm") if k in scores]
        scores["mnli"] = float(np.mean(parts))
    if not scores:
        raise MetricError("no task scores to average")
    without = {k: v for k, v in scores.items() if k != "wnli"}
    return {
        "glue": float(np.mean(list(scores.values()))),
        "glue_without_wnli": float(np.mean(list(without.values()))) if without else float("nan"),
        "tasks": len(scores),
    }


NOT_CALLED = "not called (needs at least 2 seeds on each side)"
EXCEEDS = "exceeds the seed spread"
WITHIN = "within noise"


def spread_verdict(a: list[float], b: list[float]) -> str:
    """Is the difference between two sets of seed results real? It *exceeds the seed spread* when the ranges do
    not overlap (every seed of one side beats every seed of the other), and is *within noise* otherwise. With fewer
    than two seeds a side there is no spread to judge by: not called."""
    if len(a) < 2 or len(b) < 2:
        return NOT_CALLED
    if min(a) > max(b) or max(a) < min(b):
        return EXCEEDS
    return WITHIN


def spread(values: list[float]) -> dict[str, float]:
    """Median and range of seed results (``scores`` keeps them all)."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "scores": list(values)}


def entity_metrics(true_tags: list[list[str]], predicted_tags: list[list[str]]) -> dict[str, float]:
    """seqeval span scores (an entity counts only when its type and both ends match) and per-word accuracy."""
    seqeval = require("seqeval.metrics", "entity metrics of token tasks")
    return {
        "entity_f1": float(seqeval.f1_score(true_tags, predicted_tags, zero_division=0)),
        "entity_precision": float(seqeval.precision_score(true_tags, predicted_tags, zero_division=0)),
        "entity_recall": float(seqeval.recall_score(true_tags, predicted_tags, zero_division=0)),
        "accuracy": float(seqeval.accuracy_score(true_tags, predicted_tags)),
    }
