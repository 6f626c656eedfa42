"""Teachers (reference models) for entropy masking and distillation: any masked-LM checkpoint with the student's
vocabulary, run in eval mode without gradients, producing vocabulary logits only at the positions asked for."""

from __future__ import annotations

import os

import torch
from transformers import AutoConfig, AutoModelForMaskedLM, BertTokenizer

from ..modeling import HBertForMaskedLM
from ..objectives import entropy
from ..remote import auto_from_pretrained, tokenizer_from_pretrained
from ..runtime import chunk_rows as _chunk_rows
from .base import SpecialIds, flat_rows


class TeacherError(ValueError):
    pass


def sparse_logits(model, input_ids: torch.Tensor, positions: torch.Tensor, batch_rows: int = 4) -> torch.Tensor:
    """(n, V) logits at the True entries of ``positions`` (B, T), in row-major order, without a B x T x V tensor
    for hbert models (sparse head) and BERT-style models (encoder + ``cls`` head on the gathered rows). Other
    masked LMs are run ``batch_rows`` sequences at a time and gathered."""
    if isinstance(model, HBertForMaskedLM) or type(model).__name__ == "HBertForMaskedLM":
        labels = torch.where(positions, input_ids, torch.full_like(input_ids, -100))
        return model(input_ids, labels=labels, sparse_logits=True).logits
    flat = positions.reshape(-1).nonzero().squeeze(1)
    encoder = getattr(model, getattr(model, "base_model_prefix", ""), None)
    head = getattr(model, "cls", None)
    if encoder is not None and head is not None:
        hidden = encoder(input_ids).last_hidden_state
        return head(hidden.reshape(-1, hidden.shape[-1]).index_select(0, flat))
    parts = []
    for start in range(0, input_ids.shape[0], batch_rows):
        logits = model(input_ids[start : start + batch_rows]).logits
        parts.append(logits[positions[start : start + batch_rows]])
    return torch.cat(parts)


def _encoder_and_head(model):
    """(encoder, vocabulary head) of an hbert or BERT-style masked LM; (None, None) for other models."""
    if isinstance(model, HBertForMaskedLM) or type(model).__name__ == "HBertForMaskedLM":
        return model.hbert, model.head
    encoder = getattr(model, getattr(model, "base_model_prefix", ""), None)
    head = getattr(model, "cls", None)
    return (encoder, head) if encoder is not None and head is not None else (None, None)


def _head_entropy(head, rows: torch.Tensor, keep_logits: bool, chunk_rows: int | None, vocab: int):
    if chunk_rows is None:  # a chunk's logits and entropy temporaries: 128 rows on a CPU, by memory on a GPU
        chunk_rows = _chunk_rows(rows.device, 4 * 4 * vocab, 128)
    out = torch.empty(rows.shape[0], dtype=torch.float32, device=rows.device)
    kept = []
    for start in range(0, rows.shape[0], chunk_rows):
        logits = head(rows[start : start + chunk_rows])
        out[start : start + chunk_rows] = entropy(logits)
        if keep_logits:
            kept.append(logits)
    return out, torch.cat(kept) if keep_logits else None


