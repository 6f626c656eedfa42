"""The training engine: one optimizer step on a batch, ``engine.step(batch, ...)``.

It owns the model (eager, wrapped in DistributedDataParallel on several ranks, optionally compiled), the optimizer,
the fp16 loss scaler, gradient accumulation and no-sync, clipping and the frozen parts; the masking strategy and
the objective are objects it calls. The run around it (budget, evaluation, checkpoints, logs) is in ``loop``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys

import torch

from ..masking.base import MaskedBatch, MaskingStrategy
from ..runtime import autocast
from .distributed import Dist
from .objective import PretrainObjective, micro_batches


def compile_model(model: torch.nn.Module) -> torch.nn.Module:
    """torch.compile with data-dependent sizes (the sparse head's nonzero()) kept inside the graph: without it the
    training forward breaks into two graphs at the head (benchmarks/gpu_check.py counts the breaks)."""
    torch._dynamo.config.capture_dynamic_output_shape_ops = True
    return torch.compile(model)


@dataclasses.dataclass
class StepResult:
    """What one step did; tensors stay on the device (reading them synchronises)."""

    masked: MaskedBatch  # the whole per-rank batch as masked (its statistics are logged)
    loss: torch.Tensor  # () the batch loss that was optimised (CE, or the CE + KD mix)
    ce: torch.Tensor  # () its cross-entropy term
    kd: torch.Tensor  # () its distillation term (0 without KD)
    correct: torch.Tensor  # () masked tokens predicted right (counted only when the step was measured)
    n: int = 0  # masked tokens counted in ``correct``
    finite: bool = True  # False: the loss or gradient was not finite on some rank, and the update was skipped

    def add(self, out, loss: torch.Tensor, kd: torch.Tensor, share: torch.Tensor, measure: bool) -> None:
        self.ce += out.loss.detach() * share
        self.kd += kd * share
        self.loss += loss.detach()
        if measure:  # accuracy needs an argmax over (n_masked, V) logits: only on measured steps
            self.correct += (out.logits.detach().max(-1).indices == out.masked_labels).sum()
            self.n += out.masked_labels.numel()


class Engine:
    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, masking: MaskingStrategy,
                 objective: PretrainObjective, *, device: torch.device, precision: str, dist: Dist,
                 accumulation: int = 1, grad_clip: float = 0.0, frozen=(), compile: bool = False):  # fmt: skip
        self.model, self.optimizer, self.masking, self.objective = model, optimizer, masking, objective
        self.device, self.precision, self.dist = device, precision, dist
        self.accumulation, self.grad_clip, self.frozen = accumulation, grad_clip, list(frozen)
        self.train_model = model
        if dist.world > 1:
            self.train_model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        self.step_model = compile_model(self.train_model) if compile else self.train_model
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        self.notes: list[str] = []

    @property
    def compiled(self) -> bool:
        return self.step_model is not self.train_model

    @property
    def scoring_seconds(self) -> float:
        """Time spent so far in teacher / scorer forwards (masking and distillation)."""
        return self.masking.scoring_seconds + self.objective.kd_seconds

    def step(self, batch: torch.Tensor, generator: torch.Generator, progress: float, freeze: bool = False,
             measure: bool = False) -> StepResult:  # fmt: skip
        """Mask the whole per-rank batch (B, T) at once (so micro-batching, a speed setting, never changes which
        tokens are masked), accumulate gradients over its micro-batches, then clip and take the optimizer step."""
        full = self.masking(batch, None, generator, model=self.model, progress=progress)
        zero = torch.zeros((), device=self.device)
        result = StepResult(full, zero.clone(), zero.clone(), zero.clone(), torch.zeros_like(zero, dtype=torch.long))
        for rows, part, share in micro_batches(full, self.accumulation):
            with self._sync(last=rows.stop == full.input_ids.shape[0]):
                out, loss, kd = self._forward_backward(part, rows, share)
            result.add(out, loss, kd, share, measure)
            self.masking.observe(part, out.logits)
        result.finite = self._update(result.loss, freeze)
        return result

    def _sync(self, last: bool):
        """DDP all-reduces gradients only on the last micro-batch of a step."""
        if self.dist.world > 1 and not last:
            return self.train_model.no_sync()
        return contextlib.nullcontext()

    def _forward_backward(self, part: MaskedBatch, rows: slice, share: torch.Tensor):
        try:
            return self._forward_backward_with(self.step_model, part, rows, share)
        except Exception as err:  # torch.compile can fail on exotic set-ups: fall back to eager once
            if not self.compiled:
                raise
            if self.dist.main:
                print(f"hbert pretrain: torch.compile failed ({type(err).__name__}: {str(err)[:200]}); "
                      f"continuing in eager mode", file=sys.stderr)  # fmt: skip
            self.step_model = self.train_model
            self.optimizer.zero_grad(set_to_none=True)
            self.notes.append("torch.compile failed; ran in eager mode")
            return self._forward_backward_with(self.step_model, part, rows, share)

    def _forward_backward_with(self, net: torch.nn.Module, part: MaskedBatch, rows: slice, share: torch.Tensor):
        with autocast(self.device, self.precision):
            out = net(part.input_ids, labels=part.labels, sparse_logits=True)
        loss, kd = self.objective(out, part, rows, share)
        (self.scaler.scale(loss) if self.scaler else loss).backward()
        return out, loss, kd

    def _update(self, loss: torch.Tensor, freeze: bool) -> bool:
        """Clip and step; skip the update (on every rank) when the loss or the gradient is not finite."""
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if self.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        else:
            grad_norm = torch.zeros((), device=self.device)
        finite = not self.dist.any_of(not bool(torch.isfinite(loss) & torch.isfinite(grad_norm)), device=self.device)[0]
        if finite:
            if freeze:
                for p in self.frozen:
                    p.grad = None
            if self.scaler:
                self.scaler.step(self.optimizer)
            else:
                self.optimizer.step()
        if self.scaler:
            self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return finite
