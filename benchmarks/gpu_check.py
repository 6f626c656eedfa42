"""One command that proves and measures hbert on a GPU at BERT-base scale, and writes a markdown + JSON report.

    python benchmarks/gpu_check.py --out DIR            # on a GPU: BERT-base shape, about 6-8 minutes on an H100
    python benchmarks/gpu_check.py --out DIR --tiny     # anywhere: a tiny shape in well under two minutes

Correctness: every preset's forward/backward under bf16 and fp16 autocast against fp32; SDPA restricted to its
fused kernels (flash, memory-efficient) for the softmax layers; torch.compile graph breaks in the training
forward (the eager path's nonzero() head and the static-index head); the sparse MLM head against the dense one;
the real training loop with fp16 + GradScaler, entropy masking (self with candidates, token-stats, a teacher) and
knowledge distillation; a SIGTERM'd `hbert pretrain` that resumes and finishes. Speed, each figure a ratio to a
baseline measured in the same run: hbert training steps against Hugging Face `BertForMaskedLM` (SDPA; eager and
compiled; and with its head run at the masked rows only, so that the sparse head and the kernels are credited
apart) and `ModernBertForMaskedLM` with `sparse_prediction=True` (the transformers port, without unpadding; eager
and compiled), with peak memory per arm; model FLOP utilisation against the GPU's datasheet dense bf16 peak and
against a measured large bf16 matmul; the real `Engine.step` with masking at the gpu-24h settings (random and
self-entropy; host synchronisations per step counted); encoder forward at long sequences; and the cost of entropy
masking against random masking. Each target of the GPU issue is checked (PASS / MISS with the margin) on CUDA
only; on a CPU the checks that need CUDA say "skipped: no CUDA", never "pass".

Each check runs on its own (an exception is recorded and the next check runs) and the report is rewritten after
every check, so a run stopped by a time limit still leaves its results. Timed loops record CUDA events around
many steps and synchronise once, not per step.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.training_helpers: the tiny generated corpus the training checks run on
sys.path.insert(0, str(ROOT / "src"))

from hbert import PRESETS, HBertConfig, HBertForMaskedLM  # noqa: E402
from hbert.modeling.info import flops_per_token  # noqa: E402
from hbert.training.engine import compile_model as loop_compile  # noqa: E402

BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
        "vocab_size": 30522}  # fmt: skip
TINY = {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 128,
        "vocab_size": 1000}  # fmt: skip
DROPOUT = 0.1
# Tolerances of autocast against fp32 (relative: |loss - ref| / |ref|, ||grad - ref|| / ||ref|| over all parameters)
TOLERANCE = {"bf16": {"loss": 1e-2, "grad": 1e-1}, "fp16": {"loss": 5e-3, "grad": 5e-2}}
TARGETS = {  # name: (what, threshold, direction)
    "bert_vs_hf_eager": ("hbert `bert` step (compiled, bf16) / HF BertForMaskedLM (eager, SDPA)", 1.5, ">="),
    "bert_vs_modernbert": ("hbert `bert` step / HF ModernBertForMaskedLM (sparse_prediction, eager)", 1.0, ">="),
    "mfu": ("hbert `bert` model FLOP utilisation, of the datasheet dense bf16 peak (else of the measured matmul "
            "rate)", 0.45, ">="),
    "additive_vs_bert_8k": ("`additive` / `bert` encoder forward speed at 8,192 tokens", 2.0, ">="),
    "self_entropy_cost": ("self-entropy (c = 2) / random masking, Engine.step time at the gpu-24h settings", 1.4,
                          "<="),
}  # fmt: skip
# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's datasheets, matched in this order against the device
# name (the first match wins: "H100 PCIe" before "H100", "L40S" before "L4").
DATASHEET_BF16 = (("H200", 989e12), ("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989e12),
                  ("H800", 989e12), ("A100", 312e12), ("A800", 312e12), ("L40S", 362e12), ("L4", 121e12))  # fmt: skip


def datasheet_peak(name: str) -> float | None:
    return next((peak for key, peak in DATASHEET_BF16 if key in name), None)


class Report:
    """Checks and targets, rewritten as JSON and markdown after every change."""

    def __init__(self, out: Path, meta: dict):
        self.out, self.meta = out, meta
        self.checks: list[dict] = []
        self.targets: dict[str, dict] = {}
        out.mkdir(parents=True, exist_ok=True)

    def add(self, section: str, name: str, status: str, detail: str = "", **values) -> None:
        self.checks.append({"section": section, "name": name, "status": status, "detail": detail, **values})
        print(f"[{section}] {name}: {status} {detail}", flush=True)
        self.write()

    def target(self, key: str, measured: float | None, reason: str = "") -> None:
        what, threshold, direction = TARGETS[key]
        entry = {"what": what, "threshold": threshold, "direction": direction, "measured": measured}
        if not self.meta["cuda"]:
            entry["status"] = "skipped: no CUDA (targets are for a GPU)"
        elif measured is None:
            entry["status"] = f"not measured: {reason}"
        else:
            ok = measured >= threshold if direction == ">=" else measured <= threshold
            entry["status"] = "PASS" if ok else "MISS"
            entry["margin"] = (measured / threshold - 1) if direction == ">=" else (threshold / measured - 1)
        self.targets[key] = entry
        self.write()

    def write(self) -> None:
        data = {"meta": self.meta, "checks": self.checks, "targets": self.targets}
        _atomic_write(self.out / "gpu_check.json", json.dumps(data, indent=2, default=str))
        _atomic_write(self.out / "GPU_RESULTS.md", self.markdown())

    def markdown(self) -> str:
        m = self.meta
        lines = [f"# hbert GPU check ({'tiny dry run' if m['tiny'] else 'BERT-base shape'})", "",
                 f"Device: **{m['device_name']}**; torch {m['torch']}, transformers {m['transformers']}, "
                 f"Python {m['python']}; torch.compile backend {m['compile_backend']}; started {m['started']}; "
                 f"shape {m['shape']}, seq {m['seq']}, batch {m['batch']}. Command: `{m['command']}`.", "",
                 "## Targets", "", "| target | threshold | measured | status | margin |", "|---|---:|---:|---|---:|"]  # fmt: skip
        for t in self.targets.values():
            measured = "" if t["measured"] is None else f"{t['measured']:.3f}"
            margin = f"{t['margin']:+.1%}" if "margin" in t else ""
            lines.append(f"| {t['what']} | {t['direction']} {t['threshold']} | {measured} | {t['status']} | {margin} |")
        for section in dict.fromkeys(c["section"] for c in self.checks):
            lines += ["", f"## {section}", "", "| check | status | detail |", "|---|---|---|"]
            for c in (c for c in self.checks if c["section"] == section):
                lines.append(f"| {c['name']} | {c['status']} | {c['detail']} |")
        return "\n".join(lines) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Context:
    def __init__(self, args):
        self.tiny = args.tiny
        self.device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
        self.cuda = self.device == "cuda"
        self.shape = TINY if args.tiny else BASE
        self.seq = 32 if args.tiny else 128
        self.batch = args.batch or (4 if args.tiny else 256)
        self.steps = 2 if args.tiny else args.steps
        self.long_lengths = (64, 128, 256) if args.tiny else (512, 2048, 8192)
        self.long_tokens = 512 if args.tiny else 16384  # batch x length of the long-sequence forwards
        self.deadline = time.time() + (args.time_limit or (3600 if args.tiny else 420))
        # inductor's C++ build takes minutes on a small CPU: the dry run traces the same graphs through AOT
        # autograd without code generation, so that compile problems still show
        self.compile_backend = "inductor" if self.cuda else "aot_eager"
        self.work = Path(tempfile.mkdtemp(prefix="hbert-gpu-check-"))
        self.corpus: str | None = None
        self.peak: float | None = None  # the measured bf16 matmul rate
        self.datasheet = datasheet_peak(torch.cuda.get_device_name(0)) if self.cuda else None

    def config(self, preset: str, dropout: float = DROPOUT, **overrides) -> HBertConfig:
        return HBertConfig.from_preset(preset, **{**self.shape, "hidden_dropout_prob": dropout,
                                                  "attention_probs_dropout_prob": dropout, **overrides})  # fmt: skip

    def autocast(self, dtype=torch.bfloat16):
        return torch.autocast(self.device, dtype=dtype)

    def mlm_batch(self, batch: int | None = None, seq: int | None = None):
        """Random ids and 15% labels (a fixed count per row) on the device: (input_ids, labels), both (B, T)."""
        batch, seq = batch or self.batch, seq or self.seq
        vocab = self.shape["vocab_size"]
        ids = torch.randint(5, vocab, (batch, seq), device=self.device)
        labels = torch.full_like(ids, -100)
        picked = torch.rand(batch, seq, device=self.device).argsort(dim=1)[:, : max(1, round(0.15 * seq))]
        labels.scatter_(1, picked, ids.gather(1, picked))
        return ids.scatter(1, picked, 4), labels

    def tiny_corpus(self) -> str:
        if self.corpus is None:
            from tests.training_helpers import make_corpus

            self.corpus = make_corpus(self.work / "corpus", n_docs=200, seq_len=32)
        return self.corpus


def time_per_step(ctx: Context, step, steps: int, warmup: int = 3) -> float:
    """Seconds per call of ``step``: warm-up calls (compilation included), then ``steps`` calls between two CUDA
    events (one synchronisation in all), or a host clock on a CPU."""
    for _ in range(warmup):
        step()
    if ctx.cuda:
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(steps):
            step()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000 / steps
    begin = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - begin) / steps


def free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def compile_model(model, backend: str):
    """As the training loop compiles (its dynamo settings), with the backend of this run."""
    loop_compile(torch.nn.Identity())  # applies the loop's settings; compiling a module is lazy and costs nothing
    return torch.compile(model, backend=backend)


def peak_memory(ctx: Context) -> str:
    """The peak memory allocated since the last reset, for a detail line ("" on a CPU)."""
    return f", peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if ctx.cuda else ""


def reset_peak_memory(ctx: Context) -> None:
    if ctx.cuda:
        torch.cuda.reset_peak_memory_stats()


def mfu_detail(ctx: Context, flops_per_second: float) -> str:
    parts = []
    if ctx.datasheet:
        parts.append(f"MFU {flops_per_second / ctx.datasheet:.1%} of the datasheet peak ({ctx.datasheet / 1e12:.0f} "
                     "TFLOP/s)")  # fmt: skip
    if ctx.peak:
        parts.append(f"{flops_per_second / ctx.peak:.1%} of the measured matmul rate")
    return (", " + ", ".join(parts)) if parts else ""


def mfu_of(ctx: Context, flops_per_second: float) -> float | None:
    """MFU as papers quote it: of the datasheet peak; of the measured matmul rate when the GPU has no figure here."""
    peak = ctx.datasheet or ctx.peak
    return flops_per_second / peak if peak else None


def train_step(ctx: Context, model, ids, labels, compile_: bool):
    """bf16 autocast forward + backward + fused AdamW, with no host synchronisation of its own."""
    model.to(ctx.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    fwd = compile_model(model, ctx.compile_backend) if compile_ else model
    # hbert as its training loop runs it: vocabulary logits only at the labelled rows (its HF-facing default is dense)
    extra = {"sparse_logits": True} if isinstance(model, HBertForMaskedLM) else {}

    def step(sync: bool = False):
        with ctx.autocast():
            loss = fwd(input_ids=ids, labels=labels, **extra).loss
        loss.backward()
        if sync:  # what the training loop does every step: decide on the host whether the loss is finite
            bool(torch.isfinite(loss))
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


# ---------------------------------------------------------------- correctness


def check_precision(ctx: Context, report: Report) -> None:
    """Every preset: loss and gradients under bf16 / fp16 autocast against fp32 (no dropout, TF32 off)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    ids, labels = ctx.mlm_batch(batch=8)
    for preset in PRESETS:
        torch.manual_seed(0)
        model = HBertForMaskedLM(ctx.config(preset, dropout=0.0)).to(ctx.device)
        ref_loss, ref_grad = _loss_and_grad(model, ids, labels, None)
        for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
            if name == "fp16" and not ctx.cuda:
                report.add("correctness", f"{preset} fp16 autocast", "skipped: no CUDA")
                continue
            loss, grad = _loss_and_grad(model, ids, labels, dtype)
            loss_err = abs(loss - ref_loss) / abs(ref_loss)
            grad_err = float((grad - ref_grad).norm() / ref_grad.norm())
            tol = TOLERANCE[name]
            ok = loss_err <= tol["loss"] and grad_err <= tol["grad"] and torch.isfinite(grad).all()
            report.add("correctness", f"{preset} {name} autocast vs fp32", "pass" if ok else "fail",
                       f"loss rel err {loss_err:.2e} (tol {tol['loss']:.0e}), grad rel err {grad_err:.2e} "
                       f"(tol {tol['grad']:.0e})", loss_err=loss_err, grad_err=grad_err)  # fmt: skip
        del model
        free()


