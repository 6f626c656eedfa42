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
      config: configs/pretrain/teacher-minilm.yaml   # optional: its own base config (default: the recipe's base)
    reference: bert-base-uncased                 # optional: {reference} in arm overrides, e.g. the teacher of
                                                 # entropy / KD arms; one place to point at a local folder
    arms:
      bert: [model=bert]
      hbert-v1: [model=hbert-v1]
    suite: [rt-polarity]                         # downstream tasks (empty: none)
    finetune: {protocol: small, max_train_examples: 4000}
    finetune_seeds: 3                            # fine-tuning seeds per pretrained model (and for its twin)
    twin_finetune_seeds: 3                       # optional: the twin's own count (default: finetune_seeds)
    baseline: bert                               # the arm every other arm is compared with (default: the first)
    references: {minilm: runs/minilm}            # optional: checkpoints fine-tuned as they are (e.g. the ceiling)
    inference_lengths: [128, 512]                # sequence lengths of the inference benchmark (default [128])

Every downstream score stands beside its floors: the majority class, a bag-of-words model and the random-init twin
(same shape and tokenizer, random weights, the same fine-tuning and seeds); the report says, for each comparison,
whether the difference exceeds the seed spread or is within noise, and flags runs that got notably less of the
machine than the others (a wall-clock budget then bought them less work).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .._optional import MissingDependency, require
from ..config import ConfigError, load_config, parse_override, text_fields
from ..files import write_atomic


class RecipeError(ValueError):
    pass


