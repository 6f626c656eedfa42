"""Fixed-seed CPU pretraining runs whose final weights are hashed: "a refactoring of the training loop changes no
result" is checked by running this before and after the change and comparing the printed hashes.

    python benchmarks/bitwise_check.py [--json OUT] [--expect HASHES.json]

Each case is a short deterministic run (fp32, ``impl.deterministic=true``) on a small generated corpus; the
teacher cases distil from (and score with) the final weights of the ``random`` case. The hashes depend on the torch
build and the CPU's kernels (and on the thread count): compare them only between runs on the same machine and
build; ``--expect`` does that comparison (with the recording's thread count) and exits non-zero on any difference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMON = [
    "model.hidden_size=32", "model.num_hidden_layers=2", "model.num_attention_heads=2", "model.intermediate_size=64",
    "train.batch_size=8", "train.lr=3e-3", "train.eval_blocks=16", "train.eval_every=3-steps",
    "train.checkpoint_every=4-steps", "impl.progress=false", "impl.log_every=2", "impl.tensorboard=false",
    "impl.precision=fp32", "impl.deterministic=true", "budget=8-steps",
]  # fmt: skip

CASES: dict[str, list[str]] = {
    "random": ["impl.micro_batch_size=4"],
    "random-v1-freeze": [
        "model=hbert-v1",
        "init.scheme=subln",
        "init.freeze=embeddings",
        "init.freeze_fraction=0.5",
        "train.schedule=cosine",
        "train.grad_clip=0.5",
    ],
    "entropy-self-candidates": [
        "masking=entropy",
        "masking.source=self",
        "masking.self_warmup=0.25",
        "masking.rule=sample",
        "impl.micro_batch_size=4",
    ],
    "entropy-self-token-stats": ["masking=entropy", "masking.source=self", "masking.scoring=token-stats"],
    "entropy-teacher-kd-reuse": [
        "masking=entropy",
        "masking.teacher=TEACHER",
        "masking.teacher_precision=fp32",
        "objective.kd.alpha=0.5",
        "objective.kd.reuse_scoring_forward=true",
        "impl.micro_batch_size=4",
    ],
    "random-kd-teacher": ["objective.kd.alpha=0.3", "objective.kd.teacher=TEACHER", "masking.teacher_precision=fp32"],
}


FINETUNE_CASES: dict[str, dict] = {
    "finetune-classification": {"epochs": 3, "lr": 3e-3, "batch_size": 16, "warmup": 0.2, "keep_best": True},
    "finetune-regression-probe-bf16": {"epochs": 2, "lr": 1e-2, "batch_size": 8, "freeze_encoder": True,
                                       "precision": "bf16", "dynamic_padding": False, "max_seq_len": 24},
}  # fmt: skip


def weights_sha256(folder: Path) -> str:
    """sha256 over the names, dtypes, shapes and bytes of every tensor of a saved model, in name order."""
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(folder / "model.safetensors"))
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def run_cases(workdir: Path) -> dict[str, str]:
    sys.path.insert(0, str(ROOT))
    from tests.training_helpers import make_corpus

    from hbert.config import load_config
    from hbert.training import pretrain

    corpus = make_corpus(workdir / "corpus")
    hashes: dict[str, str] = {}
    for name, extra in CASES.items():
        teacher = str(workdir / "random" / "final")
        overrides = [x.replace("TEACHER", teacher) for x in extra]
        run = workdir / name
        pretrain(load_config(None, [f"corpus={corpus}", f"out={run}", *COMMON, *overrides]))
        hashes[name] = weights_sha256(run / "final")
        print(f"{name:28s} {hashes[name]}", flush=True)
    for name, settings in FINETUNE_CASES.items():
        hashes[name] = finetune_case(workdir, name, settings)
        print(f"{name:28s} {hashes[name]}", flush=True)
    return hashes


def toy_task(folder: Path, kind: str) -> str:
    """A small generated task over the corpus words: the label says whether "w7" occurs (classification), or
    counts it plus a length term (regression)."""
    import random

    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for _ in range(160):
        words = [f"w{rng.randrange(80)}" for _ in range(rng.randint(3, 20))]
        hits = words.count("w7")
        if rng.random() < 0.4:
            words.insert(rng.randrange(len(words) + 1), "w7")
            hits += 1
        label = int(hits > 0) if kind == "classification" else hits + 0.05 * len(words)
        rows.append({"text": " ".join(words), "label": label})
    for split, part in (("train", rows[:120]), ("dev", rows[120:])):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    spec = {"name": f"toy-{kind}", "files": {"train": "train.jsonl", "validation": "dev.jsonl"},
            "text_fields": ["text"], "kind": kind,
            "metrics": ["accuracy"] if kind == "classification" else ["pearson"]}  # fmt: skip
    if kind == "classification":
        spec["num_labels"] = 2
    (folder / "spec.yaml").write_text(json.dumps(spec))
    return str(folder / "spec.yaml")


def finetune_case(workdir: Path, name: str, settings: dict) -> str:
    """Fine-tune the ``random`` case's final checkpoint and hash the saved classifier."""
    from hbert.finetune import finetune, make_config

    kind = "regression" if "regression" in name else "classification"
    spec = toy_task(workdir / f"task-{kind}", kind)
    config = make_config({**settings, "progress": False, "floors": "none", "seed": 3})
    finetune(str(workdir / "random" / "final"), spec, config, save=str(workdir / name))
    return weights_sha256(workdir / name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="write the hashes here")
    parser.add_argument("--expect", help="a JSON file of hashes from an earlier run on this machine to compare to")
    args = parser.parse_args()
    import torch

    recording = json.loads(Path(args.expect).read_text()) if args.expect else {}
    if isinstance(recording.get("threads"), int):  # the hashes depend on the thread count: use the recording's
        torch.set_num_threads(recording["threads"])
    print(f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        hashes = run_cases(Path(tmp))
    if args.json:
        Path(args.json).write_text(json.dumps(hashes, indent=2) + "\n")
    if args.expect:
        expected = recording.get("hashes", recording)  # a recording (with its torch / CPU / threads) or bare hashes
        differ = [k for k in expected if hashes.get(k) != expected[k]]
        print("bitwise equal" if not differ else f"DIFFERENT: {', '.join(differ)}")
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