def pool_entropy(
    model, input_ids: torch.Tensor, positions: torch.Tensor, keep_logits: bool = False, chunk_rows: int | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Entropy (n,) of the model's predictions at the True entries of ``positions``, running the vocabulary head
    ``chunk_rows`` rows at a time (128 on a CPU, by memory on a GPU), so that neither a B x T x V nor an n x V
    tensor is held (unless ``keep_logits``, for distillation from the same forward)."""
    flat = positions.reshape(-1).nonzero().squeeze(1)
    encoder, head = _encoder_and_head(model)
    if encoder is None:
        logits = sparse_logits(model, input_ids, positions)
        return entropy(logits), logits if keep_logits else None
    hidden = encoder(input_ids).last_hidden_state
    rows = hidden.reshape(-1, hidden.shape[-1]).index_select(0, flat)
    return _head_entropy(head, rows, keep_logits, chunk_rows, model.config.vocab_size)


def static_logits(model, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """(B x K, V) logits at the (B, K) static index ``positions`` (``static_positions``), row-major: no
    data-dependent size, so it compiles into one graph and never waits for the GPU."""
    encoder, head = _encoder_and_head(model)
    rows = flat_rows(positions, input_ids.shape[1])
    if encoder is None:
        logits = model(input_ids).logits
        return logits.reshape(-1, logits.shape[-1]).index_select(0, rows)
    hidden = encoder(input_ids).last_hidden_state
    return head(hidden.reshape(-1, hidden.shape[-1]).index_select(0, rows))


def static_pool_entropy(model, input_ids: torch.Tensor, positions: torch.Tensor, keep_logits: bool = False):
    """``pool_entropy`` at a (B, K) static index: entropy (B x K,) and, with ``keep_logits``, the logits."""
    encoder, head = _encoder_and_head(model)
    if encoder is None:
        logits = static_logits(model, input_ids, positions)
        return entropy(logits), logits if keep_logits else None
    hidden = encoder(input_ids).last_hidden_state
    rows = hidden.reshape(-1, hidden.shape[-1]).index_select(0, flat_rows(positions, input_ids.shape[1]))
    return _head_entropy(head, rows, keep_logits, None, model.config.vocab_size)


def _teacher_special_ids(path: str, config, trust_remote_code: bool = False) -> dict[str, int | None]:
    ids = {"pad": getattr(config, "pad_token_id", None)}
    tok = None
    if os.path.isdir(path):
        if any(os.path.exists(os.path.join(path, f)) for f in ("tokenizer.json", "tokenizer_config.json")):
            tok = tokenizer_from_pretrained(path, trust_remote_code, "masking.trust_remote_code=true")
        elif os.path.exists(os.path.join(path, "vocab.txt")):
            tok = BertTokenizer(vocab=os.path.join(path, "vocab.txt"))
    if tok is not None:
        ids.update(cls=tok.cls_token_id, sep=tok.sep_token_id, mask=tok.mask_token_id, pad=tok.pad_token_id)
    return ids


def check_teacher(path: str, config, student_vocab: int, student_tokenizer, trust_remote_code: bool = False) -> None:
    """Refuse a teacher whose vocabulary size or special-token ids differ from the student's."""
    teacher_ids = _teacher_special_ids(path, config, trust_remote_code)
    student_ids = {
        "cls": student_tokenizer.cls_token_id,
        "sep": student_tokenizer.sep_token_id,
        "mask": student_tokenizer.mask_token_id,
        "pad": student_tokenizer.pad_token_id,
    }
    problems = []
    if config.vocab_size != student_vocab:
        problems.append(f"vocab_size {config.vocab_size} (student: {student_vocab})")
    for name, value in teacher_ids.items():
        if value is not None and value != student_ids[name]:
            problems.append(f"[{name.upper()}] id {value} (student: {student_ids[name]})")
    if problems:
        raise TeacherError(
            f"teacher {path} does not share the student's vocabulary: {'; '.join(problems)}. A teacher must use the "
            f"corpus tokenizer's vocabulary (e.g. bert-base-uncased for corpora prepared with it)"
        )


def load_teacher(path: str, device: torch.device, precision: str, student_vocab: int, student_tokenizer,
                 trust_remote_code: bool = False):  # fmt: skip
    """Load a masked-LM teacher (an hbert checkpoint, a Hugging Face BERT, or a hub name when online), check its
    vocabulary, and put it in eval mode on the training device, optionally in bf16. A teacher that ships its own
    code loads only with ``trust_remote_code``."""
    option = "masking.trust_remote_code=true"

    if not path:
        raise TeacherError("masking.source=teacher needs masking.teacher=PATH_OR_HUB_NAME")
    config = teacher_config(path, trust_remote_code)
    check_teacher(path, config, student_vocab, student_tokenizer, trust_remote_code)
    model = auto_from_pretrained(AutoModelForMaskedLM, path, trust_remote_code, option, new_head=False)
    model.requires_grad_(False)
    if precision == "bf16":
        model.to(torch.bfloat16)
    return model.to(device).eval()


def teacher_config(path: str, trust_remote_code: bool = False):
    """The teacher's configuration: a quick look before any training (and before any weights load) that the
    teacher can be had at all. A hub name the hub cannot serve (no network, and not in the local cache) is one
    line naming it and the way out: a local checkpoint folder."""
    try:
        return auto_from_pretrained(AutoConfig, path, trust_remote_code, "masking.trust_remote_code=true")
    except OSError as err:
        if os.path.isdir(path):
            reason = f"the folder holds no loadable config.json ({str(err).splitlines()[0][:150]})"
        elif os.path.sep in path and not os.path.exists(os.path.dirname(path) or "."):
            reason = "no such folder"
        else:
            reason = "not a local folder, and the Hugging Face hub cannot serve it (no network, not in the local cache)"
        raise TeacherError(
            f"teacher {path!r} cannot be loaded: {reason}; accepted: a masked-LM checkpoint folder with the "
            f"corpus tokenizer's vocabulary (in a recipe: reference=PATH), or a hub name when the hub is reachable"
        ) from err


class TeacherCache:
    """The run's teachers, each loaded once per path: when masking and distillation name the same checkpoint they
    get the same model object, so one teacher forward can serve both."""

    PRECISIONS = ("bf16", "fp32")

    def __init__(self, device: torch.device, precision: str, student_tokenizer, trust_remote_code: bool = False):
        if precision not in self.PRECISIONS:
            raise TeacherError(f"masking.teacher_precision={precision!r}; accepted: {', '.join(self.PRECISIONS)}")
        self.device, self.precision, self.tokenizer = device, precision, student_tokenizer
        self.trust_remote_code = trust_remote_code
        self._loaded: dict[str, torch.nn.Module] = {}

    def get(self, path: str) -> torch.nn.Module:
        if path not in self._loaded:
            self._loaded[path] = load_teacher(path, self.device, self.precision, len(self.tokenizer), self.tokenizer,
                                              self.trust_remote_code)  # fmt: skip
        return self._loaded[path]


__all__ = [
    "SpecialIds",
    "TeacherCache",
    "TeacherError",
    "check_teacher",
    "load_teacher",
    "sparse_logits",
    "static_logits",
    "static_pool_entropy",
    "teacher_config",
]