class RecipeInterrupted(Exception):
    """A signal stopped one of the recipe's pretraining runs after it saved a checkpoint: running the same recipe
    again skips the finished runs and resumes this one."""

    def __init__(self, run_dir: Path):
        super().__init__(f"the recipe stopped: a signal interrupted {run_dir} (checkpoint saved)")
        self.run_dir = run_dir


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
    reference: str = ""  # {reference} in overrides: an existing model (hub name or folder), e.g. the teacher
    suite: list[str] = field(default_factory=list)
    finetune: dict = field(default_factory=dict)
    inference: bool = True
    inference_lengths: list[int] = field(default_factory=lambda: [128])
    # name -> checkpoint folder: models fine-tuned on the suite as they are, beside the arms (a pretrained encoder
    # the arms started from is their ceiling); seeds as the random-init twin's
    references: dict[str, str] = field(default_factory=dict)
    eval_points: int = 6  # held-out evaluations per run (for the accuracy-against-wall-clock plot); 0 = the base's
    finetune_seeds: int = 1  # fine-tuning seeds per pretrained model; the random-init twin gets the same seeds
    # The twin's fine-tuning seeds when they should differ (0: finetune_seeds). One twin serves every pretraining
    # seed of an arm, so a recipe with one fine-tuning per pretrained model gives the twin as many as the arm has
    # pretraining seeds: both sides of the gain then have a spread of the same size.
    twin_finetune_seeds: int = 0
    floors: bool = True  # majority, bag-of-words and random-init twin beside every downstream score
    baseline: str = ""  # the arm the others are compared with (default: the first arm)
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
            key, value = parse_override(item, text_keys=text_fields(cls), error=RecipeError)
            data[key] = value
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise RecipeError(
                f"{path}: unknown recipe key(s) {', '.join(unknown)}; accepted: {', '.join(sorted(known))}"
            )
        for key in ("name", "base", "budget", "arms"):
            if key not in data:
                raise RecipeError(f"{path}: missing {key!r}")
        data = _typed(cls, path, data)
        base = data["base"]
        if not os.path.isabs(base) and not os.path.exists(base):
            candidate = os.path.join(os.path.dirname(path), "..", base)
            base = candidate if os.path.exists(candidate) else base
        data["base"] = base
        data["arms"] = _arms(path, data["arms"])
        data["seeds"] = _seeds(path, data.get("seeds", [0]))
        data["budget"] = str(data["budget"])
        recipe = cls(**data)
        if recipe.finetune_seeds < 1:
            raise RecipeError(f"{path}: finetune_seeds={recipe.finetune_seeds}; accepted: 1 or more")
        if recipe.twin_finetune_seeds < 0:
            raise RecipeError(f"{path}: twin_finetune_seeds={recipe.twin_finetune_seeds}; accepted: 0 (the same as "
                              "finetune_seeds) or more")  # fmt: skip
        if recipe.baseline and recipe.baseline not in recipe.arms:
            raise RecipeError(f"{path}: baseline {recipe.baseline!r} is not an arm (arms: {', '.join(recipe.arms)})")
        if recipe.teacher:
            recipe.pretrained = {"teacher": recipe.teacher, **recipe.pretrained}
        if not isinstance(recipe.references, dict) or not all(isinstance(v, str) for v in recipe.references.values()):
            raise RecipeError(f"{path}: references must map names to checkpoint folders, e.g. {{minilm: runs/minilm}}")
        lengths = recipe.inference_lengths
        if (
            not isinstance(lengths, list)
            or not lengths
            or not all(isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 8192 for x in lengths)
        ):
            raise RecipeError(f"{path}: inference_lengths={lengths!r}; accepted: a list of sequence lengths from 1 to "
                              "8192, e.g. [128, 512]")  # fmt: skip
        named = [("name", recipe.name), *(("pretrained model", n) for n in recipe.pretrained),
                 *(("reference", n) for n in recipe.references)]  # fmt: skip
        for label, name in named:
            if not _SAFE_NAME.fullmatch(str(name)) or ".." in str(name):
                raise RecipeError(f"{path}: {label} {str(name)!r} is not a safe folder name; accepted: letters, "
                                  f"digits, '.', '_' and '-' (no '/', no '..')")  # fmt: skip
        if not recipe.out:
            recipe.out = os.path.join("runs", recipe.name)
        return recipe


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _typed(cls, path: str, data: dict) -> dict:
    """Every recipe value of the kind its key takes, checked before anything runs: a whole number where one is
    counted (``finetune_seeds: 2.5`` is refused, not rounded), a mapping, a list of task names without repeats."""
    out = dict(data)
    for f in cls.__dataclass_fields__.values():
        if f.name not in data or f.name in ("arms", "seeds"):
            continue
        value, kind = data[f.name], str(f.type)
        if kind == "str":
            if isinstance(value, (dict, list, bool)):
                raise RecipeError(f"{path}: {f.name}={value!r}; accepted: a text")
            out[f.name] = "" if value is None else str(value)
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise RecipeError(f"{path}: {f.name}={value!r}; accepted: a whole number")
        elif kind == "bool":
            if not isinstance(value, bool):
                raise RecipeError(f"{path}: {f.name}={value!r}; accepted: true or false")
        elif kind == "dict":
            if value is None:
                out[f.name] = {}
            elif not isinstance(value, dict):
                raise RecipeError(f"{path}: {f.name} must be a mapping, got {value!r}")
        elif kind == "list[str]":
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
                raise RecipeError(f"{path}: {f.name} must list task names, got {value!r}")
            repeated = sorted({x for x in items if items.count(x) > 1})
            if repeated:
                raise RecipeError(f"{path}: {f.name} lists {', '.join(repeated)} more than once; list each once")
            out[f.name] = list(items)
    return out


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
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise RecipeError(f"{path}: seeds={seeds!r} repeats {', '.join(map(str, repeated))}: a seed counted twice "
                          f"would fake a spread; accepted: distinct seeds, e.g. [0, 1]")  # fmt: skip
    return seeds


def arm_overrides(recipe: Recipe, arm: str, seed: int, corpus: str, sources: dict[str, str]) -> list[str]:
    """The arm's overrides with ``{name}`` replaced by the final checkpoint of pretrained model ``name``."""
    items = []
    for item in recipe.arms[arm]:
        if item.startswith("seeds="):
            continue
        for name in recipe.pretrained:
            item = item.replace("{" + name + "}", sources.get(name, name))
        if recipe.reference:
            item = item.replace("{reference}", recipe.reference)
        if "{" in item and "}" in item and "layer_map" not in item:
            raise RecipeError(f"arm {arm!r}: {item!r} names a model the recipe does not pretrain "
                              f"(pretrained: {', '.join(recipe.pretrained) or 'none'})")  # fmt: skip
        items.append(item)
    budget = arm_budget(recipe, arm)
    tokens_per_step = 0
    if budget.endswith("tokens"):
        try:
            batch = load_config(recipe.base, [x for x in items if not x.startswith("budget=")]).train.batch_size
        except ConfigError:
            batch = 0  # validate() reports the arm's error
        tokens_per_step = batch * int(recipe.corpus.get("seq_len", 128))
    return [f"budget={budget}", *items, f"corpus={corpus}", f"train.seed={seed}", "impl.progress=false",
            *eval_interval(budget, recipe.eval_points, tokens_per_step)]  # fmt: skip


