"""Where a computation runs and in what precision: the one place that turns the ``device`` and ``precision``
settings of pretraining, fine-tuning and the command line into a ``torch.device`` and an autocast context.

These are speed settings: they never change which tokens are masked or what is optimised, only how fast (and, for
reduced precision, how exactly) it is computed.
"""

from __future__ import annotations

import contextlib

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


def autocast(device: torch.device, precision: str):
    """The forward's mixed-precision context: none for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
