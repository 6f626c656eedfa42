"""Model speed benchmark: ratios against baselines measured in the same run.

1. Training step (forward + backward + AdamW) of the `bert` preset against Hugging Face `BertForMaskedLM` of the
   same shape (default L=4, H=256, A=4, FFN=1024, vocab 30,522, seq 128, batch 32, 15% of tokens labelled, dropout
   0.1 in both), in float32 and under bf16 autocast. Steps of the two models alternate so that drift in the
   machine's speed hits both alike; the median step time of each is reported.
2. Encoder-only inference forward at batch 1 for growing sequence lengths, every preset, float32; ratios against
   the `bert` preset at the same length.
3. Achieved FLOP/s of each measurement as a fraction of a large bf16 matrix product timed in the same run
   (FLOPs counted by `hbert.modeling.info.flops_per_token`).

    python benchmarks/bench_model.py                       # the full run (a few minutes on 2 CPU cores)
    python benchmarks/bench_model.py --device cuda --compile   # on a GPU, with torch.compile for hbert
    python benchmarks/bench_model.py --markdown benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import time

import torch
from transformers import BertConfig, BertForMaskedLM

from hbert import HBertConfig, HBertForMaskedLM
from hbert.modeling.info import flops_per_token


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _autocast(device: str, bf16: bool):
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.split(":")[0], dtype=torch.bfloat16)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def matmul_peak(device: str, size: int, repeats: int = 5) -> float:
    """FLOP/s of a (size x size) @ (size x size) bf16 product: the ceiling the other figures are compared with."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    a @ b
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times)


def _mlm_batch(batch: int, seq: int, vocab: int, ratio: float, device: str):
    ids = torch.randint(1000, vocab, (batch, seq))
    labels = torch.full_like(ids, -100)
    picked = torch.rand(batch, seq).argsort(dim=1)[:, : max(1, round(ratio * seq))]
    labels.scatter_(1, picked, ids.gather(1, picked))
    inputs = ids.clone()
    inputs.scatter_(1, picked, 103)  # [MASK]
    return inputs.to(device), labels.to(device)


def _train_step_fn(model, inputs, labels, device: str, bf16: bool):
    fused = device.startswith("cuda") or device == "cpu"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused)

    def step():
        with _autocast(device, bf16):
            loss = model(inputs, labels=labels, sparse_logits=True).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)

    return step


def bench_training(args, peak: float) -> list[dict]:
    shape = {"hidden_size": args.hidden, "num_hidden_layers": args.layers, "num_attention_heads": args.heads}
    shape["intermediate_size"] = args.ffn
    inputs, labels = _mlm_batch(args.batch, args.seq, 30522, 0.15, args.device)
    rows = []
    for bf16 in (False, True):
        torch.manual_seed(0)
        ours = HBertForMaskedLM(HBertConfig.from_preset("bert", **shape)).to(args.device).train()
        torch.manual_seed(0)
        theirs = BertForMaskedLM(BertConfig(**shape)).to(args.device).train()
        if args.compile:
            ours = torch.compile(ours)
        steps = {
            "hbert": _train_step_fn(ours, inputs, labels, args.device, bf16),
            "hf": _train_step_fn(theirs, inputs, labels, args.device, bf16),
        }
        times: dict[str, list[float]] = {"hbert": [], "hf": []}
        for i in range(args.warmup + args.repeats):
            for name, step in steps.items():
                start = time.perf_counter()
                step()
                if i >= args.warmup:
                    times[name].append(time.perf_counter() - start)
        t_ours, t_hf = statistics.median(times["hbert"]), statistics.median(times["hf"])
        config = HBertConfig.from_preset("bert", **shape)
        f = flops_per_token(config, args.seq)
        tokens = args.batch * args.seq
        rows.append(
            {
                "precision": "bf16 autocast" if bf16 else "float32",
                "hbert_ms": 1000 * t_ours,
                "hf_ms": 1000 * t_hf,
                "speedup": t_hf / t_ours,
                "hbert_tokens_per_s": tokens / t_ours,
                "hf_tokens_per_s": tokens / t_hf,
                "hbert_flops_frac": f["train"] * tokens / t_ours / peak,
                "hf_flops_frac": f["train_dense_head"] * tokens / t_hf / peak,
            }
        )
        print(
            f"  train step {rows[-1]['precision']:<14} hbert {rows[-1]['hbert_ms']:8.1f} ms   "
            f"HF BertForMaskedLM {rows[-1]['hf_ms']:8.1f} ms   speedup {rows[-1]['speedup']:.2f}x",
            flush=True,
        )
        del ours, theirs, steps
    return rows


