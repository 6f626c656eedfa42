"""The hbert encoder: BERT-style layers whose token mixer is softmax attention, Fastformer additive attention, or a
gated mixture of both, under post-LN, pre-LN or Sub-LN.

Shapes: B = batch, T = sequence length, H = hidden size, N = heads, D = head size (H = N * D), V = vocabulary.

The token mixers (attention kinds) and their registry are in ``attention_hbert.py``. This file is copied next to
every saved checkpoint (Hugging Face remote code), so it imports only torch, transformers and its siblings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

from .attention_hbert import (
    ATTENTION_KINDS,
    AdditiveAttention,
    AttentionKind,
    MixtureAttention,
    SoftmaxAttention,
    build_attention,
)
from .configuration_hbert import HBertConfig
from .ops_hbert import Dropout, cross_entropy


def sinusoidal_table(num_positions: int, dim: int) -> torch.Tensor:
    """The fixed sin/cos position table of "Attention is all you need": (num_positions, dim)."""
    position = torch.arange(num_positions, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(num_positions, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


class HBertEmbeddings(nn.Module):
    """word + (token type) + position, then LayerNorm and dropout (as BERT)."""

    def __init__(self, config: HBertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.max_positions = config.max_position_embeddings
        if config.position_embedding_type == "learned":
            self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        else:
            self.position_embeddings = None
            table = sinusoidal_table(config.max_position_embeddings, config.hidden_size)
            self.register_buffer("sinusoid", table, persistent=False)
        if config.type_vocab_size > 0:
            self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        else:
            self.token_type_embeddings = None
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``input_ids`` (B, T) or ``inputs_embeds`` (B, T, H) (word vectors given directly, e.g. for attribution
        or prompt tuning), exactly one of them."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids (B, T) and inputs_embeds (B, T, hidden_size)")
        T = input_ids.shape[1] if input_ids is not None else inputs_embeds.shape[1]
        if T > self.max_positions:
            raise ValueError(
                f"sequence length {T} exceeds max_position_embeddings={self.max_positions}; "
                f"truncate the input or build the model with a larger max_position_embeddings"
            )
        x = self.word_embeddings(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, H)
        if self.token_type_embeddings is not None:
            if token_type_ids is None:
                x = x + self.token_type_embeddings.weight[0]
            else:
                x = x + self.token_type_embeddings(token_type_ids)
        table = self.position_embeddings.weight if self.position_embeddings is not None else self.sinusoid
        x = x + (table[:T] if position_ids is None else F.embedding(position_ids, table))
        return self.dropout(self.norm(x))


class Sublayer(nn.Module):
    """One residual sub-layer  f = W_out . g . W_in  under a norm scheme:

    post:  LN(x + W_out g(W_in x))                 (BERT)
    pre:   x + W_out g(W_in LN(x))
    subln: x + W_out LN(g(W_in LN(x)))             (Magneto Sub-LN)

    ``inner`` computes g(W_in .) and has width ``inner_size`` at its output; it may return a pair (output, extra),
    in which case the sub-layer returns (result, extra) too (the attention sub-layer's weights).
    """

    def __init__(self, config: HBertConfig, inner: nn.Module, inner_size: int):
        super().__init__()
        self.scheme = config.norm_scheme
        self.inner = inner
        self.inner_norm = nn.LayerNorm(inner_size, eps=config.layer_norm_eps) if self.scheme == "subln" else None
        self.out = nn.Linear(inner_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, *args):
        if self.scheme == "post":
            h, extra = _pair(self.inner(x, *args))
            out = self.norm(x + self.dropout(self.out(h)))
        else:
            h, extra = _pair(self.inner(self.norm(x), *args))
            if self.inner_norm is not None:
                h = self.inner_norm(h)
            out = x + self.dropout(self.out(h))
        return out if extra is _NONE else (out, extra)


_NONE = object()


def _pair(value):
    """(output, extra) from an inner module's result; extra is the _NONE marker for a plain tensor."""
    return value if isinstance(value, tuple) else (value, _NONE)


class FeedForwardInner(nn.Module):
    """act(W_in x): the feed-forward sub-layer up to its output projection."""

    def __init__(self, config: HBertConfig):
        super().__init__()
        self.up = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.up(x))


