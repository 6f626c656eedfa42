import pytest
import torch

from hbert import HBertConfig

TINY = {
    "vocab_size": 120,
    "hidden_size": 32,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def tiny_config(preset: str = "bert", **overrides) -> HBertConfig:
    return HBertConfig.from_preset(preset, **{**TINY, **overrides})


def padded_batch(vocab_size: int = 120, lengths=(20, 13, 6), pad_id: int = 0):
    """Random ids with right padding: (ids, attention_mask), both (B, T)."""
    T = max(lengths)
    ids = torch.randint(5, vocab_size, (len(lengths), T))
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    ids[mask == 0] = pad_id
    return ids, mask
