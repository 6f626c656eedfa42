"""What differs between task kinds when fine-tuning, as one small adapter per kind; the loop (``trainer.py``) is
shared. An adapter loads the model with the right head, encodes rows into ids and labels, turns logits into
predictions, scores them, and names its cheap floors:

- ``classification``: one class per sequence (``AutoModelForSequenceClassification``), scikit-learn metrics;
- ``regression``: one float per sequence (the same head with one output and ``problem_type="regression"``);
- ``token-classification``: one tag per word (``AutoModelForTokenClassification``), the standard ``run_ner``
  recipe (the first word piece of each word carries its tag, the others are ignored), seqeval entity scores.

A new kind is one more adapter in ``KINDS``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from safetensors import SafetensorError
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification
from transformers.utils import logging as hf_logging

from ..data.tasks import TOKEN_KIND, TaskSpec, load_task
from ..remote import IncompleteWeightsError, RemoteCodeError, auto_from_pretrained, tokenizer_from_pretrained
from .floors import bag_of_words_floor, majority_floor, majority_tag_floor, word_tag_floor
from .metrics import compute_metrics, entity_metrics
from .settings import FinetuneError

IGNORED = -100  # the label of a word piece that is not scored (HF's ignore_index)


@dataclass
class Encoded:
    """A split ready for batching: token ids and token types per example, and the labels (an array of one label per
    sequence, or per example a list of one label per token, ``IGNORED`` where not scored)."""

    ids: list[list[int]]
    types: list[list[int]]
    labels: np.ndarray | list[list[int]]

    def __len__(self) -> int:
        return len(self.ids)


def check_local(checkpoint: str) -> None:
    """A path that is plainly local (not a hub name such as ``org/name``) must be a folder."""
    if os.path.isdir(checkpoint):
        return
    if os.path.exists(checkpoint):
        raise FinetuneError(f"{checkpoint} is a file; accepted: a checkpoint folder or a hub name (org/name)")
    if checkpoint.startswith((".", "/", "~")) or checkpoint.count("/") > 1:
        raise FinetuneError(f"checkpoint {checkpoint} does not exist; accepted: a checkpoint folder or a hub name")


def task_splits(spec: TaskSpec, max_train_examples: int = 0, max_eval_examples: int = 0) -> dict:
    """The task's labelled splits (role -> rows), the first ``max_*_examples`` of each (0 = all)."""
    data = load_task(spec, seed=0)
    if "validation" not in data:
        raise FinetuneError(f"task {spec.name} has no validation split (splits: {', '.join(data)})")
    splits = {}
    for role, rows in data.items():
        limit = max_train_examples if role == "train" else max_eval_examples
        if limit:
            rows = rows.select(range(min(limit, len(rows))))
        if role.startswith("test") and spec.kind == "classification" and len(rows) and min(rows["label"]) < 0:
            continue  # GLUE test sets carry no labels
        splits[role] = rows
    return splits


def _quiet_load(auto_class, checkpoint: str, trust_remote_code: bool, **kwargs):
    """The model with a fresh head; the load report's "missing" head weights are expected, so not shown."""
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return auto_from_pretrained(auto_class, checkpoint, trust_remote_code, new_head=True, **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)


def load_classifier(checkpoint: str, spec: TaskSpec, trust_remote_code: bool = False):
    """(model, tokenizer) for a sequence task: any checkpoint with a sequence-classification class; one that ships
    its own code loads only with ``trust_remote_code``."""
    check_local(checkpoint)
    try:
        config = auto_from_pretrained(AutoConfig, checkpoint, trust_remote_code)
    except RemoteCodeError:
        raise
    except (OSError, ValueError) as err:
        where = (
            "a model checkpoint folder" if os.path.isdir(checkpoint) else "a local folder, nor loadable from the hub"
        )
        raise FinetuneError(
            f"{checkpoint} is not {where} ({str(err).splitlines()[0][:200]}); accepted: a "
            f"folder with config.json and weights, or a hub name when the hub is reachable"
        ) from err
    kwargs = {"num_labels": spec.num_labels}
    kwargs["problem_type"] = "regression" if spec.kind == "regression" else "single_label_classification"
    if spec.label_names:
        kwargs["id2label"] = dict(enumerate(spec.label_names))
        kwargs["label2id"] = {name: i for i, name in enumerate(spec.label_names)}
    try:
        model = _quiet_load(AutoModelForSequenceClassification, checkpoint, trust_remote_code, **kwargs)
    except (RemoteCodeError, IncompleteWeightsError):
        raise
    except (OSError, SafetensorError) as err:
        raise FinetuneError(f"{checkpoint}: the weights cannot be read ({str(err).splitlines()[0][:200]}); "
                            f"accepted: a complete checkpoint folder (save or copy it again)") from err  # fmt: skip
    except (ValueError, KeyError, RuntimeError) as err:
        raise FinetuneError(
            f"{checkpoint} (model_type {config.model_type!r}) is not a classifier-compatible encoder: "
            f"{str(err).splitlines()[0][:200]}; accepted: hbert checkpoints or any model with a "
            f"sequence-classification head in transformers"
        ) from err
    try:
        tokenizer = tokenizer_from_pretrained(checkpoint, trust_remote_code)
    except RemoteCodeError:
        raise
    except (OSError, ValueError) as err:
        raise FinetuneError(f"{checkpoint} has no tokenizer ({str(err)[:120]}); save one with the model") from err
    return model, tokenizer


