"""`hbert showcase`: every preset at a small shape, its parameters, FLOPs per token and the measured speed of a
training step and an inference forward (what each architecture costs, before any pretraining)."""

from __future__ import annotations

import json
import os
import platform
import time

import torch

from .modeling import PRESETS, HBertConfig, HBertForMaskedLM
from .modeling.info import flops_per_token

SMALL_SHAPE = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024}


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def run_showcase(out_dir: str, seq_len: int = 128, batch_size: int = 16, repeats: int = 5, **overrides) -> list[dict]:
    shape = {**SMALL_SHAPE, **overrides}
    torch.manual_seed(0)
    rows = []
    for name in PRESETS:
        rows.append(_measure_preset(name, shape, seq_len, batch_size, repeats))
        print(
            f"  {name:<10} {rows[-1]['train_tokens_per_s']:>8} train tok/s  {rows[-1]['infer_tokens_per_s']:>8} infer tok/s"
        )
    _write_tables(out_dir, rows, shape, seq_len, batch_size)
    return rows


def _measure_preset(name: str, shape: dict, seq_len: int, batch_size: int, repeats: int) -> dict:
    """One preset at ``shape``: parameters, training FLOPs per step, and the median speed of a training step (15%
    of tokens predicted, sparse head) and of an inference forward."""
    config = HBertConfig.from_preset(name, **shape)
    model = HBertForMaskedLM(config)
    params = sum(p.numel() for p in model.parameters())
    ids = torch.randint(1000, config.vocab_size, (batch_size, seq_len))
    labels = torch.full_like(ids, -100)
    picked = torch.rand(ids.shape).argsort(dim=1)[:, : max(1, round(0.15 * seq_len))]
    labels.scatter_(1, picked, ids.gather(1, picked))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train_step():
        model.train()
        model(ids, labels=labels, sparse_logits=True).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def infer():
        model.eval()
        with torch.inference_mode():
            model.hbert(ids)

    step_s = _median_seconds(train_step, repeats)
    infer_s = _median_seconds(infer, repeats)
    tokens = batch_size * seq_len
    return {
        "preset": name,
        "layers": config.layer_pattern,
        "norm": config.norm_scheme,
        "params_M": round(params / 1e6, 2),
        "train_GFLOP_per_step": round(flops_per_token(config, seq_len)["train"] * tokens / 1e9, 2),
        "train_tokens_per_s": round(tokens / step_s),
        "infer_tokens_per_s": round(tokens / infer_s),
    }


def _write_tables(out_dir: str, rows: list[dict], shape: dict, seq_len: int, batch_size: int) -> None:
    """``showcase.md`` (a markdown table with the shape and the machine) and ``showcase.json`` in ``out_dir``."""
    header = "| preset | layers | norm | params (M) | train GFLOP/step | train tokens/s | inference tokens/s |"
    lines = [header, "|---|---|---|---:|---:|---:|---:|"]
    lines += [
        f"| {r['preset']} | {r['layers']} | {r['norm']} | {r['params_M']} | {r['train_GFLOP_per_step']} | "
        f"{r['train_tokens_per_s']} | {r['infer_tokens_per_s']} |"
        for r in rows
    ]
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    shape_text = " ".join(f"{k}={v}" for k, v in shape.items())
    table = "\n".join(lines)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "showcase.md"), "w") as f:
        f.write(f"# hbert presets\n\n{shape_text}, batch {batch_size} x seq {seq_len}, float32, {machine}\n\n{table}\n")
    with open(os.path.join(out_dir, "showcase.json"), "w") as f:
        json.dump(
            {"shape": shape, "batch_size": batch_size, "seq_len": seq_len, "machine": machine, "rows": rows},
            f,
            indent=2,
        )
    print(f"\n{table}\n\nwritten to {os.path.join(out_dir, 'showcase.md')}")