class HBertLayer(GradientCheckpointingLayer):
    """Attention sub-layer then feed-forward sub-layer. A ``GradientCheckpointingLayer``, so that transformers'
    ``gradient_checkpointing_enable()`` recomputes it in backward instead of keeping its activations."""

    def __init__(self, config: HBertConfig, kind: str):
        super().__init__()
        self.kind = kind
        self.attention = Sublayer(config, build_attention(config, kind), config.hidden_size)
        self.ffn = Sublayer(config, FeedForwardInner(config), config.intermediate_size)

    def forward(
        self, x: torch.Tensor, key_mask: torch.Tensor | None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, weights = self.attention(x, key_mask, output_attentions)
        return self.ffn(x), weights


class HBertEncoder(nn.Module):
    def __init__(self, config: HBertConfig):
        super().__init__()
        self.layers = nn.ModuleList(HBertLayer(config, kind) for kind in config.layer_types)
        # pre-LN and Sub-LN leave the residual stream un-normalised: close it with a final LayerNorm
        self.final_norm = (
            nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if config.norm_scheme != "post" else None
        )

    def forward(
        self,
        x: torch.Tensor,
        key_mask: torch.Tensor | None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> BaseModelOutput:
        states = [x] if output_hidden_states else None
        attentions = [] if output_attentions else None
        for layer in self.layers:
            x, weights = layer(x, key_mask, output_attentions)
            if states is not None:
                states.append(x)
            if attentions is not None:
                attentions.append(weights)
        if self.final_norm is not None:
            x = self.final_norm(x)
            if states is not None:
                states[-1] = x
        return BaseModelOutput(
            last_hidden_state=x,
            hidden_states=tuple(states) if states is not None else None,
            attentions=tuple(attentions) if attentions is not None else None,
        )


class HBertPreTrainedModel(PreTrainedModel):
    config_class = HBertConfig
    config: HBertConfig
    base_model_prefix = "hbert"
    _supports_sdpa = True
    supports_gradient_checkpointing = True
    _no_split_modules = ["HBertLayer"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """BERT-style: normal(0, initializer_range) weights, zero biases, unit norms, zero padding embedding."""
        super()._init_weights(module)
        std = self.config.initializer_range
        if hasattr(module, "init_own_weights"):  # an attention kind's own parameters (e.g. additive's w_q, w_k)
            module.init_own_weights(std)
        elif isinstance(module, HBertEmbeddings) and module.position_embeddings is None:
            init.copy_(module.sinusoid, sinusoidal_table(*module.sinusoid.shape))


def _capturing_graph() -> bool:
    """True while a tracer, compiler or exporter records the forward: a Python branch on tensor values would be
    frozen into the graph there, so such code must take the path that is right for every input."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()


def _key_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B, T) 0/1 mask -> boolean key mask, or None when nothing is padded (lets attention take its fastest path).
    Inside a captured graph the mask is always kept (the shortcut looks at values, which a trace would freeze)."""
    if attention_mask is None:
        return None
    mask = attention_mask.bool()
    if not _capturing_graph() and bool(mask.all()):
        return None
    return mask


class HBertModel(HBertPreTrainedModel):
    """The bare encoder: returns the last hidden states (B, T, H)."""

    def __init__(self, config: HBertConfig):
        super().__init__(config)
        self.embeddings = HBertEmbeddings(config)
        self.encoder = HBertEncoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutput | tuple:
        """``output_attentions``: per layer, softmax layers give their probabilities (B, N, T, T) (computed
        explicitly, off the fused kernel), additive layers their two pooling distributions (B, N, 2, T) and mixture
        layers their softmax branch's probabilities. ``head_mask`` is refused: an additive head has no
        probabilities to mask per query, so a mask could not mean what it means in BERT."""
        if head_mask is not None:
            raise ValueError(
                "head_mask is not supported by hbert models (additive-attention heads have no per-query "
                "probabilities to mask); accepted: head_mask=None"
            )
        output_hidden_states = bool(output_hidden_states or self.config.output_hidden_states)
        output_attentions = bool(output_attentions or self.config.output_attentions)
        x = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)
        out = self.encoder(x, _key_mask(attention_mask), output_hidden_states, output_attentions)
        if return_dict is False:
            return tuple(v for v in (out.last_hidden_state, out.hidden_states, out.attentions) if v is not None)
        return out


def _as_tuple(*values) -> tuple:
    return tuple(v for v in values if v is not None)


class HBertMLMHead(nn.Module):
    """dense -> act -> LayerNorm -> decoder (tied to the word embeddings), as BERT's MLM head."""

    def __init__(self, config: HBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACT2FN[config.hidden_act]
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(self.act(self.dense(h))))


@dataclass
class HBertMaskedLMOutput(MaskedLMOutput):
    """``MaskedLMOutput`` plus ``masked_labels``: under sparse prediction ``logits`` has one row per labelled
    position, (n_labelled, V), and ``masked_labels`` (n_labelled,) holds the label of each row."""

    masked_labels: torch.Tensor | None = None


class HBertForMaskedLM(HBertPreTrainedModel):
    _tied_weights_keys = {"head.decoder.weight": "hbert.embeddings.word_embeddings.weight"}

    def __init__(self, config: HBertConfig):
        super().__init__(config)
        self.hbert = HBertModel(config)
        self.head = HBertMLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.head.decoder

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.head.decoder = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        sparse_logits: bool = False,
        masked_positions: torch.Tensor | None = None,
    ) -> HBertMaskedLMOutput | tuple:
        """``labels`` (B, T): target ids at the positions to predict, -100 elsewhere.

        ``logits`` is (B, T, V), as ``BertForMaskedLM``, so that transformers recipes (``run_mlm.py``'s
        ``preprocess_logits_for_metrics``) work unchanged. With labels and ``sparse_logits=True`` (hbert's training
        loop and teacher scoring ask for it) the head runs only on the labelled positions and ``logits`` is
        (n_labelled, V), with ``masked_labels`` (n_labelled,): most of a small encoder's cost is the
        (tokens x H x V) vocabulary projection.

        ``masked_positions`` (B, K), with ``sparse_logits``: a static index of the labelled positions (each row's
        labelled positions first, then padding positions whose label is -100; ``hbert.masking.static_positions``).
        The head then runs on its B x K rows, ``masked_labels`` holds -100 at the padding rows and the loss is the
        mean over the labelled ones: every size is known before the data is, so a compiled training step has
        no data-dependent shape and needs no host synchronisation.
        """
        out = self.hbert(
            input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
            output_attentions, output_hidden_states,
        )  # fmt: skip
        hidden = out.last_hidden_state
        loss = masked_labels = None
        if labels is not None and sparse_logits:
            flat_labels = labels.reshape(-1)
            if masked_positions is None:
                rows = (flat_labels != -100).nonzero().squeeze(1)
            else:
                offsets = torch.arange(labels.shape[0], device=labels.device)[:, None] * labels.shape[1]
                rows = (masked_positions + offsets).reshape(-1)
            logits = self.head(hidden.reshape(-1, hidden.shape[-1]).index_select(0, rows))  # (rows, V)
            masked_labels = flat_labels.index_select(0, rows)
            if masked_positions is None:
                loss = cross_entropy(logits, masked_labels)
            else:
                loss = F.cross_entropy(logits.float(), masked_labels, ignore_index=-100)
        else:
            logits = self.head(hidden)  # (B, T, V)
            if labels is not None:
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1))
        if return_dict is False:
            return _as_tuple(loss, logits, out.hidden_states, out.attentions)
        return HBertMaskedLMOutput(
            loss=loss,
            logits=logits,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
            masked_labels=masked_labels,
        )


