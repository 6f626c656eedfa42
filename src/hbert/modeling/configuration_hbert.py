"""Configuration of the hbert encoder family.

This file is copied next to every saved checkpoint (Hugging Face remote code), so it imports only
``transformers``, the standard library and its sibling ``attention_hbert.py`` (the registry of attention kinds,
which ``layer_types`` is checked against).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from transformers import PretrainedConfig

from .attention_hbert import ATTENTION_KINDS, attention_kind, kind_settings

LAYER_KINDS = ATTENTION_KINDS.keys()  # a live view: a kind registered later is accepted too
NORM_SCHEMES = ("post", "pre", "subln")
POSITION_TYPES = ("learned", "sinusoidal")

_STORED_KINDS_KEY = "attention_kinds"

_AUTO_MAP = {
    "AutoConfig": "configuration_hbert.HBertConfig",
    "AutoModel": "modeling_hbert.HBertModel",
    "AutoModelForMaskedLM": "modeling_hbert.HBertForMaskedLM",
    "AutoModelForSequenceClassification": "modeling_hbert.HBertForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_hbert.HBertForTokenClassification",
    "AutoModelForQuestionAnswering": "modeling_hbert.HBertForQuestionAnswering",
    "AutoModelForMultipleChoice": "modeling_hbert.HBertForMultipleChoice",
}


def _alternating(n: int) -> list[str]:
    return ["softmax" if i % 2 == 0 else "additive" for i in range(n)]


def _additive_below(n: int) -> list[str]:
    return ["additive" if i < n // 2 else "softmax" for i in range(n)]


# A preset is a set of field values; ``layer_types`` is a function of the number of layers so that a
# preset keeps its pattern when the depth is overridden.
PRESETS: dict[str, dict[str, Any]] = {
    "bert": {"layer_types": lambda n: ["softmax"] * n, "norm_scheme": "post"},
    "additive": {"layer_types": lambda n: ["additive"] * n, "norm_scheme": "post"},
    "hbert-v1": {"layer_types": _alternating, "norm_scheme": "subln"},
    "hbert-v2": {"layer_types": _additive_below, "norm_scheme": "subln"},
    "hbert-mix": {"layer_types": lambda n: ["mixture"] * n, "norm_scheme": "subln"},
}


def parse_layer_types(value: str | Sequence[str] | None, num_layers: int) -> list[str]:
    """Normalise ``layer_types`` to one kind name per layer.

    Accepts ``None`` (all softmax), a letter pattern such as ``"SASA"`` (S = softmax, A = additive,
    M = mixture, or the letter of any registered kind), a comma-separated string of names, or a list of names /
    letters.
    """
    if value is None:
        return ["softmax"] * num_layers
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")] if "," in value else list(value.strip())
        if "," not in value and value.strip().lower() in LAYER_KINDS:
            items = [value.strip()]
    else:
        items = list(value)
    kinds = []
    for item in items:
        try:
            kinds.append(attention_kind(str(item)).name)
        except ValueError as err:
            raise ValueError(f"layer_types: {err}") from None
    if len(kinds) != num_layers:
        raise ValueError(
            f"layer_types has {len(kinds)} entries ({_pattern(kinds)}) but "
            f"num_hidden_layers is {num_layers}; give exactly one kind per layer"
        )
    return kinds


def _pattern(kinds: Sequence[str]) -> str:
    return "".join(ATTENTION_KINDS[kind].letter for kind in kinds)


# The accepted range of each size (inclusive): wide enough for any real encoder (DeepNet trained 1,000 layers),
# narrow enough that an absurd value is refused at once instead of building a model for minutes or hours.
SHAPE_LIMITS = {
    "vocab_size": (1, 2**24),
    "hidden_size": (1, 2**16),
    "num_hidden_layers": (1, 1024),
    "num_attention_heads": (1, 2**12),
    "intermediate_size": (1, 2**18),
    "max_position_embeddings": (1, 2**20),
    "type_vocab_size": (0, 2**10),
}
_SHARES = ("hidden_dropout_prob", "attention_probs_dropout_prob")


def _check_shape(config) -> None:
    """Each size a whole number in its range, each dropout a share in [0, 1), the epsilon positive."""
    for name, (low, high) in SHAPE_LIMITS.items():
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name}={value!r}; accepted: a whole number >= {low} and <= {high}")
    for name in _SHARES:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise ValueError(f"{name}={value!r}; accepted: a number in [0, 1)")
    if config.classifier_dropout is not None and not (
        isinstance(config.classifier_dropout, (int, float)) and 0.0 <= config.classifier_dropout < 1.0
    ):
        raise ValueError(f"classifier_dropout={config.classifier_dropout!r}; accepted: a number in [0, 1), or null")
    eps = config.layer_norm_eps
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 < eps < 1.0:
        raise ValueError(f"layer_norm_eps={eps!r}; accepted: a number in (0, 1)")


class HBertConfig(PretrainedConfig):
    r"""Configuration of an hbert encoder (a BERT-style encoder whose layers may use softmax attention,
    Fastformer additive attention, or a gated mixture of both).

    Args:
        vocab_size (`int`, defaults to 30522): number of token ids (bert-base-uncased's WordPiece vocabulary).
        hidden_size (`int`, defaults to 768): width of the residual stream.
        num_hidden_layers (`int`, defaults to 12): number of encoder layers.
        num_attention_heads (`int`, defaults to 12): heads per attention layer, of every kind; must divide
            `hidden_size`.
        intermediate_size (`int`, defaults to 3072): inner width of the feed-forward sub-layer.
        hidden_act (`str`, defaults to `"gelu"`): activation of the feed-forward sub-layer and of the MLM head
            transform (any name of `transformers.activations.ACT2FN`, e.g. `"gelu"`, `"relu"`).
        hidden_dropout_prob (`float`, defaults to 0.1): dropout on embeddings and on every sub-layer output.
        attention_probs_dropout_prob (`float`, defaults to 0.1): dropout on softmax attention probabilities and on
            the additive-attention pooling weights.
        max_position_embeddings (`int`, defaults to 512): longest sequence the position table covers.
        position_embedding_type (`str`, defaults to `"learned"`): `"learned"` (a trained table, as BERT) or
            `"sinusoidal"` (fixed, as the HybridBERT authors' DistilBERT-based code).
        type_vocab_size (`int`, defaults to 2): number of token-type (segment) ids; 0 removes token-type
            embeddings altogether.
        layer_types (`list[str]` or `str`, defaults to all `"softmax"`): the attention kind of each layer, one entry
            per layer: `"softmax"` (scaled dot-product attention), `"additive"` (Fastformer, linear in length) or
            `"mixture"` (both in parallel, combined by a learned per-head gate). A letter pattern such as
            `"SASA"` (S/A/M) is accepted and normalised to the list of names.
        norm_scheme (`str`, defaults to `"post"`): `"post"` (BERT: LN(x + f(x))), `"pre"` (x + f(LN(x)), with a final
            LayerNorm) or `"subln"` (Magneto Sub-LN: x + W_out LN(g(W_in LN(x))) in both sub-layers, with a final
            LayerNorm).
        layer_norm_eps (`float`, defaults to 1e-12): epsilon of every LayerNorm.
        initializer_range (`float`, defaults to 0.02): standard deviation of the normal weight initialisation.
        tie_word_embeddings (`bool`, defaults to `True`): the MLM decoder shares the word-embedding matrix.
        classifier_dropout (`float`, *optional*): dropout before the sequence-classification layer; defaults to
            `hidden_dropout_prob`.
        pad_token_id (`int`, defaults to 0): id of `[PAD]`; its embedding starts at zero.

    Presets (`HBertConfig.from_preset(name, **overrides)`): `bert`, `additive`, `hbert-v1` (softmax and additive
    layers alternate, Sub-LN), `hbert-v2` (additive lower half, softmax upper half, Sub-LN), `hbert-mix` (mixture
    in every layer, Sub-LN). They share the BERT-base shape unless overridden.
    """

    model_type = "hbert"

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    position_embedding_type: str = "learned"
    type_vocab_size: int = 2
    layer_types: Any = None
    norm_scheme: str = "post"
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    tie_word_embeddings: bool = True
    classifier_dropout: float | None = None
    pad_token_id: int | None = 0

    def __post_init__(self, **kwargs: Any) -> None:
        stored = kwargs.pop(_STORED_KINDS_KEY, None)
        if stored is not None and self.layer_types is None:
            self.layer_types = stored
        _check_shape(self)
        self.layer_types = parse_layer_types(self.layer_types, int(self.num_hidden_layers))
        if self.norm_scheme not in NORM_SCHEMES:
            raise ValueError(f"norm_scheme: unknown value {self.norm_scheme!r}; accepted: {', '.join(NORM_SCHEMES)}")
        if self.position_embedding_type not in POSITION_TYPES:
            raise ValueError(
                f"position_embedding_type: unknown value {self.position_embedding_type!r}; "
                f"accepted: {', '.join(POSITION_TYPES)}"
            )
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads}); accepted: a head count that divides the hidden size"
            )
        kwargs.setdefault("auto_map", dict(_AUTO_MAP))
        super().__post_init__(**kwargs)
        for name, f in kind_settings(self.layer_types).items():  # the settings of the kinds in use, at their defaults
            if not hasattr(self, name):
                setattr(self, name, f.default_factory() if f.default is dataclasses.MISSING else f.default)

    def to_dict(self) -> dict[str, Any]:
        """Serialised with the layer kinds under ``attention_kinds``: transformers' generic config code (used,
        e.g., by ``AutoTokenizer`` on a checkpoint without remote code) validates any ``layer_types`` key against
        its own kinds and would refuse hbert's."""
        data = super().to_dict()
        if "layer_types" in data:
            data[_STORED_KINDS_KEY] = data.pop("layer_types")
        return data

    def validate_layer_type(self) -> None:
        """transformers checks ``layer_types`` against its own attention kinds on save; hbert's kinds differ."""
        parse_layer_types(self.layer_types, int(self.num_hidden_layers))

    def validate(self) -> None:
        """transformers' save-time validators, with hbert's own ``layer_types`` check in place of its generic one."""
        for validator in getattr(type(self), "__class_validators__", []):
            if validator.__name__ != "validate_layer_type":
                validator(self)
        self.validate_layer_type()

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def layer_pattern(self) -> str:
        """The layer kinds as letters, e.g. ``"SASA"``."""
        return _pattern(self.layer_types)

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of the architecture fields a user may set (the documented ones above, and the settings of every
        registered attention kind)."""
        own = [name for name in cls.__annotations__ if not name.startswith("_") and name not in ("model_type",)]
        return [*own, "num_labels", "problem_type", "id2label", "label2id", *kind_settings()]

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> HBertConfig:
        """Build the config of a named preset, with any field overridden.

        ``HBertConfig.from_preset("hbert-v1", hidden_size=256, num_hidden_layers=4)`` keeps the preset's
        layer pattern at the new depth unless ``layer_types`` is given too.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; accepted: {', '.join(PRESETS)}")
        allowed = set(cls.field_names())
        unknown = sorted(set(overrides) - allowed)
        if unknown:
            raise ValueError(f"unknown config field(s) {', '.join(unknown)}; accepted: {', '.join(sorted(allowed))}")
        fields = {k: v for k, v in PRESETS[name].items()}
        num_layers = int(overrides.get("num_hidden_layers", cls.num_hidden_layers))
        pattern: Callable[[int], list[str]] = fields.pop("layer_types")
        fields["layer_types"] = pattern(num_layers)
        fields.update(overrides)
        return cls(**fields)


HBertConfig.register_for_auto_class()

__all__ = ["LAYER_KINDS", "NORM_SCHEMES", "PRESETS", "HBertConfig", "parse_layer_types"]
