"""Which tokens a masking strategy picks, by frequency: each token id's frequency bucket in a corpus, and the share
of a batch's selected positions in each bucket (logged with a run's step records)."""

from __future__ import annotations

import numpy as np
import torch

from ..data.corpus import Corpus
from .base import MaskedBatch

BUCKETS = ((0, 100), (100, 1000), (1000, 10000), (10000, None))


def frequency_buckets(corpus: Corpus, vocab_size: int, sample_blocks: int = 20000) -> torch.Tensor:
    """(V,) bucket of each token id by its frequency rank in the train split: 0 = the 100 most frequent, 1 = ranks
    100-1k, 2 = 1k-10k, 3 = rarer. Used to report which tokens a masking strategy picks."""
    blocks = corpus.blocks("train")
    counts = np.bincount(np.asarray(blocks[: min(sample_blocks, len(blocks))]).reshape(-1), minlength=vocab_size)
    rank = np.empty(vocab_size, dtype=np.int64)
    rank[np.argsort(-counts[:vocab_size], kind="stable")] = np.arange(vocab_size)
    bucket = np.digitize(rank, [100, 1000, 10000])
    return torch.from_numpy(bucket)


def bucket_shares(buckets: torch.Tensor, masked: MaskedBatch) -> dict[str, float]:
    """{mask_share_...: share} of the selected positions of ``masked`` in each frequency bucket ({} when none)."""
    ids = masked.labels[masked.selected]
    if ids.numel() == 0:
        return {}
    shares = torch.bincount(buckets[ids], minlength=4).float() / ids.numel()
    names = ("mask_share_top100", "mask_share_100_1k", "mask_share_1k_10k", "mask_share_rare")
    return {name: round(float(v), 4) for name, v in zip(names, shares)}