def arm_seeds(recipe: Recipe, arm: str) -> list[int]:
    """The recipe's pretraining seeds, unless the arm names its own (``seeds=[0]``: e.g. one seed for the arms
    around a core comparison that gets three)."""
    own = [item.partition("=")[2] for item in recipe.arms[arm] if item.startswith("seeds=")]
    if not own:
        return recipe.seeds
    try:
        value = yaml.safe_load(own[-1])
    except yaml.YAMLError:
        value = None
    return _seeds(f"arm {arm!r}", value)


def arm_budget(recipe: Recipe, arm: str) -> str:
    """The recipe's budget, unless the arm sets its own (``budget=...``, e.g. for a payoff-against-budget curve)."""
    own = [item.partition("=")[2] for item in recipe.arms[arm] if item.startswith("budget=")]
    return own[-1] if own else recipe.budget


def eval_interval(budget: str, points: int, tokens_per_step: int = 0) -> list[str]:
    """``train.eval_every`` giving about ``points`` held-out evaluations over the budget (time or step budgets, and
    token budgets when the tokens per step are known)."""
    from ..training.budget import Budget

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


def validate(recipe: Recipe) -> None:
    """Every arm's overrides must be valid before anything trains: an unknown key names the arm and the key."""
    if not recipe.arms:
        raise RecipeError(f"recipe {recipe.name} has no arms")
    for arm in recipe.arms:
        try:
            arm_seeds(recipe, arm)
        except RecipeError as err:
            raise RecipeError(f"recipe {recipe.name}: {err}") from err
        try:
            load_config(recipe.base, arm_overrides(recipe, arm, 0, "CORPUS", {}), context=f" in arm {arm!r}")
        except ConfigError as err:
            raise RecipeError(f"recipe {recipe.name}, arm {arm!r}: {err}") from err
    for name, source in recipe.pretrained.items():
        try:
            load_config(source.get("config", recipe.base), list(source.get("overrides", [])),
                        context=f" in pretrained model {name!r}")  # fmt: skip
        except ConfigError as err:
            raise RecipeError(f"recipe {recipe.name}, pretrained model {name!r}: {err}") from err
    from ..data.tasks import get_task, load_task

    for task in recipe.suite:
        spec = get_task(task)
        if spec.loader == "local":  # its files are read now: a bad label stops the recipe before it trains
            load_task(spec)
    for name, folder in recipe.references.items():
        if folder.startswith("registry:"):
            from ..pretrained import REGISTRY

            if folder.split(":", 1)[1] not in REGISTRY:
                raise RecipeError(f"recipe {recipe.name}, reference {name!r}: unknown registry encoder {folder!r}; "
                                  f"accepted: {', '.join('registry:' + n for n in REGISTRY)}")  # fmt: skip
        elif not os.path.isfile(os.path.join(folder, "config.json")):
            raise RecipeError(f"recipe {recipe.name}, reference {name!r}: {folder} is not a checkpoint folder "
                              "(no config.json)")  # fmt: skip
    from ..finetune import make_config

    make_config(recipe.finetune)
    corpus_settings(recipe).validate()
    check_teachers(recipe)


