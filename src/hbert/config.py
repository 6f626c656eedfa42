"""The typed configuration of a pretraining run: dataclasses loaded from YAML and overridden from the command line
as ``a.b=value``. Each setting declares its type, choices and range where it is defined (``hbert.settings``); a
registry entry declares its own (a masking strategy its ``Settings``, an attention kind its ``settings``; the
schedules and init schemes are accepted by the names they are registered under), so adding one never touches this
file. An unknown key is an error that names it and the closest valid one.

Settings that change *results* (model, corpus, budget, masking, training, init) are kept apart from settings that
change only *speed* (``impl``): a run records both, and a comparison varies only the first kind.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import settings
from .budget import Budget, parse_interval
from .files import load_yaml_text, read_yaml
from .masking.base import MaskingSettings, check_shared, masking_settings
from .optim import SCHEDULES
from .runtime import PRECISIONS
from .settings import setting


class ConfigError(ValueError):
    pass


@dataclass
class ModelConfig:
    """``preset`` (bert, additive, hbert-v1, hbert-v2, hbert-mix) plus any ``HBertConfig`` field, e.g.
    ``model.hidden_size=256``; ``model=hbert-v1`` sets the preset. The model's fields are checked by
    ``HBertConfig`` itself."""

    preset: str = "bert"
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class KDConfig:
    """Knowledge distillation at the masked positions: L = alpha CE + (1 - alpha) T^2 KL(teacher || student).
    alpha = 1 (default) turns it off; ``teacher`` defaults to masking.teacher. ``reuse_scoring_forward``: take the
    teacher logits from the entropy-scoring forward instead of a second teacher forward on the student's input
    (cheaper; but the teacher then saw the whole candidate pool masked, not the student's exact input)."""

    alpha: float = setting(1.0, low=0.0, high=1.0)
    temperature: float = setting(2.0, low=0.0, high=1e6, low_open=True)
    teacher: str = ""
    reuse_scoring_forward: bool = False


@dataclass
class ObjectiveConfig:
    kd: KDConfig = field(default_factory=KDConfig)


@dataclass
class TrainConfig:
    batch_size: int = setting(32, low=1, high=1e9)  # global batch (all ranks, all accumulation steps), in blocks
    lr: float = setting(5e-4, low=0.0, high=1e3, low_open=True)
    warmup: float = setting(0.1, low=0.0, high=1.0)  # fraction of the budget
    schedule: str = setting("linear", choices=lambda: SCHEDULES)  # a learning-rate schedule of hbert.optim
    weight_decay: float = setting(0.01, low=0.0, high=1e3)
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = setting(1e-6, low=0.0, high=1.0, low_open=True)
    grad_clip: float = setting(1.0, low=0.0, high=1e9)  # 0 = off
    seed: int = 0
    eval_every: str = "0"  # "5m" (wall-clock), "500-steps", or "0" (only at the end)
    eval_blocks: int = setting(256, low=1, high=1e9)  # held-out blocks evaluated (one fixed, seeded mask for all)
    checkpoint_every: str = "10m"  # "10m" or "1000-steps"; "0" = only at the end and on a signal
    charge_eval: bool = False  # does evaluation time count against a time budget?
    charge_scoring: bool = True  # does teacher / scorer time count against a time budget?
    max_nonfinite: int = setting(10, low=1, high=1e9)  # stop after this many non-finite losses in a row


@dataclass
class InitConfig:
    """``kind``: random | complete | partial. ``scheme`` (random init): a registered init scheme
    (``hbert.modeling.init_schemes``): bert (normal, std initializer_range) or subln (Magneto: value / output / FFN
    weights scaled by sqrt(log 2N)). ``source``: checkpoint folder to
    transfer from. ``parts`` (partial): embeddings, layers, head. ``layer_map``: {target: source} layer indices
    (default: by index). ``freeze``: names frozen for ``freeze_fraction`` of the budget: embeddings, head,
    an attention kind: softmax, additive, mixture or any registered one (its layers), layers.N."""

    kind: str = setting("random", choices=("random", "complete", "partial"))
    scheme: str = setting("bert", choices=lambda: _init_schemes())
    source: str = ""
    parts: list[str] = field(default_factory=lambda: ["embeddings", "layers"])
    layer_map: dict[int, int] = field(default_factory=dict)
    freeze: list[str] = field(default_factory=list)
    freeze_fraction: float = setting(0.0, low=0.0, high=1.0)


@dataclass
class ImplConfig:
    """Speed only, never results: device (auto | cpu | cuda | cuda:N), precision (auto | fp32 | bf16 | fp16),
    compile (and its backend), static_shapes, micro_batch_size (per rank; the rest of the batch is accumulated),
    deterministic, log_every."""

    device: str = "auto"
    precision: str = setting("auto", choices=PRECISIONS)
    compile: bool = False
    compile_backend: str = "inductor"  # any torch.compile backend (e.g. aot_eager to check tracing without codegen)
    # the masked positions as a static index (no data-dependent size, no host synchronisation outside logged
    # steps): auto = on a GPU and when compiled; on | off
    static_shapes: str = setting("auto", choices=("auto", "on", "off"))
    micro_batch_size: int = setting(0, low=0, high=1e9)  # 0 = the whole per-rank batch at once
    deterministic: bool = False
    log_every: int = setting(10, low=1, high=1e9)
    progress: bool = True
    tensorboard: bool = True


@dataclass
class PretrainConfig:
    corpus: str = ""
    out: str = ""
    budget: str = "10m"
    model: ModelConfig = field(default_factory=ModelConfig)
    # the shared settings (hbert.masking.base.MaskingSettings) and every registered strategy's own (its Settings)
    masking: MaskingSettings = field(default_factory=masking_settings)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    init: InitConfig = field(default_factory=InitConfig)
    impl: ImplConfig = field(default_factory=ImplConfig)


def _init_schemes() -> dict:
    from .modeling.init_schemes import INIT_SCHEMES  # the model classes (transformers) load only when checked

    return INIT_SCHEMES


# sections whose bare name sets one field: model=hbert-v1 -> model.preset, masking=random -> masking.kind
SHORTHANDS = {"model": "preset", "masking": "kind", "init": "kind"}


def _model_fields() -> list[str]:
    from .modeling import HBertConfig  # the model classes (transformers) load only when a model key is read

    return HBertConfig.field_names()


def known_keys() -> list[str]:
    return [*settings.keys_of(PretrainConfig), *(f"model.{name}" for name in _model_fields())]


def _unknown(key: str, context: str = "") -> ConfigError:
    keys = known_keys()
    sections = sorted({k.split(".")[0] for k in keys})
    return ConfigError(f"unknown config key {key!r}{context}{settings.did_you_mean(key, keys)} "
                       f"(sections: {', '.join(sections)})")  # fmt: skip


def coerce_value(value: Any, current: Any, key: str) -> Any:
    """``value`` as the type of ``current`` (``hbert.settings.coerce``), refused with a ``ConfigError``."""
    return settings.coerce(value, current, key, ConfigError)


def set_key(config: PretrainConfig, key: str, value: Any, context: str = "") -> None:
    """Set a dotted key (``train.lr``, ``model.hidden_size``, ``model``) with type checking."""
    parts = key.split(".")
    if len(parts) == 1 and parts[0] in SHORTHANDS and not isinstance(value, dict):
        parts = [parts[0], SHORTHANDS[parts[0]]]
    if parts[0] == "model":
        if len(parts) == 1:
            if not isinstance(value, dict):
                raise _unknown(key, context)
            for sub, sub_value in value.items():
                set_key(config, f"model.{sub}", sub_value, context)
            return
        if len(parts) > 2 or (parts[1] not in ("preset", "fields") and parts[1] not in _model_fields()):
            raise _unknown(key, context)
        if parts[1] not in ("preset", "fields"):
            config.model.fields[parts[1]] = value
            return
    settings.assign(config, ".".join(parts), value, ConfigError, unknown=lambda k: _unknown(k, context))


MODEL_TEXT_FIELDS = ("hidden_act", "position_embedding_type", "norm_scheme", "layer_types", "problem_type")


def pretrain_text_keys() -> tuple[str, ...]:
    """The keys of a pretraining config whose values are text, including the shorthands ``model=``, ``masking=``,
    ``init=`` and the model's text fields."""
    return (*settings.text_fields(PretrainConfig), *SHORTHANDS, *(f"model.{name}" for name in MODEL_TEXT_FIELDS))


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


def validate_config(config: PretrainConfig) -> None:
    """Check every setting before anything is loaded or trained, so that a bad value stops the run at once with
    one message naming it and what is accepted (not after the budget has been spent): each setting's declared
    choices and range, then the rules that tie settings together."""
    shapes = str(config.impl.static_shapes).lower()  # YAML reads a bare on / off as true / false
    config.impl.static_shapes = {"true": "on", "false": "off"}.get(shapes, shapes)
    settings.check(config, error=ConfigError)
    _check_kind_settings(config.model)
    try:
        check_shared(config.masking.ratio, config.masking.mask_prob, config.masking.random_prob)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if not 0.0 <= config.train.betas[0] < 1.0 or not 0.0 <= config.train.betas[1] < 1.0:
        raise ConfigError(f"train.betas={list(config.train.betas)}; accepted: two numbers in [0, 1)")
    if config.impl.micro_batch_size and config.train.batch_size % config.impl.micro_batch_size:
        raise ConfigError(
            f"impl.micro_batch_size={config.impl.micro_batch_size} does not divide train.batch_size="
            f"{config.train.batch_size}; accepted: a divisor of the batch, or 0 (the whole batch at once)"
        )
    Budget.parse(config.budget)
    for key in ("train.eval_every", "train.checkpoint_every"):
        try:
            parse_interval(_get(config, key))
        except ValueError as err:
            raise ConfigError(f"{key}: {err}") from err


def _check_kind_settings(model: ModelConfig) -> None:
    """``model.NAME`` settings that an attention kind declares: typed and checked here, like every other setting
    (the rest of the model's fields are checked by ``HBertConfig``)."""
    from .modeling.attention_hbert import kind_settings  # transformers loads only when a run is checked

    declared = kind_settings()
    for name, value in model.fields.items():
        if name in declared:
            f = declared[name]
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            model.fields[name] = settings.coerce(value, default, f"model.{name}", ConfigError)
            settings.check_value(f, model.fields[name], f"model.{name}", ConfigError)


def _get(config: PretrainConfig, key: str) -> Any:
    value: Any = config
    for part in key.split("."):
        value = getattr(value, part)
    return value
