"""Fine-tuning on token-level tasks (named-entity recognition, tagging): one label per word, the standard
``run_ner`` recipe (the first word piece of each word carries its label, the others are ignored), entity-level
F1 / precision / recall by seqeval, computed locally."""

from __future__ import annotations

import copy
import math
import random
import time
from pathlib import Path

import torch

from ..data.tasks import TaskSpec, load_task
from ..data.tokenizer import save_with_model


def load_tagger(checkpoint: str, spec: TaskSpec, trust_remote_code: bool = False):
    """(model, tokenizer): any checkpoint whose model type has a token-classification class (hbert's are
    registered with the Auto classes on import, so no remote code runs); a checkpoint or tokenizer that ships its
    own code loads only with ``trust_remote_code``, and a load that leaves encoder weights random is refused."""
    from transformers import AutoModelForTokenClassification
    from transformers.utils import logging as hf_logging

    from ..remote import IncompleteWeightsError, RemoteCodeError, auto_from_pretrained, tokenizer_from_pretrained
    from .trainer import FinetuneError, _check_local

    _check_local(checkpoint)
    names = dict(enumerate(spec.label_names))
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the fresh tagging head is reported as "missing": expected here
    try:
        model = auto_from_pretrained(
            AutoModelForTokenClassification, checkpoint, trust_remote_code, new_head=True, num_labels=len(names),
            id2label=names, label2id={v: k for k, v in names.items()},
        )  # fmt: skip
        tokenizer = tokenizer_from_pretrained(checkpoint, trust_remote_code)
    except (RemoteCodeError, IncompleteWeightsError):
        raise
    except (OSError, ValueError, KeyError) as err:
        raise FinetuneError(
            f"{checkpoint} cannot be fine-tuned for token classification: {str(err).splitlines()[0][:200]}; "
            f"accepted: hbert checkpoints or any encoder with a token-classification head in transformers"
        ) from err
    finally:
        hf_logging.set_verbosity(verbosity)
    if not getattr(tokenizer, "is_fast", False):
        raise FinetuneError(f"{checkpoint}: token tasks need a fast tokenizer (word ids); save a tokenizer.json")
    return model, tokenizer


def encode_words(tokenizer, rows, words_field: str, max_len: int) -> list[dict]:
    """Tokenise pre-split words; the first piece of each word gets the word's tag, other pieces and special
    tokens get -100 (ignored by the loss and the metrics)."""
    encoded = tokenizer(list(rows[words_field]), is_split_into_words=True, truncation=True, max_length=max_len)
    features = []
    for i, tags in enumerate(rows["label"]):
        labels, previous = [], None
        for word in encoded.word_ids(i):
            labels.append(-100 if word is None or word == previous else tags[word])
            previous = word
        features.append({"input_ids": encoded["input_ids"][i], "attention_mask": encoded["attention_mask"][i],
                         "labels": labels})  # fmt: skip
    return features


def entity_metrics(true_tags: list[list[str]], predicted_tags: list[list[str]]) -> dict[str, float]:
    """seqeval span scores (an entity counts only when its type and both ends match) and per-word accuracy."""
    from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score

    return {
        "entity_f1": float(f1_score(true_tags, predicted_tags, zero_division=0)),
        "entity_precision": float(precision_score(true_tags, predicted_tags, zero_division=0)),
        "entity_recall": float(recall_score(true_tags, predicted_tags, zero_division=0)),
        "accuracy": float(accuracy_score(true_tags, predicted_tags)),
    }


@torch.no_grad()
def evaluate_tags(model, features: list[dict], collator, spec: TaskSpec, device, batch_size: int = 64) -> dict:
    model.eval()
    true_tags, predicted_tags, loss_sum = [], [], 0.0
    for start in range(0, len(features), batch_size):
        batch = {k: v.to(device) for k, v in collator(features[start : start + batch_size]).items()}
        out = model(**batch)
        loss_sum += float(out.loss) * batch["labels"].shape[0]
        for pred, gold in zip(out.logits.argmax(-1).tolist(), batch["labels"].tolist()):
            kept = [(p, g) for p, g in zip(pred, gold) if g != -100]
            true_tags.append([spec.label_names[g] for _, g in kept])
            predicted_tags.append([spec.label_names[p] for p, _ in kept])
    metrics = entity_metrics(true_tags, predicted_tags)
    metrics["loss"] = loss_sum / max(1, len(features))
    metrics["score"] = 100.0 * metrics[spec.main_metric]
    return metrics


