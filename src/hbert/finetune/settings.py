"""Fine-tuning settings: the protocols (named presets) and the checks every override passes."""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass


class FinetuneError(ValueError):
    pass


FLOOR_CHOICES = ("all", "cheap", "none")  # all = majority + bag-of-words + random-init twin; cheap = no twin


@dataclass
class FinetuneConfig:
    """Fine-tuning settings; ``protocol`` picks a preset and any field overrides it."""

    protocol: str = "sane"
    lr: float = 4e-5
    epochs: int = 5
    batch_size: int = 32
    warmup: float = 0.1
    weight_decay: float = 0.01
    max_seq_len: int = 128
    patience: int = 0  # early stopping on validation loss after this many epochs without improvement (0 = off)
    keep_best: bool = False  # restore the epoch with the lowest validation loss at the end
    freeze_encoder: bool = False  # linear probe: train the classifier head only
    seed: int = 0
    max_train_examples: int = 0  # 0 = all
    max_eval_examples: int = 0
    dynamic_padding: bool = True  # speed only: pad each batch to its own longest sequence, group by length
    device: str = "auto"
    precision: str = "fp32"  # fp32 | bf16
    progress: bool = True
    floors: str = "all"  # all | cheap | none: majority, bag-of-words and (all) a random-init twin beside the score
    trust_remote_code: bool = False  # let a checkpoint that ships its own Python code run it (--trust-remote-code)


PROTOCOLS = {
    # the Cramming-like single recipe: a few epochs, one learning rate for every task, 10% warm-up
    "sane": {"lr": 4e-5, "epochs": 5, "batch_size": 32, "warmup": 0.1, "patience": 0, "keep_best": False},
    # small encoders (BERT-mini-sized, e.g. cpu-small): a higher learning rate, chosen by a grid on validation
    # (benchmarks/finetune_grid.py; results/finetune-grid/GRID.md), as the compact-BERT release did per task
    "small": {"lr": 3e-4, "epochs": 4, "batch_size": 32, "warmup": 0.1, "patience": 0, "keep_best": False},
    # encoders of MiniLM's size (22M parameters, 6 x 384, genuinely pretrained: registry:minilm-l6 and warm starts
    # from it): chosen by the same grid on rt-polarity and vader-tweets (results/finetune-grid-minilm/GRID.md)
    "minilm": {"lr": 1e-4, "epochs": 3, "batch_size": 32, "warmup": 0.1, "patience": 0, "keep_best": False},
    # the papers' authors' recipe: lr 4e-5, batch 128, up to 50 epochs, early stopping on validation loss (5)
    "author": {"lr": 4e-5, "epochs": 50, "batch_size": 128, "warmup": 0.1, "patience": 5, "keep_best": True},
}


def make_config(overrides: dict | None = None) -> FinetuneConfig:
    overrides = dict(overrides or {})
    protocol = overrides.pop("protocol", "sane")
    if protocol not in PROTOCOLS:
        raise FinetuneError(f"unknown protocol {protocol!r}; accepted: {', '.join(PROTOCOLS)}")
    config = FinetuneConfig(protocol=protocol, **PROTOCOLS[protocol])
    fields = {f.name: f for f in dataclasses.fields(FinetuneConfig)}
    for key, value in overrides.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise FinetuneError(f"unknown fine-tuning setting {key!r}{hint} (accepted: {', '.join(fields)})")
        current = getattr(config, key)
        try:
            value = _as_bool(value) if isinstance(current, bool) else _as_int(value) if isinstance(current, int) \
                else type(current)(value)  # fmt: skip
        except (TypeError, ValueError) as err:
            raise FinetuneError(f"{key}: cannot use {value!r} (expected {type(current).__name__})") from err
        setattr(config, key, value)
    if config.floors not in FLOOR_CHOICES:
        raise FinetuneError(f"floors={config.floors!r}; accepted: {', '.join(FLOOR_CHOICES)}")
    _check_ranges(config)
    return config


_RANGES = {"lr": (0.0, 1.0), "epochs": (1, 10_000), "batch_size": (1, 1e6), "warmup": (0.0, 1.0),
           "weight_decay": (0.0, 1e3), "max_seq_len": (2, 1e6), "patience": (0, 10_000), "seed": (0, 2**31 - 1),
           "max_train_examples": (0, 1e12), "max_eval_examples": (0, 1e12)}  # fmt: skip


def _check_ranges(config: FinetuneConfig) -> None:
    for key, (low, high) in _RANGES.items():
        value = getattr(config, key)
        bad = not math.isfinite(value) or value < low or value > high or (key == "lr" and value == 0)
        if bad:
            raise FinetuneError(f"{key}={value!r}; accepted: {'> 0' if key == 'lr' else f'>= {low}'} and <= {high:g}")
    if config.precision not in ("fp32", "bf16"):
        raise FinetuneError(f"precision={config.precision!r}; accepted: fp32, bf16")


def _as_int(value) -> int:
    """A whole number: ``epochs=1.9`` or ``seed=0.5`` is refused, not rounded down."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(value)
        return int(value)
    return int(str(value).strip())


def _as_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("1", "true", "yes"):
        return True
    if str(value).lower() in ("0", "false", "no"):
        return False
    raise ValueError(value)
