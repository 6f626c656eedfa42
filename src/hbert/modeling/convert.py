"""Conversion between Hugging Face ``BertForMaskedLM`` and the hbert ``bert`` preset (both directions).

The ``bert`` preset is BERT's architecture with a fused q/k/v projection, so conversion is a renaming of the state
dict plus a concatenation (or split) of the three projections.
"""

from __future__ import annotations

import json
import os

import torch
from transformers import AutoConfig, BertConfig, BertForMaskedLM, BertModel

from ..remote import IncompleteWeightsError, auto_from_pretrained, check_complete
from .configuration_hbert import HBertConfig
from .modeling_hbert import HBertForMaskedLM

# hbert name <- HF BERT name, for the parts that are a plain rename ({i} = layer index)
_EMBEDDINGS = {
    "hbert.embeddings.word_embeddings.weight": "bert.embeddings.word_embeddings.weight",
    "hbert.embeddings.position_embeddings.weight": "bert.embeddings.position_embeddings.weight",
    "hbert.embeddings.token_type_embeddings.weight": "bert.embeddings.token_type_embeddings.weight",
    "hbert.embeddings.norm.weight": "bert.embeddings.LayerNorm.weight",
    "hbert.embeddings.norm.bias": "bert.embeddings.LayerNorm.bias",
    "head.dense.weight": "cls.predictions.transform.dense.weight",
    "head.dense.bias": "cls.predictions.transform.dense.bias",
    "head.norm.weight": "cls.predictions.transform.LayerNorm.weight",
    "head.norm.bias": "cls.predictions.transform.LayerNorm.bias",
    # the bias the decoder actually adds; transformers ties ``cls.predictions.bias`` to it only when the word
    # embeddings are tied, so an untied BERT's ``cls.predictions.bias`` may differ from the one in use
    "head.decoder.bias": "cls.predictions.decoder.bias",
}
_LAYER = {
    "attention.out": "attention.output.dense",
    "attention.norm": "attention.output.LayerNorm",
    "ffn.inner.up": "intermediate.dense",
    "ffn.out": "output.dense",
    "ffn.norm": "output.LayerNorm",
}
_CONFIG_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "layer_norm_eps",
    "initializer_range",
    "pad_token_id",
)


def _name_map(num_layers: int) -> dict[str, str]:
    names = dict(_EMBEDDINGS)
    for i in range(num_layers):
        for ours, theirs in _LAYER.items():
            for p in ("weight", "bias"):
                names[f"hbert.encoder.layers.{i}.{ours}.{p}"] = f"bert.encoder.layer.{i}.{theirs}.{p}"
    return names


def hbert_config_from_bert(bert_config: BertConfig) -> HBertConfig:
    """The ``bert``-preset config equal to a Hugging Face ``BertConfig``."""
    kind = getattr(bert_config, "position_embedding_type", "absolute")
    if kind not in (None, "absolute"):
        raise ValueError(f"position_embedding_type={kind!r} cannot be converted; accepted: 'absolute'")
    if getattr(bert_config, "is_decoder", False):
        raise ValueError("a BERT decoder (is_decoder=True) cannot be converted; accepted: a bidirectional encoder")
    fields = {name: getattr(bert_config, name) for name in _CONFIG_FIELDS}
    return HBertConfig.from_preset("bert", tie_word_embeddings=bert_config.tie_word_embeddings, **fields)


class ConversionError(ValueError):
    """A model or folder the converters cannot take; the message names it and what would be accepted."""


def _folder(source, what: str) -> str:
    """``source`` as a checkpoint folder path; anything else (a model object, a missing path) is refused in one
    line."""
    if isinstance(source, torch.nn.Module):
        raise ConversionError(f"{what} takes a checkpoint folder, not a {type(source).__name__} object; save it with "
                              "save_pretrained(FOLDER) and pass FOLDER")  # fmt: skip
    if not isinstance(source, (str, os.PathLike)):
        raise ConversionError(f"{what} takes a checkpoint folder path, got {type(source).__name__}")
    return os.fspath(source)


