"""Budgeted pretraining: "pretrain this encoder for exactly this budget, as well as the budget allows, and never
lose the run".

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
import platform
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..config import PretrainConfig, config_from_dict, save_config, to_dict, validate_config
from ..data.corpus import Corpus
from ..files import read_yaml, remove_stale_temps, write_atomic
from ..masking.base import SpecialIds, build_masking
from ..masking.random import RandomMasking
from ..masking.teacher import load_teacher, sparse_logits
from ..modeling import HBertConfig, HBertForMaskedLM
from ..objectives import kd_loss
from .budget import Budget, BudgetState, lr_multiplier, parse_interval
from .card import command_line, model_card
from .checkpoint import (
    CheckpointError,
    changed_result_settings,
    export_final,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from .init import frozen_parameters, subln_scale, transfer
from .share import MachineShare

EVAL_MASK_SEED = 20240611  # one fixed held-out mask for every run, architecture and masking strategy


class TrainingError(RuntimeError):
    pass


# ------------------------------------------------------------------------------------------ environment


@dataclasses.dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_kind: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(setting: str, d: Dist) -> torch.device:
    if setting == "auto":
        return torch.device(f"cuda:{d.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(setting)
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{d.local_rank}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError("impl.device=cuda but no CUDA device is available; accepted here: cpu or auto")
    return device


def resolve_precision(setting: str, device: torch.device) -> str:
    if setting == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if torch.backends.cpu.get_cpu_capability() in ("AVX512", "AMX") else "fp32"
    if setting not in ("fp32", "bf16", "fp16"):
        raise TrainingError(f"impl.precision={setting!r}; accepted: auto, fp32, bf16, fp16")
    if setting == "fp16" and device.type != "cuda":
        raise TrainingError("impl.precision=fp16 needs a CUDA device (loss scaling); use bf16 or fp32 on CPU")
    return setting


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


# ------------------------------------------------------------------------------------------ data order


class BlockSampler:
    """Seeded permutation of the blocks per epoch; rank r takes every world-th index. Its state (epoch, cursor)
    is the data position saved in checkpoints."""

    def __init__(self, n_blocks: int, seed: int, rank: int, world: int):
        if n_blocks < world:
            raise TrainingError(f"the corpus has {n_blocks} train blocks, fewer than the {world} ranks")
        self.n, self.seed, self.rank, self.world = n_blocks, seed, rank, world
        self.epoch, self.cursor = 0, 0
        self._order = self._make_order()

    def _make_order(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.n)[self.rank :: self.world]

    def take(self, k: int) -> np.ndarray:
        out = []
        while k > 0:
            if self.cursor >= len(self._order):
                self.epoch, self.cursor = self.epoch + 1, 0
                self._order = self._make_order()
            chunk = self._order[self.cursor : self.cursor + k]
            self.cursor += len(chunk)
            k -= len(chunk)
            out.append(chunk)
        return np.concatenate(out)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])
        self._order = self._make_order()


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
    report: dict = {"kind": config.init.kind}
    if config.init.kind == "random":
        if config.init.scheme == "subln":
            report["subln_gamma"] = subln_scale(model)
        elif config.init.scheme != "bert":
            raise TrainingError(f"init.scheme={config.init.scheme!r}; accepted: bert, subln")
    elif config.init.kind in ("complete", "partial"):
        if not config.init.source:
            raise TrainingError(f"init.kind={config.init.kind} needs init.source=CHECKPOINT_FOLDER")
        report = transfer(model, config.init.source, config.init.kind, config.init.parts, config.init.layer_map)
    else:
        raise TrainingError(f"init.kind={config.init.kind!r}; accepted: random, complete, partial")
    return model, report


def build_optimizer(model: torch.nn.Module, config: PretrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW; no weight decay on norms and biases (the 1-D parameters)."""
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": config.train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = device.type in ("cuda", "cpu")
    return torch.optim.AdamW(groups, lr=config.train.lr, betas=config.train.betas, eps=config.train.eps, fused=fused)


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


def _final_card(model, corpus, summary: dict, run_dir: Path) -> str:
    parameters = sum(p.numel() for p in model.parameters())
    return model_card(model.config, parameters, corpus.manifest, summary, run_dir.name, command_line())


# ------------------------------------------------------------------------------------------ the run


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


BUCKETS = ((0, 100), (100, 1000), (1000, 10000), (10000, None))


