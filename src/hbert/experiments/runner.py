"""Recipes: one base config, named arms (overrides of it), one budget, seeds and a downstream suite. The runner
prepares the corpus once, pretrains every arm x seed (skipping finished runs, resuming interrupted ones), evaluates
held-out MLM accuracy, fine-tunes on the suite and measures inference speed, then writes ``results.csv``,
``REPORT.md`` and plots.

A recipe (YAML)::

    name: hbert-cpu
    base: configs/pretrain/cpu-small.yaml       # a pretraining config
    budget: 3m                                   # the same for every arm
    seeds: [0]
    corpus: {seq_len: 128}                       # CorpusSettings fields (default: the offline bundle)
    teacher:                                     # optional: pretrained first, then {teacher} in arm overrides
      overrides: [model.num_hidden_layers=8]
      budget: 10m
    arms:
      bert: [model=bert]
      hbert-v1: [model=hbert-v1]
    suite: [rt-polarity]                         # downstream tasks (empty: none)
    finetune: {epochs: 1, max_train_examples: 2000}
"""

from __future__ import annotations

import csv
import json
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config import ConfigError, load_config


class RecipeError(ValueError):
    pass


@dataclass
class Recipe:
    name: str
    base: str
    budget: str
    arms: dict[str, list[str]]
    seeds: list[int] = field(default_factory=lambda: [0])
    corpus: dict = field(default_factory=dict)
    corpus_path: str = ""
    teacher: dict = field(default_factory=dict)
    pretrained: dict = field(default_factory=dict)  # name -> {overrides, budget}: models trained first, {name}
    suite: list[str] = field(default_factory=list)
    finetune: dict = field(default_factory=dict)
    inference: bool = True
    eval_points: int = 6  # held-out evaluations per run (for the accuracy-against-wall-clock plot); 0 = the base's
    out: str = ""

    @classmethod
    def load(cls, path: str, overrides: list[str] | None = None) -> Recipe:
        if not os.path.isfile(path):
            raise RecipeError(f"recipe {path} does not exist")
        from ..files import read_yaml

        data = read_yaml(path) or {}
        if not isinstance(data, dict):
            raise RecipeError(f"{path}: a recipe is a YAML mapping (name, base, budget, arms, ...)")
        for item in overrides or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise RecipeError(f"expected key=value, got {item!r}")
            try:
                data[key] = yaml.safe_load(value) if key != "budget" else value
            except yaml.YAMLError:
                raise RecipeError(f"{key}: cannot read the value {value!r}") from None
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise RecipeError(
                f"{path}: unknown recipe key(s) {', '.join(unknown)}; accepted: {', '.join(sorted(known))}"
            )
        for key in ("name", "base", "budget", "arms"):
            if key not in data:
                raise RecipeError(f"{path}: missing {key!r}")
        base = data["base"]
        if not os.path.isabs(base) and not os.path.exists(base):
            candidate = os.path.join(os.path.dirname(path), "..", base)
            base = candidate if os.path.exists(candidate) else base
        data["base"] = base
        data["arms"] = _arms(path, data["arms"])
        data["seeds"] = _seeds(path, data.get("seeds", [0]))
        data["budget"] = str(data["budget"])
        recipe = cls(**data)
        if recipe.teacher:
            recipe.pretrained = {"teacher": recipe.teacher, **recipe.pretrained}
        for label, name in [("name", recipe.name), *(("pretrained model", n) for n in recipe.pretrained)]:
            if not _SAFE_NAME.fullmatch(str(name)) or ".." in str(name):
                raise RecipeError(f"{path}: {label} {str(name)!r} is not a safe folder name; accepted: letters, "
                                  f"digits, '.', '_' and '-' (no '/', no '..')")  # fmt: skip
        if not recipe.out:
            recipe.out = os.path.join("runs", recipe.name)
        return recipe


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _arms(path: str, arms) -> dict[str, list[str]]:
    """Arm names become folder names under ``out``: letters, digits, ``.``, ``_`` and ``-`` only (no ``/``,
    no ``..``), so that an arm can never write outside the recipe's folder."""
    if not isinstance(arms, dict) or not arms:
        raise RecipeError(f"{path}: arms must map arm names to lists of overrides, e.g. {{bert: [model=bert]}}")
    out = {}
    for name, items in arms.items():
        if not _SAFE_NAME.fullmatch(str(name)) or ".." in str(name):
            raise RecipeError(
                f"{path}: arm name {str(name)!r} is not a safe folder name; accepted: letters, digits, '.', '_' "
                f"and '-' (at most 64, starting with a letter or digit, no '..')"
            )
        if items is not None and not isinstance(items, list):
            raise RecipeError(f"{path}: arm {name!r} must list overrides, e.g. [model=bert], got {items!r}")
        out[str(name)] = [str(x) for x in (items or [])]
    return out


def _seeds(path: str, seeds) -> list[int]:
    seeds = seeds if isinstance(seeds, list) else [seeds]
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**31 for s in seeds):
        raise RecipeError(f"{path}: seeds={seeds!r}; accepted: a list of whole numbers from 0 to 2^31-1, e.g. [0, 1]")
    return seeds


