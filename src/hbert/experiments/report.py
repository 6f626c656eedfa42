"""The report of a recipe run: ``results.csv`` (every number) and ``REPORT.md`` (its tables: arms with their
floors, references, models pretrained first, validation losses; and one generated verdict per comparison, from the
seed spread)."""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path

from ..files import write_atomic
from ..finetune.metrics import spread_verdict
from ..training.share import LOW_SHARE, flag_low_share
from .recipe import Arm, Recipe, finetune_seeds


def downstream_columns(recipe: Recipe, scores: dict, twin: dict) -> dict:
    """results.csv columns of one run: per task the median over fine-tuning seeds, every seed's score, and the
    twin's median and the gain over it; then the suite average (per fine-tuning seed: the mean over tasks)."""
    row = {}
    for task in recipe.suite:
        mine = scores[task]["scores"]
        row[task] = statistics.median(mine)
        row[f"{task}_scores"] = ";".join(f"{x:.2f}" for x in mine)
        if scores[task]["losses"]:
            row[f"{task}_losses"] = ";".join(f"{x:.4f}" for x in scores[task]["losses"])
        if twin:
            row[f"{task}_twin"] = statistics.median(twin[task]["scores"])
            row[f"{task}_twin_scores"] = ";".join(f"{x:.2f}" for x in twin[task]["scores"])
            row[f"{task}_gain"] = row[task] - row[f"{task}_twin"]
            if twin[task]["losses"]:
                row[f"{task}_twin_losses"] = ";".join(f"{x:.4f}" for x in twin[task]["losses"])
    if recipe.suite:
        row["suite_avg_scores"] = ";".join(
            f"{x:.2f}" for x in suite_averages({t: v["scores"] for t, v in scores.items()})
        )
        if twin:
            row["suite_avg_twin_scores"] = ";".join(
                f"{x:.2f}" for x in suite_averages({t: v["scores"] for t, v in twin.items()})
            )
    return row


def suite_averages(scores: dict[str, list[float]]) -> list[float]:
    """The mean over tasks, one value per fine-tuning seed."""
    per_seed = zip(*scores.values())
    return [statistics.fmean(values) for values in per_seed]


def speed_column(recipe: Recipe, length: int) -> str:
    """The results.csv column of the inference speed at ``length`` (the first length keeps its historical name)."""
    return "inference_seq_per_s" if length == recipe.inference_lengths[0] else f"inference_seq_per_s_{length}"


def _spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def floats(cell) -> list[float]:
    return [float(x) for x in str(cell).split(";") if x != ""]


def pooled(rows: list[dict], column: str) -> list[float]:
    """Every pretraining seed's every fine-tuning seed's value of a ``*_scores`` column."""
    return [x for r in rows for x in floats(r.get(column, ""))]


def write_results(out: Path, recipe: Recipe, arms: dict[str, Arm], rows: list[dict], floors: dict | None = None,
                  references: list[dict] | None = None, pretrained: dict | None = None) -> None:  # fmt: skip
    """``results.csv`` (one row per arm x seed, then one per reference) and ``REPORT.md`` (tables and verdicts)."""
    floors, references = floors or {}, references or []
    columns = list(dict.fromkeys(k for row in [*rows, *references] for k in row))
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    writer.writerows(references)
    write_atomic(out / "results.csv", table.getvalue())
    lines = [f"# {recipe.name}", "", *_intro(recipe, arms), ""]
    lines += _main_table(recipe, rows, floors)
    lines += _reference_table(recipe, rows, references)
    lines += _pretrained_table(pretrained or {})
    if recipe.suite and (floors or any(f"{recipe.suite[0]}_twin" in r for r in rows)):
        lines += ["", "## Floors", "", *_floor_table(recipe, rows, floors)]
    lines += _loss_table(recipe, rows)
    lines += ["", "## What the data says", "", *verdict_lines(recipe, rows), *_share_lines(arms, rows)]
    lines += ["", "![held-out MLM accuracy against wall-clock](heldout_accuracy.png)"]
    if recipe.suite:
        lines.append("![downstream scores](downstream.png)")
    if len({r["tokens"] for r in rows}) > 1 and any("suite_avg_twin_scores" in r for r in rows):
        lines.append("![downstream gain over the random-init twin against tokens seen](payoff.png)")
    write_atomic(out / "REPORT.md", "\n".join(lines) + "\n")