def _classifier_dropout(config: HBertConfig) -> Dropout:
    return Dropout(config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob)


def _sequence_loss(config: HBertConfig, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """transformers' ``problem_type`` rules: regression (MSE), single-label (cross-entropy), multi-label (BCE)."""
    if config.problem_type is None:
        if config.num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    if config.problem_type == "regression":
        return F.mse_loss(logits.squeeze(-1).float(), labels.float().reshape(-1))
    if config.problem_type == "single_label_classification":
        return F.cross_entropy(logits.float(), labels.reshape(-1))
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float())


class HBertForSequenceClassification(HBertPreTrainedModel):
    """Pooler (dense + tanh on the first token, as BERT) -> dropout -> linear; ``problem_type`` as transformers:
    ``regression`` (num_labels = 1, MSE), ``single_label_classification`` (cross-entropy) or
    ``multi_label_classification`` (BCE with logits)."""

    def __init__(self, config: HBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.hbert = HBertModel(config)
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple:
        out = self.hbert(
            input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
            output_attentions, output_hidden_states,
        )  # fmt: skip
        pooled = torch.tanh(self.pooler(out.last_hidden_state[:, 0]))
        logits = self.classifier(self.dropout(pooled))  # (B, num_labels)
        loss = _sequence_loss(self.config, logits, labels) if labels is not None else None
        if return_dict is False:
            return _as_tuple(loss, logits, out.hidden_states, out.attentions)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
        )


