"""Recipes: one base config, named arms (overrides of it), one budget, seeds and a downstream suite; their schema,
loading and validation. Each arm is read once into an ``Arm`` (its settings, budget, seeds and pretraining config);
``runner.py`` runs a recipe, ``report.py`` writes its report and ``plots.py`` its plots.

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

import os
import re
from dataclasses import dataclass, field, fields

import yaml

from .. import settings
from ..budget import Budget
from ..config import ConfigError, PretrainConfig, load_config, parse_override, validate_config
from ..data.corpus import CorpusSettings
from ..data.tasks import get_task, load_task
from ..files import read_yaml
from ..finetune import make_config
from ..masking.teacher import TeacherError, teacher_config
from ..pretrained import REGISTRY
from ..settings import setting, text_fields


class RecipeError(ValueError):
    pass


@dataclass
class Recipe:
    """A recipe's settings, each with its kind, choices and range (``hbert.settings``), read by ``Recipe.load``."""

    name: str = setting("", text=True)
    base: str = setting("", text=True)
    budget: str = setting("", text=True)
    arms: dict[str, list[str]] = field(default_factory=dict)
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
    # held-out evaluations per run (for the accuracy-against-wall-clock plot); 0 = the base's
    eval_points: int = setting(6, low=0, high=10_000)
    # fine-tuning seeds per pretrained model; the random-init twin gets the same seeds
    finetune_seeds: int = setting(1, low=1, high=10_000)
    # The twin's fine-tuning seeds when they should differ (0: finetune_seeds). One twin serves every pretraining
    # seed of an arm, so a recipe with one fine-tuning per pretrained model gives the twin as many as the arm has
    # pretraining seeds: both sides of the gain then have a spread of the same size.
    twin_finetune_seeds: int = setting(0, low=0, high=10_000)
    floors: bool = True  # majority, bag-of-words and random-init twin beside every downstream score
    baseline: str = ""  # the arm the others are compared with (default: the first arm)
    out: str = ""

    @classmethod
    def load(cls, path: str, overrides: list[str] | None = None) -> Recipe:
        if not os.path.isfile(path):
            raise RecipeError(f"recipe {path} does not exist")
        data = read_yaml(path) or {}
        if not isinstance(data, dict):
            raise RecipeError(f"{path}: a recipe is a YAML mapping (name, base, budget, arms, ...)")
        for item in overrides or []:
            key, value = parse_override(item, text_keys=text_fields(cls), error=RecipeError)
            data[key] = value
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise RecipeError(
                f"{path}: unknown recipe key(s) {', '.join(unknown)}; accepted: {', '.join(sorted(known))}"
            )
        for key in ("name", "base", "budget", "arms"):
            if key not in data:
                raise RecipeError(f"{path}: missing {key!r}")
        plain = {k: v for k, v in data.items() if k not in ("arms", "seeds")}
        try:
            recipe = settings.load(cls, plain, RecipeError)
        except RecipeError as err:
            raise RecipeError(f"{path}: {err}") from None
        recipe.arms = _arms(path, data["arms"])
        recipe.seeds = _seeds(path, data.get("seeds", [0]))
        recipe.suite = _task_names(path, "suite", data.get("suite", []))
        if not os.path.isabs(recipe.base) and not os.path.exists(recipe.base):
            candidate = os.path.join(os.path.dirname(path), "..", recipe.base)
            recipe.base = candidate if os.path.exists(candidate) else recipe.base
        if recipe.baseline and recipe.baseline not in recipe.arms:
            raise RecipeError(f"{path}: baseline {recipe.baseline!r} is not an arm (arms: {', '.join(recipe.arms)})")
        if recipe.teacher:
            recipe.pretrained = {"teacher": recipe.teacher, **recipe.pretrained}
        if not all(isinstance(v, str) for v in recipe.references.values()):
            raise RecipeError(f"{path}: references must map names to checkpoint folders, e.g. {{minilm: runs/minilm}}")
        lengths = recipe.inference_lengths
        if not lengths or not all(isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 8192 for x in lengths):
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


def _task_names(path: str, key: str, value) -> list[str]:
    """A list of task names (one name alone is a list of one), each listed once."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise RecipeError(f"{path}: {key} must list task names, got {value!r}")
    repeated = sorted({x for x in items if items.count(x) > 1})
    if repeated:
        raise RecipeError(f"{path}: {key} lists {', '.join(repeated)} more than once; list each once")
    return list(items)


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


def finetune_seeds(recipe: Recipe, twin: bool = False) -> list[int]:
    """The fine-tuning seeds of each pretrained model, or with ``twin`` of each random-init twin and reference."""
    count = (recipe.twin_finetune_seeds or recipe.finetune_seeds) if twin else recipe.finetune_seeds
    return list(range(count))


# ------------------------------------------------------------------------------------------ arms


@dataclass
class Arm:
    """One arm of a recipe, read once: its own config settings, its budget and pretraining seeds, and the
    pretraining config they make of the recipe's base (the pretrained models an arm names by ``{name}`` stand
    there as their names; each run puts their checkpoints, its seed and the corpus in)."""

    name: str
    overrides: tuple[str, ...]  # the same overrides as written ({name} placeholders kept): what each run loads
    budget: str  # the recipe's budget unless the arm sets its own (budget=..., e.g. for a payoff curve)
    seeds: list[int]  # the recipe's seeds unless the arm names its own (seeds=[0])
    config: PretrainConfig


def resolve_items(recipe: Recipe, arm: str, items, sources: dict[str, str]) -> list[str]:
    """The arm's overrides with ``{name}`` replaced by the final checkpoint of pretrained model ``name`` (by the
    name itself when ``sources`` lacks it) and ``{reference}`` by the recipe's reference."""
    out = []
    for item in items:
        for name in recipe.pretrained:
            item = item.replace("{" + name + "}", sources.get(name, name))
        if recipe.reference:
            item = item.replace("{reference}", recipe.reference)
        if "{" in item and "}" in item and "layer_map" not in item:
            raise RecipeError(f"arm {arm!r}: {item!r} names a model the recipe does not pretrain "
                              f"(pretrained: {', '.join(recipe.pretrained) or 'none'})")  # fmt: skip
        out.append(item)
    return out


