"""Masking strategies: called inside the training step, on the training device, they turn a batch of blocks into
masked inputs and labels. Every strategy masks a fixed number of tokens per sequence, never special tokens or
padding, and applies the configured replacement split."""

from .base import MaskedBatch, MaskingStrategy, apply_replacement, build_masking, candidate_mask, mask_counts
from .random import RandomMasking

__all__ = [
    "MaskedBatch",
    "MaskingStrategy",
    "RandomMasking",
    "apply_replacement",
    "build_masking",
    "candidate_mask",
    "mask_counts",
]
