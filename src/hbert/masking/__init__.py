"""Masking strategies: called inside the training step, on the training device, they turn a batch of blocks into
masked inputs and labels. Every strategy masks a fixed number of tokens per sequence, never special tokens or
padding, and applies the configured replacement split."""

from .base import (
    MASKING_KINDS,
    MaskedBatch,
    MaskingStrategy,
    apply_replacement,
    build_masking,
    candidate_mask,
    mask_counts,
    masking_class,
    register_masking,
)
from .random import RandomMasking  # registers masking.kind=random, the baseline, listed first

# isort: split
from .entropy import EntropyMasking  # registers masking.kind=entropy

__all__ = [
    "MASKING_KINDS",
    "EntropyMasking",
    "MaskedBatch",
    "MaskingStrategy",
    "RandomMasking",
    "apply_replacement",
    "build_masking",
    "candidate_mask",
    "mask_counts",
    "masking_class",
    "register_masking",
]
