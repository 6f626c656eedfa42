"""Fine-tuning settings: the protocols (named presets) and the checks every override passes (``hbert.settings``:
the same reader, types, choices and ranges as a pretraining config)."""

from __future__ import annotations

from dataclasses import dataclass

from .. import settings
from ..settings import setting


class FinetuneError(ValueError):
    pass


FLOOR_CHOICES = ("all", "cheap", "none")  # all = majority + bag-of-words + random-init twin; cheap = no twin


@dataclass
class FinetuneConfig:
    """Fine-tuning settings; ``protocol`` picks a preset and any field overrides it."""

    protocol: str = setting("sane", choices=lambda: PROTOCOLS)
    lr: float = setting(4e-5, low=0.0, high=1.0, low_open=True)
    epochs: int = setting(5, low=1, high=10_000)
    batch_size: int = setting(32, low=1, high=1e6)
    warmup: float = setting(0.1, low=0.0, high=1.0)
    weight_decay: float = setting(0.01, low=0.0, high=1e3)
    max_seq_len: int = setting(128, low=2, high=1e6)
    # early stopping on validation loss after this many epochs without improvement (0 = off)
    patience: int = setting(0, low=0, high=10_000)
    keep_best: bool = False  # restore the epoch with the lowest validation loss at the end
    freeze_encoder: bool = False  # linear probe: train the classifier head only
    seed: int = setting(0, low=0, high=2**31 - 1)
    max_train_examples: int = setting(0, low=0, high=1e12)  # 0 = all
    max_eval_examples: int = setting(0, low=0, high=1e12)
    dynamic_padding: bool = True  # speed only: pad each batch to its own longest sequence, group by length
    device: str = "auto"
    precision: str = setting("fp32", choices=("fp32", "bf16"))
    progress: bool = True
    # majority, bag-of-words and (all) a random-init twin beside the score
    floors: str = setting("all", choices=FLOOR_CHOICES)
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
    """The protocol's preset (``protocol=``, default sane) with ``overrides`` on top, every value checked."""
    overrides = dict(overrides or {})
    protocol = overrides.pop("protocol", "sane")
    if protocol not in PROTOCOLS:
        raise FinetuneError(f"unknown protocol {protocol!r}; accepted: {', '.join(PROTOCOLS)}")
    config = FinetuneConfig(protocol=protocol, **PROTOCOLS[protocol])
    return settings.load(FinetuneConfig, overrides, FinetuneError, unknown=_unknown, start=config)


def _unknown(key: str) -> FinetuneError:
    names = settings.keys_of(FinetuneConfig)
    return FinetuneError(
        f"unknown fine-tuning setting {key!r}{settings.did_you_mean(key, names)} (accepted: {', '.join(names)})"
    )
