"""How much of the machine a run got.

A wall-clock budget buys the same work only when every run gets the same share of the machine. On a CPU the share
is the process's CPU time over wall-clock x the threads it may use: about 1.0 on an idle machine, about 0.5 when a
competing process takes half of every core. Reports compare it across arms and flag the ones that got notably less
(a token or step budget is immune to this: prefer one on a shared machine).
"""

from __future__ import annotations

import time

import torch

# an arm whose share falls below this fraction of the best arm's share is flagged in reports
LOW_SHARE = 0.8


class MachineShare:
    """Measures the CPU share of the process between ``start()`` and ``report()`` (``None`` on a GPU, where the
    host CPU is not the device doing the work)."""

    # the clocks, swappable so a test can simulate a competing process without loading the machine
    cpu_clock = staticmethod(time.process_time)
    wall_clock = staticmethod(time.perf_counter)

    def __init__(self, device_type: str = "cpu"):
        self.device_type = device_type
        self.threads = torch.get_num_threads()
        self.start()

    def start(self) -> None:
        self._cpu0 = self.cpu_clock()
        self._wall0 = self.wall_clock()

    def report(self) -> dict:
        wall = self.wall_clock() - self._wall0
        cpu = self.cpu_clock() - self._cpu0
        share = cpu / max(wall * self.threads, 1e-9) if self.device_type == "cpu" else None
        return {"threads": self.threads, "cpu_seconds": round(cpu, 2), "wall_seconds": round(wall, 2),
                "cpu_share": None if share is None else round(min(share, 1.0), 3)}  # fmt: skip


def flag_low_share(shares: dict[str, float | None], threshold: float = LOW_SHARE) -> dict[str, bool]:
    """{name: True} for every run whose share is below ``threshold`` x the best share among ``shares``."""
    known = [s for s in shares.values() if s is not None]
    if not known:
        return {name: False for name in shares}
    best = max(known)
    return {name: s is not None and s < threshold * best for name, s in shares.items()}
