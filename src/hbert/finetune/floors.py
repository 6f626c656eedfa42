"""The floors every downstream score stands next to.

A fine-tuned score means little alone: small tasks are often won by always answering the frequent class, a
bag-of-words model is strong on lexical tasks such as sentiment, and a small encoder trained from random weights
on the task can match a briefly pretrained one. So every score is reported beside

- ``majority``: the most frequent training label (classification) or the training mean (regression, whose
  correlation metrics are then 0), scored on validation;
- ``bag_of_words``: TF-IDF over word uni- and bigrams + logistic regression (classification) or ridge regression
  (regression), scikit-learn defaults, fitted on the same training rows the encoder sees;
- ``random_init``: an encoder of the same shape and tokenizer with freshly initialised weights, fine-tuned with the
  same settings and seed: what pretraining bought is the distance to this one.

Token tasks get the same three: ``majority`` tags every word with the most frequent training tag, and
``bag_of_words`` tags each word with its most frequent training tag (unseen words: the majority tag), the lexical
floor of a tagger. Which floor function serves which kind is the kind's adapter's business (``kinds.py``).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForMaskedLM

from .._optional import require
from ..data.tasks import TaskSpec
from ..modeling.init_schemes import subln_scale
from ..remote import auto_from_pretrained, tokenizer_from_pretrained
from .metrics import compute_metrics, entity_metrics, task_score


def _scored(spec: TaskSpec, predictions, labels) -> dict:
    metrics = compute_metrics(spec.metrics, predictions, labels, spec.kind)
    metrics["score"] = task_score(metrics, spec.metrics, spec.average_metrics)
    return metrics


def _labels(rows, spec: TaskSpec) -> np.ndarray:
    return np.asarray(rows["label"], dtype=np.float64 if spec.kind == "regression" else np.int64)


def majority_floor(spec: TaskSpec, train_rows, eval_rows) -> dict:
    """The constant answer learnt from the training rows: the most frequent class, or the mean value."""
    train, labels = _labels(train_rows, spec), _labels(eval_rows, spec)
    if spec.kind == "regression":
        constant = float(train.mean())
    else:
        values, counts = np.unique(train, return_counts=True)
        constant = int(values[np.argmax(counts)])
    return _scored(spec, np.full(len(labels), constant), labels)


def _texts(rows, spec: TaskSpec) -> list[str]:
    columns = [list(rows[f]) for f in spec.text_fields]
    return [" [SEP] ".join(str(part) for part in parts) for parts in zip(*columns)]


def bag_of_words_floor(spec: TaskSpec, train_rows, eval_rows) -> dict:
    """TF-IDF (uni- and bigrams) + a linear model, fitted on ``train_rows``, scored on ``eval_rows``."""
    text = require("sklearn.feature_extraction.text", "the bag-of-words floor")
    linear = require("sklearn.linear_model", "the bag-of-words floor")
    vectorizer = text.TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    x_train = vectorizer.fit_transform(_texts(train_rows, spec))
    x_eval = vectorizer.transform(_texts(eval_rows, spec))
    y_train = _labels(train_rows, spec)
    if spec.kind == "regression":
        model = linear.Ridge(alpha=1.0).fit(x_train, y_train)
    elif len(np.unique(y_train)) < 2:
        return majority_floor(spec, train_rows, eval_rows)  # one class only: nothing to fit
    else:
        model = linear.LogisticRegression(max_iter=2000).fit(x_train, y_train)
    return _scored(spec, model.predict(x_eval), _labels(eval_rows, spec))


def _tag_floor(spec: TaskSpec, eval_rows, tag_of) -> dict:
    words = spec.text_fields[0]
    names = spec.label_names
    gold = [[names[t] for t in tags] for tags in eval_rows["label"]]
    predicted = [[names[tag_of(w)] for w in sentence] for sentence in eval_rows[words]]
    metrics = entity_metrics(gold, predicted)
    metrics["score"] = task_score(metrics, spec.metrics, spec.average_metrics)
    return metrics


def majority_tag_floor(spec: TaskSpec, train_rows, eval_rows) -> dict:
    """Every word tagged with the most frequent training tag (usually ``O``: no entity found)."""
    counts = Counter(t for tags in train_rows["label"] for t in tags)
    majority = counts.most_common(1)[0][0]
    return _tag_floor(spec, eval_rows, lambda word: majority)


def word_tag_floor(spec: TaskSpec, train_rows, eval_rows) -> dict:
    """Each word tagged with its most frequent training tag; unseen words with the majority tag."""
    words = spec.text_fields[0]
    per_word: dict[str, Counter] = {}
    for sentence, tags in zip(train_rows[words], train_rows["label"]):
        for word, tag in zip(sentence, tags):
            per_word.setdefault(word, Counter())[tag] += 1
    majority = sum(per_word.values(), Counter()).most_common(1)[0][0]
    best = {word: counts.most_common(1)[0][0] for word, counts in per_word.items()}
    return _tag_floor(spec, eval_rows, lambda word: best.get(word, majority))


def random_init_twin(checkpoint: str, out_dir: str | os.PathLike, seed: int = 0, init_scheme: str = "bert",
                     trust_remote_code: bool = False) -> Path:  # fmt: skip
    """Save, in ``out_dir``, a masked-LM model with the configuration and tokenizer of ``checkpoint`` and freshly
    initialised weights (the model class's own initialisation, seeded; ``init_scheme="subln"`` applies the Sub-LN
    scaling a pretraining run with ``init.scheme=subln`` starts from): the pretrained model's control. Code shipped
    with the checkpoint runs only with ``trust_remote_code``."""
    config = auto_from_pretrained(AutoConfig, checkpoint, trust_remote_code)
    torch.manual_seed(seed)
    model = AutoModelForMaskedLM.from_config(config, trust_remote_code=trust_remote_code)
    if init_scheme == "subln":
        subln_scale(model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer_from_pretrained(checkpoint, trust_remote_code).save_pretrained(out_dir)
    return out_dir


def below_majority(score: float, floors: dict) -> bool:
    """Does a score fail to clear the majority floor?"""
    return "majority" in floors and score <= floors["majority"]["score"]
