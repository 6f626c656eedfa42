"""Inference speed of several encoders side by side, in one run: sequences/s at batch 32 for each sequence length,
and batch-1 latency, in float32 and bf16 autocast. Models alternate inside every measurement round so that drift in
the machine's speed hits them alike. (The HybridBERT paper claims hybrids accelerate inference.)"""

from __future__ import annotations

import os
import statistics
import time

import torch
from transformers import AutoModel
from transformers.utils import logging as hf_logging

from ..modeling import PRESETS, HBertConfig, HBertModel
from ..remote import auto_from_pretrained


def load_encoder(name: str, max_len: int, trust_remote_code: bool = False):
    if name in PRESETS:  # a preset at its default shape, random weights: speed does not depend on the weights
        return HBertModel(HBertConfig.from_preset(name, max_position_embeddings=max(512, max_len)))
    if not os.path.isdir(name) and (os.path.exists(name) or name.startswith((".", "/", "~")) or name.count("/") > 1):
        raise ValueError(f"{name} is not a checkpoint folder; accepted: a checkpoint folder, a preset "
                         f"({', '.join(PRESETS)}) or a hub name (org/name)")  # fmt: skip
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # an MLM checkpoint's head is "unexpected" for the bare encoder: expected
    try:
        return auto_from_pretrained(AutoModel, name, trust_remote_code, new_head=True)
    finally:
        hf_logging.set_verbosity(verbosity)


def bench_inference(names: list[str], lengths=(128, 512), batch: int = 32, repeats: int = 5, device: str = "cpu",
                    precisions=("fp32", "bf16"), trust_remote_code: bool = False) -> list[dict]:  # fmt: skip
    models = {n: load_encoder(n, max(lengths), trust_remote_code).to(device).eval() for n in names}
    rows = []
    for precision in precisions:
        ctx = torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")
        for T in lengths:
            for b, label in ((batch, "throughput"), (1, "latency")):
                inputs = {}
                for n, m in models.items():  # ordinary token ids of each model's own vocabulary
                    vocab = m.config.vocab_size
                    inputs[n] = torch.randint(min(1000, vocab // 2), vocab, (b, T), device=device)
                times: dict[str, list[float]] = {n: [] for n in models}
                with torch.inference_mode(), ctx:
                    for r in range(repeats + 1):
                        for n, m in models.items():
                            if device.startswith("cuda"):
                                torch.cuda.synchronize()
                            start = time.perf_counter()
                            m(input_ids=inputs[n])
                            if device.startswith("cuda"):
                                torch.cuda.synchronize()
                            if r:
                                times[n].append(time.perf_counter() - start)
                for n in models:
                    t = statistics.median(times[n])
                    rows.append({"model": n, "precision": precision, "seq": T, "batch": b, "kind": label,
                                 "ms": 1000 * t, "sequences_per_s": b / t})  # fmt: skip
    return rows


def inference_markdown(rows: list[dict]) -> str:
    names = list(dict.fromkeys(r["model"] for r in rows))
    lines = ["| precision | seq | measure | " + " | ".join(names) + " |", "|---|---:|---|" + "---:|" * len(names)]
    keys = list(dict.fromkeys((r["precision"], r["seq"], r["kind"], r["batch"]) for r in rows))
    for precision, seq, kind, batch in keys:
        cells = []
        for n in names:
            r = next(x for x in rows if (x["model"], x["precision"], x["seq"], x["kind"]) == (n, precision, seq, kind))
            cells.append(f"{r['sequences_per_s']:.1f} seq/s" if kind == "throughput" else f"{r['ms']:.1f} ms")
        label = f"batch {batch} throughput" if kind == "throughput" else "batch 1 latency"
        lines.append(f"| {precision} | {seq} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
