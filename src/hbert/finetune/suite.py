"""A checkpoint on a suite of tasks over fine-tuning seeds, beside its floors: ``suite_scores`` is the one
implementation of suite x seeds (of a checkpoint, or of its random-init twin), used by ``hbert finetune --suite``
(``evaluate_suite``, with the floors and the GLUE score) and by the recipe runner (which caches the scores of each
pretrained model, twin and reference in a ``downstream.json`` so that an interrupted recipe resumes)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..data.tasks import TaskSpec, get_task, load_task, suites
from ..files import write_atomic
from .metrics import glue_score, spread, spread_verdict
from .settings import FinetuneConfig
from .trainer import cheap_floors, finetune, random_init_score

SUITES = suites()  # derived from the task tables of data/tasks.py


def suite_scores(checkpoint: str, tasks: list, configs: list[FinetuneConfig], twin: str | None = None,
                 label: str = "", cache: Path | None = None, settings: dict | None = None) -> dict:  # fmt: skip
    """``{task: {"scores": [...], "losses": [...]}}``: the validation score and loss of ``checkpoint`` fine-tuned
    on every task once per config in ``configs`` (one per fine-tuning seed), or, with ``twin`` (an init scheme:
    ``bert`` or ``subln``), of its random-init twin fine-tuned the same way. A task run here also gets ``metrics``
    (every seed's validation metrics) and, where the task has it, ``validation_mismatched`` (every seed's score).

    ``label``: the checkpoint's name in a line printed before and after each fine-tuning. ``cache``: a JSON file of
    the scores task by task, written after each task; a task cached with the same seeds and ``settings`` (the
    fine-tuning settings that change scores) is not fine-tuned again."""
    seeds = [c.seed for c in configs]
    done = json.loads(cache.read_text()) if cache is not None and cache.exists() else {}
    out = {}
    for task in tasks:
        entry = done.get(task)
        if isinstance(entry, dict) and entry.get("seeds") == seeds and entry.get("settings") == settings:
            continue  # scores of exactly these fine-tuning settings: kept; other settings are fine-tuned again
        metrics, mismatched = [], []
        for config in configs:
            if label:
                print(f"  fine-tuning {label} on {task}, seed {config.seed}", flush=True)
            if twin is None:
                result = finetune(checkpoint, task, config)
                if "validation_mismatched" in result:
                    mismatched.append(result["validation_mismatched"]["score"])
                metrics.append(result["validation"])
            else:
                metrics.append(random_init_score(checkpoint, task, config, init_scheme=twin))
            if label:
                print(f"    {task} seed {config.seed}: validation score {metrics[-1]['score']:.1f}, loss "
                      f"{metrics[-1]['loss']:.4f}", flush=True)  # fmt: skip
        done[task] = {"seeds": seeds, "settings": settings, "scores": [m["score"] for m in metrics],
                      "losses": [m["loss"] for m in metrics if "loss" in m]}  # fmt: skip
        out[task] = {"metrics": metrics, **({"validation_mismatched": mismatched} if mismatched else {})}
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(cache, json.dumps(done, indent=2))
    return {task: {"scores": done[task]["scores"], "losses": done[task].get("losses", []), **out.get(task, {})}
            for task in tasks}  # fmt: skip


def evaluate_suite(checkpoint: str, tasks: list[str | TaskSpec], seeds: int, config: FinetuneConfig) -> dict:
    """Fine-tune on every task with ``seeds`` seeds: per-task median and spread (min-max) of the score, the floors
    (majority class, bag-of-words, and the random-init twin fine-tuned with the same seeds), the gain over the twin
    with a verdict from the seed spread, and, for GLUE tasks, the GLUE score with and without WNLI."""
    for task in tasks:  # every task known and every local task's files readable before the first one trains
        spec = get_task(task) if isinstance(task, str) else task
        if spec.loader == "local":
            load_task(spec)
    configs = [dataclasses.replace(config, seed=config.seed + s, floors="none") for s in range(seeds)]
    per_task: dict = {}
    for task in tasks:
        runs = suite_scores(checkpoint, [task], configs)[task]
        entries = {"validation": runs["scores"]}
        if "validation_mismatched" in runs:
            entries["validation_mismatched"] = runs["validation_mismatched"]
        per_task[task] = {role: spread(v) for role, v in entries.items()}
        per_task[task]["metrics"] = runs["metrics"]
        if config.floors != "none":
            floors = {k: v["score"] for k, v in cheap_floors(task, config.max_train_examples,
                                                             config.max_eval_examples).items()}  # fmt: skip
            median = per_task[task]["validation"]["median"]
            per_task[task]["below_majority"] = median <= floors["majority"]
            if config.floors == "all":
                twin = suite_scores(checkpoint, [task], configs, twin="bert")[task]["scores"]
                floors["random_init"] = spread(twin)
                per_task[task]["gain_over_random_init"] = median - floors["random_init"]["median"]
                per_task[task]["verdict"] = spread_verdict(entries["validation"], twin)
            per_task[task]["floors"] = floors
    result = {"checkpoint": checkpoint, "seeds": seeds, "protocol": config.protocol, "floors": config.floors,
              "tasks": per_task}  # fmt: skip
    glue = {}
    for task, entry in per_task.items():
        if task in SUITES["glue"]:
            if task == "mnli":
                glue["mnli-m"] = entry["validation"]["median"]
                if "validation_mismatched" in entry:
                    glue["mnli-mm"] = entry["validation_mismatched"]["median"]
            else:
                glue[task] = entry["validation"]["median"]
    if glue:
        result["glue"] = glue_score(glue)
    return result


def suite_markdown(result: dict) -> str:
    lines = [f"Checkpoint `{result['checkpoint']}`, protocol `{result['protocol']}`, {result['seeds']} seed(s): "
             "validation score (0-100), median and min-max, beside its floors: the majority class, a bag-of-words "
             "model (TF-IDF + logistic / ridge regression) and the random-init twin (same shape, random weights, "
             "same fine-tuning and seeds). ⚠ marks a score that does not clear the majority floor.", "",
             "| task | median | min | max | majority | bag-of-words | random-init | gain | verdict |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for task, entry in result["tasks"].items():
        floors = entry.get("floors", {})
        twin = floors.get("random_init")
        for role in ("validation", "validation_mismatched"):
            if role not in entry:
                continue
            name = task if role == "validation" else f"{task} (mismatched)"
            e = entry[role]
            flag = " ⚠" if role == "validation" and entry.get("below_majority") else ""
            cells = [name, f"{e['median']:.1f}{flag}", f"{e['min']:.1f}", f"{e['max']:.1f}"]
            if role == "validation" and floors:
                cells += [f"{floors['majority']:.1f}", f"{floors['bag_of_words']:.1f}",
                          f"{twin['median']:.1f} [{twin['min']:.1f}, {twin['max']:.1f}]" if twin else "-",
                          f"{entry['gain_over_random_init']:+.1f}" if twin else "-", entry.get("verdict", "-")]  # fmt: skip
            else:
                cells += ["-"] * 5
            lines.append("| " + " | ".join(cells) + " |")
    if "glue" in result:
        g = result["glue"]
        lines += ["", f"GLUE score: {g['glue']:.1f} ({g['tasks']} tasks); without WNLI: {g['glue_without_wnli']:.1f}"]
    return "\n".join(lines) + "\n"