def _lr_scale(step: int, warmup: int, total: int) -> float:
    return (step + 1) / max(1, warmup) if step < warmup else max(0.0, (total - step) / max(1, total - warmup))


def finetune_tokens(checkpoint: str, spec: TaskSpec, config, save: str | None = None) -> dict:
    """Fine-tune ``checkpoint`` on a token-level task with the settings of ``config`` (a ``FinetuneConfig``: lr,
    epochs, batch size, warm-up, weight decay, patience, keep_best, freeze_encoder, seed, limits, device,
    precision). Batches are always padded to their own longest sequence."""
    from transformers import DataCollatorForTokenClassification

    from .trainer import _device, check_finite

    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    device = _device(config.device)
    model, tokenizer = load_tagger(checkpoint, spec, config.trust_remote_code)
    model.to(device)
    splits = _encoded_splits(spec, tokenizer, config)
    collator = DataCollatorForTokenClassification(tokenizer, return_tensors="pt")
    if config.freeze_encoder:  # a linear probe: only the tagging layer learns
        getattr(model, model.base_model_prefix).requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    train = splits["train"]
    total = max(1, math.ceil(len(train) / config.batch_size) * config.epochs)
    warmup, step, seen, history, best, best_state, waited = int(config.warmup * total), 0, 0, [], None, None, 0
    started, train_seconds = time.time(), 0.0
    for epoch in range(config.epochs):
        t0 = time.perf_counter()
        step, n = _train_epoch(model, train, collator, optimizer, params, config, rng, device, step, (warmup, total))
        seen += n
        train_seconds += time.perf_counter() - t0
        val = evaluate_tags(model, splits["validation"], collator, spec, device)
        check_finite(val["loss"], spec, epoch, config)
        history.append({"epoch": epoch + 1, **val})
        if best is None or val["loss"] < best["loss"]:
            best, waited = {"epoch": epoch + 1, **val}, 0
            if config.keep_best:
                best_state = copy.deepcopy(model.state_dict())
        else:
            waited += 1
            if config.patience and waited >= config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    result = {
        "task": spec.name,
        "kind": spec.kind,
        "checkpoint": str(checkpoint),
        "protocol": config.protocol,
        "seed": config.seed,
        "epochs_run": len(history),
        "best_epoch": best["epoch"],
        "validation": evaluate_tags(model, splits["validation"], collator, spec, device),
        "history": history,
        "train_examples": len(train),
        "train_seconds": train_seconds,
        "train_sequences_per_s": seen / max(train_seconds, 1e-9),
        "wall_seconds": time.time() - started,
    }
    for role in splits:
        if role not in ("train", "validation"):
            result[role] = evaluate_tags(model, splits[role], collator, spec, device)
    if save:
        _save_tagger(model, tokenizer, save)
    return result


def _encoded_splits(spec: TaskSpec, tokenizer, config) -> dict[str, list[dict]]:
    """Every split of the task, cut to the configured example limits and tokenised word by word."""
    from .trainer import FinetuneError

    data = load_task(spec, seed=0)
    if "validation" not in data:
        raise FinetuneError(f"task {spec.name} has no validation split (splits: {', '.join(data)})")
    splits = {}
    for role, rows in data.items():
        limit = config.max_train_examples if role == "train" else config.max_eval_examples
        if limit:
            rows = rows.select(range(min(limit, len(rows))))
        splits[role] = encode_words(tokenizer, rows, spec.text_fields[0], config.max_seq_len)
    return splits


def _train_epoch(
    model, train, collator, optimizer, params, config, rng, device, step: int, schedule
) -> tuple[int, int]:
    """One pass over ``train`` in a seeded order; returns the step count after it and the sequences seen."""
    warmup, total = schedule
    model.train()
    order = list(range(len(train)))
    rng.shuffle(order)
    for start in range(0, len(order), config.batch_size):
        index = order[start : start + config.batch_size]
        batch = {k: v.to(device) for k, v in collator([train[i] for i in index]).items()}
        for group in optimizer.param_groups:
            group["lr"] = config.lr * _lr_scale(step, warmup, total)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
    return step, len(order)


def _save_tagger(model, tokenizer, save: str) -> None:
    """The fine-tuned tagger and its tokenizer, written into a temporary folder renamed into place."""
    from ..files import atomic_dir

    with atomic_dir(Path(save)) as tmp:
        model.save_pretrained(tmp)
        save_with_model(tokenizer, tmp, getattr(model.config, "max_position_embeddings", tokenizer.model_max_length))


__all__ = ["encode_words", "entity_metrics", "evaluate_tags", "finetune_tokens", "load_tagger"]