def _loss_and_grad(model, ids, labels, dtype) -> tuple[float, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    ctx = torch.autocast(ids.device.type, dtype=dtype) if dtype else contextlib.nullcontext()
    with ctx:
        loss = model(input_ids=ids, labels=labels).loss
    loss.backward()
    grad = torch.cat([p.grad.float().reshape(-1) for p in model.parameters() if p.grad is not None])
    return float(loss.detach()), grad


def check_sdpa_fused(ctx: Context, report: Report) -> None:
    """Softmax layers through SDPA restricted to one fused backend: a fallback to the math kernel would raise."""
    if not ctx.cuda:
        report.add("correctness", "SDPA fused kernel (flash / efficient)", "skipped: no CUDA")
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model = HBertForMaskedLM(ctx.config("bert")).to(ctx.device).train()
    ids, labels = ctx.mlm_batch(batch=8)
    padded = torch.ones_like(ids)
    padded[:, ctx.seq // 2 :] = 0
    cases = [("flash, no padding", SDPBackend.FLASH_ATTENTION, None),
             ("efficient, no padding", SDPBackend.EFFICIENT_ATTENTION, None),
             ("efficient, padded batch", SDPBackend.EFFICIENT_ATTENTION, padded)]  # fmt: skip
    for name, backend, mask in cases:
        try:
            with sdpa_kernel([backend]), ctx.autocast():
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            ok = bool(torch.isfinite(loss))
            report.add("correctness", f"SDPA {name}", "pass" if ok else "fail", "forward + backward, bf16, dropout")
        except RuntimeError as err:
            report.add("correctness", f"SDPA {name}", "fail", f"no fused kernel: {str(err).splitlines()[0][:150]}")


def check_graph_breaks(ctx: Context, report: Report) -> None:
    """torch._dynamo.explain over the training forward (loss included), with the training loop's dynamo settings;
    the count under torch's default settings is reported beside it. Then the static-index head (the GPU path):
    one graph under torch's default settings, no data-dependent size."""
    import torch._dynamo

    from hbert.masking.base import static_positions

    ids, labels = ctx.mlm_batch(batch=8)
    positions = static_positions(labels != -100, max(1, round(0.15 * ctx.seq)))
    for preset in ("bert", "hbert-v1"):
        model = HBertForMaskedLM(ctx.config(preset)).to(ctx.device).train()
        torch._dynamo.reset()
        with ctx.autocast():
            explained = torch._dynamo.explain(model)(input_ids=ids, labels=labels, sparse_logits=True,
                                                     masked_positions=positions)  # fmt: skip
        report.add("correctness", f"torch.compile graph breaks, {preset} training forward, static index",
                   "pass" if explained.graph_break_count == 0 else "fail",
                   f"{explained.graph_break_count} break(s), {explained.graph_count} graph(s), torch's default "
                   "dynamo settings", graph_breaks=explained.graph_break_count)  # fmt: skip
    for preset in ("bert", "hbert-v1"):
        model = HBertForMaskedLM(ctx.config(preset)).to(ctx.device).train()
        counts = {}
        for setting in ("default", "loop"):
            torch._dynamo.reset()
            with torch._dynamo.config.patch(capture_dynamic_output_shape_ops=setting == "loop"), ctx.autocast():
                explained = torch._dynamo.explain(model)(input_ids=ids, labels=labels, sparse_logits=True)
            counts[setting] = explained.graph_break_count
            reasons = "; ".join(str(getattr(b, "reason", b)).splitlines()[0][:100] for b in explained.break_reasons)
        report.add("correctness", f"torch.compile graph breaks, {preset} training forward",
                   "pass" if counts["loop"] == 0 else "fail",
                   f"{counts['loop']} break(s) as the training loop compiles ({counts['default']} under torch's "
                   f"default dynamo settings)" + (f": {reasons[:200]}" if reasons else ""),
                   graph_breaks=counts["loop"], graph_breaks_default=counts["default"])  # fmt: skip
    torch._dynamo.reset()


def check_sparse_head(ctx: Context, report: Report) -> None:
    """Sparse logits (labelled rows only) equal the dense logits at those rows."""
    model = HBertForMaskedLM(ctx.config("hbert-v1")).to(ctx.device).eval()
    ids, labels = ctx.mlm_batch(batch=8)
    with torch.no_grad():
        sparse = model(input_ids=ids, labels=labels, sparse_logits=True)
        dense = model(input_ids=ids, labels=labels)
    rows = labels.reshape(-1) != -100
    expect = dense.logits.reshape(-1, dense.logits.shape[-1])[rows]
    err = float((sparse.logits - expect).abs().max() / expect.abs().max())
    same_labels = torch.equal(sparse.masked_labels, labels.reshape(-1)[rows])
    ok = err < 1e-4 and same_labels and sparse.logits.shape[0] == int(rows.sum())
    report.add("correctness", "sparse MLM head = dense head at labelled rows", "pass" if ok else "fail",
               f"{sparse.logits.shape[0]} rows, max rel diff {err:.1e}")  # fmt: skip


def _pretrain(ctx: Context, name: str, *overrides: str) -> dict:
    from tests.training_helpers import TINY_RUN

    from hbert.config import load_config
    from hbert.training import pretrain

    settings = [f"corpus={ctx.tiny_corpus()}", f"out={ctx.work / name}", *TINY_RUN, "impl.log_every=1"]
    summary = pretrain(load_config(None, [*settings, *overrides]))
    log = [json.loads(line) for line in open(ctx.work / name / "log.jsonl")]
    return {"summary": summary, "log": [r for r in log if "loss" in r]}


def _run_ok(run: dict, steps: int, keys: tuple[str, ...] = ()) -> tuple[bool, str]:
    s, log = run["summary"], run["log"]
    finite = all(torch.isfinite(torch.tensor(float(r["loss"]))) for r in log)
    has = all(any(k in r for r in log) for k in keys)
    ok = s["status"] == "completed" and s["steps"] == steps and finite and has
    return ok, f"{s['steps']} steps, status {s['status']}, last loss {log[-1]['loss']:.3f}" + (
        f", logged {', '.join(keys)}" if keys else ""
    )


def check_training_paths(ctx: Context, report: Report) -> None:
    """The real training loop on the device: fp16 + GradScaler, entropy masking (self / candidates, token-stats,
    teacher) and knowledge distillation, on a tiny generated corpus."""
    device = f"impl.device={ctx.device}"
    precision = "impl.precision=bf16" if ctx.cuda or torch.backends.mkldnn.is_available() else "impl.precision=fp32"
    base = _pretrain(ctx, "random", device, precision, "budget=6-steps")
    ok, detail = _run_ok(base, 6)
    report.add("correctness", "training loop, random masking", "pass" if ok else "fail", detail)
    if ctx.cuda:
        run = _pretrain(ctx, "fp16", device, "impl.precision=fp16", "budget=6-steps")
        ok, detail = _run_ok(run, 6)
        report.add("correctness", "fp16 + GradScaler training steps", "pass" if ok else "fail", detail)
    else:
        report.add("correctness", "fp16 + GradScaler training steps", "skipped: no CUDA")
    teacher = str(ctx.work / "random" / "final")
    arms = {
        "self-entropy masking, candidates c=2": ("masking=entropy", "masking.source=self", "masking.self_warmup=0"),
        "self-entropy masking, token-stats": (
            "masking=entropy",
            "masking.source=self",
            "masking.scoring=token-stats",
            "masking.self_warmup=0",
        ),
        "teacher-entropy masking + KD": ("masking=entropy", f"masking.teacher={teacher}", "objective.kd.alpha=0.5"),
    }
    keys = {"teacher-entropy masking + KD": ("entropy_chosen", "loss_kd")}
    for i, (name, overrides) in enumerate(arms.items()):
        run = _pretrain(ctx, f"arm{i}", device, precision, "budget=6-steps", *overrides)
        ok, detail = _run_ok(run, 6, keys.get(name, ("entropy_chosen",)))
        report.add("correctness", name, "pass" if ok else "fail", detail)


def check_sigterm_resume(ctx: Context, report: Report) -> None:
    """`hbert pretrain` in a subprocess, SIGTERM after a few logged steps, then --resume to the end."""
    from tests.training_helpers import TINY_RUN

    run = ctx.work / "sigterm"
    budget = "budget=1m" if ctx.cuda and not ctx.tiny else "budget=150-steps"
    cmd = [sys.executable, "-m", "hbert", "pretrain", f"corpus={ctx.tiny_corpus()}", f"out={run}", *TINY_RUN,
           budget, f"impl.device={ctx.device}", "train.checkpoint_every=0"]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *sys.path])}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    log = run / "log.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and sum(1 for _ in open(log)) >= 5:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=300)
    first = json.loads((run / "summary.json").read_text())
    resumed = subprocess.run([sys.executable, "-m", "hbert", "pretrain", "--resume", str(run)], capture_output=True,
                             text=True, env=env, timeout=600)  # fmt: skip
    final = json.loads((run / "summary.json").read_text())
    ok = (first["status"] == "interrupted" and resumed.returncode == 0 and final["status"] == "completed"
          and (run / "final" / "model.safetensors").exists())  # fmt: skip
    report.add("correctness", f"SIGTERM'd hbert pretrain ({budget}) resumes and finishes", "pass" if ok else "fail",
               f"interrupted at step {first['steps']} ({first['status']}), finished at step {final['steps']} "
               f"({final['status']})" + ("" if resumed.returncode == 0 else f": {resumed.stderr[-300:]}"))  # fmt: skip