def check_teachers(recipe: Recipe) -> None:
    """Every teacher an arm names (masking or distillation) must be loadable before the first arm trains, not
    after hours of the arms before it: a local folder with a config, or a hub name the hub (or its cache) can
    serve. Teachers the recipe pretrains itself ({name}) are made on the way."""
    from ..masking.teacher import TeacherError, teacher_config

    checked = set()
    for arm in recipe.arms:
        config = load_config(recipe.base, arm_overrides(recipe, arm, 0, "CORPUS", {}))
        names = []
        if config.masking.kind == "entropy" and config.masking.source == "teacher":
            names.append(config.masking.teacher)
        if config.objective.kd.alpha < 1.0:
            names.append(config.objective.kd.teacher or config.masking.teacher)
        for name in names:
            if name and name not in recipe.pretrained and name not in checked:
                checked.add(name)
                try:
                    teacher_config(name, config.masking.trust_remote_code)
                except TeacherError as err:
                    raise RecipeError(f"recipe {recipe.name}, arm {arm!r}: {err}") from None


def corpus_settings(recipe: Recipe):
    """The recipe's ``corpus:`` as CorpusSettings; an unknown key is refused naming the accepted ones."""
    from dataclasses import fields

    from ..data.corpus import CorpusSettings

    known = [f.name for f in fields(CorpusSettings)]
    unknown = sorted(set(recipe.corpus) - set(known))
    if unknown:
        raise RecipeError(f"recipe {recipe.name}: unknown corpus key(s) {', '.join(map(str, unknown))}; accepted: "
                          f"{', '.join(known)}")  # fmt: skip
    try:
        return CorpusSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in recipe.corpus.items()})
    except TypeError as err:
        raise RecipeError(f"recipe {recipe.name}: corpus: {err}") from None


@dataclass
class PlannedRun:
    """One pretraining run of a recipe: a pretrained model (``arm`` empty) or an arm x seed."""

    label: str
    run_dir: Path
    overrides: list[str]
    arm: str = ""
    seed: int = 0
    base: str = ""  # the run's base config (a pretrained model may name its own)


def _planned_runs(recipe: Recipe, out: Path, corpus: str) -> list[PlannedRun]:
    """Every pretraining run of the recipe, pretrained models first, then arms x seeds."""
    runs, sources = [], {}
    for name, source in recipe.pretrained.items():
        if not isinstance(source, dict) or not isinstance(source.get("overrides", []), list):
            raise RecipeError(f"recipe {recipe.name}: pretrained model {name!r} must be a mapping with a list of "
                              f"overrides and a budget, got {source!r}")  # fmt: skip
        run_dir = out / "pretrained" / name
        budget = str(source.get("budget", recipe.budget))
        overrides = [*map(str, source.get("overrides", [])), f"budget={budget}", f"corpus={corpus}",
                     "impl.progress=false"]  # fmt: skip
        runs.append(PlannedRun(f"pretrained model {name!r}", run_dir, overrides,
                               base=str(source.get("config", recipe.base))))  # fmt: skip
        sources[name] = str(run_dir / "final")
    for arm in recipe.arms:
        for seed in arm_seeds(recipe, arm):
            run_dir = out / "arms" / arm / f"seed{seed}"
            overrides = arm_overrides(recipe, arm, seed, corpus, sources)
            runs.append(PlannedRun(f"arm {arm!r} seed {seed}", run_dir, overrides, arm, seed, recipe.base))
    return runs


def check_runs_match(recipe: Recipe, runs: list[PlannedRun]) -> None:
    """Each run folder already there must hold the run the recipe now asks for: the same results settings (model,
    corpus, budget, masking, training, init; speed settings may differ). Otherwise its results would be reported
    under settings it was not trained with: refused, naming the run and what differs."""
    from ..config import to_dict
    from ..files import folder_entries
    from ..training.checkpoint import changed_result_settings
    from ..training.loop import saved_config

    for run in runs:
        label, run_dir, overrides = run.label, run.run_dir, run.overrides
        if not folder_entries(run_dir):
            continue
        if not (run_dir / "config.yaml").is_file():
            raise RecipeError(f"recipe {recipe.name}: {run_dir} (the folder of {label}) holds files that are not a "
                              f"run of hbert; choose another out= or move them away")  # fmt: skip
        wanted = to_dict(load_config(run.base or recipe.base, [*overrides, f"out={run_dir}"]))
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
    from ..files import folder_entries

    if out.exists() and not out.is_dir():
        raise RecipeError(f"out={out} is a file; accepted: a new or empty folder, or the folder of an earlier run")
    entries = folder_entries(out)
    if entries and "recipe.yaml" not in entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise RecipeError(f"out={out} holds other files ({shown}) and no recipe.yaml; accepted: a new or empty "
                          f"folder, or the folder of an earlier run of this recipe")  # fmt: skip


