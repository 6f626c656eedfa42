"""Optional dependencies: imported where they are used, with one clear message naming the extra when missing.

The core (models, pretraining on a prepared corpus, the GPU check) needs only torch, transformers, tokenizers,
safetensors, numpy, PyYAML and tqdm, so hbert installs into an existing GPU environment without replacing it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# module -> (pip distribution, hbert extra that installs it)
EXTRAS = {
    "datasets": ("datasets", "data"),
    "rdata": ("rdata", "data"),
    "scipy": ("scipy", "eval"),
    "sklearn": ("scikit-learn", "eval"),
    "matplotlib": ("matplotlib", "report"),
    "tensorboard": ("tensorboard", "report"),
}


class MissingDependency(RuntimeError):
    """An optional package is not installed; the message names the extra that installs it."""


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` saying what needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        dist, extra = EXTRAS.get(module.split(".")[0], (module, "all"))
        raise MissingDependency(
            f"{purpose} needs the optional package {dist!r}, which is not installed: "
            f"pip install 'hbert[{extra}]' (or pip install {dist})"
        ) from err