# ---------------------------------------------------------------- speed


def check_matmul_peak(ctx: Context, report: Report) -> None:
    n = 512 if ctx.tiny else 8192
    a = torch.randn(n, n, device=ctx.device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=ctx.device, dtype=torch.bfloat16)
    seconds = time_per_step(ctx, lambda: a @ b, steps=5 if ctx.tiny else 50)
    ctx.peak = 2 * n**3 / seconds
    report.add("speed", f"bf16 matmul {n}x{n}x{n}", "measured", f"{ctx.peak / 1e12:.1f} TFLOP/s", flops=ctx.peak)


def _hf_bert(ctx: Context):
    from transformers import BertConfig, BertForMaskedLM

    s = ctx.shape
    config = BertConfig(vocab_size=s["vocab_size"], hidden_size=s["hidden_size"], num_hidden_layers=s[
        "num_hidden_layers"], num_attention_heads=s["num_attention_heads"], intermediate_size=s["intermediate_size"],
        hidden_dropout_prob=DROPOUT, attention_probs_dropout_prob=DROPOUT, max_position_embeddings=512)  # fmt: skip
    config._attn_implementation = "sdpa"
    return BertForMaskedLM(config)


class HFBertSparseHead(torch.nn.Module):
    """HF BertForMaskedLM's encoder (SDPA) with its MLM head run at the labelled rows only, gathered with a static
    index as hbert's GPU path does: against hbert, what is left is the kernels; against HF eager, the head."""

    def __init__(self, mlm):
        super().__init__()
        self.mlm = mlm

    def forward(self, input_ids, labels):
        from types import SimpleNamespace

        from hbert.masking.base import flat_rows, static_positions

        hidden = self.mlm.bert(input_ids).last_hidden_state
        rows = flat_rows(static_positions(labels != -100, max(1, round(0.15 * labels.shape[1]))), labels.shape[1])
        logits = self.mlm.cls(hidden.reshape(-1, hidden.shape[-1]).index_select(0, rows))
        target = labels.reshape(-1).index_select(0, rows)
        return SimpleNamespace(loss=torch.nn.functional.cross_entropy(logits.float(), target, ignore_index=-100))


