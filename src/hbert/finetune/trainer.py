"""Fine-tuning any encoder checkpoint (hbert, or any ``AutoModelForSequenceClassification``-compatible Hugging Face
encoder) on any task spec, with named protocols, early stopping, seeds and dynamic padding.

Dynamic padding: batches are padded to their own longest sequence, and examples of similar length are grouped
(shuffled, then sorted by length inside windows of 50 batches), so short-sentence tasks do not pay for 128
positions per example.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.tasks import TOKEN_KIND, TaskSpec, get_task, load_task, suites
from ..data.tokenizer import save_with_model
from ..runtime import allow_tf32, autocast, resolve_device
from ..training.budget import step_lr_multiplier
from ..training.optim import adamw, set_lr
from .metrics import compute_metrics, task_score


class FinetuneError(ValueError):
    pass


@dataclass
class FinetuneConfig:
    """Fine-tuning settings; ``protocol`` picks a preset and any field overrides it."""

    protocol: str = "sane"
    lr: float = 4e-5
    epochs: int = 5
    batch_size: int = 32
    warmup: float = 0.1
    weight_decay: float = 0.01
    max_seq_len: int = 128
    patience: int = 0  # early stopping on validation loss after this many epochs without improvement (0 = off)
    keep_best: bool = False  # restore the epoch with the lowest validation loss at the end
    freeze_encoder: bool = False  # linear probe: train the classifier head only
    seed: int = 0
    max_train_examples: int = 0  # 0 = all
    max_eval_examples: int = 0
    dynamic_padding: bool = True  # speed only: pad each batch to its own longest sequence, group by length
    device: str = "auto"
    precision: str = "fp32"  # fp32 | bf16
    progress: bool = True
    floors: str = "all"  # all | cheap | none: majority, bag-of-words and (all) a random-init twin beside the score
    trust_remote_code: bool = False  # let a checkpoint that ships its own Python code run it (--trust-remote-code)


PROTOCOLS = {
    # the Cramming-like single recipe: a few epochs, one learning rate for every task, 10% warm-up
    "sane": {"lr": 4e-5, "epochs": 5, "batch_size": 32, "warmup": 0.1, "patience": 0, "keep_best": False},
    # small encoders (BERT-mini-sized, e.g. cpu-small): a higher learning rate, chosen by a grid on validation
    # (benchmarks/finetune_grid.py; results/finetune-grid/GRID.md), as the compact-BERT release did per task
    "small": {"lr": 3e-4, "epochs": 4, "batch_size": 32, "warmup": 0.1, "patience": 0, "keep_best": False},
    # the papers' authors' recipe: lr 4e-5, batch 128, up to 50 epochs, early stopping on validation loss (5)
    "author": {"lr": 4e-5, "epochs": 50, "batch_size": 128, "warmup": 0.1, "patience": 5, "keep_best": True},
}


def make_config(overrides: dict | None = None) -> FinetuneConfig:
    overrides = dict(overrides or {})
    protocol = overrides.pop("protocol", "sane")
    if protocol not in PROTOCOLS:
        raise FinetuneError(f"unknown protocol {protocol!r}; accepted: {', '.join(PROTOCOLS)}")
    config = FinetuneConfig(protocol=protocol, **PROTOCOLS[protocol])
    fields = {f.name: f for f in dataclasses.fields(FinetuneConfig)}
    for key, value in overrides.items():
        if key not in fields:
            import difflib

            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise FinetuneError(f"unknown fine-tuning setting {key!r}{hint} (accepted: {', '.join(fields)})")
        current = getattr(config, key)
        try:
            value = _as_bool(value) if isinstance(current, bool) else _as_int(value) if isinstance(current, int) \
                else type(current)(value)  # fmt: skip
        except (TypeError, ValueError) as err:
            raise FinetuneError(f"{key}: cannot use {value!r} (expected {type(current).__name__})") from err
        setattr(config, key, value)
    from .floors import FLOOR_CHOICES

    if config.floors not in FLOOR_CHOICES:
        raise FinetuneError(f"floors={config.floors!r}; accepted: {', '.join(FLOOR_CHOICES)}")
    _check_ranges(config)
    return config


_RANGES = {"lr": (0.0, 1.0), "epochs": (1, 10_000), "batch_size": (1, 1e6), "warmup": (0.0, 1.0),
           "weight_decay": (0.0, 1e3), "max_seq_len": (2, 1e6), "patience": (0, 10_000), "seed": (0, 2**31 - 1),
           "max_train_examples": (0, 1e12), "max_eval_examples": (0, 1e12)}  # fmt: skip


def _check_ranges(config: FinetuneConfig) -> None:
    import math

    for key, (low, high) in _RANGES.items():
        value = getattr(config, key)
        bad = not math.isfinite(value) or value < low or value > high or (key == "lr" and value == 0)
        if bad:
            raise FinetuneError(f"{key}={value!r}; accepted: {'> 0' if key == 'lr' else f'>= {low}'} and <= {high:g}")
    if config.precision not in ("fp32", "bf16"):
        raise FinetuneError(f"precision={config.precision!r}; accepted: fp32, bf16")


def _as_int(value) -> int:
    """A whole number: ``epochs=1.9`` or ``seed=0.5`` is refused, not rounded down."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(value)
        return int(value)
    return int(str(value).strip())


