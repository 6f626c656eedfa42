"""Random masking: the baseline. Exactly k = round(ratio x real tokens) positions per sequence, uniformly."""

from __future__ import annotations

import torch

from .base import MaskingStrategy, register_masking, top_k_positions


@register_masking("random")
class RandomMasking(MaskingStrategy):
    def select(self, input_ids, candidates, counts, generator, model=None, progress: float = 0.0) -> torch.Tensor:
        scores = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
        scores = scores.masked_fill(~candidates, float("-inf"))
        return top_k_positions(scores, counts)