def _key(item: str) -> str:
    return item.partition("=")[0].strip()


def load_arm(recipe: Recipe, name: str) -> Arm:
    """The arm ``name`` of the recipe, its config loaded from the base; an invalid override names the arm."""
    items = recipe.arms[name]
    own_seeds = [item.partition("=")[2] for item in items if _key(item) == "seeds"]
    seeds = recipe.seeds
    if own_seeds:
        try:
            value = yaml.safe_load(own_seeds[-1])
        except yaml.YAMLError:
            value = None
        try:
            seeds = _seeds(f"arm {name!r}", value)
        except RecipeError as err:
            raise RecipeError(f"recipe {recipe.name}: {err}") from err
    overrides = tuple(item for item in items if _key(item) != "seeds")
    resolved = resolve_items(recipe, name, overrides, {})
    try:
        budget = str(dict(parse_override(item, text_keys=None) for item in resolved).get("budget", recipe.budget))
        Budget.parse(budget)  # a bad budget stops the recipe before its first arm trains
        config = load_config(recipe.base, [f"budget={budget}", *resolved], context=f" in arm {name!r}")
        validate_config(config)  # every setting's kind, choices and range, before the first arm trains
    except ConfigError as err:
        raise RecipeError(f"recipe {recipe.name}, arm {name!r}: {err}") from err
    return Arm(name, overrides, budget, seeds, config)


def load_arms(recipe: Recipe) -> dict[str, Arm]:
    """Every arm of the recipe, in its order."""
    if not recipe.arms:
        raise RecipeError(f"recipe {recipe.name} has no arms")
    return {name: load_arm(recipe, name) for name in recipe.arms}


# ------------------------------------------------------------------------------------------ validation


def validate(recipe: Recipe) -> dict[str, Arm]:
    """Every arm's overrides must be valid before anything trains: an unknown key names the arm and the key.
    Returns the arms, each read once."""
    arms = load_arms(recipe)
    for name, source in recipe.pretrained.items():
        try:
            load_config(source.get("config", recipe.base), list(source.get("overrides", [])),
                        context=f" in pretrained model {name!r}")  # fmt: skip
        except ConfigError as err:
            raise RecipeError(f"recipe {recipe.name}, pretrained model {name!r}: {err}") from err
    for task in recipe.suite:
        spec = get_task(task)
        if spec.loader == "local":  # its files are read now: a bad label stops the recipe before it trains
            load_task(spec)
    for name, folder in recipe.references.items():
        if folder.startswith("registry:"):
            if folder.split(":", 1)[1] not in REGISTRY:
                raise RecipeError(f"recipe {recipe.name}, reference {name!r}: unknown registry encoder {folder!r}; "
                                  f"accepted: {', '.join('registry:' + n for n in REGISTRY)}")  # fmt: skip
        elif not os.path.isfile(os.path.join(folder, "config.json")):
            raise RecipeError(f"recipe {recipe.name}, reference {name!r}: {folder} is not a checkpoint folder "
                              "(no config.json)")  # fmt: skip
    make_config(recipe.finetune)
    corpus_settings(recipe).validate()
    check_teachers(recipe, arms)
    return arms


def check_teachers(recipe: Recipe, arms: dict[str, Arm] | None = None) -> None:
    """Every teacher an arm names (masking or distillation) must be loadable before the first arm trains, not
    after hours of the arms before it: a local folder with a config, or a hub name the hub (or its cache) can
    serve. Teachers the recipe pretrains itself ({name}) are made on the way."""
    checked = set()
    for arm in (arms if arms is not None else load_arms(recipe)).values():
        config = arm.config
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
                    raise RecipeError(f"recipe {recipe.name}, arm {arm.name!r}: {err}") from None


def corpus_settings(recipe: Recipe) -> CorpusSettings:
    """The recipe's ``corpus:`` as CorpusSettings; an unknown key is refused naming the accepted ones."""
    known = [f.name for f in fields(CorpusSettings)]
    unknown = sorted(set(recipe.corpus) - set(known))
    if unknown:
        raise RecipeError(f"recipe {recipe.name}: unknown corpus key(s) {', '.join(map(str, unknown))}; accepted: "
                          f"{', '.join(known)}")  # fmt: skip
    try:
        return CorpusSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in recipe.corpus.items()})
    except TypeError as err:
        raise RecipeError(f"recipe {recipe.name}: corpus: {err}") from None
