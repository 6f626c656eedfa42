"""Running a recipe (``recipe.py``): the runner prepares the corpus once, pretrains every arm x seed (skipping
finished runs, resuming interrupted ones), evaluates held-out MLM accuracy, fine-tunes on the suite beside the floors
(the scores of each pretrained model, random-init twin and reference cached in its ``downstream.json``), measures
inference speed, then writes ``results.csv`` and ``REPORT.md`` (``report.py``) and the plots (``plots.py``).

Every downstream score stands beside its floors: the majority class, a bag-of-words model and the random-init twin
(same shape and tokenizer, random weights, the same fine-tuning and seeds). Runs whose models differ only in their
weights share one twin, cached under ``twins/`` by their architecture key.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from .._optional import MissingDependency
from ..bench.inference import bench_inference
from ..budget import Budget
from ..config import PretrainConfig, load_config, to_dict
from ..data.corpus import default_dir, prepare_corpus
from ..data.tasks import evaluation_hashes
from ..files import folder_entries, folder_lock, write_atomic
from ..finetune import make_config
from ..finetune.suite import suite_scores
from ..finetune.trainer import cheap_floors
from ..pretrained import resolve
from ..training import pretrain
from ..training.checkpoint import changed_result_settings
from ..training.loop import saved_config
from .plots import plot
from .recipe import Arm, Recipe, RecipeError, corpus_settings, finetune_seeds, resolve_items, validate
from .report import downstream_columns, speed_column, write_results


class RecipeInterrupted(Exception):
    """A signal stopped one of the recipe's pretraining runs after it saved a checkpoint: running the same recipe
    again skips the finished runs and resumes this one."""

    def __init__(self, run_dir: Path):
        super().__init__(f"the recipe stopped: a signal interrupted {run_dir} (checkpoint saved)")
        self.run_dir = run_dir


def arm_overrides(recipe: Recipe, arm: Arm, seed: int, corpus: str, sources: dict[str, str]) -> list[str]:
    """The overrides of one run of the arm: its budget, its own overrides with ``{name}`` replaced by the final
    checkpoint of pretrained model ``name``, the corpus, the seed and the held-out evaluation interval."""
    items = resolve_items(recipe, arm.name, arm.overrides, sources)
    tokens_per_step = 0
    if arm.budget.endswith("tokens"):
        tokens_per_step = arm.config.train.batch_size * int(recipe.corpus.get("seq_len", 128))
    return [f"budget={arm.budget}", *items, f"corpus={corpus}", f"train.seed={seed}", "impl.progress=false",
            *eval_interval(arm.budget, recipe.eval_points, tokens_per_step)]  # fmt: skip


def eval_interval(budget: str, points: int, tokens_per_step: int = 0) -> list[str]:
    """``train.eval_every`` giving about ``points`` held-out evaluations over the budget (time or step budgets, and
    token budgets when the tokens per step are known)."""
    if points <= 0:
        return []
    b = Budget.parse(budget)
    if b.kind == "tokens" and tokens_per_step > 0:
        return [f"train.eval_every={max(1, int(b.amount / tokens_per_step / points))}-steps"]
    if b.kind == "time":
        return [f"train.eval_every={max(1, int(b.amount / points))}s"]
    if b.kind == "steps":
        return [f"train.eval_every={max(1, int(b.amount / points))}-steps"]
    return []


@dataclass
class PlannedRun:
    """One pretraining run of a recipe: a pretrained model (``arm`` empty) or an arm x seed, with its config
    (loaded once: checked against a run folder already there, then trained)."""

    label: str
    run_dir: Path
    config: PretrainConfig
    arm: str = ""
    seed: int = 0


def _planned_runs(recipe: Recipe, arms: dict[str, Arm], out: Path, corpus: str) -> list[PlannedRun]:
    """Every pretraining run of the recipe, pretrained models first, then arms x seeds."""
    runs, sources = [], {}
    for name, source in recipe.pretrained.items():
        if not isinstance(source, dict) or not isinstance(source.get("overrides", []), list):
            raise RecipeError(f"recipe {recipe.name}: pretrained model {name!r} must be a mapping with a list of "
                              f"overrides and a budget, got {source!r}")  # fmt: skip
        run_dir = out / "pretrained" / name
        budget = str(source.get("budget", recipe.budget))
        overrides = [*map(str, source.get("overrides", [])), f"budget={budget}", f"corpus={corpus}",
                     "impl.progress=false", f"out={run_dir}"]  # fmt: skip
        config = load_config(str(source.get("config", recipe.base)), overrides)
        runs.append(PlannedRun(f"pretrained model {name!r}", run_dir, config))
        sources[name] = str(run_dir / "final")
    for arm in arms.values():
        for seed in arm.seeds:
            run_dir = out / "arms" / arm.name / f"seed{seed}"
            config = load_config(recipe.base, [*arm_overrides(recipe, arm, seed, corpus, sources), f"out={run_dir}"])
            runs.append(PlannedRun(f"arm {arm.name!r} seed {seed}", run_dir, config, arm.name, seed))
    return runs


def check_runs_match(recipe: Recipe, runs: list[PlannedRun]) -> None:
    """Each run folder already there must hold the run the recipe now asks for: the same results settings (model,
    corpus, budget, masking, training, init; speed settings may differ). Otherwise its results would be reported
    under settings it was not trained with: refused, naming the run and what differs."""
    for run in runs:
        label, run_dir = run.label, run.run_dir
        if not folder_entries(run_dir):
            continue
        if not (run_dir / "config.yaml").is_file():
            raise RecipeError(f"recipe {recipe.name}: {run_dir} (the folder of {label}) holds files that are not a "
                              f"run of hbert; choose another out= or move them away")  # fmt: skip
        wanted = to_dict(run.config)
        there = to_dict(saved_config(run_dir))
        changed = changed_result_settings(wanted, there)
        if changed:
            flat_w, flat_t = _flat_settings(wanted), _flat_settings(there)
            diffs = "; ".join(f"{k}: {flat_t.get(k)!r} there, {flat_w.get(k)!r} now" for k in changed[:3])
            raise RecipeError(
                f"recipe {recipe.name}: {run_dir} holds {label} trained with other settings ({diffs}); its results "
                f"would be reported under settings it was not trained with. Choose another out= for the changed "
                f"recipe, or delete that run folder to train it again"
            )


def _flat_settings(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict) and key not in ("fields", "layer_map"):
            out.update(_flat_settings(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_out_folder(recipe: Recipe, out: Path) -> None:
    """``out`` is new, empty, or the folder of an earlier run of a recipe (it holds recipe.yaml): never a folder
    of other files."""
    if out.exists() and not out.is_dir():
        raise RecipeError(f"out={out} is a file; accepted: a new or empty folder, or the folder of an earlier run")
    entries = folder_entries(out)
    if entries and "recipe.yaml" not in entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise RecipeError(f"out={out} holds other files ({shown}) and no recipe.yaml; accepted: a new or empty "
                          f"folder, or the folder of an earlier run of this recipe")  # fmt: skip


def _run_pretraining(run: PlannedRun) -> dict:
    """A run of the recipe: its summary when finished, else resumed from a checkpoint, else started (a start that
    died before its first checkpoint, whose settings ``check_runs_match`` found the same, is started again).
    Raises ``RecipeInterrupted`` when a signal stops the run (it has saved its checkpoint)."""
    run_dir = run.run_dir
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        if summary.get("status") == "completed" and (run_dir / "final").is_dir():
            return summary
    if any((run_dir / "checkpoints").glob("step-*/state.pt")):
        print(f"  resuming {run_dir}", flush=True)
        summary = pretrain(None, resume=str(run_dir))
    else:
        if (run_dir / "config.yaml").is_file() and not (run_dir / "final").exists():
            print(f"  {run_dir} stopped before its first checkpoint: starting it again", flush=True)
            shutil.rmtree(run_dir)
        print(f"  pretraining {run_dir}", flush=True)
        summary = pretrain(run.config)
    if summary["status"] == "interrupted":
        raise RecipeInterrupted(run_dir)
    return summary


def run_recipe(recipe: Recipe) -> Path:
    """Run the recipe in its ``out`` folder, locked against other hbert processes; every setting and every run
    folder already there is checked before the first step."""
    arms = validate(recipe)  # checks the teachers too
    out = Path(recipe.out)
    with folder_lock(out, "out"):
        check_out_folder(recipe, out)
        return _run_locked(recipe, arms, out)


def _run_locked(recipe: Recipe, arms: dict[str, Arm], out: Path) -> Path:
    settings = corpus_settings(recipe)
    corpus = recipe.corpus_path or str(default_dir(settings))
    runs = _planned_runs(recipe, arms, out, corpus)
    check_runs_match(recipe, runs)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "recipe.yaml", yaml.safe_dump({k: v for k, v in recipe.__dict__.items()}, sort_keys=False))
    if not recipe.corpus_path:
        prepare_corpus(settings, decontamination=lambda: evaluation_hashes(settings.decontaminate))
    rows = []
    pretrained = {}
    for run in runs:
        summary = _run_pretraining(run)
        if not run.arm:
            pretrained[run.run_dir.name] = summary
            continue
        share = (summary.get("machine") or {}).get("cpu_share")
        row = {"arm": run.arm, "seed": run.seed, "parameters": summary["parameters"], "tokens": summary["tokens"],
               "steps": summary["steps"], "charged_seconds": round(summary["charged_seconds"], 1),
               "scoring_seconds": round(summary.get("scoring_seconds", 0.0), 1),
               "tokens_per_s": round(summary["tokens"] / max(summary["charged_seconds"], 1e-9), 1),
               "cpu_share": share, "heldout_mlm_acc": summary["heldout_mlm_acc"],
               "heldout_mlm_loss": summary["heldout_mlm_loss"]}  # fmt: skip
        if "compile" in summary:  # compiled runs: did every step run compiled, and recompile never?
            row.update(compiled=summary["compiled"], recompiles=summary["compile"]["recompiles"])
        twin_key, twin = _twin_scores(recipe, out, run.run_dir)
        row.update(downstream_columns(recipe, _downstream(recipe, run.run_dir), twin))
        if twin_key:
            row["twin"] = twin_key
        rows.append(row)
    references = _references(recipe, out)
    if recipe.inference:
        speeds = _inference(out, recipe, arms)
        for row in [*rows, *references]:
            for length, speed in speeds.get(row["arm"], {}).items():
                row[speed_column(recipe, int(length))] = speed
    floors = _cheap_floors(recipe, out)
    write_results(out, recipe, arms, rows, floors, references, pretrained)
    try:
        plot(out, recipe, arms, rows, floors)
    except MissingDependency as err:  # the report and results.csv are complete without the plots
        print(f"  no plots: {err}", flush=True)
    return out


# ------------------------------------------------------------------------------------------ downstream scores


def _references(recipe: Recipe, out: Path) -> list[dict]:
    """One row per reference checkpoint: its downstream scores (the random-init twin's fine-tuning seeds)."""
    rows = []
    for name, folder in recipe.references.items():
        scores = _scores(recipe, resolve(folder), out / "references" / name / "downstream.json", f"reference {name}",
                         seeds=finetune_seeds(recipe, twin=True))  # fmt: skip
        row = {"arm": name, "reference": folder, **downstream_columns(recipe, scores, {})}
        rows.append(row)
    return rows


def _scores(recipe: Recipe, checkpoint: str, path: Path, label: str, init_scheme: str | None = None,
            seeds: list[int] | None = None) -> dict:  # fmt: skip
    """{task: {"scores": [...], "losses": [...]}} of ``checkpoint`` (of its random-init twin when ``init_scheme`` is
    given) on the recipe's suite, one per fine-tuning seed, cached in ``path`` task by task so an interrupted
    recipe resumes."""
    seeds = seeds if seeds is not None else finetune_seeds(recipe, twin=init_scheme is not None)
    configs = [make_config({**recipe.finetune, "seed": s, "progress": True, "floors": "none"}) for s in seeds]
    return suite_scores(checkpoint, recipe.suite, configs, twin=init_scheme, label=label, cache=path,
                        settings=finetune_settings(recipe))  # fmt: skip


def finetune_settings(recipe: Recipe) -> dict:
    """The fine-tuning settings that change scores (not the seed, progress bars, floors or device), which identify
    cached downstream scores."""
    config = asdict(make_config(recipe.finetune))
    for speed_only in ("seed", "progress", "floors", "device", "dynamic_padding"):
        config.pop(speed_only, None)
    return config


def _downstream(recipe: Recipe, run_dir: Path) -> dict:
    return _scores(recipe, str(run_dir / "final"), run_dir / "downstream.json", str(run_dir))


def _architecture_key(run_dir: Path) -> tuple[str, str]:
    """A key shared by runs whose models differ only in their weights (shape, kinds, tokenizer), and the run's
    random-init scheme: runs with the same key share one random-init twin."""
    config = json.loads((run_dir / "final" / "config.json").read_text())
    for volatile in ("_name_or_path", "transformers_version", "dtype", "torch_dtype"):
        config.pop(volatile, None)
    init = saved_config(run_dir).init
    scheme = init.scheme if init.kind == "random" else "bert"
    text = json.dumps(config, sort_keys=True) + scheme
    return hashlib.sha256(text.encode()).hexdigest()[:12], scheme


def _twin_scores(recipe: Recipe, out: Path, run_dir: Path) -> tuple[str, dict]:
    """(architecture key, {task: scores}) of the run's random-init twin; ("", {}) without floors."""
    if not (recipe.floors and recipe.suite):
        return "", {}
    key, scheme = _architecture_key(run_dir)
    scores = _scores(recipe, str(run_dir / "final"), out / "twins" / key / "downstream.json",
                     f"the random-init twin {key} of {run_dir}", init_scheme=scheme)  # fmt: skip
    return key, scores


def _cheap_floors(recipe: Recipe, out: Path) -> dict:
    """{task: {"majority": score, "bag_of_words": score}} with the recipe's fine-tuning example limits."""
    if not (recipe.floors and recipe.suite):
        return {}
    config = make_config(recipe.finetune)
    path = out / "floors.json"
    cached = json.loads(path.read_text()) if path.exists() else {}
    limits = [config.max_train_examples, config.max_eval_examples]
    for task in recipe.suite:
        if cached.get(task, {}).get("limits") != limits:
            print(f"  floors on {task}: majority class and bag-of-words", flush=True)
            floors = cheap_floors(task, *limits)
            cached[task] = {"limits": limits, **{k: v["score"] for k, v in floors.items()}}
    write_atomic(path, json.dumps(cached, indent=2))
    return {task: cached[task] for task in recipe.suite}


def _inference(out: Path, recipe: Recipe, arms: dict[str, Arm]) -> dict[str, dict[str, float]]:
    """{arm or reference: {sequence length: sequences/s}} at batch 32, fp32, measured side by side in one process."""
    path = out / "inference.json"
    wanted = {str(x) for x in recipe.inference_lengths}
    if path.exists():
        cached = json.loads(path.read_text())
        if set(cached) == {*recipe.arms, *recipe.references} and all(
            isinstance(v, dict) and set(v) == wanted for v in cached.values()
        ):
            return cached
    names = {str(out / "arms" / arm.name / f"seed{arm.seeds[0]}" / "final"): arm.name for arm in arms.values()}
    names.update({resolve(folder): name for name, folder in recipe.references.items()})
    print(f"  inference speed of {', '.join(names.values())}", flush=True)
    rows = bench_inference(list(names), lengths=tuple(recipe.inference_lengths), batch=32, repeats=3,
                           precisions=("fp32",))  # fmt: skip
    speeds: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["kind"] == "throughput":
            speeds.setdefault(names[r["model"]], {})[str(r["seq"])] = round(r["sequences_per_s"], 1)
    write_atomic(path, json.dumps(speeds, indent=2))
    return speeds
