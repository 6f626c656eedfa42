"""Conversion between Hugging Face ``BertForMaskedLM`` and the hbert ``bert`` preset (both directions).

The ``bert`` preset is BERT's architecture with a fused q/k/v projection, so conversion is a renaming of the state
dict plus a concatenation (or split) of the three projections.
"""

from __future__ import annotations

import os

import torch
from transformers import BertConfig, BertForMaskedLM

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


def from_hf_bert(source: BertForMaskedLM | str | os.PathLike) -> HBertForMaskedLM:
    """Convert a Hugging Face ``BertForMaskedLM`` (a live model, or a checkpoint folder / hub name) into an
    ``HBertForMaskedLM`` of the ``bert`` preset with the same outputs."""
    if isinstance(source, BertForMaskedLM):
        bert = source
    else:
        from ..remote import check_complete

        bert, info = BertForMaskedLM.from_pretrained(source, output_loading_info=True)
        check_complete(bert, info, source, new_head=False)
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
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "head.decoder.weight")]
    if missing or unexpected:
        raise ValueError(f"BERT conversion left parameters unmatched: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    return model.to(next(bert.parameters()).dtype)


def _checkpoint_config(path: str | os.PathLike, trust_remote_code: bool = False, option: str | None = None):
    """The config of a checkpoint folder that holds an hbert or a Hugging Face BERT model; any other is refused.
    A config that ships its own code is refused unless ``trust_remote_code`` (``option`` names the opt-in)."""
    from transformers import AutoConfig

    from ..remote import auto_from_pretrained

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
    from ..remote import check_complete

    if _checkpoint_config(path).model_type == "bert":
        return from_hf_bert(path)
    model, info = HBertForMaskedLM.from_pretrained(path, output_loading_info=True)
    check_complete(model, info, path, new_head=False)
    return model


def to_hf_bert(model: HBertForMaskedLM) -> BertForMaskedLM:
    """Convert a ``bert``-preset ``HBertForMaskedLM`` back into a Hugging Face ``BertForMaskedLM``."""
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
        raise ValueError("only the 'bert' preset converts to BertForMaskedLM; this model has " + "; ".join(problems))
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


__all__ = ["from_hf_bert", "hbert_config_from_bert", "hbert_config_of", "load_hbert_or_bert", "to_hf_bert"]