def frequency_buckets(corpus: Corpus, vocab_size: int, sample_blocks: int = 20000) -> torch.Tensor:
    """(V,) bucket of each token id by its frequency rank in the train split: 0 = the 100 most frequent, 1 = ranks
    100-1k, 2 = 1k-10k, 3 = rarer. Used to report which tokens a masking strategy picks."""
    blocks = corpus.blocks("train")
    counts = np.bincount(np.asarray(blocks[: min(sample_blocks, len(blocks))]).reshape(-1), minlength=vocab_size)
    rank = np.empty(vocab_size, dtype=np.int64)
    rank[np.argsort(-counts[:vocab_size], kind="stable")] = np.arange(vocab_size)
    bucket = np.digitize(rank, [100, 1000, 10000])
    return torch.from_numpy(bucket)


def bucket_shares(buckets: torch.Tensor, masked) -> dict[str, float]:
    ids = masked.labels[masked.selected]
    if ids.numel() == 0:
        return {}
    shares = torch.bincount(buckets[ids], minlength=4).float() / ids.numel()
    names = ("mask_share_top100", "mask_share_100_1k", "mask_share_1k_10k", "mask_share_rare")
    return {name: round(float(v), 4) for name, v in zip(names, shares)}


def _last_step(budget: Budget, state: BudgetState, tokens_per_step: int) -> bool:
    """Will the next step spend the budget? (exact for step and token budgets; unknowable for time budgets)"""
    if budget.kind == "steps":
        return state.steps + 1 >= budget.amount
    if budget.kind == "tokens":
        return state.tokens + tokens_per_step >= budget.amount
    return False


def _interval_due(kind: str, every: float, state: BudgetState, last: float, now: float) -> bool:
    if kind == "steps":
        return state.steps - last >= every
    if kind == "time":
        return now - last >= every
    return False


def environment(device, precision, d: Dist) -> dict:
    import transformers

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "precision": precision,
        "world_size": d.world,
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def saved_config(run_dir: str | os.PathLike, impl_overrides: list[str] | None = None) -> PretrainConfig:
    """The configuration a run was started with, plus speed-only (``impl.*``) overrides for its resumption."""
    from ..config import parse_override, set_key

    saved = Path(run_dir) / "config.yaml"
    if not saved.exists():
        raise TrainingError(f"--resume {run_dir}: no config.yaml there; accepted: a run folder of hbert pretrain")
    data = read_yaml(saved)
    if not isinstance(data, dict):
        raise TrainingError(f"{saved}: not a run configuration (a YAML mapping of sections); restore it")
    config = config_from_dict(data)
    config.out = str(run_dir)  # the folder given, also when the run was moved since
    for item in impl_overrides or []:
        key, value = parse_override(item)
        if not key.startswith("impl."):
            raise TrainingError(f"--resume accepts only impl.* (speed) overrides, got {key}")
        set_key(config, key, value)
    return config


def compile_model(model: torch.nn.Module) -> torch.nn.Module:
    """torch.compile with data-dependent sizes (the sparse head's nonzero()) kept inside the graph: without it the
    training forward breaks into two graphs at the head (benchmarks/gpu_check.py counts the breaks)."""
    torch._dynamo.config.capture_dynamic_output_shape_ops = True
    return torch.compile(model)


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
        raise TrainingError(
            f"training completed, but final/ could not be written ({err.strerror or err}: {err.filename or run_dir}); "
            f"the trained weights are in the last checkpoint {latest_checkpoint(run_dir)}"
        ) from err


