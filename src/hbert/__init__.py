"""hbert: compute-budgeted pretraining of BERT-style encoders (HybridBERT, entropy-aware masking).

The model classes are imported on first use, so that commands which do not need torch (``hbert data ...``)
start quickly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_LAZY = {
    "HBertConfig": "hbert.modeling",
    "HBertModel": "hbert.modeling",
    "HBertForMaskedLM": "hbert.modeling",
    "HBertForSequenceClassification": "hbert.modeling",
    "HBertForTokenClassification": "hbert.modeling",
    "HBertForQuestionAnswering": "hbert.modeling",
    "HBertForMultipleChoice": "hbert.modeling",
    "PRESETS": "hbert.modeling",
}

if TYPE_CHECKING:
    from .modeling import (
        PRESETS,
        HBertConfig,
        HBertForMaskedLM,
        HBertForMultipleChoice,
        HBertForQuestionAnswering,
        HBertForSequenceClassification,
        HBertForTokenClassification,
        HBertModel,
    )


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hbert' has no attribute {name!r}")


__all__ = [
    "PRESETS",
    "HBertConfig",
    "HBertForMaskedLM",
    "HBertForMultipleChoice",
    "HBertForQuestionAnswering",
    "HBertForSequenceClassification",
    "HBertForTokenClassification",
    "HBertModel",
    "__version__",
]
