"""The hbert model family as native Hugging Face models (config, encoder, heads, conversion)."""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
)

from .configuration_hbert import LAYER_KINDS, NORM_SCHEMES, PRESETS, HBertConfig
from .modeling_hbert import (
    HBertForMaskedLM,
    HBertForSequenceClassification,
    HBertMaskedLMOutput,
    HBertModel,
    HBertPreTrainedModel,
)

AutoConfig.register("hbert", HBertConfig, exist_ok=True)
AutoModel.register(HBertConfig, HBertModel, exist_ok=True)
AutoModelForMaskedLM.register(HBertConfig, HBertForMaskedLM, exist_ok=True)
AutoModelForSequenceClassification.register(HBertConfig, HBertForSequenceClassification, exist_ok=True)

__all__ = [
    "LAYER_KINDS",
    "NORM_SCHEMES",
    "PRESETS",
    "HBertConfig",
    "HBertForMaskedLM",
    "HBertForSequenceClassification",
    "HBertMaskedLMOutput",
    "HBertModel",
    "HBertPreTrainedModel",
]