def _run_pretraining(run_dir: Path, base: str, overrides: list[str]) -> dict:
    """A run of the recipe: its summary when finished, else resumed from a checkpoint, else started (a start that
    died before its first checkpoint, whose settings ``check_runs_match`` found the same, is started again).
    Raises ``RecipeInterrupted`` when a signal stops the run (it has saved its checkpoint)."""
    import shutil

    from ..training import pretrain

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
        summary = pretrain(load_config(base, [*overrides, f"out={run_dir}"]))
    if summary["status"] == "interrupted":
        raise RecipeInterrupted(run_dir)
    return summary


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


def run_recipe(recipe: Recipe) -> Path:
    """Run the recipe in its ``out`` folder, locked against other hbert processes; every setting and every run
    folder already there is checked before the first step."""
    from ..files import folder_lock

    validate(recipe)  # checks the teachers too
    out = Path(recipe.out)
    with folder_lock(out, "out"):
        check_out_folder(recipe, out)
        return _run_locked(recipe, out)


def _run_locked(recipe: Recipe, out: Path) -> Path:
    from ..data.corpus import default_dir, prepare_corpus
    from ..data.tasks import evaluation_hashes

    settings = corpus_settings(recipe)
    corpus = recipe.corpus_path or str(default_dir(settings))
    runs = _planned_runs(recipe, out, corpus)
    check_runs_match(recipe, runs)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "recipe.yaml", yaml.safe_dump({k: v for k, v in recipe.__dict__.items()}, sort_keys=False))
    if not recipe.corpus_path:
        prepare_corpus(settings, decontamination=lambda: evaluation_hashes(settings.decontaminate))
    rows = []
    pretrained = {}
    for run in runs:
        summary = _run_pretraining(run.run_dir, run.base or recipe.base, run.overrides)
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
        speeds = _inference(out, recipe)
        for row in [*rows, *references]:
            for length, speed in speeds.get(row["arm"], {}).items():
                row[_speed_column(recipe, int(length))] = speed
    floors = _cheap_floors(recipe, out)
    write_results(out, recipe, rows, floors, references, pretrained)
    return out


def _references(recipe: Recipe, out: Path) -> list[dict]:
    """One row per reference checkpoint: its downstream scores (the random-init twin's fine-tuning seeds)."""
    from ..pretrained import resolve

    rows = []
    for name, folder in recipe.references.items():
        scores = _scores(recipe, resolve(folder), out / "references" / name / "downstream.json", f"reference {name}",
                         seeds=_finetune_seeds(recipe, twin=True))  # fmt: skip
        row = {"arm": name, "reference": folder, **downstream_columns(recipe, scores, {})}
        rows.append(row)
    return rows


def _speed_column(recipe: Recipe, length: int) -> str:
    """The results.csv column of the inference speed at ``length`` (the first length keeps its historical name)."""
    return "inference_seq_per_s" if length == recipe.inference_lengths[0] else f"inference_seq_per_s_{length}"


def _finetune_seeds(recipe: Recipe, twin: bool = False) -> list[int]:
    count = (recipe.twin_finetune_seeds or recipe.finetune_seeds) if twin else recipe.finetune_seeds
    return list(range(count))