def _hf_modernbert(ctx: Context):
    """ModernBERT at the same width, depth, heads and dropout; its GLU FFN of 2/3 the width keeps the parameters
    and FLOPs of a 4H FFN; sparse_prediction computes the head at the labelled positions only."""
    from transformers import ModernBertConfig, ModernBertForMaskedLM

    s = ctx.shape
    config = ModernBertConfig(vocab_size=s["vocab_size"], hidden_size=s["hidden_size"], num_hidden_layers=s[
        "num_hidden_layers"], num_attention_heads=s["num_attention_heads"], intermediate_size=s[
        "intermediate_size"] * 2 // 3, attention_dropout=DROPOUT, mlp_dropout=DROPOUT, embedding_dropout=DROPOUT,
        sparse_prediction=True, max_position_embeddings=512, pad_token_id=0, bos_token_id=2, eos_token_id=3,
        cls_token_id=2, sep_token_id=3, reference_compile=False)  # fmt: skip
    config._attn_implementation = "sdpa"
    return ModernBertForMaskedLM(config)


def check_train_speed(ctx: Context, report: Report, arms: tuple[str, ...]) -> None:
    """Training steps (bf16, dropout 0.1, same batch) of hbert presets and the Hugging Face baselines."""
    ids, labels = ctx.mlm_batch()
    tokens = ids.numel()
    builders = {
        "HF BertForMaskedLM eager": (_hf_bert, False),
        "HF BertForMaskedLM compiled": (_hf_bert, True),
        "HF BertForMaskedLM, head at masked rows, eager": ((lambda c: HFBertSparseHead(_hf_bert(c))), False),
        "HF ModernBertForMaskedLM eager": (_hf_modernbert, False),
        "HF ModernBertForMaskedLM compiled": (_hf_modernbert, True),
        **{f"hbert {p} compiled": ((lambda c, p=p: HBertForMaskedLM(c.config(p))), True) for p in PRESETS},
        "hbert bert eager": ((lambda c: HBertForMaskedLM(c.config("bert"))), False),
    }
    times = ctx.__dict__.setdefault("train_times", {})
    for arm in arms:
        if time.time() > ctx.deadline:
            report.add("speed", f"train step, {arm}", "skipped: time limit")
            continue
        build, compile_ = builders[arm]
        try:
            reset_peak_memory(ctx)
            torch.manual_seed(0)
            with torch.device(ctx.device):  # initialised in place: no 110M-parameter init on the host
                model = build(ctx)
            step = train_step(ctx, model, ids, labels, compile_)
            seconds = time_per_step(ctx, step, ctx.steps)
            times[arm] = seconds
            detail = f"{seconds * 1e3:.1f} ms/step, {tokens / seconds:,.0f} tokens/s{peak_memory(ctx)}"
            if arm == "hbert bert compiled":
                synced = time_per_step(ctx, functools.partial(step, sync=True), ctx.steps, warmup=1)
                report.add("speed", "cost of one host sync per step (hbert bert compiled)", "measured",
                           f"{synced * 1e3:.1f} ms/step with it, {seconds * 1e3:.1f} without: "
                           f"{synced / seconds - 1:+.1%}", seconds=synced)  # fmt: skip
            if arm.startswith("hbert"):
                preset = arm.split()[1]
                flops = flops_per_token(ctx.config(preset), ctx.seq)["train"] * tokens / seconds
                detail += mfu_detail(ctx, flops)
                ctx.__dict__.setdefault("mfu", {})[arm] = mfu_of(ctx, flops)
            report.add("speed", f"train step, {arm}", "measured", detail, seconds=seconds)
        except Exception as err:  # one baseline failing (e.g. an older transformers) must not stop the rest
            report.add("speed", f"train step, {arm}", "error", f"{type(err).__name__}: {str(err)[:200]}")
        finally:
            model = step = None
            torch._dynamo.reset()  # the compiled graphs of this arm go with it
            free()
    _train_ratios(ctx, report, times, arms)