def arm_overrides(recipe: Recipe, arm: str, seed: int, corpus: str, sources: dict[str, str]) -> list[str]:
    """The arm's overrides with ``{name}`` replaced by the final checkpoint of pretrained model ``name``."""
    items = []
    for item in recipe.arms[arm]:
        for name in recipe.pretrained:
            item = item.replace("{" + name + "}", sources.get(name, name))
        if "{" in item and "}" in item and "layer_map" not in item:
            raise RecipeError(f"arm {arm!r}: {item!r} names a model the recipe does not pretrain "
                              f"(pretrained: {', '.join(recipe.pretrained) or 'none'})")  # fmt: skip
        items.append(item)
    return [*items, f"budget={recipe.budget}", f"corpus={corpus}", f"train.seed={seed}", "impl.progress=false",
            *eval_interval(recipe.budget, recipe.eval_points)]  # fmt: skip


def eval_interval(budget: str, points: int) -> list[str]:
    """``train.eval_every`` giving about ``points`` held-out evaluations over the budget (time or step budgets)."""
    from ..training.budget import Budget

    if points <= 0:
        return []
    b = Budget.parse(budget)
    if b.kind == "time":
        return [f"train.eval_every={max(1, int(b.amount / points))}s"]
    if b.kind == "steps":
        return [f"train.eval_every={max(1, int(b.amount / points))}-steps"]
    return []


def validate(recipe: Recipe) -> None:
    """Every arm's overrides must be valid before anything trains: an unknown key names the arm and the key."""
    if not recipe.arms:
        raise RecipeError(f"recipe {recipe.name} has no arms")
    for arm in recipe.arms:
        try:
            load_config(recipe.base, arm_overrides(recipe, arm, 0, "CORPUS", {}), context=f" in arm {arm!r}")
        except ConfigError as err:
            raise RecipeError(f"recipe {recipe.name}, arm {arm!r}: {err}") from err
    for name, source in recipe.pretrained.items():
        try:
            load_config(recipe.base, list(source.get("overrides", [])), context=f" in pretrained model {name!r}")
        except ConfigError as err:
            raise RecipeError(f"recipe {recipe.name}, pretrained model {name!r}: {err}") from err
    from ..data.tasks import get_task

    for task in recipe.suite:
        get_task(task)
    from ..finetune import make_config

    make_config(recipe.finetune)


def _run_pretraining(run_dir: Path, base: str, overrides: list[str]) -> dict:
    from ..training import pretrain
    from ..training.loop import latest_checkpoint

    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        if summary.get("status") == "completed":
            return summary
    if latest_checkpoint(run_dir) is not None:
        print(f"  resuming {run_dir}", flush=True)
        return pretrain(None, resume=str(run_dir))
    print(f"  pretraining {run_dir}", flush=True)
    return pretrain(load_config(base, [*overrides, f"out={run_dir}"]))


def heldout_curve(run_dir: Path) -> list[tuple[float, float]]:
    """(charged seconds, held-out MLM accuracy) of every evaluation of a run."""
    points = []
    log = run_dir / "log.jsonl"
    if log.exists():
        for line in open(log):
            record = json.loads(line)
            if "heldout_mlm_acc" in record:
                points.append((record["elapsed"], record["heldout_mlm_acc"]))
    return points


def run_recipe(recipe: Recipe) -> Path:
    from ..data.corpus import CorpusSettings, prepare_corpus
    from ..data.tasks import evaluation_hashes

    validate(recipe)
    out = Path(recipe.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.yaml").write_text(yaml.safe_dump({k: v for k, v in recipe.__dict__.items()}, sort_keys=False))
    if recipe.corpus_path:
        corpus = recipe.corpus_path
    else:
        settings = CorpusSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in recipe.corpus.items()})
        corpus = str(prepare_corpus(settings, decontamination=lambda: evaluation_hashes(settings.decontaminate)))
    sources = {}
    for name, source in recipe.pretrained.items():
        run_dir = out / "pretrained" / name
        budget = str(source.get("budget", recipe.budget))
        _run_pretraining(run_dir, recipe.base, [*source.get("overrides", []), f"budget={budget}", f"corpus={corpus}",
                                                "impl.progress=false"])  # fmt: skip
        sources[name] = str(run_dir / "final")
    rows = []
    for arm in recipe.arms:
        for seed in recipe.seeds:
            run_dir = out / "arms" / arm / f"seed{seed}"
            summary = _run_pretraining(run_dir, recipe.base, arm_overrides(recipe, arm, seed, corpus, sources))
            row = {"arm": arm, "seed": seed, "parameters": summary["parameters"], "tokens": summary["tokens"],
                   "steps": summary["steps"], "charged_seconds": round(summary["charged_seconds"], 1),
                   "scoring_seconds": round(summary.get("scoring_seconds", 0.0), 1),
                   "heldout_mlm_acc": summary["heldout_mlm_acc"], "heldout_mlm_loss": summary["heldout_mlm_loss"]}  # fmt: skip
            row.update(_downstream(recipe, run_dir, seed))
            rows.append(row)
    if recipe.inference:
        speeds = _inference(out, recipe)
        for row in rows:
            row["inference_seq_per_s"] = speeds.get(row["arm"])
    write_results(out, recipe, rows)
    return out