def load_tagger(checkpoint: str, spec: TaskSpec, trust_remote_code: bool = False):
    """(model, tokenizer) for a token task: any checkpoint whose model type has a token-classification class; a
    load that leaves encoder weights random is refused."""
    check_local(checkpoint)
    names = dict(enumerate(spec.label_names))
    try:
        model = _quiet_load(AutoModelForTokenClassification, checkpoint, trust_remote_code, num_labels=len(names),
                            id2label=names, label2id={v: k for k, v in names.items()})  # fmt: skip
        tokenizer = tokenizer_from_pretrained(checkpoint, trust_remote_code)
    except (RemoteCodeError, IncompleteWeightsError):
        raise
    except (OSError, ValueError, KeyError) as err:
        raise FinetuneError(
            f"{checkpoint} cannot be fine-tuned for token classification: {str(err).splitlines()[0][:200]}; "
            f"accepted: hbert checkpoints or any encoder with a token-classification head in transformers"
        ) from err
    if not getattr(tokenizer, "is_fast", False):
        raise FinetuneError(f"{checkpoint}: token tasks need a fast tokenizer (word ids); save a tokenizer.json")
    return model, tokenizer


class SequenceKind:
    """One class per sequence."""

    label_dtype = np.int64  # of the labels, and of the predictions the metrics compare with them
    prediction_dtype = np.int64

    def load(self, checkpoint: str, spec: TaskSpec, trust_remote_code: bool):
        return load_classifier(checkpoint, spec, trust_remote_code)

    def encode(self, tokenizer, rows, spec: TaskSpec, max_len: int) -> Encoded:
        texts = [list(rows[f]) for f in spec.text_fields]
        encoded = tokenizer(*texts, truncation=True, max_length=max_len)
        token_types = encoded.get("token_type_ids") or [[0] * len(ids) for ids in encoded["input_ids"]]
        return Encoded(encoded["input_ids"], token_types, np.asarray(rows["label"], dtype=self.label_dtype))

    def batch_labels(self, labels: np.ndarray, index: list[int], width: int) -> torch.Tensor:
        return torch.from_numpy(labels[index])

    def predict(self, logits: torch.Tensor, labels: torch.Tensor) -> list:
        """One prediction per example of the batch, from its float32 logits."""
        return list(logits.argmax(-1).cpu().numpy())

    def metrics(self, predictions: list, data: Encoded, spec: TaskSpec) -> dict:
        return compute_metrics(spec.metrics, np.asarray(predictions, self.prediction_dtype), data.labels, spec.kind)

    def cheap_floors(self, spec: TaskSpec, train_rows, eval_rows) -> dict:
        return {"majority": majority_floor(spec, train_rows, eval_rows),
                "bag_of_words": bag_of_words_floor(spec, train_rows, eval_rows)}  # fmt: skip


class RegressionKind(SequenceKind):
    """One float per sequence."""

    label_dtype = np.float32
    prediction_dtype = np.float64

    def predict(self, logits: torch.Tensor, labels: torch.Tensor) -> list:
        return list(logits.squeeze(-1).cpu().numpy())


class TokenKind:
    """One tag per word."""

    def load(self, checkpoint: str, spec: TaskSpec, trust_remote_code: bool):
        return load_tagger(checkpoint, spec, trust_remote_code)

    def encode(self, tokenizer, rows, spec: TaskSpec, max_len: int) -> Encoded:
        """Pre-split words tokenised; the first piece of each word gets the word's tag, other pieces and special
        tokens get ``IGNORED``."""
        encoded = tokenizer(list(rows[spec.text_fields[0]]), is_split_into_words=True, truncation=True,
                            max_length=max_len)  # fmt: skip
        labels = []
        for i, tags in enumerate(rows["label"]):
            row, previous = [], None
            for word in encoded.word_ids(i):
                row.append(IGNORED if word is None or word == previous else tags[word])
                previous = word
            labels.append(row)
        ids = encoded["input_ids"]
        token_types = encoded.get("token_type_ids") or [[0] * len(x) for x in ids]
        return Encoded(ids, token_types, labels)

    def batch_labels(self, labels: list[list[int]], index: list[int], width: int) -> torch.Tensor:
        out = torch.full((len(index), width), IGNORED, dtype=torch.long)
        for row, i in enumerate(index):
            out[row, : len(labels[i])] = torch.tensor(labels[i])
        return out

    def predict(self, logits: torch.Tensor, labels: torch.Tensor) -> list:
        """Per example, the predicted tag of every scored word."""
        return [[p for p, g in zip(pred, gold) if g != IGNORED]
                for pred, gold in zip(logits.argmax(-1).tolist(), labels.tolist())]  # fmt: skip

    def metrics(self, predictions: list, data: Encoded, spec: TaskSpec) -> dict:
        names = spec.label_names
        gold = [[names[g] for g in row if g != IGNORED] for row in data.labels]
        return entity_metrics(gold, [[names[p] for p in row] for row in predictions])

    def cheap_floors(self, spec: TaskSpec, train_rows, eval_rows) -> dict:
        return {"majority": majority_tag_floor(spec, train_rows, eval_rows),
                "bag_of_words": word_tag_floor(spec, train_rows, eval_rows)}  # fmt: skip


KINDS = {"classification": SequenceKind(), "regression": RegressionKind(), TOKEN_KIND: TokenKind()}


def kind_of(spec: TaskSpec):
    """The adapter of the task's kind."""
    return KINDS[spec.kind]
