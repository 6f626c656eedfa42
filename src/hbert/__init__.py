"""hbert: compute-budgeted pretraining of BERT-style encoders (HybridBERT, entropy-aware masking)."""

from .modeling import (
    PRESETS,
    HBertConfig,
    HBertForMaskedLM,
    HBertForSequenceClassification,
    HBertModel,
)

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "HBertConfig",
    "HBertForMaskedLM",
    "HBertForSequenceClassification",
    "HBertModel",
    "__version__",
]
