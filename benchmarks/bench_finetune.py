"""Fine-tuning throughput at the `cpu-small` shape on `rt-polarity`: dynamic padding (batches padded to their own
longest sequence, length-grouped sampling) against padding every batch to 128, on the same data, in one run
(the two alternate, twice each).

    python benchmarks/bench_finetune.py [--examples 2000] [--markdown benchmarks/FINETUNE_RESULTS.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

import torch

from common import emit


def make_checkpoint(folder: str) -> str:
    from hbert import HBertConfig, HBertForMaskedLM
    from hbert.data.tokenizer import load_tokenizer

    tokenizer, _ = load_tokenizer("bert-base-uncased")
    torch.manual_seed(0)
    model = HBertForMaskedLM(HBertConfig.from_preset("bert", hidden_size=256, num_hidden_layers=4,
                                                     num_attention_heads=4, intermediate_size=1024))  # fmt: skip
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main() -> None:
    from hbert.finetune import finetune, make_config

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--markdown")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = make_checkpoint(os.path.join(tmp, "ckpt"))
        speeds: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.rounds):
            for dynamic in (True, False):
                config = make_config({"epochs": 1, "max_train_examples": args.examples, "max_eval_examples": 200,
                                      "dynamic_padding": dynamic, "progress": False})  # fmt: skip
                result = finetune(ckpt, "rt-polarity", config)
                speeds[dynamic].append(result["train_sequences_per_s"])
                print(f"  dynamic_padding={dynamic}: {result['train_sequences_per_s']:.1f} sequences/s", flush=True)
    dyn, fixed = statistics.median(speeds[True]), statistics.median(speeds[False])
    markdown = "\n".join([
        "# Fine-tuning throughput",
        "",
        f"`python benchmarks/bench_finetune.py --examples {args.examples} --rounds {args.rounds}`, {os.cpu_count()} "
        f"CPU cores, torch {torch.__version__}. `bert` preset at the cpu-small shape (L=4 H=256 A=4 FFN=1024), "
        f"rt-polarity, batch 32, float32, one epoch over {args.examples} training examples.",
        "",
        "| batches | training sequences/s |",
        "|---|---:|",
        f"| padded to 128 | {fixed:.1f} |",
        f"| dynamic padding + length-grouped sampling | {dyn:.1f} |",
        "",
        f"Dynamic padding: **{dyn / fixed:.2f}x** the sequences/s.",
    ]) + "\n"  # fmt: skip
    emit(markdown, args.markdown)


if __name__ == "__main__":
    main()
