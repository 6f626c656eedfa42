"""Parameter counts per component and FLOPs per token, for presets and checkpoints (``hbert info``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .attention_hbert import attention_kind
from .configuration_hbert import PRESETS, HBertConfig
from .convert import hbert_config_of
from .modeling_hbert import HBertForMaskedLM


@dataclass
class Component:
    name: str
    kind: str
    params: int


def resolve_config(name_or_path: str | os.PathLike, **overrides) -> HBertConfig:
    """A preset name or a checkpoint folder (hbert, or Hugging Face BERT) -> ``HBertConfig``."""
    name = str(name_or_path)
    if name in PRESETS:
        return HBertConfig.from_preset(name, **overrides)
    if not os.path.isdir(name):
        raise ValueError(f"{name!r} is neither a preset ({', '.join(PRESETS)}) nor a checkpoint folder")
    config = hbert_config_of(name)
    if overrides:
        config = HBertConfig(**{**config.to_dict(), **overrides})
    return config


def _count(module: torch.nn.Module, seen: set[int]) -> int:
    total = 0
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def parameter_breakdown(config: HBertConfig) -> list[Component]:
    """Parameters of ``HBertForMaskedLM`` per component; a tied decoder counts with the embeddings."""
    with torch.device("meta"):
        model = HBertForMaskedLM(config)
    seen: set[int] = set()
    parts = [Component("embeddings", config.position_embedding_type, _count(model.hbert.embeddings, seen))]
    for i, layer in enumerate(model.hbert.encoder.layers):
        parts.append(Component(f"layer {i}", f"{layer.kind}/{config.norm_scheme}", _count(layer, seen)))
    if model.hbert.encoder.final_norm is not None:
        parts.append(Component("final norm", "LayerNorm", _count(model.hbert.encoder.final_norm, seen)))
    tied = "tied decoder" if config.tie_word_embeddings else "own decoder"
    parts.append(Component("MLM head", tied, _count(model.head, seen)))
    return parts


def _attention_macs_per_token(kind: str, H: int, N: int, T: int) -> tuple[int, int]:
    """(projection MACs, mixing MACs) of one attention sub-layer per token (forward): the kind's own formula from
    the registry (an unknown kind is an error, never another kind's count) plus the sub-layer's output projection."""
    proj, mix = attention_kind(kind).macs(H, N, T)
    return proj + H * H, mix


def flops_per_token(config: HBertConfig, seq_len: int = 128, mask_ratio: float = 0.15) -> dict[str, float]:
    """Matrix FLOPs per token (2 per multiply-add; training = 3x forward).

    ``head_sparse`` counts the vocabulary projection only at the masked share of tokens (sparse prediction),
    ``head_dense`` at every token (what Hugging Face ``BertForMaskedLM`` computes).
    """
    H, F, V, N = config.hidden_size, config.intermediate_size, config.vocab_size, config.num_attention_heads
    proj = mix = 0
    for kind in config.layer_types:
        p, m = _attention_macs_per_token(kind, H, N, seq_len)
        proj += p + 2 * H * F
        mix += m
    head = H * H + H * V
    forward_sparse = 2 * (proj + mix + mask_ratio * head)
    return {
        "encoder_linear": 2.0 * proj,
        "attention_mixing": 2.0 * mix,
        "head_dense": 2.0 * head,
        "head_sparse": 2.0 * mask_ratio * head,
        "forward": forward_sparse,
        "train": 3 * forward_sparse,
        "train_dense_head": 3 * 2.0 * (proj + mix + head),
    }


def format_info(config: HBertConfig, seq_len: int = 128, mask_ratio: float = 0.15) -> str:
    parts = parameter_breakdown(config)
    total = sum(p.params for p in parts)
    lines = [
        f"hbert {config.layer_pattern}  norm={config.norm_scheme}  H={config.hidden_size} L={config.num_hidden_layers} "
        f"A={config.num_attention_heads} FFN={config.intermediate_size} V={config.vocab_size}",
        "",
        f"{'component':<14}{'kind':<22}{'parameters':>14}",
    ]
    lines += [f"{p.name:<14}{p.kind:<22}{p.params:>14,}" for p in parts]
    lines.append(f"{'total':<36}{total:>14,}")
    f = flops_per_token(config, seq_len, mask_ratio)
    lines += [
        "",
        f"FLOPs per token at seq {seq_len}, {mask_ratio:.0%} of tokens predicted (sparse head):",
        f"  forward  {f['forward'] / 1e6:12.2f} M   (encoder linear {f['encoder_linear'] / 1e6:.2f} M, "
        f"attention mixing {f['attention_mixing'] / 1e6:.2f} M, head {f['head_sparse'] / 1e6:.2f} M)",
        f"  training {f['train'] / 1e6:12.2f} M   (with a dense head at every token: {f['train_dense_head'] / 1e6:.2f} M)",
    ]
    return "\n".join(lines)


__all__ = ["Component", "flops_per_token", "format_info", "parameter_breakdown", "resolve_config"]
