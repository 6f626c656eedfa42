"""Choose a fine-tuning protocol by measurement: a small learning-rate grid on validation, every epoch recorded.

    python benchmarks/finetune_grid.py CHECKPOINT_OR_registry:NAME [--tasks rt-polarity,vader-tweets] [--lrs 5e-5,1e-4,3e-4]
        [--epochs 5] [--max-train 4000] [--out results/finetune-grid]

Fine-tunes CHECKPOINT (and, with --twin, its random-init twin) once per learning rate with seed 0, and writes
``grid.json`` and ``GRID.md``: the validation score after every epoch, per task and learning rate, and the mean
over tasks, so the (lr, epochs) with the best mean can be read off. The ``small`` protocol of ``hbert finetune``
was chosen this way (see docs/finetuning.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hbert.finetune import finetune, make_config
from hbert.finetune.floors import random_init_twin
from hbert.pretrained import resolve


def grid(checkpoint: str, tasks: list[str], lrs: list[float], epochs: int, max_train: int) -> dict:
    out: dict = {}
    for lr in lrs:
        for task in tasks:
            config = make_config({"protocol": "sane", "lr": lr, "epochs": epochs, "max_train_examples": max_train,
                                  "floors": "none", "progress": False, "seed": 0})  # fmt: skip
            result = finetune(resolve(checkpoint), task, config)
            out.setdefault(str(lr), {})[task] = [h["score"] for h in result["history"]]
            print(f"lr {lr:g} {task}: " + " ".join(f"{x:.1f}" for x in out[str(lr)][task]), flush=True)
    return out


def markdown(name: str, result: dict, epochs: int) -> list[str]:
    lines = [f"### {name}", "", "| lr | task | " + " | ".join(f"epoch {e}" for e in range(1, epochs + 1)) + " |",
             "|---|---|" + "---:|" * epochs]  # fmt: skip
    for lr, per_task in result.items():
        for task, scores in per_task.items():
            lines.append(f"| {lr} | {task} | " + " | ".join(f"{x:.1f}" for x in scores) + " |")
        means = [statistics.fmean(s[e] for s in per_task.values()) for e in range(epochs)]
        lines.append(f"| {lr} | **mean** | " + " | ".join(f"**{x:.1f}**" for x in means) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--tasks", default="rt-polarity,vader-tweets")
    parser.add_argument("--lrs", default="5e-5,1e-4,3e-4")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--max-train", type=int, default=4000)
    parser.add_argument("--twin", action="store_true", help="also run the grid on the random-init twin")
    parser.add_argument("--out", default="results/finetune-grid")
    args = parser.parse_args()
    tasks, lrs = args.tasks.split(","), [float(x) for x in args.lrs.split(",")]
    results = {"pretrained": grid(args.checkpoint, tasks, lrs, args.epochs, args.max_train)}
    if args.twin:
        with tempfile.TemporaryDirectory() as tmp:
            results["random-init twin"] = grid(str(random_init_twin(resolve(args.checkpoint), tmp)), tasks, lrs, args.epochs,
                                               args.max_train)  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "grid.json").write_text(json.dumps({"checkpoint": args.checkpoint, "max_train": args.max_train,
                                               "results": results}, indent=2))  # fmt: skip
    lines = [f"# Fine-tuning grid: validation score per epoch (seed 0, {args.max_train} training examples at most)", ""]
    for name, result in results.items():
        lines += [*markdown(name, result, args.epochs), ""]
    (out / "GRID.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
