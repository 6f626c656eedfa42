"""Budgeted pretraining: "pretrain this encoder for exactly this budget, as well as the budget allows, and never
lose the run".

The top level, ``pretrain``, reads as: set the run up, ``train_step`` until the budget is spent (evaluating and
checkpointing between steps when due), finish. The optimizer step itself is ``Engine.step`` (``engine``); the
objective is in ``objective``; what a run holds between steps is the ``Run`` below, passed explicitly.

One process per device (``torchrun`` for several); each rank reads its own shard of blocks; masking runs inside
the step on the training device; the learning rate follows the share of the budget spent; checkpoints are written
atomically on an interval, at the end and on SIGTERM / SIGINT; ``resume`` continues the same run bit for bit
(on CPU in deterministic mode).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..budget import Budget, BudgetState, Interval
from ..config import (
    PretrainConfig,
    config_from_dict,
    parse_override,
    save_config,
    set_key,
    to_dict,
    validate_config,
)
from ..data.corpus import Corpus
from ..data.sampler import BlockSampler
from ..files import RUN_MARKERS, folder_entries, folder_lock, read_json, read_yaml, remove_stale_temps, write_atomic
from ..masking.base import MaskingStrategy, SpecialIds, build_masking, masking_class
from ..masking.random import RandomMasking
from ..masking.stats import bucket_shares, frequency_buckets
from ..masking.teacher import TeacherCache
from ..modeling import HBertConfig, HBertForMaskedLM
from ..optim import adamw, lr_multiplier, set_lr
from ..runtime import autocast, device_kind, environment, resolve_device, resolve_precision
from .card import base_model_name, command_line, model_card
from .checkpoint import (
    CheckpointError,
    changed_result_settings,
    export_final,
    intact_note,
    load_checkpoint,
    save_checkpoint,
    verified_checkpoint,
)
from .distributed import Dist, setup_distributed
from .engine import Engine, StepResult
from .errors import TrainingError
from .init import frozen_parameters, initialise
from .objective import PretrainObjective
from .runlog import RunLog
from .share import MachineShare

EVAL_MASK_SEED = 20240611  # one fixed held-out mask for every run, architecture and masking strategy

__all__ = [
    "between_steps", "build_model", "build_optimizer", "evaluate", "finish", "heldout_eval_set", "pretrain",
    "saved_config", "start_run", "train_step",
]  # fmt: skip


# ------------------------------------------------------------------------------------------ model set-up


def build_model(config: PretrainConfig, tokenizer, seq_len: int) -> tuple[HBertForMaskedLM, dict]:
    fields = dict(config.model.fields)
    fields.setdefault("vocab_size", len(tokenizer))
    fields.setdefault("pad_token_id", tokenizer.pad_token_id)
    fields.setdefault("max_position_embeddings", max(512, seq_len))
    if fields["vocab_size"] < len(tokenizer):
        raise TrainingError(
            f"model.vocab_size={fields['vocab_size']} is smaller than the corpus tokenizer's {len(tokenizer)}"
        )
    torch.manual_seed(config.train.seed)
    model = HBertForMaskedLM(HBertConfig.from_preset(config.model.preset, **fields))
    return model, initialise(model, config.init)


def build_optimizer(model: torch.nn.Module, config: PretrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW (no weight decay on norms and biases), fused on CPU and CUDA."""
    train = config.train
    fused = device.type in ("cuda", "cpu")
    return adamw(model.parameters(), train.lr, train.weight_decay, train.betas, train.eps, fused=fused)


# ------------------------------------------------------------------------------------------ evaluation


