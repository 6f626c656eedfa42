"""The hbert model family as native Hugging Face models (config, encoder, heads, conversion)."""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from .configuration_hbert import LAYER_KINDS, NORM_SCHEMES, PRESETS, HBertConfig
from .modeling_hbert import (
    HBertForMaskedLM,
    HBertForMultipleChoice,
    HBertForQuestionAnswering,
    HBertForSequenceClassification,
    HBertForTokenClassification,
    HBertMaskedLMOutput,
    HBertModel,
    HBertPreTrainedModel,
)

AutoConfig.register("hbert", HBertConfig, exist_ok=True)
AutoModel.register(HBertConfig, HBertModel, exist_ok=True)
AutoModelForMaskedLM.register(HBertConfig, HBertForMaskedLM, exist_ok=True)
AutoModelForSequenceClassification.register(HBertConfig, HBertForSequenceClassification, exist_ok=True)
AutoModelForTokenClassification.register(HBertConfig, HBertForTokenClassification, exist_ok=True)
AutoModelForQuestionAnswering.register(HBertConfig, HBertForQuestionAnswering, exist_ok=True)
AutoModelForMultipleChoice.register(HBertConfig, HBertForMultipleChoice, exist_ok=True)

__all__ = [
    "LAYER_KINDS",
    "NORM_SCHEMES",
    "PRESETS",
    "HBertConfig",
    "HBertForMaskedLM",
    "HBertForMultipleChoice",
    "HBertForQuestionAnswering",
    "HBertForSequenceClassification",
    "HBertForTokenClassification",
    "HBertMaskedLMOutput",
    "HBertModel",
    "HBertPreTrainedModel",
]
