"""Data pipeline benchmark: preparation speed and peak memory of the offline bundle, and the cost of reading
random blocks during training, each against a baseline measured in the same run.

1. Prepare the full offline English bundle at seq 128 into a fresh folder (downloads fetched beforehand and not
   timed): seconds, words/s, tokens/s, peak RSS of the preparing process.
2. The same bundle read 5 times over (``repeat=5``, five times the documents and blocks): peak RSS, and its
   ratio to (1) — memory is bounded by settings, not by corpus size.
3. Fetching a batch of random blocks from the memory-mapped corpus (and turning it into a tensor) against one
   training step of the `bert` preset at the cpu-small shape (L=4, H=256, batch 32, seq 128).

    python benchmarks/bench_data.py [--markdown benchmarks/DATA_RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from common import emit

CHILD = """
import json, sys, time, resource
from hbert.data.corpus import CorpusSettings, prepare_corpus
from hbert.data.tasks import evaluation_hashes
settings = CorpusSettings(seq_len=128, repeat=int(sys.argv[2]))
start = time.time()
path = prepare_corpus(settings, sys.argv[1], progress=False, decontamination=lambda: evaluation_hashes(("offline",)))
seconds = time.time() - start
manifest = json.load(open(path / "manifest.json"))
print(json.dumps({"seconds": seconds, "words": manifest["words"],
                  "tokens": sum(s["tokens"] for s in manifest["splits"].values()),
                  "blocks": sum(s["blocks"] for s in manifest["splits"].values()),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def prepare_in_child(out: str, repeat: int) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, out, str(repeat)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def block_read_vs_step(corpus_path: str, repeats: int = 20) -> dict:
    from hbert import HBertConfig, HBertForMaskedLM
    from hbert.data.corpus import Corpus

    blocks = Corpus(corpus_path).blocks("train")
    rng = np.random.default_rng(0)

    def read():
        rows = np.sort(rng.choice(len(blocks), size=32, replace=False))
        return torch.from_numpy(blocks[rows].astype(np.int64))

    read()
    read_times = []
    for _ in range(repeats * 10):
        start = time.perf_counter()
        batch = read()
        read_times.append(time.perf_counter() - start)
    model = HBertForMaskedLM(HBertConfig.from_preset("bert", hidden_size=256, num_hidden_layers=4,
                                                     num_attention_heads=4, intermediate_size=1024))  # fmt: skip
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    labels = torch.full_like(batch, -100)
    labels[:, 5::7] = batch[:, 5::7]

    def step():
        model(batch, labels=labels, sparse_logits=True).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    step_times = []
    for _ in range(5):
        start = time.perf_counter()
        step()
        step_times.append(time.perf_counter() - start)
    read_s, step_s = statistics.median(read_times), statistics.median(step_times)
    return {"read_ms": 1000 * read_s, "step_ms": 1000 * step_s, "ratio": read_s / step_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", help="write the table here")
    args = parser.parse_args()

    from hbert.data.corpus import CorpusSettings
    from hbert.data.sources import parse_corpus
    from hbert.data.tasks import evaluation_hashes
    from hbert.data.tokenizer import load_tokenizer

    print("fetching sources (not timed) ...", flush=True)
    for source in parse_corpus("offline-en"):
        source.prefetch()
    load_tokenizer(CorpusSettings().tokenizer)
    evaluation_hashes(("offline",))

    with tempfile.TemporaryDirectory() as tmp:
        once = prepare_in_child(os.path.join(tmp, "x1"), 1)
        print(f"  bundle x1: {once}", flush=True)
        five = prepare_in_child(os.path.join(tmp, "x5"), 5)
        print(f"  bundle x5: {five}", flush=True)
        reading = block_read_vs_step(os.path.join(tmp, "x1"))
        print(f"  reading: {reading}", flush=True)
    lines = [
        "# Data pipeline benchmark",
        "",
        f"`python benchmarks/bench_data.py`, {os.cpu_count()} CPU cores, torch {torch.__version__}; downloads excluded.",
        "",
        "| run | seconds | words | tokens | words/s | tokens/s | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in (("offline bundle, seq 128", once), ("bundle read 5 times", five)):
        lines.append(
            f"| {name} | {r['seconds']:.1f} | {r['words']:,} | {r['tokens']:,} | {r['words'] / r['seconds']:,.0f} | "
            f"{r['tokens'] / r['seconds']:,.0f} | {r['peak_rss_mb']:.0f} |"
        )
    lines += [
        "",
        f"Peak RSS ratio, 5x corpus / 1x corpus: **{five['peak_rss_mb'] / once['peak_rss_mb']:.2f}x** "
        f"(for {five['tokens'] / once['tokens']:.1f}x the tokens).",
        "",
        f"Reading a random batch of 32 blocks: {reading['read_ms']:.3f} ms against a {reading['step_ms']:.0f} ms "
        f"training step (`bert` preset, cpu-small shape): **{reading['ratio']:.3%}** of a step.",
    ]
    emit("\n".join(lines) + "\n", args.markdown)


if __name__ == "__main__":
    main()
