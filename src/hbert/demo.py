"""`make demo`: the demo recipe (recipes/demo-cpu.yaml). MiniLM, a genuinely pretrained encoder from the package
registry, continued as a masked LM under hbert (`bert-minilm`) and as the start of a hybrid (`v2-minilm`, the
additive layers fresh), then fine-tuned on a task no setting was tuned on, beside its floors and MiniLM itself.
Ends with a few lines that say what to look at."""

from __future__ import annotations

import os
from pathlib import Path

from . import experiments
from .experiments import Recipe

DEMO_RECIPE = {
    "name": "demo-cpu",
    "base": "configs/pretrain/cpu-minilm.yaml",
    "budget": "0.1M-tokens",
    "seeds": [0],
    "corpus": {"seq_len": 128},
    "arms": {
        "bert-minilm": ["model=bert", "init.kind=complete", "init.source=registry:minilm-l6"],
        "v2-minilm": [
            "model=hbert-v2",
            "model.norm_scheme=post",
            "init.kind=partial",
            "init.source=registry:minilm-l6",
        ],
    },
    "baseline": "bert-minilm",
    "references": {"minilm": "registry:minilm-l6"},
    "suite": ["vader-amazon"],
    "finetune": {"protocol": "minilm", "max_train_examples": 500},
    "finetune_seeds": 2,
    "twin_finetune_seeds": 2,
    "inference": False,
    "eval_points": 2,
}

GUIDE = """\
What to look at
- The floors first (## Floors): always predicting the mean (majority), a TF-IDF + linear model (bag-of-words) and
  the same encoder with random weights fine-tuned the same way (random-init twin). A score means something only
  next to them, and a difference only when it exceeds the seed spread ("What the data says").
- vader-amazon was never used to choose a setting of hbert (the `minilm` fine-tuning protocol was chosen on
  rt-polarity and vader-tweets): the gain of bert-minilm over its random-init twin is what a pretrained start
  buys on data nobody tuned for.
- The reference `minilm` is MiniLM fine-tuned as it is: bert-minilm against it says whether a few minutes of
  hbert's masked-LM pretraining on the offline corpus helped or hurt it; v2-minilm against it says how much of a
  pretrained encoder a hybrid keeps when its additive layers start fresh (HybridBERT's weight-initialisation idea).
- Held-out MLM accuracy and loss: MiniLM has no masked-LM head, so both arms start with a fresh head; the hybrid
  also has fresh layers to fit in the same budget.
- Longer versions: recipes/init-minilm-cpu.yaml (the whole weight-initialisation study: hbert-v1 and hbert-v2,
  with and without freezing, random inits, inference at 128 and 512), recipes/entropy-teacher-cpu.yaml (entropy
  masking with a teacher fitted from MiniLM), recipes/plateau-short-cpu.yaml (the plateau effect and the
  learning rate, the demo before this one)."""


def run_demo(out: str = "runs/demo", budget: str | None = None) -> Path:
    overrides = [f"out={out}", *([f"budget={budget}"] if budget else [])]
    if os.path.exists("recipes/demo-cpu.yaml"):
        recipe = Recipe.load("recipes/demo-cpu.yaml", overrides)
    else:  # an installed package without the repository's recipes
        recipe = Recipe(**{**DEMO_RECIPE, "out": out, **({"budget": budget} if budget else {})})
    print(f"demo: {', '.join(recipe.arms)} from MiniLM (registry:minilm-l6), {recipe.budget} each on the offline "
          f"corpus (the first run fetches both), then {', '.join(recipe.suite)} fine-tuning beside its floors and "
          "MiniLM itself", flush=True)  # fmt: skip
    result = experiments.run_recipe(recipe)  # looked up on the package at call time (tests replace it)
    print((result / "REPORT.md").read_text())
    print(GUIDE)
    print(f"\nplots: {result / 'heldout_accuracy.png'}, {result / 'downstream.png'}; table: {result / 'results.csv'}")
    return result