def read_checkpoint_config(path: str | os.PathLike) -> dict:
    """The ``config.json`` of a local checkpoint folder as a dict (no code runs), or a one-line error."""
    path = _folder(path, "reading a checkpoint")
    config_file = os.path.join(path, "config.json")
    if not os.path.isdir(path):
        raise ConversionError(f"{path} is not a folder; accepted: a checkpoint folder with config.json")
    if not os.path.isfile(config_file):
        raise ConversionError(f"{path} has no config.json; accepted: a checkpoint folder (save_pretrained)")
    try:
        with open(config_file, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as err:
        raise ConversionError(f"{config_file} is not readable JSON ({err}); accepted: a checkpoint folder whose "
                              "config.json is valid JSON (save_pretrained writes one)") from None  # fmt: skip
    if not isinstance(config, dict) or config.get("model_type") not in ("hbert", "bert"):
        kind = config.get("model_type") if isinstance(config, dict) else None
        raise ConversionError(f"{path}: model_type {kind!r} cannot be converted; accepted: bert, hbert")
    return config


def _bert_masked_lm(source) -> tuple[BertForMaskedLM, list[str], list[str]]:
    """(model, missing, unexpected) of a Hugging Face BERT: a live ``BertForMaskedLM`` or ``BertModel``, or a
    folder holding either (a bare encoder gets a fresh head tied to its word embeddings)."""
    if isinstance(source, BertForMaskedLM):
        return source, [], []
    if isinstance(source, BertModel):
        bert = BertForMaskedLM(source.config)
        bert.bert.load_state_dict(source.state_dict(), strict=False)
        bert.tie_weights()
        missing = [k for k in bert.state_dict() if k.startswith("cls.")]
        return bert.to(next(source.parameters()).dtype), missing, []
    if isinstance(source, torch.nn.Module):
        raise ConversionError(f"from_hf_bert takes a BertForMaskedLM, a BertModel or a folder holding one, not a "
                              f"{type(source).__name__}")  # fmt: skip
    path = _folder(source, "from_hf_bert")
    if os.path.isdir(path):
        read_checkpoint_config(path)
    bert, info = BertForMaskedLM.from_pretrained(path, output_loading_info=True)
    return bert, sorted(info["missing_keys"]), sorted(info["unexpected_keys"])


def from_hf_bert(source: BertForMaskedLM | BertModel | str | os.PathLike, with_report: bool = False):
    """Convert a Hugging Face ``BertForMaskedLM`` (a live model, or a checkpoint folder / hub name) into an
    ``HBertForMaskedLM`` of the ``bert`` preset with the same outputs. A bare ``BertModel`` (an encoder without
    a masked-LM head, e.g. a sentence encoder) converts too: its head starts fresh (a normal(0, initializer_range)
    transform, zero bias) with the decoder tied to the word embeddings. ``with_report``: also return
    ``{"head": "converted" | "fresh", "dropped": [...]}`` (parameters with no place in a masked LM, e.g. a
    pooler)."""
    bert, missing, unexpected = _bert_masked_lm(source)
    encoder_missing = [k for k in missing if not k.startswith("cls.")]
    if encoder_missing:  # the same words as every other load that would leave weights random
        where = source if isinstance(source, (str, os.PathLike)) else "the BERT model"
        try:
            check_complete(bert, {"missing_keys": encoder_missing, "unexpected_keys": unexpected}, where, False)
        except IncompleteWeightsError as err:
            raise ConversionError(str(err)) from None
    head = "fresh" if any(k.startswith("cls.predictions.transform") for k in missing) else "converted"
    config = hbert_config_from_bert(bert.config)
    theirs = bert.state_dict()
    model = HBertForMaskedLM(config)
    state = {}
    for ours, name in _name_map(config.num_hidden_layers).items():
        if name in theirs:
            state[ours] = theirs[name]
    for i in range(config.num_hidden_layers):
        prefix = f"bert.encoder.layer.{i}.attention.self"
        for p in ("weight", "bias"):
            state[f"hbert.encoder.layers.{i}.attention.inner.qkv.{p}"] = torch.cat(
                [theirs[f"{prefix}.{part}.{p}"] for part in ("query", "key", "value")]
            )
    if not config.tie_word_embeddings:
        state["head.decoder.weight"] = theirs["cls.predictions.decoder.weight"]
    missing, unexpected_ours = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "head.decoder.weight")]
    if missing or unexpected_ours:
        raise ConversionError(f"BERT conversion left parameters unmatched: missing {missing}, unexpected "
                              f"{unexpected_ours}")  # fmt: skip
    model.tie_weights()
    model = model.to(next(bert.parameters()).dtype)
    if with_report:
        return model, {"head": head, "dropped": sorted({k.rsplit(".", 1)[0] for k in unexpected})}
    return model


