"""The order in which a pretraining run reads a corpus's train blocks."""

from __future__ import annotations

import numpy as np


class BlockSampler:
    """Seeded permutation of the blocks per epoch; rank r takes every world-th index. Its state (epoch, cursor)
    is the data position saved in checkpoints."""

    def __init__(self, n_blocks: int, seed: int, rank: int, world: int):
        if n_blocks < world:
            raise ValueError(f"the corpus has {n_blocks} train blocks, fewer than the {world} ranks")
        self.n, self.seed, self.rank, self.world = n_blocks, seed, rank, world
        self.epoch, self.cursor = 0, 0
        self._order = self._make_order()

    def _make_order(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.n)[self.rank :: self.world]

    def take(self, k: int) -> np.ndarray:
        out = []
        while k > 0:
            if self.cursor >= len(self._order):
                self.epoch, self.cursor = self.epoch + 1, 0
                self._order = self._make_order()
            chunk = self._order[self.cursor : self.cursor + k]
            self.cursor += len(chunk)
            k -= len(chunk)
            out.append(chunk)
        return np.concatenate(out)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])
        self._order = self._make_order()
