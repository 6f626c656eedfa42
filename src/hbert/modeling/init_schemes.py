"""Random-initialisation schemes of a model (``init.scheme``): ``bert``, the model classes' own initialisation,
and ``subln``, Magneto's depth-scaled initialisation for Sub-LN on top of it. Pretraining starts a random model
from one; fine-tuning's random-init twin starts from the same one."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .attention_hbert import attention_kind
from .modeling_hbert import HBertForMaskedLM


def subln_scale(model: HBertForMaskedLM) -> float:
    """Magneto's initialisation for Sub-LN: value, output and feed-forward weights times sqrt(log 2N) (which
    weights of an attention module are its values, its kind's registry entry says)."""
    n = model.config.num_hidden_layers
    gamma = math.sqrt(math.log(2 * n))
    with torch.no_grad():
        for layer in model.hbert.encoder.layers:
            for weight in attention_kind(layer.kind).subln_scaled(layer.attention.inner):
                weight.mul_(gamma)
            layer.attention.out.weight.mul_(gamma)
            layer.ffn.inner.up.weight.mul_(gamma)
            layer.ffn.out.weight.mul_(gamma)
    return gamma


def _subln(model: HBertForMaskedLM) -> dict:
    return {"subln_gamma": subln_scale(model)}


# name -> applied to a freshly initialised model; returns what it did, for the run's init report
INIT_SCHEMES: dict[str, Callable[[HBertForMaskedLM], dict]] = {"bert": lambda model: {}, "subln": _subln}