def _as_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("1", "true", "yes"):
        return True
    if str(value).lower() in ("0", "false", "no"):
        return False
    raise ValueError(value)


# ------------------------------------------------------------------------------------------ model and data


def _check_local(checkpoint: str) -> None:
    """A path that is plainly local (not a hub name such as ``org/name``) must be a folder."""
    if os.path.isdir(checkpoint):
        return
    if os.path.exists(checkpoint):
        raise FinetuneError(f"{checkpoint} is a file; accepted: a checkpoint folder or a hub name (org/name)")
    if checkpoint.startswith((".", "/", "~")) or checkpoint.count("/") > 1:
        raise FinetuneError(f"checkpoint {checkpoint} does not exist; accepted: a checkpoint folder or a hub name")


def load_classifier(checkpoint: str, spec: TaskSpec, trust_remote_code: bool = False):
    """(model, tokenizer) for a task: any checkpoint with a sequence-classification class; one that ships its
    own code loads only with ``trust_remote_code``."""
    from safetensors import SafetensorError
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from ..remote import IncompleteWeightsError, RemoteCodeError, auto_from_pretrained, tokenizer_from_pretrained

    _check_local(checkpoint)
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
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the load report lists the fresh classifier head as "missing": expected here
    try:
        model = auto_from_pretrained(
            AutoModelForSequenceClassification, checkpoint, trust_remote_code, new_head=True, **kwargs
        )
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
    finally:
        hf_logging.set_verbosity(verbosity)
    try:
        tokenizer = tokenizer_from_pretrained(checkpoint, trust_remote_code)
    except RemoteCodeError:
        raise
    except (OSError, ValueError) as err:
        raise FinetuneError(f"{checkpoint} has no tokenizer ({str(err)[:120]}); save one with the model") from err
    return model, tokenizer


def encode(tokenizer, rows, spec: TaskSpec, max_len: int) -> tuple[list[list[int]], list[list[int]], np.ndarray]:
    texts = [list(rows[f]) for f in spec.text_fields]
    encoded = tokenizer(*texts, truncation=True, max_length=max_len)
    token_types = encoded.get("token_type_ids") or [[0] * len(ids) for ids in encoded["input_ids"]]
    labels = np.asarray(rows["label"], dtype=np.float32 if spec.kind == "regression" else np.int64)
    return encoded["input_ids"], token_types, labels


