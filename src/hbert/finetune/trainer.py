"""Fine-tuning any encoder checkpoint (hbert, or any Hugging Face encoder with the task kind's head) on any task
spec, with named protocols, early stopping, seeds, dynamic padding and floors: one loop for every task kind, whose
differences (head, encoding, predictions, metrics, cheap floors) are the kind's adapter in ``kinds.py``.

Dynamic padding: batches are padded to their own longest sequence, and examples of similar length are grouped
(shuffled, then sorted by length inside windows of 50 batches), so short-sentence tasks do not pay for 128
positions per example.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .._optional import require
from ..data.tasks import TaskSpec, get_task
from ..data.tokenizer import save_with_model
from ..files import atomic_dir, strict_json
from ..optim import adamw, set_lr, step_lr_multiplier
from ..runtime import allow_tf32, autocast, resolve_device
from .floors import below_majority, random_init_twin
from .kinds import Encoded, kind_of, task_splits
from .metrics import task_score
from .settings import FinetuneConfig, FinetuneError

# ------------------------------------------------------------------------------------------ model and data


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


def collate(data: Encoded, index: list[int], pad_id: int, pad_to: int | None, device, kind) -> dict:
    """The examples ``index`` of ``data`` as a batch padded to ``pad_to`` or to its longest example."""
    width = pad_to or max(len(data.ids[i]) for i in index)
    input_ids = torch.full((len(index), width), pad_id, dtype=torch.long)
    token_type_ids = torch.zeros((len(index), width), dtype=torch.long)
    mask = torch.zeros((len(index), width), dtype=torch.long)
    for row, i in enumerate(index):
        n = len(data.ids[i])
        input_ids[row, :n] = torch.tensor(data.ids[i])
        token_type_ids[row, :n] = torch.tensor(data.types[i])
        mask[row, :n] = 1
    batch = {"input_ids": input_ids, "attention_mask": mask, "labels": kind.batch_labels(data.labels, index, width)}
    batch["token_type_ids"] = token_type_ids
    return {k: v.to(device) for k, v in batch.items()}


# ------------------------------------------------------------------------------------------ the loop


def _device(setting: str, key: str = "device") -> torch.device:
    """The fine-tuning device; float32 matmuls use TF32 on a GPU."""
    device = resolve_device(setting, key=key)
    allow_tf32(device)
    return device


@torch.no_grad()
def evaluate(model, data: Encoded, spec: TaskSpec, config: FinetuneConfig, pad_id: int, device) -> dict:
    """The task's metrics, the mean loss and the 0-100 ``score`` of ``model`` on ``data``."""
    kind = kind_of(spec)
    model.eval()
    predictions, loss_sum = [None] * len(data), 0.0
    pad_to = None if config.dynamic_padding else config.max_seq_len
    for index in batches([len(x) for x in data.ids], 64, False, random.Random(0), config.dynamic_padding):
        batch = collate(data, index, pad_id, pad_to, device, kind)
        with autocast(device, config.precision):
            out = model(**_model_inputs(model, batch))
        loss_sum += float(out.loss) * len(index)
        for i, prediction in zip(index, kind.predict(out.logits.float(), batch["labels"])):
            predictions[i] = prediction
    metrics = kind.metrics(predictions, data, spec)
    metrics["loss"] = loss_sum / len(data)
    metrics["score"] = task_score(metrics, spec.metrics, spec.average_metrics)
    return metrics


def _uses_types(model) -> bool:
    return getattr(model.config, "type_vocab_size", 0) > 0


def _model_inputs(model, batch: dict) -> dict:
    """The batch without token types for a model that has none."""
    return {k: v for k, v in batch.items() if k != "token_type_ids" or _uses_types(model)}


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
    kind = kind_of(spec)
    model, tokenizer = kind.load(checkpoint, spec, config.trust_remote_code)
    model.to(device)
    rows = task_splits(spec, config.max_train_examples, config.max_eval_examples)
    splits = {role: kind.encode(tokenizer, r, spec, config.max_seq_len) for role, r in rows.items()}
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


