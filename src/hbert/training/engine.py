"""The training engine: one optimizer step on a batch, ``engine.step(batch, ...)``.

It owns the model (eager, wrapped in DistributedDataParallel on several ranks, optionally compiled), the optimizer,
the fp16 loss scaler, gradient accumulation and no-sync, clipping and the frozen parts; the masking strategy and
the objective are objects it calls. The run around it (budget, evaluation, checkpoints, logs) is in ``loop``.

Two paths, the same tokens masked and the same objective:
- the eager CPU path (the default on a CPU): the sparse head gathers the masked rows with ``nonzero()``, the loop
  reads each step's loss and finiteness on the host (free on a CPU);
- the static-shape path (``impl.static_shapes``: the default on a GPU and when compiled): the masked positions
  travel as a (B, K) static index (``static_positions``; K is the most any row can get, rows with fewer are
  padded and the padding carries no loss), so a compiled step has no data-dependent size and no recompiles, and
  a step that is not logged makes no host synchronisation (a non-finite step is skipped inside the fused
  optimizer; the loop reads losses and the skip count on logged steps only).

With ``compile``, ``warm_up`` runs the first forward and backward untimed (compilation, CUDA start-up) before the
budget's clock starts, and falls back to eager if, and only if, the compiler fails there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time

import torch

from ..masking.base import MaskedBatch, MaskingStrategy, static_positions
from ..masking.teacher import static_logits, static_pool_entropy
from ..runtime import autocast
from .distributed import Dist
from .objective import PretrainObjective, micro_batches


def compile_model(model: torch.nn.Module, backend: str = "inductor") -> torch.nn.Module:
    """torch.compile with data-dependent sizes (the eager path's nonzero()) kept inside the graph: without it that
    training forward breaks into two graphs at the head (benchmarks/gpu_check.py counts the breaks)."""
    torch._dynamo.config.capture_dynamic_output_shape_ops = True
    return torch.compile(model, backend=backend)


def compiler_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "the compiler failed" (dynamo's, inductor's); an out-of-memory error, a
    distributed error or a bug in the model is none of them."""
    errors: list[type[BaseException]] = [torch._dynamo.exc.TorchDynamoException]
    try:
        from torch._inductor.exc import InductorError  # not in every torch version (the except below)

        errors.append(InductorError)
    except ImportError:  # older torch: inductor errors reach here wrapped in BackendCompilerFailed
        pass
    return tuple(errors)


def compile_counters() -> dict:
    """What dynamo has done in this process since the counters were last cleared."""
    from torch._dynamo.utils import counters  # loads dynamo (about a second): only where a run compiles

    limit_hits = sum(n for reason, n in counters["unimplemented"].items() if "recompile limit" in reason.lower())
    return {
        "graphs": counters["stats"]["unique_graphs"],
        "graph_breaks": sum(counters["graph_break"].values()),
        "recompile_limit_hits": limit_hits,
    }


@dataclasses.dataclass
class StepResult:
    """What one step did; tensors stay on the device (reading them synchronises)."""

    masked: MaskedBatch  # the whole per-rank batch as masked (its statistics are logged)
    loss: torch.Tensor  # () the batch loss that was optimised (CE, or the CE + KD mix)
    ce: torch.Tensor  # () its cross-entropy term
    kd: torch.Tensor  # () its distillation term (0 without KD)
    correct: torch.Tensor  # () masked tokens predicted right (counted only when the step was measured)
    n: int | torch.Tensor = 0  # masked tokens counted in ``correct`` (a device scalar on the static-shape path)
    # False: the loss or gradient was not finite on some rank, and the update was skipped (on the static-shape
    # path a device scalar, read only when the step is logged)
    finite: bool | torch.Tensor = True

    def add(self, out, loss: torch.Tensor, kd: torch.Tensor, share: torch.Tensor, measure: bool) -> None:
        self.ce += out.loss.detach() * share
        self.kd += kd * share
        self.loss += loss.detach()
        if measure:  # accuracy needs an argmax over (n_masked, V) logits: only on measured steps
            self.correct += (out.logits.detach().max(-1).indices == out.masked_labels).sum()  # padding rows: -100
            if self.masked.positions is None:
                self.n += out.masked_labels.numel()
            else:
                self.n = self.n + (out.masked_labels != -100).sum()


class Engine:
    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, masking: MaskingStrategy,
                 objective: PretrainObjective, *, device: torch.device, precision: str, dist: Dist,
                 accumulation: int = 1, grad_clip: float = 0.0, frozen=(), compile: bool = False,
                 static: bool | None = None, compile_backend: str = "inductor"):  # fmt: skip
        self.model, self.optimizer, self.masking, self.objective = model, optimizer, masking, objective
        self.device, self.precision, self.dist = device, precision, dist
        self.accumulation, self.grad_clip, self.frozen = accumulation, grad_clip, list(frozen)
        self.static = (compile or device.type == "cuda") if static is None else static
        # the non-finite check without a host read needs an optimizer that takes found_inf (fused AdamW)
        self.sync_free = self.static and bool(getattr(optimizer, "_step_supports_amp_scaling", False))
        self.sync_free = self.sync_free and bool(optimizer.defaults.get("fused"))
        masking.static = self.static
        for part in (masking, objective):  # time the scorer forwards with CUDA events, read when logged
            if hasattr(part, "timer"):
                part.timer.lazy = self.static
        self.train_model = model
        if dist.world > 1:
            self.train_model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        self.step_model = self.train_model
        self.compile_backend = compile_backend
        self.warmed = False
        self.compile_seconds = 0.0
        self._graphs_after_warm_up = 0
        if compile:
            self._compile()
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        self.nonfinite_run = torch.zeros((), dtype=torch.long, device=device)  # non-finite steps in a row
        self.nonfinite_total = torch.zeros((), dtype=torch.long, device=device)
        self.notes: list[str] = []
        self._widths: dict[int, int] = {}

    def _compile(self) -> None:
        """A fresh compile state (another run in this process, e.g. an earlier arm of a recipe, must not use up
        dynamo's recompile limit), then the training model, and on the static-shape path the scoring and teacher
        forwards."""
        from torch._dynamo.utils import counters  # loads dynamo (about a second): only where a run compiles

        torch._dynamo.reset()
        counters.clear()
        self.step_model = compile_model(self.train_model, self.compile_backend)
        if self.static:
            if hasattr(self.masking, "score_static"):
                self.masking.score_static = torch.compile(static_pool_entropy, backend=self.compile_backend)
            self.objective.teacher_logits_static = torch.compile(static_logits, backend=self.compile_backend)

    def _uncompile(self) -> None:
        self.step_model = self.train_model
        if hasattr(self.masking, "score_static"):
            self.masking.score_static = static_pool_entropy
        self.objective.teacher_logits_static = static_logits

    @property
    def compiled(self) -> bool:
        return self.step_model is not self.train_model

    @property
    def scoring_seconds(self) -> float:
        """Time spent so far in teacher / scorer forwards (masking and distillation)."""
        return self.masking.scoring_seconds + self.objective.kd_seconds

    def compile_stats(self) -> dict:
        """Graphs, graph breaks, recompiles after the warm-up and recompile-limit hits (a hit means some calls ran
        eager) of this run's compiled model."""
        counts = compile_counters()
        return {"backend": self.compile_backend, "warm_up_seconds": round(self.compile_seconds, 3), **counts,
                "recompiles": counts["graphs"] - self._graphs_after_warm_up}  # fmt: skip

    # ------------------------------------------------------------------------------------------ the warm-up

    def warm_up(self, batch: torch.Tensor) -> float:
        """The first forward and backward of every micro-batch, untimed by the budget: compilation (and CUDA's
        start-up) happen here. Nothing is learned: no optimizer step, gradients dropped, the random state put back
        (the run masks and drops out exactly as without it). A compiler error here (only here) falls back to eager,
        with a note. Returns the seconds it took."""
        begin = time.perf_counter()
        cpu_rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        generator = torch.Generator(device=self.device).manual_seed(0)
        try:
            self._warm_up_step(batch, generator)
        except compiler_errors() as err:
            if not self.compiled:
                raise
            if self.dist.main:
                print(f"hbert pretrain: torch.compile failed ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                      f"continuing in eager mode", file=sys.stderr)  # fmt: skip
            self._uncompile()
            self.notes.append("torch.compile failed; ran in eager mode")
        finally:
            self.optimizer.zero_grad(set_to_none=True)
            torch.set_rng_state(cpu_rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state(cuda_rng, self.device)
        for part in (self.masking, self.objective):  # the warm-up's scorer time is not the run's
            if hasattr(part, "timer"):
                part.timer = type(part.timer)(part.timer.lazy)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.warmed = True
        self._graphs_after_warm_up = compile_counters()["graphs"]
        self.compile_seconds += time.perf_counter() - begin
        return time.perf_counter() - begin

    def _warm_up_step(self, batch: torch.Tensor, generator: torch.Generator) -> None:
        full = self._mask(batch, generator, progress=1.0)  # past any masking warm-up: the scorer runs too
        for rows, part, share in micro_batches(full, self.accumulation):
            with self._sync(last=rows.stop == full.input_ids.shape[0]):
                self._forward_backward(part, rows, share)

    # ------------------------------------------------------------------------------------------ a step

    def _mask(self, batch: torch.Tensor, generator: torch.Generator, progress: float) -> MaskedBatch:
        full = self.masking(batch, None, generator, model=self.model, progress=progress)
        if self.static:
            length = batch.shape[1]
            if length not in self._widths:
                self._widths[length] = self.masking.max_count(length)
            full.positions = static_positions(full.selected, self._widths[length])
        return full

    def step(self, batch: torch.Tensor, generator: torch.Generator, progress: float, freeze: bool = False,
             measure: bool = False) -> StepResult:  # fmt: skip
        """Mask the whole per-rank batch (B, T) at once (so micro-batching, a speed setting, never changes which
        tokens are masked), accumulate gradients over its micro-batches, then clip and take the optimizer step."""
        if self.compiled and not self.warmed:
            self.warm_up(batch)
        full = self._mask(batch, generator, progress)
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
        with autocast(self.device, self.precision):
            out = self.step_model(part.input_ids, labels=part.labels, sparse_logits=True,
                                  masked_positions=part.positions)  # fmt: skip
        loss, kd = self.objective(out, part, rows, share)
        (self.scaler.scale(loss) if self.scaler else loss).backward()
        return out, loss, kd

    def _update(self, loss: torch.Tensor, freeze: bool) -> bool | torch.Tensor:
        """Clip and step; skip the update (on every rank) when the loss or the gradient is not finite."""
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if self.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        else:
            grad_norm = torch.zeros((), device=self.device)
        if self.sync_free:
            return self._update_on_device(loss, grad_norm, freeze)
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
        if self.static:  # the loop reads the counts the static-shape path keeps (here without saving a wait)
            self.nonfinite_run.fill_(0 if finite else int(self.nonfinite_run) + 1)
            self.nonfinite_total += int(not finite)
        return finite

    def _update_on_device(self, loss: torch.Tensor, grad_norm: torch.Tensor, freeze: bool) -> torch.Tensor:
        """The same decision without a host read: the fused optimizer skips the step (and its step count) when
        ``found_inf`` is set, as under GradScaler; the run of non-finite steps is counted on the device."""
        bad = ~(torch.isfinite(loss) & torch.isfinite(grad_norm))
        bad = self.dist.any_tensor(bad)
        if freeze:
            for p in self.frozen:
                p.grad = None
        if self.scaler:  # its found_inf covers non-finite gradients (a non-finite loss gives them)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.found_inf = bad.float()
            try:
                self.optimizer.step()
            finally:
                del self.optimizer.found_inf
        self.optimizer.zero_grad(set_to_none=True)
        self.nonfinite_run = torch.where(bad, self.nonfinite_run + 1, 0)
        self.nonfinite_total += bad
        return ~bad
