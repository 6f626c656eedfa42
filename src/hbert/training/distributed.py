"""One process per device (``torchrun`` for several): which rank this is, and the collective decisions every rank
must take together (a rank's own clock or loss alone could disagree with the others')."""

from __future__ import annotations

import atexit
import dataclasses
import functools
import os

import torch
import torch.distributed as dist


@dataclasses.dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    host_group: object = None  # a gloo group for host-side decisions when the main group is NCCL (no GPU wait)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def any_of(self, *flags: bool, device: torch.device | None = None) -> tuple[bool, ...]:
        """Each flag true on any rank -> true on all ranks."""
        if self.world == 1:
            return flags
        t = torch.tensor([1 if f else 0 for f in flags], device=self._host(device))
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.host_group)
        return tuple(bool(v) for v in t.tolist())

    def _host(self, device):
        return "cpu" if self.host_group is not None else device

    def any_tensor(self, flag: torch.Tensor) -> torch.Tensor:
        """A boolean device scalar true on any rank -> true on all ranks, without reading it on the host."""
        if self.world == 1:
            return flag
        t = flag.to(torch.int32)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.bool()

    def max_and_any(self, value: float, *flags: bool, device: torch.device | None = None) -> tuple:
        """(the largest ``value`` over the ranks, each flag true on any rank): one all-reduce for both."""
        if self.world == 1:
            return (value, *flags)
        t = torch.tensor([value, *(1.0 if f else 0.0 for f in flags)], device=self._host(device), dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.host_group)
        values = t.tolist()
        return (values[0], *(v > 0 for v in values[1:]))

    def max_of(self, value: float, device: torch.device | None = None) -> float:
        """The largest ``value`` over the ranks (e.g. the slowest rank's step time)."""
        if self.world == 1:
            return value
        return self.max_and_any(value, device=device)[0]

    def gather(self, obj) -> list:
        """``obj`` of every rank, in rank order."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def setup_distributed(device_kind: str) -> Dist:
    """Join the process group ``torchrun`` describes (one process per device). On CUDA the rank's device is set
    first and named to ``init_process_group``, so NCCL binds each rank to its own GPU from the start."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if device_kind == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
        atexit.register(teardown_distributed)  # at exit, after every run of this process (a recipe's arms share it)
    host_group = _gloo_group() if dist.get_backend() == "nccl" else None
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank, host_group)


@functools.lru_cache(maxsize=1)
def _gloo_group():
    """A gloo group over every rank, made once per process (by every rank, as new_group requires)."""
    return dist.new_group(backend="gloo")


def teardown_distributed() -> None:
    """Leave the process group when the process exits (also after an error), so that NCCL shuts down cleanly."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