def _scores(recipe: Recipe, checkpoint: str, path: Path, label: str, init_scheme: str | None = None,
            seeds: list[int] | None = None) -> dict:  # fmt: skip
    """{task: [validation score per fine-tuning seed]} of ``checkpoint`` (of its random-init twin when
    ``init_scheme`` is given), cached in ``path`` task by task so an interrupted recipe resumes."""
    from ..finetune import finetune, make_config
    from ..finetune.trainer import random_init_score

    done = json.loads(path.read_text()) if path.exists() else {}
    seeds = seeds if seeds is not None else _finetune_seeds(recipe, twin=init_scheme is not None)
    settings = finetune_settings(recipe)
    for task in recipe.suite:
        entry = done.get(task)
        if isinstance(entry, dict) and entry.get("seeds") == seeds and entry.get("settings") == settings:
            continue  # scores of exactly these fine-tuning settings: kept; other settings are fine-tuned again
        scores, losses = [], []
        for s in seeds:
            print(f"  fine-tuning {label} on {task}, seed {s}", flush=True)
            config = make_config({**recipe.finetune, "seed": s, "progress": True, "floors": "none"})
            if init_scheme is None:
                metrics = finetune(checkpoint, task, config)["validation"]
            else:
                metrics = random_init_score(checkpoint, task, config, init_scheme=init_scheme)
            print(
                f"    {task} seed {s}: validation score {metrics['score']:.1f}, loss {metrics['loss']:.4f}", flush=True
            )
            scores.append(metrics["score"])
            losses.append(metrics["loss"])
        done[task] = {"seeds": seeds, "settings": settings, "scores": scores, "losses": losses}
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(done, indent=2))
    return {task: {"scores": done[task]["scores"], "losses": done[task].get("losses", [])} for task in recipe.suite}


def finetune_settings(recipe: Recipe) -> dict:
    """The fine-tuning settings that change scores (not the seed, progress bars, floors or device), which identify
    cached downstream scores."""
    from dataclasses import asdict

    from ..finetune import make_config

    config = asdict(make_config(recipe.finetune))
    for speed_only in ("seed", "progress", "floors", "device", "dynamic_padding"):
        config.pop(speed_only, None)
    return config


def _downstream(recipe: Recipe, run_dir: Path) -> dict:
    return _scores(recipe, str(run_dir / "final"), run_dir / "downstream.json", str(run_dir))


def _architecture_key(run_dir: Path) -> tuple[str, str]:
    """A key shared by runs whose models differ only in their weights (shape, kinds, tokenizer), and the run's
    random-init scheme: runs with the same key share one random-init twin."""
    import hashlib

    from ..training.loop import saved_config

    config = json.loads((run_dir / "final" / "config.json").read_text())
    for volatile in ("_name_or_path", "transformers_version", "dtype", "torch_dtype"):
        config.pop(volatile, None)
    scheme = saved_config(run_dir).init.scheme if saved_config(run_dir).init.kind == "random" else "bert"
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
    from ..finetune import make_config
    from ..finetune.trainer import cheap_floors

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


def _inference(out: Path, recipe: Recipe) -> dict[str, dict[str, float]]:
    """{arm or reference: {sequence length: sequences/s}} at batch 32, fp32, measured side by side in one process."""
    from ..bench.inference import bench_inference

    path = out / "inference.json"
    wanted = {str(x) for x in recipe.inference_lengths}
    if path.exists():
        cached = json.loads(path.read_text())
        if set(cached) == {*recipe.arms, *recipe.references} and all(
            isinstance(v, dict) and set(v) == wanted for v in cached.values()
        ):
            return cached
    names = {str(out / "arms" / arm / f"seed{arm_seeds(recipe, arm)[0]}" / "final"): arm for arm in recipe.arms}
    from ..pretrained import resolve

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


def _spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def _floats(cell) -> list[float]:
    return [float(x) for x in str(cell).split(";") if x != ""]


def _pooled(rows: list[dict], column: str) -> list[float]:
    """Every pretraining seed's every fine-tuning seed's value of a ``*_scores`` column."""
    return [x for r in rows for x in _floats(r.get(column, ""))]


def write_results(out: Path, recipe: Recipe, rows: list[dict], floors: dict | None = None,
                  references: list[dict] | None = None, pretrained: dict | None = None) -> None:  # fmt: skip
    floors, references = floors or {}, references or []
    columns = list(dict.fromkeys(k for row in [*rows, *references] for k in row))
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    writer.writerows(references)
    write_atomic(out / "results.csv", table.getvalue())
    lines = [f"# {recipe.name}", "", *_intro(recipe), ""]
    lines += _main_table(recipe, rows, floors)
    lines += _reference_table(recipe, rows, references)
    lines += _pretrained_table(pretrained or {})
    if recipe.suite and (floors or any(f"{recipe.suite[0]}_twin" in r for r in rows)):
        lines += ["", "## Floors", "", *_floor_table(recipe, rows, floors)]
    lines += _loss_table(recipe, rows)
    lines += ["", "## What the data says", "", *verdict_lines(recipe, rows), *_share_lines(recipe, rows)]
    lines += ["", "![held-out MLM accuracy against wall-clock](heldout_accuracy.png)"]
    if recipe.suite:
        lines.append("![downstream scores](downstream.png)")
    if len({r["tokens"] for r in rows}) > 1 and any("suite_avg_twin_scores" in r for r in rows):
        lines.append("![downstream gain over the random-init twin against tokens seen](payoff.png)")
    write_atomic(out / "REPORT.md", "\n".join(lines) + "\n")
    try:
        plot(out, recipe, rows, floors)
    except MissingDependency as err:  # the report and results.csv are complete without the plots
        print(f"  no plots: {err}", flush=True)