def _downstream(recipe: Recipe, run_dir: Path, seed: int) -> dict:
    from ..finetune import finetune, make_config

    path = run_dir / "downstream.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    for task in recipe.suite:
        if task not in done:
            print(f"  fine-tuning {run_dir} on {task}", flush=True)
            config = make_config({**recipe.finetune, "seed": seed, "progress": False})
            result = finetune(str(run_dir / "final"), task, config)
            done[task] = result["validation"]["score"]
            path.write_text(json.dumps(done, indent=2))
    return {f"{task}": done[task] for task in recipe.suite}


def _inference(out: Path, recipe: Recipe) -> dict[str, float]:
    from ..bench.inference import bench_inference

    path = out / "inference.json"
    if path.exists():
        cached = json.loads(path.read_text())
        if set(cached) == set(recipe.arms):
            return cached
    seed = recipe.seeds[0]
    names = {str(out / "arms" / arm / f"seed{seed}" / "final"): arm for arm in recipe.arms}
    rows = bench_inference(list(names), lengths=(128,), batch=32, repeats=3, precisions=("fp32",))
    speeds = {names[r["model"]]: round(r["sequences_per_s"], 1) for r in rows if r["kind"] == "throughput"}
    path.write_text(json.dumps(speeds, indent=2))
    return speeds


def _spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def write_results(out: Path, recipe: Recipe, rows: list[dict]) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"# {recipe.name}",
        "",
        f"Budget {recipe.budget} per arm, seeds {recipe.seeds}, base `{recipe.base}`. Held-out MLM accuracy: fixed "
        "seeded 15% mask on the held-out split. Downstream: validation score (0-100), median over seeds [min, max]. "
        "Every number comes from `results.csv`.",
        "",
    ]
    tasks = list(recipe.suite)
    header = ["arm", "parameters", "tokens seen", "steps", "held-out MLM acc", *tasks]
    if recipe.inference:
        header.append("inference seq/s (b32, s128, fp32)")
    lines += ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for arm in recipe.arms:
        arm_rows = [r for r in rows if r["arm"] == arm]
        acc = _spread([r["heldout_mlm_acc"] for r in arm_rows])
        cells = [arm, f"{arm_rows[0]['parameters']:,}", f"{int(statistics.median(r['tokens'] for r in arm_rows)):,}",
                 f"{int(statistics.median(r['steps'] for r in arm_rows)):,}", _fmt(acc, 4)]  # fmt: skip
        cells += [_fmt(_spread([r[t] for r in arm_rows]), 1) for t in tasks]
        if recipe.inference:
            cells.append(f"{arm_rows[0].get('inference_seq_per_s') or float('nan'):.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "![held-out MLM accuracy against wall-clock](heldout_accuracy.png)"]
    if tasks:
        lines.append("![downstream scores](downstream.png)")
    (out / "REPORT.md").write_text("\n".join(lines) + "\n")
    plot(out, recipe, rows)


def _fmt(spread: tuple[float, float, float], digits: int) -> str:
    median, low, high = spread
    if low == high:
        return f"{median:.{digits}f}"
    return f"{median:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def plot(out: Path, recipe: Recipe, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for arm in recipe.arms:
        for seed in recipe.seeds:
            points = heldout_curve(out / "arms" / arm / f"seed{seed}")
            if points:
                xs, ys = zip(*points)
                ax.plot([x / 60 for x in xs], ys, marker="o", label=arm if seed == recipe.seeds[0] else None)
    ax.set_xlabel("charged wall-clock (minutes)")
    ax.set_ylabel("held-out MLM accuracy")
    ax.set_title(f"{recipe.name}: held-out MLM accuracy, budget {recipe.budget}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "heldout_accuracy.png", dpi=120)
    plt.close(fig)
    tasks = list(recipe.suite)
    if not tasks:
        return
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(recipe.arms) * len(tasks)), 4.5))
    width = 0.8 / len(recipe.arms)
    for i, arm in enumerate(recipe.arms):
        arm_rows = [r for r in rows if r["arm"] == arm]
        med = [statistics.median(r[t] for r in arm_rows) for t in tasks]
        low = [m - min(r[t] for r in arm_rows) for m, t in zip(med, tasks)]
        high = [max(r[t] for r in arm_rows) - m for m, t in zip(med, tasks)]
        ax.bar([j + i * width for j in range(len(tasks))], med, width, yerr=[low, high], capsize=3, label=arm)
    ax.set_xticks([j + width * (len(recipe.arms) - 1) / 2 for j in range(len(tasks))])
    ax.set_xticklabels(tasks)
    ax.set_ylabel("validation score (0-100)")
    ax.set_title(f"{recipe.name}: downstream, median and min-max over seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "downstream.png", dpi=120)
    plt.close(fig)
