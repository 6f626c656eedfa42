"""`make demo`: the demo recipe (recipes/demo-cpu.yaml) on the offline corpus: bert vs hbert-v1 vs hbert-v1 with
self-entropy masking, a few minutes of wall-clock each, compared on held-out MLM accuracy and rt-polarity."""

from __future__ import annotations

import os
from pathlib import Path

DEMO_RECIPE = {
    "name": "demo-cpu",
    "base": "configs/pretrain/cpu-small.yaml",
    "seeds": [0],
    "corpus": {"seq_len": 128},
    "arms": {
        "bert": ["model=bert"],
        "hbert-v1": ["model=hbert-v1"],
        "hbert-v1-self-entropy": ["model=hbert-v1", "masking=entropy", "masking.source=self"],
    },
    "suite": ["rt-polarity"],
    "finetune": {"epochs": 1, "max_train_examples": 3000, "max_eval_examples": 1000},
}


def run_demo(out: str = "runs/demo", budget: str = "3m") -> Path:
    from .experiments import Recipe, run_recipe

    if os.path.exists("recipes/demo-cpu.yaml"):
        recipe = Recipe.load("recipes/demo-cpu.yaml", [f"out={out}", f"budget={budget}"])
    else:  # an installed package without the repository's recipes
        recipe = Recipe(**{**DEMO_RECIPE, "budget": budget, "out": out})
    print(f"demo: {', '.join(recipe.arms)} for {recipe.budget} each on the offline corpus (first run fetches it)")
    result = run_recipe(recipe)
    print((result / "REPORT.md").read_text())
    print(f"plots: {result / 'heldout_accuracy.png'}, {result / 'downstream.png'}; table: {result / 'results.csv'}")
    return result