def _intro(recipe: Recipe) -> list[str]:
    budgets = sorted({arm_budget(recipe, arm) for arm in recipe.arms})
    twin = len(_finetune_seeds(recipe, twin=True))
    tuning = (
        f"{recipe.finetune_seeds} fine-tuning seed(s) per pretrained model"
        + (f" and {twin} per random-init twin" if twin != recipe.finetune_seeds else "")
        + f", fine-tuning {recipe.finetune or 'defaults'}"
        if recipe.suite
        else "no fine-tuning"
    )
    own = {arm: arm_seeds(recipe, arm) for arm in recipe.arms if arm_seeds(recipe, arm) != recipe.seeds}
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
            values = _pooled(arm_rows, f"{task}_scores")
            flag = " ⚠" if task in floors and statistics.median(values) <= floors[task]["majority"] else ""
            cells.append(_fmt(_spread(values), 1) + flag)
        if tasks:
            cells.append(_fmt(_spread(_pooled(arm_rows, "suite_avg_scores")), 1))
            twin = _floats(arm_rows[0].get("suite_avg_twin_scores", ""))
            gain = statistics.median(_pooled(arm_rows, "suite_avg_scores")) - statistics.median(twin) if twin else None
            cells.append(f"{gain:+.1f}" if gain is not None else "-")
        if recipe.inference:
            cells += [
                f"{arm_rows[0].get(_speed_column(recipe, n)) or float('nan'):.1f}" for n in recipe.inference_lengths
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
    from ..finetune.metrics import spread_verdict

    if not (references and recipe.suite):
        return []
    tasks = list(recipe.suite)
    header = ["reference", "checkpoint", *tasks, "suite average"]
    if recipe.inference:
        header += [f"inference seq/s (b32, s{n}, fp32)" for n in recipe.inference_lengths]
    lines = ["", "## References (fine-tuned as they are)", "", "| " + " | ".join(header) + " |",
             "|---|---|" + "---:|" * (len(header) - 2)]  # fmt: skip
    for ref in references:
        cells = [ref["arm"], f"`{ref['reference']}`", *(_fmt(_spread(_floats(ref[f"{t}_scores"])), 1) for t in tasks),
                 _fmt(_spread(_floats(ref["suite_avg_scores"])), 1)]  # fmt: skip
        if recipe.inference:
            cells += [f"{ref.get(_speed_column(recipe, n)) or float('nan'):.1f}" for n in recipe.inference_lengths]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Share of each reference's suite average that each arm keeps (median over seeds):", ""]
    for ref in references:
        ceiling = statistics.median(_floats(ref["suite_avg_scores"]))
        for arm in recipe.arms:
            arm_rows = [r for r in rows if r["arm"] == arm]
            if arm_rows and ceiling:
                mine = _pooled(arm_rows, "suite_avg_scores")
                verdict = spread_verdict(mine, _floats(ref["suite_avg_scores"]))
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
        cells = [_fmt(_spread(_floats(group[0][f"{task}_twin_scores"])), 1) for task in tasks]
        cells.append(_fmt(_spread(_floats(group[0]["suite_avg_twin_scores"])), 1))
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
            cells = [_pooled(arm_rows, f"{t}_losses") for t in tasks]
            lines.append(f"| {arm} | " + " | ".join(_fmt(_spread(c), 4) if c else "-" for c in cells) + " |")
            if arm_rows[0].get("twin") and f"{tasks[0]}_twin_losses" in arm_rows[0]:
                twins.setdefault(arm_rows[0]["twin"], (arm, arm_rows[0]))
    for arm, row in twins.values():
        cells = [_fmt(_spread(_floats(row.get(f"{t}_twin_losses", ""))), 4) if row.get(f"{t}_twin_losses") else "-"
                 for t in tasks]  # fmt: skip
        lines.append(f"| random-init twin of {arm} | " + " | ".join(cells) + " |")
    return lines


def verdict_lines(recipe: Recipe, rows: list[dict]) -> list[str]:
    """One generated statement per comparison: each arm against its random-init twin (suite average) and against
    the baseline arm (held-out MLM accuracy, suite average), each with its verdict from the seed spread."""
    from ..finetune.metrics import spread_verdict

    lines = []
    by_arm = {arm: [r for r in rows if r["arm"] == arm] for arm in recipe.arms}
    for arm, arm_rows in by_arm.items():
        mine, twin = _pooled(arm_rows, "suite_avg_scores"), _floats(arm_rows[0].get("suite_avg_twin_scores", ""))
        if mine and twin:
            gain = statistics.median(mine) - statistics.median(twin)
            per_task = []
            for task in recipe.suite:
                a, b = _pooled(arm_rows, f"{task}_scores"), _floats(arm_rows[0].get(f"{task}_twin_scores", ""))
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
        a, b = _pooled(arm_rows, "suite_avg_scores"), _pooled(base_rows, "suite_avg_scores")
        if a and b:
            lines.append(f"- `{arm}` against `{baseline}`, suite average: {statistics.median(a) - statistics.median(b):+.1f} "
                         f"points ({_range(a)} vs {_range(b)}): {spread_verdict(a, b)}.")  # fmt: skip
    return lines


def _range(values: list[float], digits: int = 1) -> str:
    return f"[{min(values):.{digits}f}, {max(values):.{digits}f}]"


def _share_lines(recipe: Recipe, rows: list[dict]) -> list[str]:
    from ..training.share import LOW_SHARE, flag_low_share

    shares = {f"{r['arm']} seed {r['seed']}": r.get("cpu_share") for r in rows}
    flagged = [name for name, low in flag_low_share(shares).items() if low]
    if not flagged:
        return []
    budgets = {arm_budget(recipe, arm) for arm in recipe.arms}
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


def plot(out: Path, recipe: Recipe, rows: list[dict], floors: dict | None = None) -> None:
    matplotlib = require("matplotlib", "the recipe report's plots")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    # token and step budgets: against tokens seen (immune to the machine's load); time budgets: against wall-clock
    by_tokens = all(arm_budget(recipe, arm).endswith(("tokens", "steps")) for arm in recipe.arms)
    for i, arm in enumerate(recipe.arms):
        seeds = arm_seeds(recipe, arm)
        for seed in seeds:  # one colour per arm; the first seed solid, the others dashed
            points = heldout_curve(out / "arms" / arm / f"seed{seed}", "tokens" if by_tokens else "elapsed")
            if points:
                xs, ys = zip(*points)
                scale = 1e6 if by_tokens else 60
                first = seed == seeds[0]
                ax.plot([x / scale for x in xs], ys, marker="o", color=f"C{i % 10}", linestyle="-" if first else "--",
                        label=arm if first else None)  # fmt: skip
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
    groups = {arm: {t: _pooled([r for r in rows if r["arm"] == arm], f"{t}_scores") for t in tasks}
              for arm in recipe.arms}  # fmt: skip
    twins: dict[str, dict] = {}
    for row in rows:  # one bar per random-init twin (per architecture), named after the first arm it serves
        if row.get("twin") and f"{tasks[0]}_twin_scores" in row and row["twin"] not in twins:
            twins[row["twin"]] = row
    for row in twins.values():
        name = "random-init twin" + (f" ({row['arm']})" if len(twins) > 1 else "")
        groups[name] = {t: _floats(row[f"{t}_twin_scores"]) for t in tasks}
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
        mine, twin = _floats(row.get("suite_avg_scores", "")), _floats(row.get("suite_avg_twin_scores", ""))
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
