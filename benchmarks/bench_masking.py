"""Masking-strategy benchmark at the `cpu-small` shape (L=4, H=256, A=4, FFN=1024, batch 32 x seq 128, bf16
autocast where supported), each against the random-masking step measured in the same run.

- Step time (masking + forward + backward + AdamW): `self` + `candidates` with pool c = 1.5, 2, 3; `token-stats`;
  teacher scoring with a teacher of twice the student's layers. Steps of all strategies alternate, round after
  round, so that drift in the machine's speed hits them alike; medians are reported.
- Peak working memory of a step (peak RSS during the steps minus RSS before them, each strategy in a fresh
  process, Linux `clear_refs`), as a ratio to random masking.

    python benchmarks/bench_masking.py [--markdown benchmarks/MASKING_RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from common import emit, offline_corpus

SHAPE = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024,
         "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}  # fmt: skip
ARMS = {
    "random": {"kind": "random"},
    "self, candidates c=1.5": {"kind": "entropy", "source": "self", "pool": 1.5},
    "self, candidates c=2": {"kind": "entropy", "source": "self", "pool": 2.0},
    "self, candidates c=3": {"kind": "entropy", "source": "self", "pool": 3.0},
    "self, token-stats": {"kind": "entropy", "source": "self", "scoring": "token-stats"},
    "teacher (2x layers), candidates c=2": {"kind": "entropy", "source": "teacher", "pool": 2.0},
}


def build(arm: dict, corpus: str):
    from hbert import HBertConfig, HBertForMaskedLM
    from hbert.data.corpus import Corpus
    from hbert.masking.base import SpecialIds, build_masking, masking_settings

    c = Corpus(corpus)
    tok = c.tokenizer()
    ids = SpecialIds.from_tokenizer(tok)
    torch.manual_seed(0)
    model = HBertForMaskedLM(HBertConfig.from_preset("bert", vocab_size=len(tok), **SHAPE))
    teacher = None
    if arm.get("source") == "teacher":
        teacher = HBertForMaskedLM(
            HBertConfig.from_preset("bert", vocab_size=len(tok), **{**SHAPE, "num_hidden_layers": 8})
        )
        teacher.requires_grad_(False)
        teacher.eval().to(torch.bfloat16)
    config = masking_settings(**{k: v for k, v in arm.items()}, self_warmup=0.0)
    masking = build_masking(config, ids, teacher=teacher, precision="bf16")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    blocks = c.blocks("train")
    rng = np.random.default_rng(0)

    def step(i: int) -> None:
        rows = np.sort(rng.choice(len(blocks), 32, replace=False))
        batch = torch.from_numpy(blocks[rows].astype(np.int64))
        masked = masking(batch, None, torch.Generator().manual_seed(i), model=model, progress=0.5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(masked.input_ids, labels=masked.labels, sparse_logits=True)
        out.loss.backward()
        masking.observe(masked, out.logits)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def memory_child(name: str, corpus: str, steps: int) -> None:
    step = build(ARMS[name], corpus)
    step(0)  # first step allocates optimizer state and warms the allocator
    before = _rss_kb("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current RSS
    for i in range(1, steps + 1):
        step(i)
    print(json.dumps({"working_mb": (_rss_kb("VmHWM:") - before) / 1024, "peak_mb": _rss_kb("VmHWM:") / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4, help="steps per strategy per round")
    parser.add_argument("--markdown")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--corpus")
    args = parser.parse_args()
    corpus = args.corpus or offline_corpus()
    if args.child:
        memory_child(args.child, corpus, args.steps)
        return

    steps = {name: build(arm, corpus) for name, arm in ARMS.items()}
    for fn in steps.values():
        fn(0)
    times: dict[str, list[float]] = {name: [] for name in ARMS}
    for r in range(args.rounds):
        for name, fn in steps.items():
            for i in range(args.steps):
                start = time.perf_counter()
                fn(1 + r * args.steps + i)
                times[name].append(time.perf_counter() - start)
        print(f"  round {r}: " + ", ".join(f"{n} {1000 * statistics.median(t):.0f} ms" for n, t in times.items()),
              flush=True)  # fmt: skip
    del steps
    memory = {}
    for name in ARMS:
        out = subprocess.run([sys.executable, __file__, "--child", name, "--corpus", corpus, "--steps", "3"],
                             capture_output=True, text=True)  # fmt: skip
        if out.returncode != 0:
            raise SystemExit(out.stderr[-2000:])
        memory[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  memory {name}: {memory[name]}", flush=True)
    base_t = statistics.median(times["random"])
    base_m = memory["random"]["working_mb"]
    lines = [
        "# Masking-strategy benchmark",
        "",
        f"`python benchmarks/bench_masking.py --rounds {args.rounds} --steps {args.steps}`, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__}. Student: `bert` preset, L=4 H=256 A=4 FFN=1024, batch 32 x seq 128, bf16 "
        "autocast, the offline corpus; teacher: the same with 8 layers, bf16.",
        "",
        "| strategy | ms / step | step time vs random | step working memory (MB) | vs random |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ARMS:
        t = statistics.median(times[name])
        m = memory[name]["working_mb"]
        lines.append(f"| {name} | {1000 * t:.0f} | **{t / base_t:.2f}x** | {m:.0f} | **{m / base_m:.2f}x** |")
    emit("\n".join(lines) + "\n", args.markdown)


if __name__ == "__main__":
    main()
