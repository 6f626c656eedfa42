"""The plots of a recipe run: held-out MLM accuracy against tokens seen (or wall-clock), downstream scores with
their floors, and the downstream gain over the random-init twin against tokens seen. matplotlib is optional: without
it the report is complete and the plots are left out."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from .._optional import require
from .recipe import Arm, Recipe
from .report import floats, pooled


def plot(out: Path, recipe: Recipe, arms: dict[str, Arm], rows: list[dict], floors: dict | None = None) -> None:
    """``heldout_accuracy.png``, and with a suite ``downstream.png`` and (several token counts) ``payoff.png``."""
    matplotlib = require("matplotlib", "the recipe report's plots")  # optional: loaded only when plotting

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after choosing the Agg backend

    fig, ax = plt.subplots(figsize=(7, 4.5))
    # token and step budgets: against tokens seen (immune to the machine's load); time budgets: against wall-clock
    by_tokens = all(arm.budget.endswith(("tokens", "steps")) for arm in arms.values())
    for i, arm in enumerate(arms.values()):
        for seed in arm.seeds:  # one colour per arm; the first seed solid, the others dashed
            points = heldout_curve(out / "arms" / arm.name / f"seed{seed}", "tokens" if by_tokens else "elapsed")
            if points:
                xs, ys = zip(*points)
                scale = 1e6 if by_tokens else 60
                first = seed == arm.seeds[0]
                ax.plot([x / scale for x in xs], ys, marker="o", color=f"C{i % 10}", linestyle="-" if first else "--",
                        label=arm.name if first else None)  # fmt: skip
    ax.set_xlabel("tokens seen (millions)" if by_tokens else "charged wall-clock (minutes)")
    ax.set_ylabel("held-out MLM accuracy")
    ax.set_title(
        f"{recipe.name}: held-out MLM accuracy" + (" (dashed: further seeds)" if len(recipe.seeds) > 1 else "")
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "heldout_accuracy.png", dpi=120)
    plt.close(fig)
    if recipe.suite:
        _plot_downstream(plt, out, recipe, rows, floors or {})
    if len({r["tokens"] for r in rows}) > 1 and any("suite_avg_twin_scores" in r for r in rows):
        _plot_payoff(plt, out, recipe, rows)


def _plot_downstream(plt, out: Path, recipe: Recipe, rows: list[dict], floors: dict) -> None:
    tasks = list(recipe.suite)
    groups = {arm: {t: pooled([r for r in rows if r["arm"] == arm], f"{t}_scores") for t in tasks}
              for arm in recipe.arms}  # fmt: skip
    twins: dict[str, dict] = {}
    for row in rows:  # one bar per random-init twin (per architecture), named after the first arm it serves
        if row.get("twin") and f"{tasks[0]}_twin_scores" in row and row["twin"] not in twins:
            twins[row["twin"]] = row
    for row in twins.values():
        name = "random-init twin" + (f" ({row['arm']})" if len(twins) > 1 else "")
        groups[name] = {t: floats(row[f"{t}_twin_scores"]) for t in tasks}
    groups = {name: g for name, g in groups.items() if all(g.values())}
    if not groups:
        return
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups) * len(tasks)), 4.5))
    width = 0.8 / len(groups)
    for i, (name, scores) in enumerate(groups.items()):
        med = [statistics.median(scores[t]) for t in tasks]
        low = [m - min(scores[t]) for m, t in zip(med, tasks)]
        high = [max(scores[t]) - m for m, t in zip(med, tasks)]
        hatch = "//" if name.startswith("random-init twin") else None
        ax.bar([j + i * width for j in range(len(tasks))], med, width, yerr=[low, high], capsize=3, label=name,
               hatch=hatch)  # fmt: skip
    for j, task in enumerate(tasks):
        for key, style in (("majority", ":"), ("bag_of_words", "--")):
            if task in floors:
                ax.hlines(floors[task][key], j - width / 2, j + 0.8 - width / 2, colors="black", linestyles=style,
                          label=key.replace("_", "-") if j == 0 else None)  # fmt: skip
    ax.set_xticks([j + width * (len(groups) - 1) / 2 for j in range(len(tasks))])
    ax.set_xticklabels(tasks)
    ax.set_ylabel("validation score (0-100)")
    ax.set_title(f"{recipe.name}: downstream (median, min-max) with floors")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "downstream.png", dpi=120)
    plt.close(fig)


def _plot_payoff(plt, out: Path, recipe: Recipe, rows: list[dict]) -> None:
    """The suite-average gain of each pretrained model over its random-init twin, against tokens seen."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    points = []
    for row in rows:
        mine, twin = floats(row.get("suite_avg_scores", "")), floats(row.get("suite_avg_twin_scores", ""))
        if mine and twin:
            gains = [a - statistics.median(twin) for a in mine]
            points.append((row["tokens"] / 1e6, statistics.median(gains), min(gains), max(gains), row["arm"]))
    points.sort()
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    ax.errorbar(xs, ys, yerr=[[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]], marker="o", capsize=4)
    for x, y, *_, arm in points:
        ax.annotate(arm, (x, y), textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax.axhline(0.0, color="black", linestyle=":", label="random-init twin")
    ax.set_xlabel("pretraining tokens seen (millions)")
    ax.set_ylabel("suite-average gain over the twin (points)")
    ax.set_title(f"{recipe.name}: what pretraining buys downstream")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "payoff.png", dpi=120)
    plt.close(fig)


def heldout_curve(run_dir: Path, x: str = "elapsed") -> list[tuple[float, float]]:
    """(charged seconds, or with ``x="tokens"`` tokens seen, held-out MLM accuracy) of every evaluation of a run."""
    points, tokens_per_step = [], 0.0
    log = run_dir / "log.jsonl"
    if log.exists():
        for line in open(log):
            record = json.loads(line)
            if "tokens" in record and record.get("step"):
                tokens_per_step = record["tokens"] / record["step"]
            if "heldout_mlm_acc" in record:
                points.append((record["elapsed"], record["heldout_mlm_acc"], record["step"]))
    if x == "tokens":
        return [(step * tokens_per_step, acc) for _, acc, step in points]
    return [(elapsed, acc) for elapsed, acc, _ in points]
