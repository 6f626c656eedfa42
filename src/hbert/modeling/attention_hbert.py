"""The attention kinds of hbert and their registry: one record per kind says everything the rest of hbert needs
to know about it (its letter in a layer pattern, its module, its FLOP formula, which weights Sub-LN init scales).
The config validates ``layer_types`` against it, the encoder builds its layers from it, ``hbert info`` counts
FLOPs with it, Sub-LN init and freezing (``init.freeze=<kind>``) read it: adding a kind is one
``register_attention_kind`` call plus its test.

Shapes: B = batch, T = sequence length, H = hidden size, N = heads, D = head size (H = N * D).

This file is copied next to every saved checkpoint (Hugging Face remote code) with ``modeling_hbert.py`` and
``configuration_hbert.py``, so it imports only torch, transformers and its sibling ``ops_hbert.py``; a kind
registered outside this file works in-process but is not part of an exported checkpoint's code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init

from .ops_hbert import Dropout, dropout

if TYPE_CHECKING:  # the config imports this file (to validate kinds), so no import back at run time
    from .configuration_hbert import HBertConfig


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, T, H) -> (B, T, N, D)."""
    B, T, H = x.shape
    return x.view(B, T, num_heads, H // num_heads)


class SoftmaxAttention(nn.Module):
    """Multi-head scaled dot-product attention through ``F.scaled_dot_product_attention``.

    Returns the per-token context before the output projection, (B, T, H), and, when asked, the attention
    probabilities (B, N, T, T), computed explicitly (SDPA never materialises them).
    """

    def __init__(self, config: HBertConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(
        self, x: torch.Tensor, key_mask: torch.Tensor | None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, H = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.num_heads, H // self.num_heads).permute(2, 0, 3, 1, 4)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, T), True = attend
        explicit_dropout = self.training and self.dropout_p > 0 and q.device.type == "cpu"
        probs = None
        if output_attentions or (explicit_dropout and not torch.compiler.is_compiling()):
            # on CPU, SDPA with dropout falls back to this same computation with a slower random mask
            scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # (B, N, T, T)
            if attn_mask is not None:
                scores = scores.masked_fill(~attn_mask, torch.finfo(scores.dtype).min)
            probs = scores.softmax(dim=-1)
            ctx = dropout(probs, self.dropout_p, self.training) @ v
        else:
            ctx = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask, dropout_p=self.dropout_p if self.training else 0.0
            )  # (B, N, T, D)
        return ctx.transpose(1, 2).reshape(B, T, H), probs if output_attentions else None


class AdditiveAttention(nn.Module):
    """Fastformer additive attention, per head (D = head size, w_q and w_k learned vectors of size D):

        alpha = softmax_t(w_q . q_t / sqrt(D));  g_q = sum_t alpha_t q_t
        p_t = g_q * k_t;  beta = softmax_t(w_k . p_t / sqrt(D));  g_k = sum_t beta_t p_t
        u_t = g_k * v_t;  out_t = W_t u_t + q_t

    Padding positions get no weight in either softmax. Cost is linear in T.
    Returns (B, T, H), before the sub-layer's output projection, and, when asked, the two pooling distributions
    (its attention) as (B, N, 2, T): row 0 = alpha (query pooling), row 1 = beta (key pooling).
    """

    def __init__(self, config: HBertConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        head_dim = config.hidden_size // config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        std = config.initializer_range  # (re-initialised by the model's _init_weights; valid standalone too)
        self.query_score = nn.Parameter(torch.randn(self.num_heads, head_dim) * std)  # w_q, one per head
        self.key_score = nn.Parameter(torch.randn(self.num_heads, head_dim) * std)  # w_k, one per head
        self.transform = nn.Linear(config.hidden_size, config.hidden_size)  # W_t
        self.scale = head_dim**-0.5
        self.dropout = Dropout(config.attention_probs_dropout_prob)

    def init_own_weights(self, std: float) -> None:
        """The model's ``_init_weights`` calls this for the parameters that are not in a Linear / LayerNorm."""
        init.normal_(self.query_score, mean=0.0, std=std)
        init.normal_(self.key_score, mean=0.0, std=std)

    def _pool(
        self, x: torch.Tensor, w: torch.Tensor, key_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Softmax-weighted sum over positions, per head: (B, T, N, D) -> (B, 1, N, D), and the weights (B, T, N)."""
        scores = (x * w).sum(-1).float() * self.scale  # (B, T, N), float32 for a stable softmax
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask[:, :, None], torch.finfo(scores.dtype).min)
        probs = scores.softmax(dim=1)
        weights = self.dropout(probs).to(x.dtype)
        return torch.einsum("btn,btnd->bnd", weights, x)[:, None], probs

    def forward(
        self, x: torch.Tensor, key_mask: torch.Tensor | None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, H = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.num_heads, H // self.num_heads).unbind(2)  # each (B, T, N, D)
        global_q, alpha = self._pool(q, self.query_score, key_mask)
        p = global_q * k
        global_k, beta = self._pool(p, self.key_score, key_mask)
        u = (global_k * v).reshape(B, T, H)
        weights = torch.stack([alpha, beta], dim=1).permute(0, 3, 1, 2) if output_attentions else None  # (B,N,2,T)
        return self.transform(u) + q.reshape(B, T, H), weights


class MixtureAttention(nn.Module):
    """Softmax and additive attention in parallel on the same input, combined per token and head by a learned
    gate: ctx = g * softmax_ctx + (1 - g) * additive_ctx, g = sigmoid(W_g x) in (0, 1) (starts near 0.5).
    Its attention output, when asked, is the softmax branch's probabilities (B, N, T, T)."""

    def __init__(self, config: HBertConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.softmax = SoftmaxAttention(config)
        self.additive = AdditiveAttention(config)
        self.gate = nn.Linear(config.hidden_size, config.num_attention_heads)

    def forward(
        self, x: torch.Tensor, key_mask: torch.Tensor | None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, H = x.shape
        g = torch.sigmoid(self.gate(x))[..., None]  # (B, T, N, 1)
        s, probs = self.softmax(x, key_mask, output_attentions)
        a, _ = self.additive(x, key_mask)
        mixed = g * _split_heads(s, self.num_heads) + (1 - g) * _split_heads(a, self.num_heads)
        return mixed.reshape(B, T, H), probs


# ------------------------------------------------------------------------------------------------------ registry

Macs = Callable[[int, int, int], tuple[int, int]]


@dataclass(frozen=True)
class AttentionKind:
    """Everything hbert needs to know about one attention kind.

    name: its name in ``layer_types`` and in ``init.freeze`` (which freezes every layer of the kind).
    letter: its letter in a layer pattern such as ``"SASA"``.
    layer: the module class, built as ``layer(config)``; ``forward(x (B, T, H), key_mask (B, T) bool or None,
        output_attentions)`` returns ``(context (B, T, H) before the sub-layer's output projection, weights or
        None)``. A module with parameters outside Linear / LayerNorm / Embedding initialises them in
        ``init_own_weights(std)``.
    macs: ``(H, N, T) -> (projection MACs, mixing MACs)`` per token, forward, of the module alone (the sub-layer's
        output projection is counted by ``hbert info``); MACs whose count grows with T go in mixing.
    subln_scaled: the module's weights (views) that Magneto's Sub-LN initialisation multiplies by
        sqrt(log 2L): its value projection, where it has one.
    settings: the kind's own model settings, if it has any: a dataclass whose fields (declared with
        ``hbert.settings.setting``: default, choices, range) become fields of every ``HBertConfig`` that uses the
        kind (``model.NAME=...`` in a run, read by ``layer(config)`` as ``config.NAME``), checked with the run's
        other settings.
    """

    name: str
    letter: str
    layer: type[nn.Module]
    macs: Macs
    subln_scaled: Callable[[nn.Module], list[torch.Tensor]]
    settings: type | None = None


ATTENTION_KINDS: dict[str, AttentionKind] = {}


def register_attention_kind(kind: AttentionKind) -> AttentionKind:
    """Add ``kind`` to the registry; its name and letter must be new."""
    taken = {k.letter: k.name for k in ATTENTION_KINDS.values()}
    if not kind.name.isidentifier() or kind.name != kind.name.lower() or kind.name in ATTENTION_KINDS:
        raise ValueError(f"attention kind name {kind.name!r}: a new lower-case identifier is needed; taken: "
                         f"{', '.join(ATTENTION_KINDS)}")  # fmt: skip
    if len(kind.letter) != 1 or not kind.letter.isupper() or kind.letter in taken:
        raise ValueError(f"attention kind {kind.name!r}: letter {kind.letter!r}; a new upper-case letter is needed; "
                         f"taken: {', '.join(taken)}")  # fmt: skip
    if not (isinstance(kind.layer, type) and issubclass(kind.layer, nn.Module)):
        raise ValueError(f"attention kind {kind.name!r}: layer must be an nn.Module class, got {kind.layer!r}")
    for field in ("macs", "subln_scaled"):
        if not callable(getattr(kind, field)):
            raise ValueError(f"attention kind {kind.name!r}: {field} must be a function")
    if kind.settings is not None and not dataclasses.is_dataclass(kind.settings):
        raise ValueError(f"attention kind {kind.name!r}: settings must be a dataclass, got {kind.settings!r}")
    clash = sorted(set(_own_fields(kind)) & set(kind_settings()))
    if clash:
        raise ValueError(f"attention kind {kind.name!r}: setting(s) {', '.join(clash)} exist already")
    ATTENTION_KINDS[kind.name] = kind
    return kind


def _own_fields(kind: AttentionKind) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(kind.settings)} if kind.settings is not None else {}


def kind_settings(kinds: Iterable[str] | None = None) -> dict[str, dataclasses.Field]:
    """The model settings the registered kinds declare (those of ``kinds`` only, when given), by name."""
    chosen = ATTENTION_KINDS.values() if kinds is None else [ATTENTION_KINDS[k] for k in dict.fromkeys(kinds)]
    return {name: f for kind in chosen for name, f in _own_fields(kind).items()}


def _options() -> str:
    letters = ", ".join(k.letter for k in ATTENTION_KINDS.values())
    return f"{', '.join(ATTENTION_KINDS)} (or the letters {letters})"


def attention_kind(name: str) -> AttentionKind:
    """The registered kind called ``name`` (or with that letter); an unknown one names every option."""
    name = str(name).strip()
    by_letter = {k.letter: k for k in ATTENTION_KINDS.values()}
    if len(name) == 1 and name.upper() in by_letter:
        return by_letter[name.upper()]
    if name.lower() in ATTENTION_KINDS:
        return ATTENTION_KINDS[name.lower()]
    raise ValueError(f"unknown attention kind {name!r}; accepted: {_options()}")


def build_attention(config: HBertConfig, name: str) -> nn.Module:
    """The attention module of a layer of kind ``name``."""
    return attention_kind(name).layer(config)


def _value_rows(module: nn.Module) -> list[torch.Tensor]:
    """The value rows of a fused (3H, H) q/k/v projection."""
    H = module.qkv.in_features
    return [module.qkv.weight[2 * H :]]


def _softmax_macs(H: int, N: int, T: int) -> tuple[int, int]:
    return 3 * H * H, 2 * T * H  # q, k, v; QK^T and AV


def _additive_macs(H: int, N: int, T: int) -> tuple[int, int]:
    return 4 * H * H, 6 * H  # q, k, v, transform; two scores, two pools, two products


def _mixture_macs(H: int, N: int, T: int) -> tuple[int, int]:
    (sp, sm), (ap, am) = _softmax_macs(H, N, T), _additive_macs(H, N, T)
    return sp + ap + H * N, sm + am + 2 * H  # both mixers, the gate; the gated sum


register_attention_kind(AttentionKind("softmax", "S", SoftmaxAttention, _softmax_macs, _value_rows))
register_attention_kind(AttentionKind("additive", "A", AdditiveAttention, _additive_macs, _value_rows))
register_attention_kind(
    AttentionKind(
        "mixture", "M", MixtureAttention, _mixture_macs, lambda m: _value_rows(m.softmax) + _value_rows(m.additive)
    )
)

__all__ = [
    "ATTENTION_KINDS",
    "AdditiveAttention",
    "AttentionKind",
    "MixtureAttention",
    "SoftmaxAttention",
    "attention_kind",
    "build_attention",
    "kind_settings",
    "register_attention_kind",
]