def _train_ratios(ctx: Context, report: Report, times: dict, arms: tuple[str, ...]) -> None:
    for preset in PRESETS:
        arm = f"hbert {preset} compiled"
        if arm in arms and arm in times and "HF BertForMaskedLM eager" in times:
            ratio = times["HF BertForMaskedLM eager"] / times[arm]
            report.add("speed", f"ratio: {arm} / HF BertForMaskedLM eager", "measured", f"{ratio:.2f}x")
    if "hbert bert compiled" not in arms:
        return
    ours = times.get("hbert bert compiled")
    for key, base in (("bert_vs_hf_eager", "HF BertForMaskedLM eager"), ("bert_vs_modernbert",
                                                                         "HF ModernBertForMaskedLM eager")):  # fmt: skip
        report.target(key, times[base] / ours if ours and base in times else None, "a step time is missing")
    for other in (
        "HF BertForMaskedLM compiled",
        "HF BertForMaskedLM, head at masked rows, eager",
        "HF ModernBertForMaskedLM compiled",
        "hbert bert eager",
    ):
        if ours and other in times:
            report.add("speed", f"ratio: hbert bert compiled / {other}", "measured", f"{times[other] / ours:.2f}x")
    report.target("mfu", ctx.__dict__.get("mfu", {}).get("hbert bert compiled"), "no hbert bert step time")


