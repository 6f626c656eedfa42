"""The cost of transformers' convention for ``HBertForMaskedLM``: a training step with dense ``(B, T, V)`` logits
(what a plain forward with labels returns, as ``BertForMaskedLM``: the Trainer / run_mlm path) against the sparse
head hbert's own loop asks for (``sparse_logits=True``: logits only at the masked positions), same model, same
batch, measured in the same run.

    python benchmarks/bench_mlm_head.py [--steps 10] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import emit

SHAPE = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024}


def step_seconds(model, ids, labels, sparse: bool, steps: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        model(ids, labels=labels, sparse_logits=sparse).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= 2:  # two warm-up steps
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    from hbert import HBertConfig, HBertForMaskedLM

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--markdown")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = HBertForMaskedLM(HBertConfig.from_preset("hbert-v1", **SHAPE)).train()
    ids = torch.randint(1000, model.config.vocab_size, (args.batch, args.seq))
    labels = torch.where(torch.rand(ids.shape) < 0.15, ids, torch.full_like(ids, -100))
    sparse = step_seconds(model, ids, labels, True, args.steps)
    dense = step_seconds(model, ids, labels, False, args.steps)
    lines = [
        f"hbert-v1 L=4 H=256, vocab 30,522, batch {args.batch} x seq {args.seq}, 15% masked, fp32 CPU, "
        f"{torch.get_num_threads()} thread(s); median of {args.steps} training steps.",
        "",
        "| MLM head | seconds / step | tokens/s |",
        "|---|---:|---:|",
        f"| sparse (`sparse_logits=True`, hbert's loop) | {sparse:.3f} | {args.batch * args.seq / sparse:,.0f} |",
        f"| dense (default, transformers convention) | {dense:.3f} | {args.batch * args.seq / dense:,.0f} |",
        "",
        f"dense / sparse step time: {dense / sparse:.2f}x",
    ]
    emit("\n".join(lines), args.markdown)


if __name__ == "__main__":
    main()