def batches(lengths: list[int], batch_size: int, shuffle: bool, rng: random.Random, group: bool) -> list[list[int]]:
    """Index batches; with ``group``, similar lengths share a batch (sorted inside windows of 50 batches)."""
    order = list(range(len(lengths)))
    if shuffle:
        rng.shuffle(order)
    if group:
        window = 50 * batch_size
        order = [
            i for s in range(0, len(order), window) for i in sorted(order[s : s + window], key=lengths.__getitem__)
        ]
    out = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    if shuffle:
        rng.shuffle(out)
    return out


def collate(ids, types, labels, index: list[int], pad_id: int, pad_to: int | None, device) -> dict:
    width = pad_to or max(len(ids[i]) for i in index)
    input_ids = torch.full((len(index), width), pad_id, dtype=torch.long)
    token_type_ids = torch.zeros((len(index), width), dtype=torch.long)
    mask = torch.zeros((len(index), width), dtype=torch.long)
    for row, i in enumerate(index):
        n = len(ids[i])
        input_ids[row, :n] = torch.tensor(ids[i])
        token_type_ids[row, :n] = torch.tensor(types[i])
        mask[row, :n] = 1
    batch = {"input_ids": input_ids, "attention_mask": mask, "labels": torch.from_numpy(labels[index])}
    batch["token_type_ids"] = token_type_ids
    return {k: v.to(device) for k, v in batch.items()}


# ------------------------------------------------------------------------------------------ the loop


def _device(setting: str, key: str = "device") -> torch.device:
    """The fine-tuning device (the name fine-tuning's helpers import); float32 matmuls use TF32 on a GPU."""
    device = resolve_device(setting, key=key)
    allow_tf32(device)
    return device


@torch.no_grad()
def evaluate(model, data, spec: TaskSpec, config: FinetuneConfig, pad_id: int, device) -> dict:
    ids, types, labels = data
    model.eval()
    predictions, loss_sum = [], 0.0
    for index in batches([len(x) for x in ids], 64, False, random.Random(0), config.dynamic_padding):
        batch = collate(
            ids, types, labels, index, pad_id, None if config.dynamic_padding else config.max_seq_len, device
        )
        with autocast(device, config.precision):
            out = model(**_model_inputs(model, batch))
        loss_sum += float(out.loss) * len(index)
        logits = out.logits.float()
        pred = logits.squeeze(-1) if spec.kind == "regression" else logits.argmax(-1)
        predictions.append((index, pred.cpu().numpy()))
    ordered = np.empty(len(ids), dtype=np.float64 if spec.kind == "regression" else np.int64)
    for index, pred in predictions:
        ordered[index] = pred
    metrics = compute_metrics(spec.metrics, ordered, labels, spec.kind)
    metrics["loss"] = loss_sum / len(ids)
    metrics["score"] = task_score(metrics, spec.metrics, spec.average_metrics)
    return metrics


def _uses_types(model) -> bool:
    return getattr(model.config, "type_vocab_size", 0) > 0


def _model_inputs(model, batch: dict) -> dict:
    """The batch without token types for a model that has none."""
    return {k: v for k, v in batch.items() if k != "token_type_ids" or _uses_types(model)}


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


PROGRESS_EVERY_S = 60.0  # without a visible progress bar (output not a terminal), a step line this often


