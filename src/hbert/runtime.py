"""Where a computation runs and in what precision: the one place that turns the ``device`` and ``precision``
settings of pretraining, fine-tuning and the command line into a ``torch.device`` and an autocast context.

These are speed settings: they never change which tokens are masked or what is optimised, only how fast (and, for
reduced precision, how exactly) it is computed.
"""

from __future__ import annotations

import contextlib
import platform
import time

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class DeviceError(RuntimeError):
    pass


def cuda_available() -> bool:
    return torch.cuda.is_available()


def device_kind(setting: str) -> str:
    """The kind of device (cuda or cpu) a setting asks for (``auto`` = CUDA when there is one)."""
    return "cuda" if setting.startswith("cuda") or (setting == "auto" and cuda_available()) else "cpu"


def resolve_device(setting: str = "auto", local_rank: int = 0, key: str = "impl.device") -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> a device; a bare ``cuda`` (or ``auto`` on a GPU machine) is
    this process's GPU, ``cuda:{local_rank}``. ``key`` names the setting in the error message."""
    if setting == "auto":
        return torch.device(f"cuda:{local_rank}") if cuda_available() else torch.device("cpu")
    device = torch.device(setting)
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    if device.type == "cuda" and not cuda_available():
        raise DeviceError(f"{key}=cuda but no CUDA device is available; accepted here: cpu or auto")
    return device


def resolve_precision(setting: str, device: torch.device, key: str = "impl.precision") -> str:
    """``auto`` -> bf16 on a GPU that supports it (else fp16) and on CPUs with AVX512 / AMX (else fp32)."""
    if setting == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if torch.backends.cpu.get_cpu_capability() in ("AVX512", "AMX") else "fp32"
    if setting not in PRECISIONS:
        raise DeviceError(f"{key}={setting!r}; accepted: {', '.join(PRECISIONS)}")
    if setting == "fp16" and device.type != "cuda":
        raise DeviceError(f"{key}=fp16 needs a CUDA device (loss scaling); use bf16 or fp32 on CPU")
    return setting


def allow_tf32(device: torch.device) -> None:
    """On an Ampere or newer GPU, let float32 matmuls use TF32 tensor cores (about 8x the fp32 rate; 10-bit
    mantissa inputs, float32 accumulation), the setting fine-tuning recipes such as Hugging Face's run_glue use on
    these GPUs. Nothing changes on a CPU."""
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")


def autocast(device: torch.device, precision: str):
    """The forward's mixed-precision context: none for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def environment(device: torch.device, precision: str, world_size: int) -> dict:
    """What a run ran on (versions, platform, device, precision, processes, threads): a run folder's env.json."""
    import transformers  # only for its version: commands that need torch alone do not pay for loading it

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "precision": precision,
        "world_size": world_size,
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


# ------------------------------------------------------------------------------------------ GPU-friendly pieces

CUDA_CHUNK_BYTES = 1 << 30  # a chunk's float32 temporaries on a GPU: few kernel launches, bounded memory


def chunk_rows(device: torch.device, row_bytes: int, cpu_rows: int) -> int:
    """Rows per chunk of a row-chunked computation (entropy, cross-entropy, the scoring head): ``cpu_rows`` on a
    CPU (tuned so a chunk stays in cache), as many as fit in ``CUDA_CHUNK_BYTES`` on a GPU (each chunk is a few
    kernel launches: chunking by cache size there would mean thousands of launches per step)."""
    if device.type != "cuda":
        return cpu_rows
    return max(cpu_rows, CUDA_CHUNK_BYTES // max(1, row_bytes))


class Timer:
    """Adds up the time spent in ``with timer.region(device):`` blocks. On CUDA the time is the device's; ``lazy``
    records CUDA events instead of synchronising and reads them (one synchronisation) only when ``seconds`` is
    asked for, so a training step timed this way stays free of host synchronisations."""

    def __init__(self, lazy: bool = False):
        self.lazy = lazy
        self._seconds = 0.0
        self._events: list = []

    @contextlib.contextmanager
    def region(self, device: torch.device):
        if device.type == "cuda" and self.lazy:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self._events.append((start, end))
            return
        begin = time.perf_counter()
        yield
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        self._seconds += time.perf_counter() - begin

    @property
    def seconds(self) -> float:
        for start, end in self._events:
            end.synchronize()
            self._seconds += start.elapsed_time(end) / 1000
        self._events.clear()
        return self._seconds

    def subtract(self, seconds: float) -> None:
        self._seconds -= seconds


# Operations that make the host wait for the device when their input is on a GPU (the result must be read, or
# its size depends on the data); ``count_host_syncs`` counts them on any device, so a CPU test can show that a
# GPU step would not stop.
SYNC_METHODS = frozenset({"item", "tolist", "numpy", "nonzero", "argwhere", "masked_select", "unique",
                          "unique_consecutive", "__bool__", "__float__", "__int__", "__index__"})  # fmt: skip


class HostSyncCounter(torch.overrides.TorchFunctionMode):
    """Counts the known host-synchronising operations (``SYNC_METHODS``, indexing with a boolean mask) and
    ``torch.cuda.synchronize`` calls made while active; ``where`` names each one."""

    def __init__(self):
        super().__init__()
        self.where: list[str] = []

    @property
    def count(self) -> int:
        return len(self.where)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in SYNC_METHODS:
            self.where.append(name)
        elif name in ("__getitem__", "__setitem__") and len(args) > 1 and _has_bool_mask(args[1]):
            self.where.append(f"{name} with a boolean mask")
        return func(*args, **(kwargs or {}))


def _has_bool_mask(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool and i.ndim > 0 for i in items)


@contextlib.contextmanager
def count_host_syncs():
    """``with count_host_syncs() as syncs: ...`` then ``syncs.count`` / ``syncs.where``."""
    counter = HostSyncCounter()
    original = torch.cuda.synchronize

    def synchronize(*args, **kwargs):
        counter.where.append("torch.cuda.synchronize")
        return original(*args, **kwargs)

    torch.cuda.synchronize = synchronize
    try:
        with counter:
            yield counter
    finally:
        torch.cuda.synchronize = original