def bench_inference(args, peak: float) -> list[dict]:
    presets = ["bert", "additive", "hbert-v1", "hbert-v2", "hbert-mix"]
    lengths = [int(x) for x in args.lengths.split(",")]
    shape = {"hidden_size": args.hidden, "num_hidden_layers": args.layers, "num_attention_heads": args.heads}
    shape.update(intermediate_size=args.ffn, max_position_embeddings=max(lengths))
    models = {}
    for name in presets:
        torch.manual_seed(0)
        models[name] = HBertForMaskedLM(HBertConfig.from_preset(name, **shape)).to(args.device).eval().hbert
    rows = []
    for bf16, T in [(bf16, T) for bf16 in (False, True) for T in lengths]:
        precision = "bf16 autocast" if bf16 else "float32"
        ids = torch.randint(1000, 30522, (1, T), device=args.device)
        times: dict[str, list[float]] = {name: [] for name in presets}
        with torch.inference_mode(), _autocast(args.device, bf16):
            for i in range(1 + args.repeats):
                for name, model in models.items():
                    _sync(args.device)
                    start = time.perf_counter()
                    model(ids)
                    _sync(args.device)
                    if i >= 1:
                        times[name].append(time.perf_counter() - start)
        base = statistics.median(times["bert"])
        for name in presets:
            t = statistics.median(times[name])
            f = flops_per_token(models[name].config, T)
            forward = f["encoder_linear"] + f["attention_mixing"]
            rows.append(
                {
                    "precision": precision,
                    "seq": T,
                    "preset": name,
                    "ms": 1000 * t,
                    "speedup_vs_bert": base / t,
                    "flops_frac": forward * T / t / peak,
                }
            )
        line = "  ".join(
            f"{r['preset']} {r['ms']:7.1f} ms ({r['speedup_vs_bert']:.2f}x)" for r in rows[-len(presets) :]
        )
        print(f"  inference {precision:<13} seq {T:>5}: {line}", flush=True)
    return rows


def to_markdown(result: dict) -> str:
    a = result["args"]
    lines = [
        "# Model benchmark",
        "",
        f"`python benchmarks/bench_model.py` on {result['machine']}.",
        f"Shape L={a['layers']} H={a['hidden']} A={a['heads']} FFN={a['ffn']}, vocab 30,522. "
        f"Large bf16 matmul in the same run: {result['matmul_peak_gflops']:.0f} GFLOP/s (the FLOP/s reference).",
        "",
        f"## Training step, batch {a['batch']} x seq {a['seq']}, 15% of tokens labelled (median of {a['repeats']})",
        "",
        "| precision | hbert `bert` preset (ms) | HF BertForMaskedLM (ms) | speedup | hbert tokens/s | "
        "hbert FLOP/s / bf16 peak | HF FLOP/s / bf16 peak |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["training"]:
        lines.append(
            f"| {r['precision']} | {r['hbert_ms']:.1f} | {r['hf_ms']:.1f} | **{r['speedup']:.2f}x** | "
            f"{r['hbert_tokens_per_s']:.0f} | {r['hbert_flops_frac']:.1%} | {r['hf_flops_frac']:.1%} |"
        )
    inference = result["inference"]
    presets = list(dict.fromkeys(r["preset"] for r in inference))
    header = ["| seq | " + " | ".join(presets) + " |", "|---:|" + "---:|" * len(presets)]
    for precision in dict.fromkeys(r["precision"] for r in inference):
        rows = [r for r in inference if r["precision"] == precision]
        lines += [
            "",
            f"## Encoder forward, batch 1, {precision} (median of {a['repeats']}): ms, and speedup over `bert`",
            "",
            *header,
        ]
        for T in dict.fromkeys(r["seq"] for r in rows):
            cells = [f"{r['ms']:.1f} ({r['speedup_vs_bert']:.2f}x)" for r in rows if r["seq"] == T]
            lines.append(f"| {T} | " + " | ".join(cells) + " |")
        lines += ["", f"FLOP/s of each {precision} forward as a fraction of the bf16 matmul peak:", "", *header]
        for T in dict.fromkeys(r["seq"] for r in rows):
            cells = [f"{r['flops_frac']:.1%}" for r in rows if r["seq"] == T]
            lines.append(f"| {T} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--ffn", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--lengths", default="512,1024,2048,4096")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--compile", action="store_true", help="torch.compile the hbert model (training)")
    parser.add_argument("--skip", choices=["training", "inference"], help="leave one part out")
    parser.add_argument("--json", help="write the raw figures here")
    parser.add_argument("--markdown", help="write the tables here")
    args = parser.parse_args()

    peak = matmul_peak(args.device, 4096 if args.device.startswith("cuda") else 2048)
    threads = torch.get_num_threads()
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu_name()
    machine = f"{device_name} ({args.device}, {threads} CPU threads), torch {torch.__version__}"
    print(f"{machine}\n  bf16 matmul peak: {peak / 1e9:.0f} GFLOP/s", flush=True)
    result = {"machine": machine, "matmul_peak_gflops": peak / 1e9, "args": vars(args)}
    result["training"] = bench_training(args, peak) if args.skip != "training" else []
    result["inference"] = bench_inference(args, peak) if args.skip != "inference" else []
    markdown = to_markdown(result)
    print("\n" + markdown)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown)


if __name__ == "__main__":
    main()