class HBertForTokenClassification(HBertPreTrainedModel):
    """dropout -> linear on every token's last hidden state (named-entity recognition, tagging);
    ``labels`` (B, T) with -100 on positions to ignore (padding, word-piece continuations)."""

    def __init__(self, config: HBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.hbert = HBertModel(config)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> TokenClassifierOutput | tuple:
        out = self.hbert(
            input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
            output_attentions, output_hidden_states,
        )  # fmt: skip
        logits = self.classifier(self.dropout(out.last_hidden_state))  # (B, T, num_labels)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, self.num_labels).float(), labels.reshape(-1))
        if return_dict is False:
            return _as_tuple(loss, logits, out.hidden_states, out.attentions)
        return TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
        )


class HBertForQuestionAnswering(HBertPreTrainedModel):
    """Extractive QA: a linear layer gives each token a span-start and a span-end logit; the loss is BERT's
    (mean of start and end cross-entropy; positions outside the sequence are ignored)."""

    def __init__(self, config: HBertConfig):
        super().__init__(config)
        self.hbert = HBertModel(config)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> QuestionAnsweringModelOutput | tuple:
        out = self.hbert(
            input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
            output_attentions, output_hidden_states,
        )  # fmt: skip
        start_logits, end_logits = self.qa_outputs(out.last_hidden_state).unbind(-1)  # each (B, T)
        loss = None
        if start_positions is not None and end_positions is not None:
            T = start_logits.shape[1]
            start = start_positions.reshape(-1).clamp(0, T)
            end = end_positions.reshape(-1).clamp(0, T)
            loss = (
                F.cross_entropy(start_logits.float(), start, ignore_index=T)
                + F.cross_entropy(end_logits.float(), end, ignore_index=T)
            ) / 2
        if return_dict is False:
            return _as_tuple(loss, start_logits, end_logits, out.hidden_states, out.attentions)
        return QuestionAnsweringModelOutput(
            loss=loss,
            start_logits=start_logits,
            end_logits=end_logits,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )


def _flatten_choices(x: torch.Tensor | None) -> torch.Tensor | None:
    """(B, C, T, ...) -> (B * C, T, ...)."""
    return None if x is None else x.reshape(-1, *x.shape[2:])


class HBertForMultipleChoice(HBertPreTrainedModel):
    """Each (context, choice) pair is encoded on its own; pooler (as sequence classification) -> dropout ->
    one score per choice; inputs are (B, C, T), logits (B, C), labels (B,) the index of the right choice."""

    def __init__(self, config: HBertConfig):
        super().__init__(config)
        self.hbert = HBertModel(config)
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> MultipleChoiceModelOutput | tuple:
        num_choices = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        out = self.hbert(
            _flatten_choices(input_ids), _flatten_choices(attention_mask), _flatten_choices(token_type_ids),
            _flatten_choices(position_ids), head_mask, _flatten_choices(inputs_embeds),
            output_attentions, output_hidden_states,
        )  # fmt: skip
        pooled = torch.tanh(self.pooler(out.last_hidden_state[:, 0]))
        logits = self.classifier(self.dropout(pooled)).view(-1, num_choices)  # (B, C)
        loss = F.cross_entropy(logits.float(), labels.reshape(-1)) if labels is not None else None
        if return_dict is False:
            return _as_tuple(loss, logits, out.hidden_states, out.attentions)
        return MultipleChoiceModelOutput(
            loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
        )


HBertModel.register_for_auto_class("AutoModel")
HBertForMaskedLM.register_for_auto_class("AutoModelForMaskedLM")
HBertForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
HBertForTokenClassification.register_for_auto_class("AutoModelForTokenClassification")
HBertForQuestionAnswering.register_for_auto_class("AutoModelForQuestionAnswering")
HBertForMultipleChoice.register_for_auto_class("AutoModelForMultipleChoice")

__all__ = [
    "ATTENTION_KINDS",
    "AdditiveAttention",
    "AttentionKind",
    "HBertForMaskedLM",
    "HBertForMultipleChoice",
    "HBertForQuestionAnswering",
    "HBertForSequenceClassification",
    "HBertForTokenClassification",
    "HBertMaskedLMOutput",
    "HBertModel",
    "HBertPreTrainedModel",
    "MixtureAttention",
    "SoftmaxAttention",
]