def check_long_forward(ctx: Context, report: Report) -> None:
    """Encoder forward (no grad, bf16, eval) of bert / additive / hbert-v2 as the sequence grows."""
    from hbert import HBertModel

    times = {}
    for length in ctx.long_lengths:
        batch = max(1, ctx.long_tokens // length)
        ids = torch.randint(5, ctx.shape["vocab_size"], (batch, length), device=ctx.device)
        for preset in ("bert", "additive", "hbert-v2"):
            model = HBertModel(ctx.config(preset, max_position_embeddings=length)).to(ctx.device).eval()

            def forward(model=model, ids=ids):
                with torch.no_grad(), ctx.autocast():
                    model(input_ids=ids)

            times[preset, length] = time_per_step(ctx, forward, steps=ctx.steps, warmup=2)
            del model
            free()
        detail = ", ".join(f"{p} {times[p, length] * 1e3:.1f} ms" for p in ("bert", "additive", "hbert-v2"))
        ratios = ", ".join(f"{p} {times['bert', length] / times[p, length]:.2f}x" for p in ("additive", "hbert-v2"))
        report.add("speed", f"encoder forward, {length} tokens x {batch}", "measured", f"{detail}; vs bert: {ratios}")
    longest = ctx.long_lengths[-1]
    report.target("additive_vs_bert_8k", times["bert", longest] / times["additive", longest])


def check_masking_cost(ctx: Context, report: Report) -> None:
    """One training step (masking + forward + backward + AdamW, eager, bf16) with each masking strategy."""
    from hbert.masking.base import SpecialIds, build_masking, masking_settings

    vocab = ctx.shape["vocab_size"]
    ids = SpecialIds(mask_id=4, special=(0, 1, 2, 3, 4), vocab_size=vocab, random_low=5)
    blocks = torch.randint(5, vocab, (ctx.batch, ctx.seq), device=ctx.device)
    arms = {"random": {"kind": "random"}, "self, candidates c=2": {"kind": "entropy", "source": "self", "pool": 2.0},
            "self, token-stats": {"kind": "entropy", "source": "self", "scoring": "token-stats"}}  # fmt: skip
    times = {}
    for name, arm in arms.items():
        torch.manual_seed(0)
        model = HBertForMaskedLM(ctx.config("bert")).to(ctx.device).train()
        masking = build_masking(masking_settings(**arm, self_warmup=0.0), ids, precision="bf16")
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        generator = torch.Generator(device=ctx.device).manual_seed(0)

        def step(model=model, masking=masking, opt=opt, generator=generator):
            masked = masking(blocks, None, generator, model=model, progress=0.5)
            with ctx.autocast():
                out = model(input_ids=masked.input_ids, labels=masked.labels, sparse_logits=True)
            out.loss.backward()
            masking.observe(masked, out.logits)
            opt.step()
            opt.zero_grad(set_to_none=True)

        times[name] = time_per_step(ctx, step, ctx.steps)
        del model, masking, opt
        free()
    for name, seconds in times.items():
        report.add("speed", f"masking step, {name}", "measured",
                   f"{seconds * 1e3:.1f} ms/step, {seconds / times['random']:.2f}x random")  # fmt: skip


def _engine(ctx: Context, masking_config, base):
    """An ``Engine`` as ``hbert pretrain`` builds it from a config: the gpu-24h model (dropout 0, padded
    vocabulary) at this run's shape, fused AdamW with the config's settings, compiled, static shapes on a GPU."""
    from hbert.masking.base import SpecialIds, build_masking
    from hbert.masking.teacher import TeacherCache
    from hbert.optim import adamw
    from hbert.training.distributed import Dist
    from hbert.training.engine import Engine
    from hbert.training.objective import PretrainObjective

    vocab = ctx.shape["vocab_size"]
    padded = -(-vocab // 64) * 64
    config = ctx.config("bert", dropout=base.model.fields.get("hidden_dropout_prob", DROPOUT), vocab_size=padded)
    model = HBertForMaskedLM(config).to(ctx.device).train()
    ids = SpecialIds(mask_id=4, special=(0, 1, 2, 3, 4), vocab_size=vocab, random_low=5)
    masking = build_masking(masking_config, ids, precision="bf16")
    teachers = TeacherCache(torch.device(ctx.device), "bf16", None)
    objective = PretrainObjective(base.objective.kd, masking, teachers, torch.device(ctx.device))
    train = base.train
    optimizer = adamw(model.parameters(), train.lr, train.weight_decay, train.betas, train.eps, fused=True)
    engine = Engine(model, optimizer, masking, objective, device=torch.device(ctx.device), precision="bf16",
                    dist=Dist(), grad_clip=train.grad_clip, compile=True, static=True,
                    compile_backend=ctx.compile_backend)  # fmt: skip
    return engine, config


def _host_syncs(ctx: Context, step) -> str:
    """Host synchronisations in one step: the known sync points (hbert.runtime.count_host_syncs) and, on CUDA,
    what torch.cuda's sync debug mode reports."""
    import warnings

    from hbert.runtime import count_host_syncs

    with count_host_syncs() as syncs:
        step()
    detail = f"{syncs.count} at the known sync points" + (f" ({', '.join(syncs.where[:5])})" if syncs.where else "")
    if ctx.cuda:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                step()
                torch.cuda.current_stream().query()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        cuda_syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
        detail += f", {len(cuda_syncs)} reported by CUDA's sync debug mode"
    return detail


def check_engine_step(ctx: Context, report: Report) -> None:
    """The real ``Engine.step`` of a gpu-24h run (masking inside the step, static index, compiled, fused AdamW,
    the non-finite check on the device), random and self-entropy masking: time, MFU, peak memory, compile
    warm-up and the host synchronisations of a step that is not logged (the goal: none)."""
    from hbert.config import load_config
    from hbert.masking.base import masking_settings

    base = load_config(str(ROOT / "configs" / "pretrain" / "gpu-24h.yaml"))
    blocks = torch.randint(5, ctx.shape["vocab_size"], (ctx.batch, ctx.seq), device=ctx.device)
    blocks[:, 0], blocks[:, -1] = 2, 3  # [CLS] ... [SEP]
    arms = {"random": masking_settings(kind="random"),
            "self-entropy c=2": masking_settings(kind="entropy", source="self", pool=2.0, self_warmup=0.0)}  # fmt: skip
    times = {}
    for name, masking_config in arms.items():
        if time.time() > ctx.deadline:
            report.add("speed", f"Engine.step, {name}", "skipped: time limit")
            continue
        try:
            reset_peak_memory(ctx)
            torch.manual_seed(0)
            engine, config = _engine(ctx, masking_config, base)
            warm = engine.warm_up(blocks)
            generator = torch.Generator(device=ctx.device).manual_seed(0)

            def step(engine=engine, generator=generator):
                engine.step(blocks, generator, progress=0.5)

            seconds = time_per_step(ctx, step, ctx.steps, warmup=1)
            times[name] = seconds
            flops = flops_per_token(config, ctx.seq)["train"] * blocks.numel() / seconds
            stats = engine.compile_stats()
            report.add("speed", f"Engine.step, {name}", "measured",
                       f"{seconds * 1e3:.1f} ms/step, {blocks.numel() / seconds:,.0f} tokens/s{mfu_detail(ctx, flops)}"
                       f"{peak_memory(ctx)}; warm-up (compilation) {warm:.1f} s, {stats['graphs']} graph(s), "
                       f"{stats['graph_breaks']} break(s), {stats['recompiles']} recompile(s); host syncs per step: "
                       f"{_host_syncs(ctx, step)}", seconds=seconds, compile=stats)  # fmt: skip
        except Exception as err:
            report.add("speed", f"Engine.step, {name}", "error", f"{type(err).__name__}: {str(err)[:200]}")
        finally:
            engine = step = None
            torch._dynamo.reset()
            free()
    if "random" in times and "self-entropy c=2" in times:
        report.target("self_entropy_cost", times["self-entropy c=2"] / times["random"])


# ---------------------------------------------------------------- driver


def environment(ctx: Context, argv: list[str]) -> dict:
    import transformers

    name = torch.cuda.get_device_name(0) if ctx.cuda else f"CPU ({platform.machine()}, {os.cpu_count()} cores)"
    return {"device_name": name, "cuda": ctx.cuda, "tiny": ctx.tiny, "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "shape": ctx.shape, "seq": ctx.seq, "batch": ctx.batch,
            "compile_backend": ctx.compile_backend,
            "command": "python benchmarks/gpu_check.py " + " ".join(argv)}  # fmt: skip


def run(ctx: Context, report: Report) -> None:
    main_arms = ("hbert bert compiled", "HF BertForMaskedLM eager", "HF ModernBertForMaskedLM eager",
                 "HF BertForMaskedLM, head at masked rows, eager", "HF BertForMaskedLM compiled",
                 "HF ModernBertForMaskedLM compiled", "hbert bert eager")  # fmt: skip
    other_arms = tuple(f"hbert {p} compiled" for p in ("hbert-v1", "hbert-v2", "additive"))
    checks = [
        ("bf16 / fp16 autocast vs fp32", check_precision),
        ("SDPA fused kernels", check_sdpa_fused),
        ("sparse MLM head", check_sparse_head),
        ("torch.compile graph breaks", check_graph_breaks),
        ("bf16 matmul rate", check_matmul_peak),
        ("training steps against Hugging Face", lambda c, r: check_train_speed(c, r, main_arms)),
        ("Engine.step at the gpu-24h settings", check_engine_step),
        ("encoder forward at long sequences", check_long_forward),
        ("masking cost", check_masking_cost),
        ("training loop paths", check_training_paths),
        ("SIGTERM and resume", check_sigterm_resume),
        ("training steps of the other presets", lambda c, r: check_train_speed(c, r, other_arms)),
    ]
    for name, check in checks:
        if time.time() > ctx.deadline:
            report.add("driver", name, "skipped: time limit")
            continue
        begin = time.time()
        try:
            check(ctx, report)
        except Exception as err:  # record and go on: one broken check must not hide the others
            tail = traceback.format_exc().strip().splitlines()[-1][:300]
            report.add("driver", name, "error", f"{type(err).__name__}: {tail}")
        finally:
            free()
        report.meta.setdefault("check_seconds", {})[name] = round(time.time() - begin, 1)
        report.write()
        print(f"  ({name}: {time.time() - begin:.1f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for GPU_RESULTS.md and gpu_check.json")
    parser.add_argument("--tiny", action="store_true", help="a tiny shape: a quick dry run on any device")
    parser.add_argument("--cpu", action="store_true", help="ignore CUDA even when it is there")
    parser.add_argument("--batch", type=int, default=0, help="training batch (default 256 at seq 128, 4 tiny)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per speed figure")
    parser.add_argument(
        "--time-limit",
        type=float,
        default=0,
        help="start no new check or timed arm after this many seconds (default 420; tiny 3600)",
    )
    args = parser.parse_args(argv)
    ctx = Context(args)
    if not ctx.cuda:
        torch.set_num_threads(min(2, torch.get_num_threads()))  # a dry run shares its CPU: no oversubscription
    torch.manual_seed(0)
    report = Report(Path(args.out), environment(ctx, argv))
    for key in TARGETS:  # replaced by the checks that measure them; a check that fails leaves this
        report.target(key, None, "its check did not finish")
    run(ctx, report)
    bad = [c for c in report.checks if c["status"] in ("fail", "error")]
    print(f"\n{len(report.checks)} checks, {len(bad)} failed or errored; report in {args.out}/GPU_RESULTS.md")
    print(report.markdown())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
