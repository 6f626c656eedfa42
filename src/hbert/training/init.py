"""Weight initialisation under a budget: random (an init scheme of ``modeling.init_schemes``: BERT-style or
depth-scaled for Sub-LN), complete or partial transfer from a checkpoint (embeddings, layers mapped by index or by
a given map, head), and freezing of named parts for a fraction of the budget."""

from __future__ import annotations

import os

import torch

from ..config import InitConfig
from ..modeling import HBertForMaskedLM
from ..modeling.attention_hbert import ATTENTION_KINDS
from ..modeling.convert import load_hbert_or_bert
from ..modeling.init_schemes import INIT_SCHEMES
from ..pretrained import resolve
from .errors import TrainingError


def initialise(model: HBertForMaskedLM, init: InitConfig) -> dict:
    """Give a freshly built ``model`` its starting weights as ``init`` says: a random-init scheme (``bert``,
    ``subln``), or a complete or partial transfer from ``init.source``; returns the run's init report."""
    if init.kind == "random":
        scheme = INIT_SCHEMES.get(init.scheme)
        if scheme is None:
            raise TrainingError(f"init.scheme={init.scheme!r}; accepted: {', '.join(INIT_SCHEMES)}")
        return {"kind": init.kind, **scheme(model)}
    if init.kind in ("complete", "partial"):
        if not init.source:
            raise TrainingError(f"init.kind={init.kind} needs init.source=CHECKPOINT_FOLDER")
        return transfer(model, init.source, init.kind, init.parts, init.layer_map)
    raise TrainingError(f"init.kind={init.kind!r}; accepted: random, complete, partial")


def load_source_state(path: str) -> tuple[dict[str, torch.Tensor], object]:
    """State dict and config of a transfer source: an hbert checkpoint, a Hugging Face BERT (converted), or a
    pretrained encoder of the package registry (``registry:minilm-l6``)."""
    path = resolve(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"init.source {path!r} is not a checkpoint folder")
    try:
        model = load_hbert_or_bert(path)
    except ValueError as err:
        raise ValueError(f"init.source {err}") from None
    return model.state_dict(), model.config


def transfer(model: HBertForMaskedLM, source: str, kind: str, parts: list[str], layer_map: dict) -> dict:
    """Copy weights from ``source`` into ``model``; returns a report of what was copied and skipped."""
    state, src_config = load_source_state(source)
    target = model.state_dict()
    copied, skipped = [], []
    if kind == "complete":
        problems = [k for k in target if k not in state or state[k].shape != target[k].shape]
        if problems:
            raise ValueError(
                f"complete transfer from {source}: {len(problems)} tensor(s) missing or of another shape "
                f"(first: {problems[:3]}); use init.kind=partial to copy what matches"
            )
        model.load_state_dict({k: state[k] for k in target}, strict=False)
        return {"kind": kind, "copied": sorted(target), "skipped": []}
    allowed = {"embeddings", "layers", "head"}
    unknown = set(parts) - allowed
    if unknown:
        raise ValueError(f"init.parts: unknown {sorted(unknown)}; accepted: {', '.join(sorted(allowed))}")
    wanted: dict[str, str] = {}
    if "embeddings" in parts:
        wanted.update({k: k for k in target if k.startswith("hbert.embeddings.")})
    if "head" in parts:
        wanted.update({k: k for k in target if k.startswith("head.")})
    if "layers" in parts:
        mapping = (
            {int(t): int(s) for t, s in layer_map.items()}
            if layer_map
            else {i: i for i in range(min(model.config.num_hidden_layers, src_config.num_hidden_layers))}
        )
        for t, s in mapping.items():
            if t >= model.config.num_hidden_layers or s >= src_config.num_hidden_layers:
                raise ValueError(f"init.layer_map {t}: {s} is out of range (target {model.config.num_hidden_layers}, "
                                 f"source {src_config.num_hidden_layers} layers)")  # fmt: skip
            if model.config.layer_types[t] != src_config.layer_types[s]:
                skipped.append(f"layer {t} <- {s}: kinds differ ({model.config.layer_types[t]} vs "
                               f"{src_config.layer_types[s]})")  # fmt: skip
                continue
            prefix_t, prefix_s = f"hbert.encoder.layers.{t}.", f"hbert.encoder.layers.{s}."
            wanted.update({k: prefix_s + k[len(prefix_t) :] for k in target if k.startswith(prefix_t)})
    update = {}
    for t_key, s_key in wanted.items():
        if s_key not in state:
            skipped.append(f"{t_key}: not in the source")
        elif state[s_key].shape != target[t_key].shape:
            skipped.append(
                f"{t_key}: shape {tuple(state[s_key].shape)} in the source, {tuple(target[t_key].shape)} here"
            )
        else:
            update[t_key] = state[s_key]
            copied.append(t_key)
    model.load_state_dict(update, strict=False)
    if not copied:
        raise ValueError(f"partial transfer from {source} copied nothing: {'; '.join(skipped[:5])}")
    return {"kind": kind, "copied": copied, "skipped": skipped}


def freeze_groups() -> tuple[str, ...]:
    """The names ``init.freeze`` accepts: every registered attention kind names the layers of that kind."""
    return ("embeddings", "head", *ATTENTION_KINDS, "layers.N")


def frozen_parameters(model: HBertForMaskedLM, names: list[str]) -> list[torch.nn.Parameter]:
    params: dict[int, torch.nn.Parameter] = {}

    def add(module):
        for p in module.parameters():
            params[id(p)] = p

    for name in names:
        if name == "embeddings":
            add(model.hbert.embeddings)
        elif name == "head":
            for n, p in model.head.named_parameters():
                if n != "decoder.weight":  # tied to the embeddings
                    params[id(p)] = p
        elif name in ATTENTION_KINDS:
            for layer in model.hbert.encoder.layers:
                if layer.kind == name:
                    add(layer)
        elif name.startswith("layers.") and name[7:].isdigit() and int(name[7:]) < len(model.hbert.encoder.layers):
            add(model.hbert.encoder.layers[int(name[7:])])
        else:
            raise ValueError(f"init.freeze: unknown part {name!r}; accepted: {', '.join(freeze_groups())}")
    return list(params.values())