def _checkpoint_config(path: str | os.PathLike, trust_remote_code: bool = False, option: str | None = None):
    """The config of a checkpoint folder that holds an hbert or a Hugging Face BERT model; any other is refused.
    A config that ships its own code is refused unless ``trust_remote_code`` (``option`` names the opt-in)."""
    path = _folder(path, "loading a checkpoint")
    config = auto_from_pretrained(AutoConfig, str(path), trust_remote_code, option)
    if config.model_type not in ("hbert", "bert"):
        raise ValueError(f"{path}: model_type {config.model_type!r} is not supported; accepted: hbert, bert")
    return config


def hbert_config_of(path: str | os.PathLike) -> HBertConfig:
    """The ``HBertConfig`` of an hbert checkpoint folder, or the ``bert``-preset config of a Hugging Face BERT."""
    config = _checkpoint_config(path)
    if config.model_type == "bert":
        return hbert_config_from_bert(config)
    return config if isinstance(config, HBertConfig) else HBertConfig(**config.to_dict())


def load_hbert_or_bert(path: str | os.PathLike) -> HBertForMaskedLM:
    """The masked-LM model of a checkpoint folder: an hbert checkpoint as saved, a Hugging Face BERT converted to
    the ``bert`` preset (same outputs). Neither runs code shipped in the folder, and a load that would leave
    weights at their random initialisation is refused (``remote.IncompleteWeightsError``)."""
    if _checkpoint_config(path).model_type == "bert":
        return from_hf_bert(path)
    model, info = HBertForMaskedLM.from_pretrained(path, output_loading_info=True)
    check_complete(model, info, path, new_head=False)
    return model


def to_hf_bert(model: HBertForMaskedLM) -> BertForMaskedLM:
    """Convert a ``bert``-preset ``HBertForMaskedLM`` back into a Hugging Face ``BertForMaskedLM``."""
    if not isinstance(model, HBertForMaskedLM):
        what = type(model).__name__
        hint = (" (a fine-tuned classifier or tagger has no masked-LM head to convert; convert the pretrained "
                "checkpoint it was fine-tuned from)") if what.startswith("HBertFor") else ""  # fmt: skip
        raise ConversionError(f"to_hf_bert takes an HBertForMaskedLM, not a {what}{hint}")
    config = model.config
    problems = []
    if any(kind != "softmax" for kind in config.layer_types):
        problems.append(f"layer_types={config.layer_pattern} (needs all softmax)")
    if config.norm_scheme != "post":
        problems.append(f"norm_scheme={config.norm_scheme!r} (needs 'post')")
    if config.position_embedding_type != "learned":
        problems.append(f"position_embedding_type={config.position_embedding_type!r} (needs 'learned')")
    if config.type_vocab_size == 0:
        problems.append("type_vocab_size=0 (BERT needs token-type embeddings)")
    if problems:
        raise ConversionError(
            "only the 'bert' preset converts to BertForMaskedLM; this model has " + "; ".join(problems)
        )
    bert_config = BertConfig(
        tie_word_embeddings=config.tie_word_embeddings, **{name: getattr(config, name) for name in _CONFIG_FIELDS}
    )
    bert = BertForMaskedLM(bert_config)
    ours = model.state_dict()
    state = {theirs: ours[name] for name, theirs in _name_map(config.num_hidden_layers).items()}
    H = config.hidden_size
    for i in range(config.num_hidden_layers):
        prefix = f"bert.encoder.layer.{i}.attention.self"
        for p in ("weight", "bias"):
            q, k, v = ours[f"hbert.encoder.layers.{i}.attention.inner.qkv.{p}"].split(H)
            state.update({f"{prefix}.query.{p}": q, f"{prefix}.key.{p}": k, f"{prefix}.value.{p}": v})
    state["cls.predictions.decoder.weight"] = ours["head.decoder.weight"]
    state["cls.predictions.decoder.bias"] = ours["head.decoder.bias"]
    state["cls.predictions.bias"] = ours["head.decoder.bias"]
    missing, unexpected = bert.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"BERT conversion left parameters unmatched: missing {missing}, unexpected {unexpected}")
    bert.tie_weights()
    return bert.to(next(model.parameters()).dtype)


__all__ = [
    "ConversionError",
    "from_hf_bert",
    "hbert_config_from_bert",
    "hbert_config_of",
    "load_hbert_or_bert",
    "read_checkpoint_config",
    "to_hf_bert",
]