def pretrain(config: PretrainConfig | None, resume: str | None = None) -> dict:
    """Run (or resume) a budgeted pretraining run; returns the summary (also written to ``summary.json``).
    With ``resume`` and no ``config``, the run's saved configuration is used."""
    if resume and config is None:
        config = saved_config(resume)
    if not config.corpus:
        raise TrainingError("no corpus: set corpus=PATH (a folder made by `hbert data prepare`)")
    if not config.out:
        raise TrainingError("no run folder: set out=RUN_DIR")
    validate_config(config)
    budget = Budget.parse(config.budget)
    corpus = Corpus(config.corpus)
    run_dir = Path(config.out)

    device_setting = config.impl.device
    d = setup_distributed(
        "cuda"
        if device_setting.startswith("cuda") or (device_setting == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    device = resolve_device(device_setting, d)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    precision = resolve_precision(config.impl.precision, device)
    if config.impl.deterministic:
        torch.use_deterministic_algorithms(True)

    tokenizer = corpus.tokenizer()
    corpus.verify()  # checksums: a truncated or altered corpus stops here, not in the middle of the run
    corpus.check_vocabulary(len(tokenizer))
    ids = SpecialIds.from_tokenizer(tokenizer)
    kd = config.objective.kd
    if not 0.0 <= kd.alpha <= 1.0:
        raise TrainingError(f"objective.kd.alpha={kd.alpha}; accepted: 0..1 (1 = no distillation)")
    use_kd = kd.alpha < 1.0
    teacher_precision = config.masking.teacher_precision
    if teacher_precision not in ("bf16", "fp32"):
        raise TrainingError(f"masking.teacher_precision={teacher_precision!r}; accepted: bf16, fp32")
    teachers: dict[str, torch.nn.Module] = {}

    def teacher_for(path: str):
        if path not in teachers:
            teachers[path] = load_teacher(
                path, device, teacher_precision, len(tokenizer), tokenizer, config.masking.trust_remote_code
            )
        return teachers[path]

    mask_teacher = None
    if config.masking.kind == "entropy" and config.masking.source == "teacher":
        mask_teacher = teacher_for(config.masking.teacher)
    kd_teacher = teacher_for(kd.teacher or config.masking.teacher) if use_kd else None
    if (
        use_kd
        and kd.reuse_scoring_forward
        and (kd_teacher is not mask_teacher or config.masking.scoring != "candidates")
    ):
        raise TrainingError(
            "objective.kd.reuse_scoring_forward needs masking=entropy with masking.source=teacher, "
            "masking.scoring=candidates and the same teacher for both"
        )
    masking = build_masking(config.masking, ids, teacher=mask_teacher, precision=teacher_precision)
    masking.keep_logits = use_kd and kd.reuse_scoring_forward
    buckets = frequency_buckets(corpus, len(tokenizer)).to(device)
    if d.main:
        remove_stale_temps(run_dir)
    if resume:
        model, state = _resume_from(run_dir, config)
        init_report = state["init_report"]
    else:
        if d.main and (run_dir / "checkpoints" / "latest").exists():
            raise TrainingError(
                f"{run_dir} already holds a run; resume it with --resume {run_dir} or choose another out"
            )
        model, init_report = build_model(config, tokenizer, corpus.seq_len)
        state = None
    model.to(device).train()
    optimizer = build_optimizer(model, config, device)
    frozen = frozen_parameters(model, config.init.freeze) if config.init.freeze else []

    world_batch = config.train.batch_size
    if world_batch % d.world:
        raise TrainingError(f"train.batch_size={world_batch} is not divisible by the {d.world} ranks")
    per_rank = world_batch // d.world
    micro = config.impl.micro_batch_size or per_rank
    if per_rank % micro:
        raise TrainingError(f"impl.micro_batch_size={micro} does not divide the per-rank batch {per_rank}")
    accumulation = per_rank // micro
    sampler = BlockSampler(len(corpus.blocks("train")), config.train.seed, d.rank, d.world)
    budget_state = BudgetState()
    nonfinite = 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        sampler.load_state_dict(state["sampler"][d.rank] if isinstance(state["sampler"], list) else state["sampler"])
        budget_state = BudgetState(**state["budget"])
        nonfinite = state.get("nonfinite", 0)
        masking.load_state_dict(state.get("masking", {}))
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)

    train_model: torch.nn.Module = model
    if d.world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    step_model = train_model
    if config.impl.compile:
        step_model = compile_model(train_model)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    eval_inputs, eval_labels = heldout_eval_set(corpus, ids, config.train.eval_blocks)
    eval_kind, eval_every = parse_interval(config.train.eval_every)
    ckpt_kind, ckpt_every = parse_interval(config.train.checkpoint_every)
    blocks = corpus.blocks("train")
    tokens_per_step = world_batch * corpus.seq_len

    writer = None
    log_file = None
    if d.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
        env = environment(device, precision, d)
        (run_dir / "env.json").write_text(json.dumps(env, indent=2))
        log_file = open(run_dir / "log.jsonl", "a")
        if config.impl.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                writer = SummaryWriter(str(run_dir / "tb"))
            except ImportError:
                writer = None

    def log(record: dict) -> None:
        if log_file is not None:
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
        if writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step",):
                    writer.add_scalar(key, value, record["step"])

    def training_state() -> dict:
        samplers = [None] * d.world
        if d.world > 1:
            dist.all_gather_object(samplers, sampler.state_dict())
        else:
            samplers = [sampler.state_dict()]
        return {
            "optimizer": optimizer.state_dict(),
            "sampler": samplers,
            "budget": dataclasses.asdict(budget_state),
            "nonfinite": nonfinite,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
            "config": to_dict(config),
            "init_report": init_report,
            "masking": masking.state_dict(),
        }  # fmt: skip

    def checkpoint_now() -> None:
        nonlocal last_ckpt
        st = training_state()
        if d.main:
            try:
                save_checkpoint(run_dir, model, tokenizer, st)
            except OSError as err:
                previous = latest_checkpoint(run_dir)
                print(f"hbert pretrain: checkpoint at step {budget_state.steps} failed ({err}); "
                      f"the previous checkpoint {previous} is intact", file=sys.stderr)  # fmt: skip
                raise TrainingError(f"checkpoint failed: {err}; previous checkpoint {previous} intact") from err
        if d.world > 1:
            dist.barrier()
        last_ckpt = budget_state.steps if ckpt_kind == "steps" else time.time()

    progress_bar = None
    if d.main and config.impl.progress:
        from tqdm.auto import tqdm

        progress_bar = tqdm(total=100, unit="%", desc="pretrain", bar_format="{l_bar}{bar}| {n:.1f}/100% {postfix}")

    kd_seconds = [0.0]

    def agree(*flags: bool) -> tuple[bool, ...]:
        """Each flag true on any rank -> true on all ranks."""
        if d.world == 1:
            return flags
        t = torch.tensor([1 if f else 0 for f in flags], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return tuple(bool(v) for v in t.tolist())

    def agree_max(value: float) -> float:
        if d.world == 1:
            return value
        t = torch.tensor([value], device=device, dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t)

    def forward_loss(net, masked, share, part):
        """(model output, weighted loss, KD term): CE at the masked positions, plus distillation when enabled."""
        with autocast(device, precision):
            out = net(masked.input_ids, labels=masked.labels, sparse_logits=True)
        if not use_kd:
            return out, out.loss * share, torch.zeros((), device=device)
        start = time.perf_counter()
        with torch.no_grad():
            if kd.reuse_scoring_forward:
                teacher_logits = masking.teacher_rows(masked.selected, part)
            else:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=teacher_precision == "bf16"):
                    teacher_logits = sparse_logits(kd_teacher, masked.input_ids, masked.selected)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        kd_seconds[0] += time.perf_counter() - start
        kd_term = kd_loss(out.logits, teacher_logits, kd.temperature)
        return out, (kd.alpha * out.loss + (1 - kd.alpha) * kd_term) * share, kd_term.detach()

    history = []
    summary_notes: list[str] = []
    last_acc = 0.0
    last_eval = budget_state.steps if eval_kind == "steps" else time.time()
    last_ckpt = budget_state.steps if ckpt_kind == "steps" else time.time()
    window = {"loss": 0.0, "ce": 0.0, "kd": 0.0, "correct": 0, "n": 0, "steps": 0, "seconds": 0.0, "masking": {}}
    status = "completed"
    started = time.time()
    machine_share = MachineShare(device.type)

    with _Signals() as signals:
        while not budget_state.exhausted(budget):
            t_step = time.perf_counter()
            progress = budget_state.progress(budget)
            lr = config.train.lr * lr_multiplier(progress, config.train.schedule, config.train.warmup)
            for group in optimizer.param_groups:
                group["lr"] = lr
            freeze_now = frozen and progress < config.init.freeze_fraction
            log_step = (budget_state.steps + 1) % config.impl.log_every == 0 or _last_step(
                budget, budget_state, tokens_per_step
            )
            step_loss = torch.zeros((), device=device)
            step_ce = torch.zeros((), device=device)
            step_kd = torch.zeros((), device=device)
            scoring_before = masking.scoring_seconds + kd_seconds[0]
            step_correct = torch.zeros((), device=device, dtype=torch.long)
            step_n = 0
            # the whole per-rank batch is read and masked at once, so that micro-batching (a speed setting)
            # never changes which tokens are masked
            rows = np.sort(sampler.take(per_rank))
            batch = torch.from_numpy(blocks[rows].astype(np.int64)).to(device, non_blocking=True)
            generator = torch.Generator(device=device).manual_seed(
                (config.train.seed * 1_000_003 + budget_state.steps * 1_009 + d.rank) % (2**63)
            )
            full = masking(batch, None, generator, model=model, progress=progress)
            n_labelled = (full.labels != -100).sum().clamp(min=1)
            for m in range(accumulation):
                part = slice(m * micro, (m + 1) * micro)
                masked = dataclasses.replace(
                    full, input_ids=full.input_ids[part], labels=full.labels[part], selected=full.selected[part]
                )
                share = (masked.labels != -100).sum() / n_labelled  # micro-batch losses weighted by their tokens
                sync = contextlib.nullcontext()
                if d.world > 1 and m < accumulation - 1:
                    sync = train_model.no_sync()
                with sync:
                    try:
                        out, loss, kd_term = forward_loss(step_model, masked, share, part)
                        (scaler.scale(loss) if scaler else loss).backward()
                    except Exception as err:  # torch.compile can fail on exotic set-ups: fall back to eager once
                        if step_model is train_model:
                            raise
                        if d.main:
                            print(f"hbert pretrain: torch.compile failed ({type(err).__name__}: {str(err)[:200]}); "
                                  f"continuing in eager mode", file=sys.stderr)  # fmt: skip
                        step_model = train_model
                        optimizer.zero_grad(set_to_none=True)
                        out, loss, kd_term = forward_loss(step_model, masked, share, part)
                        (scaler.scale(loss) if scaler else loss).backward()
                        summary_notes.append("torch.compile failed; ran in eager mode")
                step_ce += out.loss.detach() * share
                step_kd += kd_term * share
                masking.observe(masked, out.logits)
                step_loss += loss.detach()
                if log_step:  # accuracy needs an argmax over (n_masked, V) logits: only on logged steps
                    step_correct += (out.logits.detach().max(-1).indices == out.masked_labels).sum()
                    step_n += out.masked_labels.numel()
            if scaler:
                scaler.unscale_(optimizer)
            if config.train.grad_clip > 0:
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
            else:
                grad_norm = torch.zeros((), device=device)
            finite = bool(torch.isfinite(step_loss) & torch.isfinite(grad_norm))
            finite = not agree(not finite)[0]
            if finite:
                nonfinite = 0
                if freeze_now:
                    for p in frozen:
                        p.grad = None
                if scaler:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
            else:
                nonfinite += 1
                if scaler:
                    scaler.update()
                if d.main:
                    print(f"hbert pretrain: non-finite loss at step {budget_state.steps}; step skipped "
                          f"({nonfinite} in a row)", file=sys.stderr)  # fmt: skip
                if nonfinite >= config.train.max_nonfinite:
                    optimizer.zero_grad(set_to_none=True)
                    if log_file:
                        log_file.close()
                    raise TrainingError(
                        f"{nonfinite} non-finite losses in a row at step {budget_state.steps}: stopping. The last "
                        f"checkpoint ({latest_checkpoint(run_dir)}) is intact; lower train.lr or use impl.precision=fp32"
                    )
            optimizer.zero_grad(set_to_none=True)
            seconds = time.perf_counter() - t_step
            budget_state.steps += 1
            budget_state.tokens += tokens_per_step
            scoring = masking.scoring_seconds + kd_seconds[0] - scoring_before
            budget_state.scoring_seconds += scoring
            charged = seconds if config.train.charge_scoring else max(0.0, seconds - scoring)
            # all ranks charge the slowest rank's step, so that they stop at the same step
            budget_state.charged_seconds += agree_max(charged)
            window["loss"] += float(step_loss) if finite else 0.0
            window["ce"] += float(step_ce) if finite else 0.0
            window["kd"] += float(step_kd) if finite else 0.0
            if log_step:
                window["masking"] = {**full.stats, **bucket_shares(buckets, full)}
            if log_step:
                window["correct"] += int(step_correct)
                window["n"] += step_n
            window["steps"] += 1 if finite else 0
            window["seconds"] += seconds

            done = budget_state.exhausted(budget)
            if window["steps"] and (log_step or done):
                record = {
                    "step": budget_state.steps,
                    "tokens": budget_state.tokens,
                    "elapsed": round(budget_state.charged_seconds, 3),
                    "progress": round(budget_state.progress(budget), 6),
                    "lr": lr,
                    "loss": window["loss"] / window["steps"],
                    "mlm_acc": window["correct"] / window["n"] if window["n"] else None,  # the logged step's masks
                    "tokens_per_s": tokens_per_step * window["steps"] / max(window["seconds"], 1e-9),
                    "scoring_seconds": round(budget_state.scoring_seconds, 3),
                    **window["masking"],
                }
                if use_kd:
                    record["loss_ce"] = window["ce"] / window["steps"]
                    record["loss_kd"] = window["kd"] / window["steps"]
                log(record)
                history.append(record)
                if record["mlm_acc"] is not None:
                    last_acc = record["mlm_acc"]
                if progress_bar is not None:
                    left = (1 - record["progress"]) * budget_state.charged_seconds / max(record["progress"], 1e-9)
                    progress_bar.n = 100 * record["progress"]
                    progress_bar.set_postfix_str(
                        f"loss {record['loss']:.3f} acc {last_acc:.3f} "
                        f"{record['tokens_per_s']:,.0f} tok/s left {left / 60:.1f} min",
                        refresh=True,
                    )
                window = {
                    "loss": 0.0,
                    "ce": 0.0,
                    "kd": 0.0,
                    "correct": 0,
                    "n": 0,
                    "steps": 0,
                    "seconds": 0.0,
                    "masking": {},
                }
            # every decision below is taken by all ranks together (a rank's clock alone could disagree)
            now = time.time()
            eval_due, ckpt_due, stop_flag = agree(
                not done and _interval_due(eval_kind, eval_every, budget_state, last_eval, now),
                not done and _interval_due(ckpt_kind, ckpt_every, budget_state, last_ckpt, now),
                signals.received is not None,
            )
            if eval_due:
                t0 = time.perf_counter()
                metrics = evaluate(model, eval_inputs, eval_labels, device, precision)
                spent = agree_max(time.perf_counter() - t0)
                budget_state.eval_seconds += spent
                if config.train.charge_eval:
                    budget_state.charged_seconds += spent
                log({"step": budget_state.steps, "elapsed": round(budget_state.charged_seconds, 3), **metrics})
                last_eval = budget_state.steps if eval_kind == "steps" else time.time()
            if stop_flag:
                checkpoint_now()
                status = "interrupted"
                break
            if ckpt_due:
                checkpoint_now()

    if progress_bar is not None:
        progress_bar.close()
    machine = machine_share.report()  # the training loop's share of the machine, before the final evaluation
    summary = {"status": status, "budget": config.budget, "budget_kind": budget.kind, "machine": machine,
               **dataclasses.asdict(budget_state), "progress": budget_state.progress(budget),
               "world_size": d.world, "precision": precision, "init": {k: v for k, v in init_report.items()
                                                                       if k != "copied"}}  # fmt: skip
    if status == "completed":
        checkpoint_now()  # the trained weights are saved before anything else can fail
        if d.main:
            _export_or_explain(run_dir, model, tokenizer)
        t0 = time.perf_counter()
        metrics = evaluate(model, eval_inputs, eval_labels, device, precision)
        budget_state.eval_seconds += time.perf_counter() - t0
        summary.update(metrics)
        summary["eval_seconds"] = budget_state.eval_seconds
        log({"step": budget_state.steps, "elapsed": round(budget_state.charged_seconds, 3), **metrics})
        if d.main:  # the card carries the held-out accuracy: written into final/ once it is known
            write_atomic(run_dir / "final" / "README.md", _final_card(model, corpus, summary, run_dir))
    summary["wall_seconds"] = time.time() - started
    summary["compiled"] = config.impl.compile and step_model is not train_model
    summary["masking"] = config.masking.kind
    summary["kd_alpha"] = kd.alpha
    if summary_notes:
        summary["notes"] = summary_notes
    summary["parameters"] = sum(p.numel() for p in model.parameters())
    if history:
        summary["last_log"] = history[-1]
    if d.main:
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        if log_file:
            log_file.close()
        if writer is not None:
            writer.close()
        if status == "interrupted":
            print(f"hbert pretrain: stopped by signal at step {budget_state.steps}; checkpoint saved. "
                  f"Continue with: hbert pretrain --resume {run_dir}", file=sys.stderr)  # fmt: skip
    return summary