def heldout_eval_set(corpus: Corpus, ids: SpecialIds, n_blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n_blocks`` held-out blocks with one fixed, seeded random 15% mask (80/10/10): the same
    positions and masked inputs for every run on this corpus."""
    blocks = corpus.blocks("heldout")
    if len(blocks) == 0:
        raise TrainingError(f"{corpus.path} has no held-out blocks; prepare it with a held-out fraction > 0")
    data = torch.from_numpy(np.asarray(blocks[: min(n_blocks, len(blocks))]).astype(np.int64))
    generator = torch.Generator().manual_seed(EVAL_MASK_SEED)
    masked = RandomMasking(ids, 0.15)(data, None, generator)
    return masked.input_ids, masked.labels


@torch.no_grad()
def evaluate(model: HBertForMaskedLM, inputs: torch.Tensor, labels: torch.Tensor, device, precision, batch=64) -> dict:
    was_training = model.training
    model.eval()
    correct = total = 0
    loss_sum = 0.0
    for start in range(0, len(inputs), batch):
        x, y = inputs[start : start + batch].to(device), labels[start : start + batch].to(device)
        with autocast(device, precision):
            out = model(x, labels=y, sparse_logits=True)
        n = out.masked_labels.numel()
        correct += int((out.logits.argmax(-1) == out.masked_labels).sum())
        loss_sum += float(out.loss) * n
        total += n
    model.train(was_training)
    return {"heldout_mlm_acc": correct / total, "heldout_mlm_loss": loss_sum / total, "heldout_tokens": total}


def _final_card(model, corpus, summary: dict, run_dir: Path, init) -> str:
    parameters = sum(p.numel() for p in model.parameters())
    base = base_model_name(init.source) if init.kind != "random" else None
    return model_card(model.config, parameters, corpus.manifest, summary, run_dir.name, command_line(), base)


# ------------------------------------------------------------------------------------------ signals, reports, resuming


class _Signals:
    """SIGTERM / SIGINT set a flag; the loop saves a checkpoint after the current step and exits."""

    def __init__(self):
        self.received: int | None = None
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.received = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _last_step(budget: Budget, state: BudgetState, tokens_per_step: int) -> bool:
    """Will the next step spend the budget? (exact for step and token budgets; unknowable for time budgets)"""
    if budget.kind == "steps":
        return state.steps + 1 >= budget.amount
    if budget.kind == "tokens":
        return state.tokens + tokens_per_step >= budget.amount
    return False


def saved_config(run_dir: str | os.PathLike, impl_overrides: list[str] | None = None) -> PretrainConfig:
    """The configuration a run was started with, plus speed-only (``impl.*``) overrides for its resumption."""
    saved = Path(run_dir) / "config.yaml"
    if not saved.exists():
        raise TrainingError(f"--resume {run_dir}: no config.yaml there; accepted: a run folder of hbert pretrain")
    data = read_yaml(saved)
    if not isinstance(data, dict):
        raise TrainingError(f"{saved}: not a run configuration (a YAML mapping of sections); restore it")
    config = config_from_dict(data)
    config.out = str(run_dir)  # the folder given, also when the run was moved since
    for item in impl_overrides or []:
        key, value = parse_override(item, text_keys=None)
        if not key.startswith("impl."):
            raise TrainingError(f"--resume accepts only impl.* (speed) overrides, got {key}")
        set_key(config, key, value)
    return config


def _resume_from(run_dir: Path, config: PretrainConfig):
    """(model, state) of the newest intact checkpoint; refuses a config.yaml edited since in a results setting."""
    try:
        _, model, state = load_checkpoint(run_dir)
    except CheckpointError as err:
        raise TrainingError(str(err)) from err
    changed = changed_result_settings(to_dict(config), state.get("config", {}))
    if changed:
        raise TrainingError(
            f"--resume {run_dir}: config.yaml differs from the configuration stored in the checkpoint in results "
            f"setting(s) {', '.join(changed[:5])}; accepted: only impl.* (speed) changes. Restore config.yaml or "
            f"start a new run"
        )
    return model, state


def _export_or_explain(run_dir: Path, model, tokenizer) -> None:
    try:
        export_final(run_dir, model, tokenizer)
    except OSError as err:
        where = verified_checkpoint(run_dir)
        raise TrainingError(
            f"training completed, but final/ could not be written ({err.strerror or err}: {err.filename or run_dir}); "
            + (f"the trained weights are in the last checkpoint {where}" if where else intact_note(run_dir))
        ) from err


# ------------------------------------------------------------------------------------------ the run folder


def _finished(run_dir: Path) -> dict | None:
    """The summary of a run that completed and exported final/, or None."""
    try:
        summary = read_json(run_dir / "summary.json")
    except (OSError, ValueError):
        return None
    done = isinstance(summary, dict) and summary.get("status") == "completed" and (run_dir / "final").is_dir()
    return summary if done else None


def check_new_run_folder(run_dir: Path) -> None:
    """A new run starts only in a new or empty folder: never over another run (finished, interrupted, or with its
    checkpoints deleted) or over the user's own files."""
    if run_dir.exists() and not run_dir.is_dir():
        raise TrainingError(f"out={run_dir} is a file; accepted: a new or empty folder for the run")
    entries = folder_entries(run_dir)
    if not entries:
        return
    if any(name in RUN_MARKERS for name in entries):
        if _finished(run_dir):
            raise TrainingError(f"{run_dir} already holds a run (finished: final/ and summary.json); choose another "
                                f"out")  # fmt: skip
        raise TrainingError(f"{run_dir} already holds a run; resume it with --resume {run_dir} or choose another out")
    shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
    raise TrainingError(f"out={run_dir} holds other files ({shown}); accepted: a new or empty folder for the run")


def check_resumable(run_dir: Path) -> None:
    """``--resume`` continues an unfinished run; a finished one is left as it is (its summary and final/)."""
    summary = _finished(run_dir)
    if summary is not None:
        raise TrainingError(
            f"--resume {run_dir}: the run is finished ({summary.get('steps', '?')} steps, final/ exported); nothing "
            f"to resume. To train further, start a new run with init=complete init.source={run_dir / 'final'}"
        )


@contextlib.contextmanager
def claimed_run_folder(config: PretrainConfig, resume: str | None):
    """The run folder, locked against other hbert processes for the whole run and checked under the lock (on the
    main process; every rank of a ``torchrun`` writes through it)."""
    if int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    run_dir = Path(config.out)
    with folder_lock(run_dir, None if resume else "out"):
        if resume:
            check_resumable(run_dir)
        else:
            check_new_run_folder(run_dir)
        yield


# ------------------------------------------------------------------------------------------ setting a run up


@dataclasses.dataclass
class Run:
    """What a pretraining run holds between steps; the functions below take it and change only what they say."""

    config: PretrainConfig
    run_dir: Path
    budget: Budget
    corpus: Corpus
    tokenizer: object
    d: Dist
    device: torch.device
    precision: str
    engine: Engine
    sampler: BlockSampler
    per_rank: int  # blocks per rank and step
    clock: BudgetState  # what has been spent (steps, tokens, charged seconds)
    init_report: dict
    eval_set: tuple[torch.Tensor, torch.Tensor]  # held-out inputs and labels under the fixed mask
    buckets: torch.Tensor  # (V,) frequency bucket of each token id
    evals: Interval
    checkpoints: Interval
    log: RunLog
    nonfinite: int = 0  # non-finite steps in a row
    started: float = dataclasses.field(default_factory=time.time)
    machine: MachineShare | None = None
    scoring_mark: float = 0.0  # the engine's scoring seconds already charged
    nonfinite_seen: int = 0  # the engine's count of skipped steps already reported (static-shape path)
    due: tuple[bool, bool, bool] = (False, False, False)  # evaluation, checkpoint, stop: agreed by every rank
    signals: _Signals | None = None

    @property
    def tokens_per_step(self) -> int:
        return self.config.train.batch_size * self.corpus.seq_len


def _checked_config(config: PretrainConfig | None, resume: str | None) -> PretrainConfig:
    if resume and config is None:
        config = saved_config(resume)
    if not config.corpus:
        raise TrainingError("no corpus: set corpus=PATH (a folder made by `hbert data prepare`)")
    if not config.out:
        raise TrainingError("no run folder: set out=RUN_DIR")
    validate_config(config)
    masking_class(config.masking.kind)  # an unknown strategy stops here, naming every registered one
    return config


def _runtime(config: PretrainConfig) -> tuple[Dist, torch.device, str]:
    """This process's rank, device and precision."""
    if config.impl.deterministic and device_kind(config.impl.device) == "cuda":
        # cuBLAS is deterministic only with a fixed workspace (set before its first call; a user's choice stays)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    d = setup_distributed(device_kind(config.impl.device))
    device = resolve_device(config.impl.device, d.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    precision = resolve_precision(config.impl.precision, device)
    if config.impl.deterministic:
        torch.use_deterministic_algorithms(True)
    return d, device, precision


def _checked_tokenizer(corpus: Corpus):
    tokenizer = corpus.tokenizer()
    corpus.verify()  # checksums: a truncated or altered corpus stops here, not in the middle of the run
    corpus.check_vocabulary(len(tokenizer))
    return tokenizer


def _masking_and_objective(config: PretrainConfig, ids: SpecialIds, tokenizer, device: torch.device):
    """(masking strategy, objective): built from their config sections, sharing the teachers they load."""
    teachers = TeacherCache(device, config.masking.teacher_precision, tokenizer, config.masking.trust_remote_code)
    masking = build_masking(config.masking, ids, precision=teachers.precision, teachers=teachers)
    objective = PretrainObjective(config.objective.kd, masking, teachers, device, config.masking.teacher)
    return masking, objective


def _model_and_state(config: PretrainConfig, run_dir: Path, resume: str | None, d: Dist, tokenizer, seq_len: int):
    """(model, init report, saved training state or None): a new model, or the resumed run's."""
    if d.main:
        remove_stale_temps(run_dir)
    if resume:
        model, state = _resume_from(run_dir, config)
        return model, state["init_report"], state
    model, init_report = build_model(config, tokenizer, seq_len)
    return model, init_report, None


def _batch_split(config: PretrainConfig, d: Dist) -> tuple[int, int]:
    """(blocks per rank and step, micro-batches per step)."""
    world_batch = config.train.batch_size
    if world_batch % d.world:
        raise TrainingError(f"train.batch_size={world_batch} is not divisible by the {d.world} ranks")
    per_rank = world_batch // d.world
    micro = config.impl.micro_batch_size or per_rank
    if per_rank % micro:
        raise TrainingError(f"impl.micro_batch_size={micro} does not divide the per-rank batch {per_rank}")
    return per_rank, per_rank // micro


def _sampler(corpus: Corpus, config: PretrainConfig, d: Dist) -> BlockSampler:
    """This rank's order of the train blocks."""
    try:
        return BlockSampler(len(corpus.blocks("train")), config.train.seed, d.rank, d.world)
    except ValueError as err:  # fewer blocks than ranks
        raise TrainingError(str(err)) from err


def _restore(state: dict, optimizer, sampler: BlockSampler, masking: MaskingStrategy, d: Dist, device) -> tuple:
    """Put a resumed run back where its checkpoint left it; returns (budget spent, non-finite steps in a row)."""
    optimizer.load_state_dict(state["optimizer"])
    sampler.load_state_dict(state["sampler"][d.rank] if isinstance(state["sampler"], list) else state["sampler"])
    masking.load_state_dict(state.get("masking", {}))
    rng = state["rng"][d.rank] if isinstance(state["rng"], list) else state["rng"]
    torch.set_rng_state(rng["torch"])
    if device.type == "cuda" and rng.get("cuda") is not None:
        torch.cuda.set_rng_state(rng["cuda"], device)
    return BudgetState(**state["budget"]), state.get("nonfinite", 0)


def _open_run_folder(config: PretrainConfig, run_dir: Path, d: Dist, device, precision: str) -> RunLog:
    """The run folder's config.yaml and env.json, and the run's log (on the main rank only)."""
    if not d.main:
        return RunLog(None)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    (run_dir / "env.json").write_text(json.dumps(environment(device, precision, d.world), indent=2))
    return RunLog(run_dir, config.impl.tensorboard, config.impl.progress)


def start_run(config: PretrainConfig, resume: str | None) -> Run:
    """Everything before the first step. The order keeps results reproducible: teachers load before the model is
    seeded, and a resumed run's random state is restored last."""
    budget, corpus, run_dir = Budget.parse(config.budget), Corpus(config.corpus), Path(config.out)
    d, device, precision = _runtime(config)
    tokenizer = _checked_tokenizer(corpus)
    ids = SpecialIds.from_tokenizer(tokenizer)
    masking, objective = _masking_and_objective(config, ids, tokenizer, device)
    buckets = frequency_buckets(corpus, len(tokenizer)).to(device)
    model, init_report, state = _model_and_state(config, run_dir, resume, d, tokenizer, corpus.seq_len)
    if d.world > 1:  # every rank starts from the same weights (DDP copies rank 0's), but drops out on its own
        torch.manual_seed(config.train.seed * 1_000_003 + d.rank)
    model.to(device).train()
    optimizer = build_optimizer(model, config, device)
    frozen = frozen_parameters(model, config.init.freeze) if config.init.freeze else []
    per_rank, accumulation = _batch_split(config, d)
    sampler = _sampler(corpus, config, d)
    clock, nonfinite = BudgetState(), 0
    if state is not None:
        clock, nonfinite = _restore(state, optimizer, sampler, masking, d, device)
    # auto (None): on a GPU and when compiled; YAML reads a bare on / off as true / false
    static = {"on": True, "true": True, "off": False, "false": False}.get(str(config.impl.static_shapes).lower())
    engine = Engine(model, optimizer, masking, objective, device=device, precision=precision, dist=d,
                    accumulation=accumulation, grad_clip=config.train.grad_clip, frozen=frozen,
                    compile=config.impl.compile, static=static,
                    compile_backend=config.impl.compile_backend)  # fmt: skip
    engine.nonfinite_run.fill_(nonfinite)
    eval_set = heldout_eval_set(corpus, ids, config.train.eval_blocks)
    evals = Interval.parse(config.train.eval_every, clock)
    checkpoints = Interval.parse(config.train.checkpoint_every, clock)
    log = _open_run_folder(config, run_dir, d, device, precision)
    if config.impl.compile or device.type == "cuda":  # compilation and CUDA start-up, before the clock starts
        blocks = np.asarray(corpus.blocks("train")[:per_rank]).astype(np.int64)
        clock.compile_seconds += d.max_of(engine.warm_up(torch.from_numpy(blocks).to(device)), device=device)
    return Run(config, run_dir, budget, corpus, tokenizer, d, device, precision, engine, sampler, per_rank, clock,
               init_report, eval_set, buckets, evals, checkpoints, log, nonfinite, machine=MachineShare(device.type))  # fmt: skip


# ------------------------------------------------------------------------------------------ a step


def _next_batch(run: Run) -> torch.Tensor:
    """(per_rank, T) this rank's next blocks, on the device."""
    rows = np.sort(run.sampler.take(run.per_rank))
    batch = torch.from_numpy(run.corpus.blocks("train")[rows].astype(np.int64))
    if run.device.type == "cuda":  # a copy from pageable memory would wait for the GPU's queue to drain
        batch = batch.pin_memory()
    return batch.to(run.device, non_blocking=True)


def _step_generator(run: Run) -> torch.Generator:
    """The masking's random numbers: a function of (seed, step, rank) only, so a resumed run masks the same."""
    seed = (run.config.train.seed * 1_000_003 + run.clock.steps * 1_009 + run.d.rank) % (2**63)
    return torch.Generator(device=run.device).manual_seed(seed)


def _measured(run: Run) -> bool:
    """Is the coming step logged (every impl.log_every steps, and the last step of a step or token budget)?"""
    return (run.clock.steps + 1) % run.config.impl.log_every == 0 or _last_step(
        run.budget, run.clock, run.tokens_per_step
    )


def _count_nonfinite(run: Run, result: StepResult) -> None:
    if result.finite:
        run.nonfinite = 0
        return
    run.nonfinite += 1
    if run.d.main:
        print(f"hbert pretrain: non-finite loss at step {run.clock.steps}; step skipped "
              f"({run.nonfinite} in a row)", file=sys.stderr)  # fmt: skip
    _stop_if_too_many(run)


def _stop_if_too_many(run: Run) -> None:
    if run.nonfinite >= run.config.train.max_nonfinite:
        run.log.close()
        raise TrainingError(
            f"{run.nonfinite} non-finite losses in a row at step {run.clock.steps}: stopping; "
            f"{intact_note(run.run_dir)}. Lower train.lr or use impl.precision=fp32"
        )


def _count_nonfinite_on_device(run: Run) -> None:
    """The static-shape path: the engine counts skipped steps on the device; read here, on logged steps."""
    total = int(run.engine.nonfinite_total)
    run.nonfinite = int(run.engine.nonfinite_run)
    if total > run.nonfinite_seen and run.d.main:
        print(f"hbert pretrain: {total - run.nonfinite_seen} step(s) with a non-finite loss skipped up to step "
              f"{run.clock.steps} ({run.nonfinite} in a row)", file=sys.stderr)  # fmt: skip
    run.nonfinite_seen = total
    _stop_if_too_many(run)


def _charge(run: Run, seconds: float, scoring: float) -> None:
    """Count the step against the budget; every rank charges the slowest rank's time, so they stop together. The
    same all-reduce decides whether an evaluation, a checkpoint or a stop is due (``run.due``)."""
    run.clock.steps += 1
    run.clock.tokens += run.tokens_per_step
    run.clock.scoring_seconds += scoring
    charged = seconds if run.config.train.charge_scoring else max(0.0, seconds - scoring)
    now = time.time()
    stop = run.signals is not None and run.signals.received is not None
    charged, *due = run.d.max_and_any(charged, run.evals.due(run.clock, now), run.checkpoints.due(run.clock, now),
                                      stop, device=run.device)  # fmt: skip
    run.clock.charged_seconds += charged
    run.due = tuple(due)


def _settle_scoring(run: Run) -> None:
    """The static-shape path times scorer forwards with CUDA events and reads them only here (logged steps):
    their seconds since the last reading are recorded, and taken off the charged time without charge_scoring."""
    total = run.engine.scoring_seconds
    spent, run.scoring_mark = total - run.scoring_mark, total
    run.clock.scoring_seconds += spent
    if not run.config.train.charge_scoring:
        spent = -run.d.max_of(-spent, device=run.device)  # the same on every rank: their clocks must agree
        run.clock.charged_seconds = max(0.0, run.clock.charged_seconds - spent)


def _step_record(run: Run, lr: float) -> dict:
    window, clock = run.log.window, run.clock
    means = window.averages(run.tokens_per_step)
    record = {"step": clock.steps, "tokens": clock.tokens, "elapsed": round(clock.charged_seconds, 3),
              "progress": round(clock.progress(run.budget), 6), "lr": lr, **means,
              "scoring_seconds": round(clock.scoring_seconds, 3), **window.masking}  # fmt: skip
    if run.engine.objective.use_kd:
        record.update(window.kd_terms())
    return record


def train_step(run: Run) -> None:
    """One optimizer step: the learning rate for the share of the budget spent, the engine's step, its cost
    charged to the budget, its numbers into the log."""
    started = time.perf_counter()
    train = run.config.train
    progress = run.clock.progress(run.budget)
    lr = train.lr * lr_multiplier(progress, train.schedule, train.warmup)
    set_lr(run.engine.optimizer, lr)
    measured = _measured(run)
    lazy = run.engine.static  # the static-shape path reads the device on logged steps only
    freeze = progress < run.config.init.freeze_fraction
    result = run.engine.step(_next_batch(run), _step_generator(run), progress, freeze=freeze, measure=measured)
    if not lazy:
        _count_nonfinite(run, result)
    seconds = time.perf_counter() - started
    scoring = 0.0
    if not lazy:
        scoring, run.scoring_mark = run.engine.scoring_seconds - run.scoring_mark, run.engine.scoring_seconds
    _charge(run, seconds, scoring)
    stats = {**result.masked.stats, **bucket_shares(run.buckets, result.masked)} if measured else None
    run.log.window.add(result, seconds, measured, stats)
    if lazy and (measured or run.clock.exhausted(run.budget)):
        _settle_scoring(run)
        _count_nonfinite_on_device(run)
    if not lazy or measured or run.clock.exhausted(run.budget):
        run.log.window.settle()
    if run.log.window.steps and (measured or run.clock.exhausted(run.budget)):
        run.log.step_record(_step_record(run, lr), run.clock.charged_seconds)


# ------------------------------------------------------------------------------------------ between steps


def training_state(run: Run) -> dict:
    """The resumable state saved beside the weights (tensors, numbers and strings only)."""
    rng = {"torch": torch.get_rng_state(),
           "cuda": torch.cuda.get_rng_state(run.device) if run.device.type == "cuda" else None}  # fmt: skip
    if run.engine.static:
        run.nonfinite = int(run.engine.nonfinite_run)
    rng = run.d.gather(rng) if run.d.world > 1 else rng  # each rank's own dropout stream
    return {"optimizer": run.engine.optimizer.state_dict(), "sampler": run.d.gather(run.sampler.state_dict()),
            "budget": dataclasses.asdict(run.clock), "nonfinite": run.nonfinite, "rng": rng,
            "config": to_dict(run.config), "init_report": run.init_report,
            "masking": run.engine.masking.state_dict()}  # fmt: skip


def checkpoint_now(run: Run) -> None:
    state = training_state(run)
    if run.d.main:
        try:
            save_checkpoint(run.run_dir, run.engine.model, run.tokenizer, state)
        except OSError as err:
            note = intact_note(run.run_dir)
            print(f"hbert pretrain: checkpoint at step {run.clock.steps} failed ({err}); {note}",
                  file=sys.stderr)  # fmt: skip
            raise TrainingError(f"checkpoint failed: {err}; {note}") from err
    run.d.barrier()
    run.checkpoints.restart(run.clock)


def _evaluation_record(run: Run, metrics: dict) -> dict:
    return {"step": run.clock.steps, "elapsed": round(run.clock.charged_seconds, 3), **metrics}


def evaluate_now(run: Run) -> None:
    """Held-out evaluation during the run; its time is charged to the budget only with train.charge_eval."""
    started = time.perf_counter()
    metrics = evaluate(run.engine.model, *run.eval_set, run.device, run.precision)
    spent = run.d.max_of(time.perf_counter() - started, device=run.device)
    run.clock.eval_seconds += spent
    if run.config.train.charge_eval:
        run.clock.charged_seconds += spent
    run.log.write(_evaluation_record(run, metrics))
    run.evals.restart(run.clock)


def between_steps(run: Run, signals: _Signals) -> bool:
    """Evaluate and checkpoint when due, decided by all ranks together (a rank's clock alone could disagree: the
    step's one all-reduce, in ``_charge``, agreed on ``run.due``); True when a signal asks the run to stop, after
    its checkpoint."""
    done = run.clock.exhausted(run.budget)
    eval_due, checkpoint_due, stop = run.due
    eval_due, checkpoint_due = eval_due and not done, checkpoint_due and not done
    stop = stop or signals.received is not None if run.d.world == 1 else stop
    if eval_due:
        evaluate_now(run)
    if stop:
        checkpoint_now(run)
        return True
    if checkpoint_due:
        checkpoint_now(run)
    return False


# ------------------------------------------------------------------------------------------ finishing


def _final_evaluation(run: Run, summary: dict) -> None:
    """Save the trained weights first (nothing after can lose them), export final/, evaluate, write the card."""
    checkpoint_now(run)
    if run.d.main:
        _export_or_explain(run.run_dir, run.engine.model, run.tokenizer)
    started = time.perf_counter()
    metrics = evaluate(run.engine.model, *run.eval_set, run.device, run.precision)
    run.clock.eval_seconds += time.perf_counter() - started
    summary.update(metrics)
    summary["eval_seconds"] = run.clock.eval_seconds
    run.log.write(_evaluation_record(run, metrics))
    if run.d.main:  # the card carries the held-out accuracy: written into final/ once it is known
        write_atomic(
            run.run_dir / "final" / "README.md",
            _final_card(run.engine.model, run.corpus, summary, run.run_dir, run.config.init),
        )


def _summary(run: Run, status: str) -> dict:
    config, clock = run.config, run.clock
    init = {k: v for k, v in run.init_report.items() if k != "copied"}
    return {"status": status, "budget": config.budget, "budget_kind": run.budget.kind,
            "machine": run.machine.report(),  # the loop's share of the machine, before the final evaluation
            **dataclasses.asdict(clock), "progress": clock.progress(run.budget), "world_size": run.d.world,
            "precision": run.precision, "init": init}  # fmt: skip


def finish(run: Run, status: str) -> dict:
    """The summary (also written to summary.json); a completed run is saved, exported and evaluated first."""
    run.log.close_bar()
    summary = _summary(run, status)
    if status == "completed":
        _final_evaluation(run, summary)
    summary["wall_seconds"] = time.time() - run.started
    summary["static_shapes"] = run.engine.static
    summary["compiled"] = run.config.impl.compile and run.engine.compiled
    if run.config.impl.compile:
        summary["compile"] = run.engine.compile_stats()
        if summary["compile"]["recompile_limit_hits"]:  # dynamo then ran some calls eager: not a compiled run
            summary["compiled"] = False
            run.engine.notes.append("torch.compile hit its recompile limit; some steps ran eager")
    summary["masking"] = run.config.masking.kind
    summary["kd_alpha"] = run.config.objective.kd.alpha
    if run.engine.notes:
        summary["notes"] = run.engine.notes
    summary["parameters"] = sum(p.numel() for p in run.engine.model.parameters())
    if run.log.history:
        summary["last_log"] = run.log.history[-1]
    if run.d.main:
        (run.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        run.log.close()
    return summary


def pretrain(config: PretrainConfig | None, resume: str | None = None) -> dict:
    """Run (or resume) a budgeted pretraining run; returns the summary (also written to ``summary.json``).
    With ``resume`` and no ``config``, the run's saved configuration is used."""
    config = _checked_config(config, resume)
    with claimed_run_folder(config, resume):
        run = start_run(config, resume)
        status = "completed"
        with _Signals() as signals:
            run.signals = signals
            while not run.clock.exhausted(run.budget):
                train_step(run)
                if between_steps(run, signals):
                    status = "interrupted"
                    break
        return finish(run, status)