def _intro(recipe: Recipe, arms: dict[str, Arm]) -> list[str]:
    budgets = sorted({arm.budget for arm in arms.values()})
    twin = len(finetune_seeds(recipe, twin=True))
    tuning = (
        f"{recipe.finetune_seeds} fine-tuning seed(s) per pretrained model"
        + (f" and {twin} per random-init twin" if twin != recipe.finetune_seeds else "")
        + f", fine-tuning {recipe.finetune or 'defaults'}"
        if recipe.suite
        else "no fine-tuning"
    )
    own = {arm.name: arm.seeds for arm in arms.values() if arm.seeds != recipe.seeds}
    seeds = f"{recipe.seeds}" + "".join(f" ({arm}: {s})" for arm, s in own.items())
    text = (f"Budget {', '.join(budgets)} per arm, pretraining seeds {seeds}, {tuning}, base `{recipe.base}`. "
            "Held-out MLM accuracy and loss: fixed seeded 15% mask on the held-out split, median [min, max] over "
            "pretraining seeds. Downstream: validation score (0-100), median [min, max] over every pretraining x fine-tuning seed; "
            "⚠ marks a median that does not clear the majority-class floor. CPU share: the training loop's share of "
            "the machine (1.0 = every thread busy for the whole run). Every number comes from `results.csv`.")  # fmt: skip
    return [text]


