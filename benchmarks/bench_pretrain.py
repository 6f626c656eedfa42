"""Pretraining-loop benchmark at the `cpu-small` shape, against baselines measured in the same run.

1. Loop overhead: the time per step of `hbert pretrain` (data reading, masking on the device, forward, backward,
   clipping, AdamW, logging) against the bare model step (forward + backward + AdamW on one fixed, already masked
   batch) of the same model at the same precision.
2. Against the Hugging Face recipe (`run_mlm.py` style: BertForMaskedLM + DataCollatorForLanguageModeling +
   Trainer, float32) at the same model shape and batch, on the same blocks: tokens/s of each.

    python benchmarks/bench_pretrain.py [--steps 40] [--markdown benchmarks/PRETRAIN_RESULTS.md]

The corpus is the offline bundle at seq 128 (prepared, or found in the cache, first).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np
import torch

from common import emit, offline_corpus

SHAPE = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024}


def hbert_loop(corpus: str, out: str, steps: int) -> dict:
    from hbert.config import load_config
    from hbert.training import pretrain

    config = load_config(
        "configs/pretrain/cpu-small.yaml",
        [f"corpus={corpus}", f"out={out}", f"budget={steps}-steps", "train.eval_every=0", "train.checkpoint_every=0",
         "impl.progress=false", "impl.tensorboard=false", "impl.log_every=10"],
    )  # fmt: skip
    pretrain(config)
    records = [json.loads(line) for line in open(os.path.join(out, "log.jsonl")) if '"lr"' in line]
    tokens_per_step = config.train.batch_size * 128
    step_seconds = [tokens_per_step / r["tokens_per_s"] for r in records[1:]]  # 10-step means; skip the first
    return {"times": step_seconds, "precision": json.load(open(os.path.join(out, "env.json")))["precision"]}


def bare_step(corpus: str, precision: str, steps: int) -> dict:
    from hbert import HBertConfig, HBertForMaskedLM
    from hbert.data.corpus import Corpus
    from hbert.masking import RandomMasking
    from hbert.masking.base import SpecialIds

    c = Corpus(corpus)
    tok = c.tokenizer()
    batch = torch.from_numpy(np.asarray(c.blocks("train")[:32]).astype(np.int64))
    masked = RandomMasking(SpecialIds.from_tokenizer(tok))(batch, None, torch.Generator().manual_seed(0))
    model = HBertForMaskedLM(HBertConfig.from_preset("bert", vocab_size=len(tok), hidden_dropout_prob=0.0,
                                                     attention_probs_dropout_prob=0.0, **SHAPE))  # fmt: skip
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else torch.autocast("cpu", enabled=False)

    def step():
        with ctx:
            loss = model(masked.input_ids, labels=masked.labels, sparse_logits=True).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"times": [statistics.mean(times[i : i + 10]) for i in range(0, len(times) - 9, 10)]}  # 10-step means


def hf_trainer(corpus: str, out: str, steps: int) -> dict:
    import datasets
    from transformers import BertConfig, BertForMaskedLM, DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from hbert.data.corpus import Corpus

    c = Corpus(corpus)
    tok = c.tokenizer()
    blocks = np.asarray(c.blocks("train")[: 32 * (steps + 3)]).astype(np.int64)
    data = datasets.Dataset.from_dict({"input_ids": blocks.tolist()})
    model = BertForMaskedLM(BertConfig(vocab_size=len(tok), **SHAPE))
    collator = DataCollatorForLanguageModeling(tok, mlm_probability=0.15)
    args = TrainingArguments(
        output_dir=out, per_device_train_batch_size=32, max_steps=steps + 3, learning_rate=1e-4, report_to=[],
        save_strategy="no", logging_strategy="no", use_cpu=True, dataloader_num_workers=0, disable_tqdm=True,
    )  # fmt: skip

    class Timer:
        times: list[float] = []

    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            Timer.times.append(time.perf_counter() - self.start)

    Trainer(model=model, args=args, train_dataset=data, data_collator=collator, callbacks=[StepTimer()]).train()
    step_s = statistics.median(Timer.times[3:])
    return {"step_s": step_s, "tokens_per_s": 32 * 128 / step_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--corpus", help="a prepared corpus at seq 128 (default: the offline bundle)")
    parser.add_argument("--markdown")
    args = parser.parse_args()
    corpus = args.corpus
    if corpus is None:
        corpus = offline_corpus()
    loop_times, bare_times, ratios = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):  # alternate the two so that drift in the machine's speed hits both
            loop = hbert_loop(corpus, os.path.join(tmp, f"run{round_}"), args.steps)
            this_bare = bare_step(corpus, loop["precision"], args.steps)["times"]
            loop_times, bare_times = loop_times + loop["times"], bare_times + this_bare
            ratios.append(statistics.median(loop["times"]) / statistics.median(this_bare))
            print(f"  round {round_}: loop {1000 * statistics.median(loop['times']):.0f} ms, "
                  f"bare {1000 * statistics.median(this_bare):.0f} ms", flush=True)  # fmt: skip
        hf = hf_trainer(corpus, os.path.join(tmp, "hf"), max(10, args.steps // 3))
        print(f"  HF Trainer: {1000 * hf['step_s']:.0f} ms", flush=True)
    loop = {"step_s": statistics.median(loop_times), "precision": loop["precision"]}
    loop["tokens_per_s"] = 32 * 128 / loop["step_s"]
    bare = {"step_s": statistics.median(bare_times)}
    # each round's loop against the bare step timed right after it, so that a machine whose speed drifts between
    # rounds (another job starting or ending) does not bias the ratio as pooled medians would
    overhead = statistics.median(ratios) - 1
    speedup = loop["tokens_per_s"] / hf["tokens_per_s"]
    lines = [
        "# Pretraining loop benchmark",
        "",
        f"`python benchmarks/bench_pretrain.py --steps {args.steps} --rounds {args.rounds}` (medians of 10-step mean "
        f"step times over all rounds), {os.cpu_count()} CPU cores, torch "
        f"{torch.__version__}. Model: `bert` preset, L=4 H=256 A=4 FFN=1024, batch 32 x seq 128, the offline corpus.",
        "",
        "| what | precision | ms / step | tokens/s |",
        "|---|---|---:|---:|",
        f"| `hbert pretrain` (cpu-small config) | {loop['precision']} | {1000 * loop['step_s']:.0f} | "
        f"{loop['tokens_per_s']:,.0f} |",
        f"| bare model step, same model and precision | {loop['precision']} | {1000 * bare['step_s']:.0f} | "
        f"{32 * 128 / bare['step_s']:,.0f} |",
        f"| HF BertForMaskedLM + DataCollatorForLanguageModeling + Trainer | fp32 | {1000 * hf['step_s']:.0f} | "
        f"{hf['tokens_per_s']:,.0f} |",
        "",
        f"Loop overhead over the bare step (median over rounds of each round's loop against its bare step): **{overhead:+.1%}**. hbert against the Hugging Face recipe: "
        f"**{speedup:.2f}x** the tokens/s.",
    ]
    emit("\n".join(lines) + "\n", args.markdown)


if __name__ == "__main__":
    main()