@dataclass
class _Fit:
    """The state of one fine-tuning run's epochs: step count, history, the best epoch so far, early stopping."""

    total_steps: int
    warmup_steps: int
    label: str = "finetune"  # the progress lines' name of the run
    step: int = 0
    seen: int = 0
    train_seconds: float = 0.0
    history: list = dataclasses.field(default_factory=list)
    best: dict | None = None
    best_state: dict | None = None
    waited: int = 0
    reported: float = dataclasses.field(default_factory=time.monotonic)

    def report_step(self, bar) -> None:
        """Advance the bar; when it is hidden (a log file, a pipe), write a step line every ``PROGRESS_EVERY_S``
        seconds instead, so an epoch of many minutes is not silent."""
        bar.update(1)
        now = time.monotonic()
        if bar.disable and now - self.reported >= PROGRESS_EVERY_S:
            bar.write(f"  {self.label}: step {self.step}/{self.total_steps}", file=sys.stderr)
            self.reported = now

    def end_epoch(self, epoch: int, val: dict, model, config: FinetuneConfig) -> bool:
        """Record the epoch's validation result; True when early stopping ends the run."""
        self.history.append({"epoch": epoch + 1, **val})
        if self.best is None or val["loss"] < self.best["loss"]:
            self.best, self.waited = {"epoch": epoch + 1, **val}, 0
            if config.keep_best:
                self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.waited += 1
        return bool(config.patience and self.waited >= config.patience)


def _prepare(checkpoint: str, spec: TaskSpec, config: FinetuneConfig, device):
    """(model on the device, tokenizer, encoded splits); a linear probe freezes the encoder."""
    model, tokenizer = load_classifier(checkpoint, spec, config.trust_remote_code)
    model.to(device)
    rows = task_splits(spec, config.max_train_examples, config.max_eval_examples)
    splits = {role: encode(tokenizer, r, spec, config.max_seq_len) for role, r in rows.items()}
    if config.freeze_encoder:
        base = getattr(model, model.base_model_prefix)
        base.requires_grad_(False)
    return model, tokenizer, splits


def check_finite(loss: float, spec: TaskSpec, epoch: int, config: FinetuneConfig) -> None:
    """A diverged fine-tuning stops with an error instead of reporting scores of a broken model."""
    if not math.isfinite(loss):
        raise FinetuneError(
            f"fine-tuning on {spec.name} diverged: validation loss {loss} after epoch {epoch + 1}; accepted: a "
            f"lower learning rate (lr={config.lr:g} now) or precision=fp32"
        )


def _train_epoch(model, optimizer, train, fit: _Fit, config: FinetuneConfig, rng, pad_id: int, device, bar) -> None:
    """One pass over the training split: linear warm-up and decay by step, clipping at 1, AdamW."""
    train_ids, train_types, train_labels = train
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    if config.freeze_encoder:
        getattr(model, model.base_model_prefix).eval()
    t0 = time.perf_counter()
    for index in batches([len(x) for x in train_ids], config.batch_size, True, rng, config.dynamic_padding):
        batch = collate(train_ids, train_types, train_labels, index, pad_id,
                        None if config.dynamic_padding else config.max_seq_len, device)  # fmt: skip
        set_lr(optimizer, config.lr * step_lr_multiplier(fit.step, fit.warmup_steps, fit.total_steps))
        with autocast(device, config.precision):
            out = model(**_model_inputs(model, batch))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        fit.step += 1
        fit.seen += len(index)
        if bar is not None:
            fit.report_step(bar)
    fit.train_seconds += time.perf_counter() - t0


def _fit(model, splits: dict, spec: TaskSpec, config: FinetuneConfig, pad_id: int, device, started: float) -> _Fit:
    """Train for ``config.epochs`` (or until early stopping), evaluating on validation after each epoch; the best
    epoch's weights are restored with ``keep_best``."""
    rng = random.Random(config.seed)
    optimizer = adamw(model.parameters(), config.lr, config.weight_decay)
    steps_per_epoch = math.ceil(len(splits["train"][0]) / config.batch_size)
    total = max(1, steps_per_epoch * config.epochs)
    fit = _Fit(total_steps=total, warmup_steps=int(config.warmup * total), label=f"finetune {spec.name}")
    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"finetune {spec.name}", unit="step", leave=False, disable=None)
        bar.write(f"  {spec.name}: {len(splits['train'][0])} training examples, {total} steps "
                  f"({config.epochs} epochs at most)", file=sys.stderr)  # fmt: skip
    for epoch in range(config.epochs):
        _train_epoch(model, optimizer, splits["train"], fit, config, rng, pad_id, device, bar)
        val = evaluate(model, splits["validation"], spec, config, pad_id, device)
        check_finite(val["loss"], spec, epoch, config)
        if bar is not None:
            bar.write(f"  {spec.name} epoch {epoch + 1}/{config.epochs}: validation score {val['score']:.1f}, "
                      f"loss {val['loss']:.4f} ({time.time() - started:.0f} s)", file=sys.stderr)  # fmt: skip
        if fit.end_epoch(epoch, val, model, config):
            break
    if bar is not None:
        bar.close()
    if config.keep_best and fit.best_state is not None:
        model.load_state_dict(fit.best_state)
    return fit


