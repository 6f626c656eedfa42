"""The typed configuration of a pretraining run: dataclasses loaded from YAML and overridden from the command line
as ``a.b=value``. An unknown key is an error that names it and the closest valid one.

Settings that change *results* (model, corpus, budget, masking, training, init) are kept apart from settings that
change only *speed* (``impl``): a run records both, and a comparison varies only the first kind.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from typing import Any

import yaml


class ConfigError(ValueError):
    pass


@dataclass
class ModelConfig:
    """``preset`` (bert, additive, hbert-v1, hbert-v2, hbert-mix) plus any ``HBertConfig`` field, e.g.
    ``model.hidden_size=256``; ``model=hbert-v1`` sets the preset."""

    preset: str = "bert"
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class MaskingConfig:
    """``kind``: random | entropy; ``ratio``: share of real tokens masked per sequence (a fixed
    count k = round(ratio x real tokens)); of those, ``mask_prob`` become [MASK], ``random_prob`` a random token,
    the rest stay unchanged."""

    kind: str = "random"
    ratio: float = 0.15
    mask_prob: float = 0.8
    random_prob: float = 0.1
    # entropy masking (kind=entropy); see hbert.masking.entropy
    source: str = "teacher"  # teacher | self
    teacher: str = ""  # masked-LM checkpoint folder or hub name (source=teacher, and the default KD teacher)
    scoring: str = "candidates"  # candidates | token-stats
    rule: str = "high"  # high | low | sample | mixed
    pool: float = 2.0  # candidates: pool of pool x k positions per sequence
    temperature: float = 1.0  # sample: probability proportional to exp(H / temperature)
    mixed_fraction: float = 0.5  # mixed: share of the k masks chosen by entropy
    self_warmup: float = 0.1  # source=self: random masking for this share of the budget
    teacher_precision: str = "bf16"  # bf16 | fp32 for the teacher's forwards
    trust_remote_code: bool = False  # let a teacher (masking or KD) that ships its own Python code run it


@dataclass
class KDConfig:
    """Knowledge distillation at the masked positions: L = alpha CE + (1 - alpha) T^2 KL(teacher || student).
    alpha = 1 (default) turns it off; ``teacher`` defaults to masking.teacher. ``reuse_scoring_forward``: take the
    teacher logits from the entropy-scoring forward instead of a second teacher forward on the student's input
    (cheaper; but the teacher then saw the whole candidate pool masked, not the student's exact input)."""

    alpha: float = 1.0
    temperature: float = 2.0
    teacher: str = ""
    reuse_scoring_forward: bool = False


@dataclass
class ObjectiveConfig:
    kd: KDConfig = field(default_factory=KDConfig)


@dataclass
class TrainConfig:
    batch_size: int = 32  # global batch (all ranks, all accumulation steps), in blocks
    lr: float = 5e-4
    warmup: float = 0.1  # fraction of the budget
    schedule: str = "linear"  # linear | cosine | triangle
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    grad_clip: float = 1.0  # 0 = off
    seed: int = 0
    eval_every: str = "0"  # "5m" (wall-clock), "500-steps", or "0" (only at the end)
    eval_blocks: int = 256  # held-out blocks evaluated (the same fixed, seeded mask for every run)
    checkpoint_every: str = "10m"  # "10m" or "1000-steps"; "0" = only at the end and on a signal
    charge_eval: bool = False  # does evaluation time count against a time budget?
    charge_scoring: bool = True  # does teacher / scorer time count against a time budget?
    max_nonfinite: int = 10  # stop after this many non-finite losses in a row


@dataclass
class InitConfig:
    """``kind``: random | complete | partial. ``scheme`` (random init): bert (normal, std initializer_range) or
    subln (Magneto: value / output / FFN weights scaled by sqrt(log 2N)). ``source``: checkpoint folder to
    transfer from. ``parts`` (partial): embeddings, layers, head. ``layer_map``: {target: source} layer indices
    (default: by index). ``freeze``: names frozen for ``freeze_fraction`` of the budget: embeddings, head,
    an attention kind: softmax, additive, mixture or any registered one (its layers), layers.N."""

    kind: str = "random"
    scheme: str = "bert"
    source: str = ""
    parts: list[str] = field(default_factory=lambda: ["embeddings", "layers"])
    layer_map: dict[int, int] = field(default_factory=dict)
    freeze: list[str] = field(default_factory=list)
    freeze_fraction: float = 0.0


@dataclass
class ImplConfig:
    """Speed only, never results: device (auto | cpu | cuda | cuda:N), precision (auto | fp32 | bf16 | fp16),
    compile (and its backend), static_shapes, micro_batch_size (per rank; the rest of the batch is accumulated),
    deterministic, log_every."""

    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    compile_backend: str = "inductor"  # any torch.compile backend (e.g. aot_eager to check tracing without codegen)
    # the masked positions as a static index (no data-dependent size, no host synchronisation outside logged
    # steps): auto = on a GPU and when compiled; on | off
    static_shapes: str = "auto"
    micro_batch_size: int = 0  # 0 = the whole per-rank batch at once
    deterministic: bool = False
    log_every: int = 10
    progress: bool = True
    tensorboard: bool = True


@dataclass
class PretrainConfig:
    corpus: str = ""
    out: str = ""
    budget: str = "10m"
    model: ModelConfig = field(default_factory=ModelConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    init: InitConfig = field(default_factory=InitConfig)
    impl: ImplConfig = field(default_factory=ImplConfig)


# sections whose bare name sets one field: model=hbert-v1 -> model.preset, masking=random -> masking.kind
SHORTHANDS = {"model": "preset", "masking": "kind", "init": "kind"}


def _all_keys(cls, prefix: str = "") -> list[str]:
    keys = []
    for f in dataclasses.fields(cls):
        name = prefix + f.name
        if dataclasses.is_dataclass(f.type if isinstance(f.type, type) else _resolve(cls, f.name)):
            keys.append(name)
            keys += _all_keys(_resolve(cls, f.name), name + ".")
        else:
            keys.append(name)
    return keys


def _resolve(cls, name: str):
    hints = {f.name: f for f in dataclasses.fields(cls)}
    default = hints[name].default_factory if hints[name].default_factory is not dataclasses.MISSING else None
    return type(default()) if default is not None else None


def _model_fields() -> list[str]:
    from .modeling import HBertConfig

    return HBertConfig.field_names()


def known_keys() -> list[str]:
    keys = _all_keys(PretrainConfig)
    keys += [f"model.{name}" for name in _model_fields()]
    return keys


def _unknown(key: str, context: str = "") -> ConfigError:
    keys = known_keys()
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    sections = sorted({k.split(".")[0] for k in keys})
    return ConfigError(f"unknown config key {key!r}{context}{hint} (sections: {', '.join(sections)})")


def coerce_value(value: Any, current: Any, key: str) -> Any:
    """``value`` (as read from YAML or ``key=value``) as the type of ``current``, the setting's present value; a
    value of another kind is refused naming ``key`` and the accepted kind. Every typed setting goes through here."""
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if isinstance(current, int) and not isinstance(current, bool):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if isinstance(current, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if isinstance(current, tuple):
        if isinstance(value, (list, tuple)) and len(value) == len(current):
            return tuple(type(c)(v) for c, v in zip(current, value))
        raise ConfigError(f"{key}: expected a list of {len(current)} numbers, got {value!r}")
    if isinstance(current, list):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return list(value)
    if isinstance(current, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if isinstance(current, str):
        return "" if value is None else str(value)
    return value


def _is_section(config: PretrainConfig, parts: list[str]) -> bool:
    target: Any = config
    for part in parts:
        if not dataclasses.is_dataclass(target) or not hasattr(target, part):
            return True  # let set_key report the unknown key
        target = getattr(target, part)
    return dataclasses.is_dataclass(target)


def set_key(config: PretrainConfig, key: str, value: Any, context: str = "") -> None:
    """Set a dotted key (``train.lr``, ``model.hidden_size``, ``model``) with type checking."""
    parts = key.split(".")
    if len(parts) == 1 and parts[0] in SHORTHANDS and not isinstance(value, dict):
        parts = [parts[0], SHORTHANDS[parts[0]]]
    if isinstance(value, dict) and _is_section(config, parts):
        for sub, sub_value in value.items():
            set_key(config, f"{'.'.join(parts)}.{sub}", sub_value, context)
        return
    target: Any = config
    for i, part in enumerate(parts[:-1]):
        if not dataclasses.is_dataclass(target) or not hasattr(target, part):
            raise _unknown(key, context)
        target = getattr(target, part)
        if isinstance(target, ModelConfig) and i == len(parts) - 3:
            raise _unknown(key, context)
    name = parts[-1]
    if isinstance(target, ModelConfig) and name not in ("preset", "fields"):
        if name not in _model_fields():
            raise _unknown(key, context)
        target.fields[name] = value
        return
    if not dataclasses.is_dataclass(target) or name not in {f.name for f in dataclasses.fields(target)}:
        raise _unknown(key, context)
    current = getattr(target, name)
    if dataclasses.is_dataclass(current):
        raise ConfigError(f"{key} is a section; set one of its keys, e.g. {key}.{dataclasses.fields(current)[0].name}")
    setattr(target, name, coerce_value(value, current, key))


MODEL_TEXT_FIELDS = ("hidden_act", "position_embedding_type", "norm_scheme", "layer_types", "problem_type")


def text_fields(cls, prefix: str = "") -> tuple[str, ...]:
    """The dotted names of the fields of dataclass ``cls`` (and its sections) that hold text: names, paths,
    budgets. ``key=value`` keeps such a value as written (``out=007`` is the folder ``007``, not the number 7)."""
    names: list[str] = []
    for f in dataclasses.fields(cls):
        section = _resolve(cls, f.name) if f.default_factory is not dataclasses.MISSING else None
        if section is not None and dataclasses.is_dataclass(section):
            names += text_fields(section, f"{prefix}{f.name}.")
        elif isinstance(f.default, str) or f.type in (str, "str"):
            names.append(prefix + f.name)
    return tuple(names)


def pretrain_text_keys() -> tuple[str, ...]:
    """The keys of a pretraining config whose values are text, including the shorthands ``model=``, ``masking=``,
    ``init=`` and the model's text fields."""
    return (*text_fields(PretrainConfig), *SHORTHANDS, *(f"model.{name}" for name in MODEL_TEXT_FIELDS))


def _is_text_key(key: str, text_keys) -> bool:
    return any(key == k or key.endswith("." + k) for k in text_keys)


def parse_override(
    item: str, text_keys: tuple[str, ...] | None = ("layer_types",), error: type[ValueError] = ConfigError
) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, value)``: the one reader of ``key=value`` in hbert (run overrides, ``hbert info``
    and ``showcase`` model fields, fine-tuning settings, recipe overrides).

    The value is read as YAML: a number, true/false, a word, a ``[list]`` or a ``{mapping}``; an empty value is
    ``""``. A key in ``text_keys`` (exactly, or as the last part of a dotted key) holds text and keeps it as
    written unless it is a list or a mapping: ``layer_types=SASA`` stays a pattern, ``budget=1e3-steps`` a budget,
    ``out=007`` the folder ``007`` (not 7), ``out=on`` the folder ``on`` (not true), ``out=exp #3`` the folder
    ``exp #3`` (not ``exp``); one pair of quotes around the text is removed. ``text_keys=None``: the keys of a
    pretraining config that hold text. A malformed item raises ``error`` naming the key and what is accepted.
    """
    if "=" not in item:
        raise error(f"expected key=value, got {item!r}")
    key, raw = item.split("=", 1)
    key = key.strip()
    text = _is_text_key(key, pretrain_text_keys() if text_keys is None else text_keys)
    from .files import load_yaml_text

    try:
        value = load_yaml_text(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        if text and not raw.lstrip().startswith(("[", "{")):
            return key, raw
        problem = getattr(err, "problem", None) or ""
        why = f" ({problem})" if "twice" in problem else ""
        raise error(f"{key}: cannot read the value {raw!r}{why}; quote it, or write a number, true/false, a "
                    f"word or a [list]") from None  # fmt: skip
    if text and not isinstance(value, (list, dict)):
        quoted = len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"" and isinstance(value, str)
        value = value if quoted else raw
    return key, value


def load_config(path: str | None = None, overrides: list[str] | None = None, context: str = "") -> PretrainConfig:
    config = PretrainConfig()
    if path:
        if not os.path.isfile(path):
            raise ConfigError(f"config file {path} does not exist")
        from .files import read_yaml

        data = read_yaml(path) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a config is a YAML mapping of sections")
        for key, value in data.items():
            set_key(config, key, value, f" in {path}")
    for item in overrides or []:
        key, value = parse_override(item, text_keys=None)
        set_key(config, key, value, context)
    return config


def to_dict(config: PretrainConfig) -> dict:
    data = dataclasses.asdict(config)
    data["train"]["betas"] = list(data["train"]["betas"])
    return data


def save_config(config: PretrainConfig, path: str | os.PathLike) -> None:
    with open(path, "w") as f:
        yaml.safe_dump(to_dict(config), f, sort_keys=False)


def config_from_dict(data: dict) -> PretrainConfig:
    config = PretrainConfig()
    for key, value in data.items():
        if key == "model":
            config.model = ModelConfig(preset=value.get("preset", "bert"), fields=dict(value.get("fields", {})))
        else:
            set_key(config, key, value)
    return config


# ------------------------------------------------------------------------------------------ validation

_CHOICES = {
    "masking.source": ("teacher", "self"),
    "masking.scoring": ("candidates", "token-stats"),
    "masking.rule": ("high", "low", "sample", "mixed"),
    "masking.teacher_precision": ("bf16", "fp32"),
    "train.schedule": ("linear", "cosine", "triangle"),
    "init.kind": ("random", "complete", "partial"),
    "init.scheme": ("bert", "subln"),
    "impl.precision": ("auto", "fp32", "bf16", "fp16"),
    "impl.static_shapes": ("auto", "on", "off"),
}
# key -> (low, high, low_open): the accepted range of each number; high None = unbounded
_RANGES = {
    "masking.ratio": (0.0, 1.0, True),
    "masking.mask_prob": (0.0, 1.0, False),
    "masking.random_prob": (0.0, 1.0, False),
    "masking.pool": (1.0, 1e6, False),
    "masking.temperature": (0.0, 1e6, True),
    "masking.mixed_fraction": (0.0, 1.0, False),
    "masking.self_warmup": (0.0, 1.0, False),
    "objective.kd.alpha": (0.0, 1.0, False),
    "objective.kd.temperature": (0.0, 1e6, True),
    "train.batch_size": (1, 1e9, False),
    "train.lr": (0.0, 1e3, True),
    "train.warmup": (0.0, 1.0, False),
    "train.weight_decay": (0.0, 1e3, False),
    "train.eps": (0.0, 1.0, True),
    "train.grad_clip": (0.0, 1e9, False),
    "train.eval_blocks": (1, 1e9, False),
    "train.max_nonfinite": (1, 1e9, False),
    "init.freeze_fraction": (0.0, 1.0, False),
    "impl.micro_batch_size": (0, 1e9, False),
    "impl.log_every": (1, 1e9, False),
}


def _get(config: PretrainConfig, key: str) -> Any:
    value: Any = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


def validate_config(config: PretrainConfig) -> None:
    """Check every setting before anything is loaded or trained, so that a bad value stops the run at once with
    one message naming it and what is accepted (not after the budget has been spent)."""
    import math

    shapes = str(config.impl.static_shapes).lower()  # YAML reads a bare on / off as true / false
    config.impl.static_shapes = {"true": "on", "false": "off"}.get(shapes, shapes)
    for key, accepted in _CHOICES.items():
        if _get(config, key) not in accepted:
            raise ConfigError(f"{key}={_get(config, key)!r}; accepted: {', '.join(accepted)}")
    for key, (low, high, low_open) in _RANGES.items():
        value = _get(config, key)
        too_low = value <= low if low_open else value < low
        if not math.isfinite(value) or too_low or value > high:
            bound = f"> {low}" if low_open else f">= {low}"
            raise ConfigError(f"{key}={value!r}; accepted: a number {bound} and <= {high:g}")
    if config.masking.mask_prob + config.masking.random_prob > 1.0:
        raise ConfigError("masking.mask_prob + masking.random_prob exceed 1; accepted: a sum of at most 1")
    if not 0.0 <= config.train.betas[0] < 1.0 or not 0.0 <= config.train.betas[1] < 1.0:
        raise ConfigError(f"train.betas={list(config.train.betas)}; accepted: two numbers in [0, 1)")
    if config.impl.micro_batch_size and config.train.batch_size % config.impl.micro_batch_size:
        raise ConfigError(
            f"impl.micro_batch_size={config.impl.micro_batch_size} does not divide train.batch_size="
            f"{config.train.batch_size}; accepted: a divisor of the batch, or 0 (the whole batch at once)"
        )
    from .training.budget import Budget, parse_interval

    Budget.parse(config.budget)
    for key in ("train.eval_every", "train.checkpoint_every"):
        try:
            parse_interval(_get(config, key))
        except ValueError as err:
            raise ConfigError(f"{key}: {err}") from err