def _train_epoch(model, optimizer, train: Encoded, fit: _Fit, config: FinetuneConfig, rng, pad_id: int, device, bar,
                 kind) -> None:  # fmt: skip
    """One pass over the training split: linear warm-up and decay by step, clipping at 1, AdamW."""
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    if config.freeze_encoder:
        getattr(model, model.base_model_prefix).eval()
    t0 = time.perf_counter()
    pad_to = None if config.dynamic_padding else config.max_seq_len
    for index in batches([len(x) for x in train.ids], config.batch_size, True, rng, config.dynamic_padding):
        batch = collate(train, index, pad_id, pad_to, device, kind)
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
    steps_per_epoch = math.ceil(len(splits["train"]) / config.batch_size)
    total = max(1, steps_per_epoch * config.epochs)
    fit = _Fit(total_steps=total, warmup_steps=int(config.warmup * total), label=f"finetune {spec.name}")
    bar = None
    if config.progress:
        bar = tqdm(total=total, desc=f"finetune {spec.name}", unit="step", leave=False, disable=None)
        bar.write(f"  {spec.name}: {len(splits['train'])} training examples, {total} steps "
                  f"({config.epochs} epochs at most)", file=sys.stderr)  # fmt: skip
    for epoch in range(config.epochs):
        _train_epoch(model, optimizer, splits["train"], fit, config, rng, pad_id, device, bar, kind_of(spec))
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
    with atomic_dir(Path(save)) as tmp:
        model.save_pretrained(tmp)
        limit = getattr(model.config, "max_position_embeddings", None) or tokenizer.model_max_length
        save_with_model(tokenizer, tmp, limit)
        (tmp / "finetune.json").write_text(strict_json(result, indent=2))


def finetune(checkpoint: str, task: str | TaskSpec, config: FinetuneConfig, save: str | None = None) -> dict:
    """Fine-tune ``checkpoint`` on ``task`` (any kind); returns metrics on validation (and test where it has
    labels), and the floors ``config.floors`` asks for (``floors``: majority, bag_of_words, random_init;
    ``below_majority``)."""
    spec = get_task(task) if isinstance(task, str) else task
    if config.floors != "none":  # needed only after fine-tuning: checked before it
        require("sklearn.linear_model", "the bag-of-words floor (floors=none leaves the floors out)")
    torch.manual_seed(config.seed)
    device = _device(config.device, key="device")
    model, tokenizer, splits = _prepare(checkpoint, spec, config, device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    started = time.time()
    fit = _fit(model, splits, spec, config, pad_id, device, started)
    result = {"task": spec.name, "kind": spec.kind, "checkpoint": str(checkpoint), "protocol": config.protocol,
              "seed": config.seed, "epochs_run": len(fit.history), "best_epoch": fit.best["epoch"],
              "validation": evaluate(model, splits["validation"], spec, config, pad_id, device),
              "history": fit.history, "train_examples": len(splits["train"]), "train_seconds": fit.train_seconds,
              "train_sequences_per_s": fit.seen / max(fit.train_seconds, 1e-9),
              "wall_seconds": time.time() - started}  # fmt: skip
    for role in splits:
        if role not in ("train", "validation"):
            result[role] = evaluate(model, splits[role], spec, config, pad_id, device)
    if config.floors != "none":
        result["floors"] = floors_for(str(checkpoint), spec, config)
        result["below_majority"] = below_majority(result["validation"]["score"], result["floors"])
    if save:
        _save(save, model, tokenizer, result)
    return result


# ------------------------------------------------------------------------------------------ floors


def cheap_floors(spec: TaskSpec | str, max_train_examples: int = 0, max_eval_examples: int = 0) -> dict:
    """``{"majority": metrics, "bag_of_words": metrics}`` on the validation split, with the same example limits
    as fine-tuning (each kind names its own two floors)."""
    spec = get_task(spec) if isinstance(spec, str) else spec
    splits = task_splits(spec, max_train_examples, max_eval_examples)
    return kind_of(spec).cheap_floors(spec, splits["train"], splits["validation"])


def random_init_score(checkpoint: str, spec: TaskSpec | str, config: FinetuneConfig, init_scheme: str = "bert") -> dict:
    """Validation metrics of the random-init twin of ``checkpoint`` fine-tuned exactly like ``config`` says (the
    twin's weights are seeded with the fine-tuning seed, so seeds spread both)."""
    with tempfile.TemporaryDirectory(prefix="hbert-twin-") as tmp:
        twin = random_init_twin(checkpoint, tmp, seed=config.seed, init_scheme=init_scheme,
                                trust_remote_code=config.trust_remote_code)  # fmt: skip
        result = finetune(str(twin), spec, dataclasses.replace(config, floors="none"))
    return result["validation"]


def floors_for(checkpoint: str, spec: TaskSpec, config: FinetuneConfig) -> dict:
    """The floors ``config.floors`` asks for, each as validation metrics with a ``score``."""
    if config.floors == "none":
        return {}
    out = cheap_floors(spec, config.max_train_examples, config.max_eval_examples)
    if config.floors == "all":
        out["random_init"] = random_init_score(checkpoint, spec, config)
    return out