def _save(save: str, model, tokenizer, result: dict) -> None:
    """The fine-tuned model, its tokenizer and ``finetune.json``, written into a temporary folder renamed into
    place: a kill during the save leaves no half-written folder."""
    from ..files import atomic_dir, strict_json

    with atomic_dir(Path(save)) as tmp:
        model.save_pretrained(tmp)
        limit = getattr(model.config, "max_position_embeddings", None) or tokenizer.model_max_length
        save_with_model(tokenizer, tmp, limit)
        (tmp / "finetune.json").write_text(strict_json(result, indent=2))


def finetune(checkpoint: str, task: str | TaskSpec, config: FinetuneConfig, save: str | None = None) -> dict:
    """Fine-tune ``checkpoint`` on ``task``; returns metrics on validation (and test where it has labels), and the
    floors ``config.floors`` asks for (``floors``: majority, bag_of_words, random_init; ``below_majority``)."""
    spec = get_task(task) if isinstance(task, str) else task
    if spec.kind == TOKEN_KIND:
        from .tokens import finetune_tokens

        return finetune_tokens(checkpoint, spec, config, save)
    if config.floors != "none":  # needed only after fine-tuning: checked before it
        from .._optional import require

        require("sklearn.linear_model", "the bag-of-words floor (floors=none leaves the floors out)")
    torch.manual_seed(config.seed)
    device = _device(config.device, key="device")
    model, tokenizer, splits = _prepare(checkpoint, spec, config, device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    started = time.time()
    fit = _fit(model, splits, spec, config, pad_id, device, started)
    result = {"task": spec.name, "checkpoint": str(checkpoint), "protocol": config.protocol, "seed": config.seed,
              "epochs_run": len(fit.history), "best_epoch": fit.best["epoch"],
              "validation": evaluate(model, splits["validation"], spec, config, pad_id, device),
              "history": fit.history, "train_examples": len(splits["train"][0]), "train_seconds": fit.train_seconds,
              "train_sequences_per_s": fit.seen / max(fit.train_seconds, 1e-9),
              "wall_seconds": time.time() - started}  # fmt: skip
    for role in splits:
        if role not in ("train", "validation"):
            result[role] = evaluate(model, splits[role], spec, config, pad_id, device)
    if config.floors != "none":
        from .floors import below_majority, floors_for

        result["floors"] = floors_for(str(checkpoint), spec, config)
        result["below_majority"] = below_majority(result["validation"]["score"], result["floors"])
    if save:
        _save(save, model, tokenizer, result)
    return result


# ------------------------------------------------------------------------------------------ suites

SUITES = suites()  # derived from the task tables of data/tasks.py


def evaluate_suite(checkpoint: str, tasks: list[str], seeds: int, config: FinetuneConfig) -> dict:
    """Fine-tune on every task with ``seeds`` seeds: per-task median and spread (min-max) of the score, the floors
    (majority class, bag-of-words, and the random-init twin fine-tuned with the same seeds), the gain over the twin
    with a verdict from the seed spread, and, for GLUE tasks, the GLUE score with and without WNLI."""
    from .floors import cheap_floors, random_init_score
    from .metrics import glue_score, spread, spread_verdict

    for task in tasks:  # every task known and every local task's files readable before the first one trains
        spec = get_task(task) if isinstance(task, str) else task
        if spec.loader == "local":
            load_task(spec)
    per_task: dict[str, dict] = {}
    for task in tasks:
        configs = [dataclasses.replace(config, seed=config.seed + s, floors="none") for s in range(seeds)]
        runs = [finetune(checkpoint, task, c) for c in configs]
        entries = {"validation": [r["validation"]["score"] for r in runs]}
        if "validation_mismatched" in runs[0]:
            entries["validation_mismatched"] = [r["validation_mismatched"]["score"] for r in runs]
        per_task[task] = {role: spread(v) for role, v in entries.items()}
        per_task[task]["metrics"] = [r["validation"] for r in runs]
        if config.floors != "none":
            floors = {k: v["score"] for k, v in cheap_floors(task, config.max_train_examples,
                                                             config.max_eval_examples).items()}  # fmt: skip
            median = per_task[task]["validation"]["median"]
            per_task[task]["below_majority"] = median <= floors["majority"]
            if config.floors == "all":
                twin = [random_init_score(checkpoint, task, c)["score"] for c in configs]
                floors["random_init"] = spread(twin)
                per_task[task]["gain_over_random_init"] = median - floors["random_init"]["median"]
                per_task[task]["verdict"] = spread_verdict(entries["validation"], twin)
            per_task[task]["floors"] = floors
    result = {"checkpoint": checkpoint, "seeds": seeds, "protocol": config.protocol, "floors": config.floors,
              "tasks": per_task}  # fmt: skip
    glue = {}
    for task, entry in per_task.items():
        if task in SUITES["glue"]:
            if task == "mnli":
                glue["mnli-m"] = entry["validation"]["median"]
                if "validation_mismatched" in entry:
                    glue["mnli-mm"] = entry["validation_mismatched"]["median"]
            else:
                glue[task] = entry["validation"]["median"]
    if glue:
        result["glue"] = glue_score(glue)
    return result


def suite_markdown(result: dict) -> str:
    lines = [f"Checkpoint `{result['checkpoint']}`, protocol `{result['protocol']}`, {result['seeds']} seed(s): "
             "validation score (0-100), median and min-max, beside its floors: the majority class, a bag-of-words "
             "model (TF-IDF + logistic / ridge regression) and the random-init twin (same shape, random weights, "
             "same fine-tuning and seeds). ⚠ marks a score that does not clear the majority floor.", "",
             "| task | median | min | max | majority | bag-of-words | random-init | gain | verdict |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for task, entry in result["tasks"].items():
        floors = entry.get("floors", {})
        twin = floors.get("random_init")
        for role in ("validation", "validation_mismatched"):
            if role not in entry:
                continue
            name = task if role == "validation" else f"{task} (mismatched)"
            e = entry[role]
            flag = " ⚠" if role == "validation" and entry.get("below_majority") else ""
            cells = [name, f"{e['median']:.1f}{flag}", f"{e['min']:.1f}", f"{e['max']:.1f}"]
            if role == "validation" and floors:
                cells += [f"{floors['majority']:.1f}", f"{floors['bag_of_words']:.1f}",
                          f"{twin['median']:.1f} [{twin['min']:.1f}, {twin['max']:.1f}]" if twin else "-",
                          f"{entry['gain_over_random_init']:+.1f}" if twin else "-", entry.get("verdict", "-")]  # fmt: skip
            else:
                cells += ["-"] * 5
            lines.append("| " + " | ".join(cells) + " |")
    if "glue" in result:
        g = result["glue"]
        lines += ["", f"GLUE score: {g['glue']:.1f} ({g['tasks']} tasks); without WNLI: {g['glue_without_wnli']:.1f}"]
    return "\n".join(lines) + "\n"