def _main_table(recipe: Recipe, rows: list[dict], floors: dict) -> list[str]:
    tasks = list(recipe.suite)
    header = ["arm", "parameters", "tokens seen", "steps", "time s (scoring)", "CPU share", "held-out MLM acc",
              "held-out MLM loss", *tasks]  # fmt: skip
    if tasks:
        header += ["suite average", "gain over random-init"]
    if recipe.inference:
        header += [f"inference seq/s (b32, s{n}, fp32)" for n in recipe.inference_lengths]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for arm in recipe.arms:
        arm_rows = [r for r in rows if r["arm"] == arm]
        if not arm_rows:
            continue
        shares = [r["cpu_share"] for r in arm_rows if r.get("cpu_share") is not None]
        cells = [arm, f"{arm_rows[0]['parameters']:,}", f"{int(statistics.median(r['tokens'] for r in arm_rows)):,}",
                 f"{int(statistics.median(r['steps'] for r in arm_rows)):,}", _time_cell(arm_rows),
                 f"{statistics.median(shares):.2f}" if shares else "-",
                 _fmt(_spread([r["heldout_mlm_acc"] for r in arm_rows]), 4), _loss_cell(arm_rows)]  # fmt: skip
        for task in tasks:
            values = pooled(arm_rows, f"{task}_scores")
            flag = " ⚠" if task in floors and statistics.median(values) <= floors[task]["majority"] else ""
            cells.append(_fmt(_spread(values), 1) + flag)
        if tasks:
            cells.append(_fmt(_spread(pooled(arm_rows, "suite_avg_scores")), 1))
            twin = floats(arm_rows[0].get("suite_avg_twin_scores", ""))
            gain = statistics.median(pooled(arm_rows, "suite_avg_scores")) - statistics.median(twin) if twin else None
            cells.append(f"{gain:+.1f}" if gain is not None else "-")
        if recipe.inference:
            cells += [
                f"{arm_rows[0].get(speed_column(recipe, n)) or float('nan'):.1f}" for n in recipe.inference_lengths
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _pretrained_table(pretrained: dict) -> list[str]:
    """The models the recipe pretrained first (e.g. a teacher), on the same held-out mask as the arms: how much
    stronger a teacher is than its students, and what it cost."""
    if not pretrained:
        return []
    lines = ["", "## Pretrained first", "", "| model | parameters | tokens seen | time s | CPU share | held-out MLM acc | "
             "held-out MLM loss |", "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, s in pretrained.items():
        share = (s.get("machine") or {}).get("cpu_share")
        lines.append(f"| {name} | {s['parameters']:,} | {s['tokens']:,} | {s['charged_seconds']:,.0f} | "
                     f"{share if share is not None else '-'} | {s['heldout_mlm_acc']:.4f} | {s['heldout_mlm_loss']:.3f} |")  # fmt: skip
    return lines


def _reference_table(recipe: Recipe, rows: list[dict], references: list[dict]) -> list[str]:
    """The reference checkpoints fine-tuned as they are, and each arm's suite average against each of them."""
    if not (references and recipe.suite):
        return []
    tasks = list(recipe.suite)
    header = ["reference", "checkpoint", *tasks, "suite average"]
    if recipe.inference:
        header += [f"inference seq/s (b32, s{n}, fp32)" for n in recipe.inference_lengths]
    lines = ["", "## References (fine-tuned as they are)", "", "| " + " | ".join(header) + " |",
             "|---|---|" + "---:|" * (len(header) - 2)]  # fmt: skip
    for ref in references:
        cells = [ref["arm"], f"`{ref['reference']}`", *(_fmt(_spread(floats(ref[f"{t}_scores"])), 1) for t in tasks),
                 _fmt(_spread(floats(ref["suite_avg_scores"])), 1)]  # fmt: skip
        if recipe.inference:
            cells += [f"{ref.get(speed_column(recipe, n)) or float('nan'):.1f}" for n in recipe.inference_lengths]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Share of each reference's suite average that each arm keeps (median over seeds):", ""]
    for ref in references:
        ceiling = statistics.median(floats(ref["suite_avg_scores"]))
        for arm in recipe.arms:
            arm_rows = [r for r in rows if r["arm"] == arm]
            if arm_rows and ceiling:
                mine = pooled(arm_rows, "suite_avg_scores")
                verdict = spread_verdict(mine, floats(ref["suite_avg_scores"]))
                lines.append(f"- `{arm}`: {statistics.median(mine) - ceiling:+.1f} points against `{ref['arm']}` "
                             f"({100 * statistics.median(mine) / ceiling:.0f}% of it; {verdict})")  # fmt: skip
    return lines


def _floor_table(recipe: Recipe, rows: list[dict], floors: dict) -> list[str]:
    tasks = list(recipe.suite)
    lines = ["| floor | " + " | ".join(tasks) + " | suite average |", "|---|" + "---:|" * (len(tasks) + 1)]
    for key, name in (("majority", "majority class"), ("bag_of_words", "bag-of-words (TF-IDF + linear model)")):
        if all(task in floors for task in tasks):
            values = [floors[task][key] for task in tasks]
            lines.append(
                f"| {name} | " + " | ".join(f"{v:.1f}" for v in values) + f" | {statistics.fmean(values):.1f} |"
            )
    twins: dict[str, list[dict]] = {}
    for row in rows:
        if row.get("twin"):
            twins.setdefault(row["twin"], []).append(row)
    for group in twins.values():
        arms = ", ".join(dict.fromkeys(r["arm"] for r in group))
        cells = [_fmt(_spread(floats(group[0][f"{task}_twin_scores"])), 1) for task in tasks]
        cells.append(_fmt(_spread(floats(group[0]["suite_avg_twin_scores"])), 1))
        lines.append(f"| random-init twin of {arms} | " + " | ".join(cells) + " |")
    return lines


def _loss_table(recipe: Recipe, rows: list[dict]) -> list[str]:
    """Validation loss (median [min, max]) of each arm and of its random-init twin: it often shows what pretraining
    bought before the scores do."""
    tasks = [t for t in recipe.suite if any(f"{t}_losses" in r for r in rows)]
    if not tasks:
        return []
    lines = ["", "## Validation loss", "", "| model | " + " | ".join(tasks) + " |", "|---|" + "---:|" * len(tasks)]
    twins = {}
    for arm in recipe.arms:
        arm_rows = [r for r in rows if r["arm"] == arm]
        if arm_rows:
            cells = [pooled(arm_rows, f"{t}_losses") for t in tasks]
            lines.append(f"| {arm} | " + " | ".join(_fmt(_spread(c), 4) if c else "-" for c in cells) + " |")
            if arm_rows[0].get("twin") and f"{tasks[0]}_twin_losses" in arm_rows[0]:
                twins.setdefault(arm_rows[0]["twin"], (arm, arm_rows[0]))
    for arm, row in twins.values():
        cells = [_fmt(_spread(floats(row.get(f"{t}_twin_losses", ""))), 4) if row.get(f"{t}_twin_losses") else "-"
                 for t in tasks]  # fmt: skip
        lines.append(f"| random-init twin of {arm} | " + " | ".join(cells) + " |")
    return lines


def verdict_lines(recipe: Recipe, rows: list[dict]) -> list[str]:
    """One generated statement per comparison: each arm against its random-init twin (suite average) and against
    the baseline arm (held-out MLM accuracy, suite average), each with its verdict from the seed spread."""
    lines = []
    by_arm = {arm: [r for r in rows if r["arm"] == arm] for arm in recipe.arms}
    for arm, arm_rows in by_arm.items():
        mine, twin = pooled(arm_rows, "suite_avg_scores"), floats(arm_rows[0].get("suite_avg_twin_scores", ""))
        if mine and twin:
            gain = statistics.median(mine) - statistics.median(twin)
            per_task = []
            for task in recipe.suite:
                a, b = pooled(arm_rows, f"{task}_scores"), floats(arm_rows[0].get(f"{task}_twin_scores", ""))
                if a and b:
                    per_task.append(f"{task} {statistics.median(a) - statistics.median(b):+.1f} "
                                    f"({spread_verdict(a, b)})")  # fmt: skip
            lines.append(f"- `{arm}` against its random-init twin, suite average: {gain:+.1f} points "
                         f"({_range(mine)} vs {_range(twin)}): {spread_verdict(mine, twin)}."
                         + (f" Per task: {'; '.join(per_task)}." if per_task else ""))  # fmt: skip
    baseline = recipe.baseline or next(iter(recipe.arms))
    base_rows = by_arm.get(baseline, [])
    for arm, arm_rows in by_arm.items():
        if arm == baseline or not arm_rows or not base_rows:
            continue
        a, b = [r["heldout_mlm_acc"] for r in arm_rows], [r["heldout_mlm_acc"] for r in base_rows]
        lines.append(f"- `{arm}` against `{baseline}`, held-out MLM accuracy: "
                     f"{statistics.median(a) - statistics.median(b):+.4f} ({_range(a, 4)} vs {_range(b, 4)}): "
                     f"{spread_verdict(a, b)}.")  # fmt: skip
        a, b = [r.get("heldout_mlm_loss") for r in arm_rows], [r.get("heldout_mlm_loss") for r in base_rows]
        if None not in a + b:  # the loss moves before the accuracy leaves the frequent-token plateau
            lines.append(f"- `{arm}` against `{baseline}`, held-out MLM loss (lower is better): "
                         f"{statistics.median(a) - statistics.median(b):+.3f} ({_range(a, 3)} vs {_range(b, 3)}): "
                         f"{spread_verdict(a, b)}.")  # fmt: skip
        a, b = pooled(arm_rows, "suite_avg_scores"), pooled(base_rows, "suite_avg_scores")
        if a and b:
            lines.append(f"- `{arm}` against `{baseline}`, suite average: {statistics.median(a) - statistics.median(b):+.1f} "
                         f"points ({_range(a)} vs {_range(b)}): {spread_verdict(a, b)}.")  # fmt: skip
    return lines


def _range(values: list[float], digits: int = 1) -> str:
    return f"[{min(values):.{digits}f}, {max(values):.{digits}f}]"


def _share_lines(arms: dict[str, Arm], rows: list[dict]) -> list[str]:
    shares = {f"{r['arm']} seed {r['seed']}": r.get("cpu_share") for r in rows}
    flagged = [name for name, low in flag_low_share(shares).items() if low]
    if not flagged:
        return []
    budgets = {arm.budget for arm in arms.values()}
    timed = any(not b.endswith(("tokens", "steps")) for b in budgets)
    consequence = ("its wall-clock budget bought it less work than the others: compare tokens seen, or rerun on an "
                   "idle machine or with a token budget" if timed else
                   "the budget is counted in tokens or steps, so this changed how long it took, not what it learnt")  # fmt: skip
    return [f"- ⚠ Machine share: {', '.join(flagged)} got less than {LOW_SHARE:.0%} of the best run's CPU share; "
            f"{consequence}."]  # fmt: skip


def _time_cell(rows: list[dict]) -> str:
    """Median charged seconds of the arm's runs and, when it scored masks with a model, the part that scoring took:
    the machine time an entropy arm pays for its teacher (or its own) forwards."""
    if any(r.get("charged_seconds") in (None, "") for r in rows):  # rows from before times were recorded
        return "-"
    total = statistics.median(float(r["charged_seconds"]) for r in rows)
    scoring = statistics.median(float(r.get("scoring_seconds") or 0) for r in rows)
    return f"{total:,.0f} ({scoring:,.0f})" if scoring else f"{total:,.0f}"


def _loss_cell(rows: list[dict]) -> str:
    losses = [float(r["heldout_mlm_loss"]) for r in rows if r.get("heldout_mlm_loss") not in (None, "")]
    return _fmt(_spread(losses), 3) if losses else "-"


def _fmt(spread: tuple[float, float, float], digits: int) -> str:
    median, low, high = spread
    if low == high:
        return f"{median:.{digits}f}"
    return f"{median:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
