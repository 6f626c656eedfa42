"""Evidence: the floors beside every downstream score, the random-init control, verdicts from the seed spread, the
machine-share flag and the demo recipe's report."""

import dataclasses
import json
import os
import time
from pathlib import Path

import pytest
import torch
import yaml
from transformers import BertTokenizer

from hbert import HBertConfig, HBertForMaskedLM
from hbert.cli import main
from hbert.experiments.recipe import Recipe
from hbert.experiments.report import verdict_lines
from hbert.experiments.runner import run_recipe
from hbert.finetune import make_config
from hbert.finetune.floors import bag_of_words_floor, majority_floor, random_init_twin
from hbert.finetune.metrics import EXCEEDS, NOT_CALLED, WITHIN, spread_verdict
from hbert.finetune.trainer import cheap_floors
from hbert.training.share import MachineShare, flag_low_share

from .training_helpers import TINY_RUN, make_corpus, tiny_config

WORDS = ["good", "bad", "film", "plot", "the", "a", "was", "very"]


def _write_task(folder, train, dev, kind="classification"):
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train), ("dev", dev)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"name": f"known-{kind}", "files": {"train": "train.jsonl", "validation": "dev.jsonl"},
            "text_fields": ["text"], "kind": kind,
            "metrics": ["accuracy"] if kind == "classification" else ["pearson"]}  # fmt: skip
    if kind == "classification":
        spec["num_labels"] = 2
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    return str(folder / "spec.yaml")


def test_floors_on_a_task_whose_floors_are_known(tmp_path):
    # the word "good" decides the label: a bag of words gets every validation row right; the training majority is
    # label 1 (30 of 40), and 7 of the 10 validation rows carry it, so the majority floor is exactly 70
    train = [{"text": f"the film was very {'good' if i < 30 else 'bad'} plot {i % 3}", "label": int(i < 30)}
             for i in range(40)]  # fmt: skip
    dev = [{"text": f"a plot was {'good' if i < 7 else 'bad'}", "label": int(i < 7)} for i in range(10)]
    spec = _write_task(tmp_path / "cls", train, dev)
    floors = cheap_floors(spec)
    assert floors["majority"]["score"] == pytest.approx(70.0)
    assert floors["bag_of_words"]["score"] == pytest.approx(100.0)
    # regression: the value is the number of "good"s; the mean predictor correlates 0, ridge on TF-IDF counts follows it
    reg_train = [{"text": " ".join(["good"] * (i % 5) + ["plot"] * 3), "label": float(i % 5)} for i in range(50)]
    reg_dev = [{"text": " ".join(["good"] * k + ["film"]), "label": float(k)} for k in range(5)]
    spec = _write_task(tmp_path / "reg", reg_train, reg_dev, kind="regression")
    floors = cheap_floors(spec)
    assert floors["majority"]["score"] == 0.0
    assert floors["bag_of_words"]["score"] > 80.0  # sublinear tf: monotone in the count, not linear


def test_majority_and_bag_of_words_fit_on_the_training_rows_only(tmp_path):
    from hbert.data.tasks import read_spec

    train = [{"text": "bad film", "label": 0}] * 9 + [{"text": "good film", "label": 1}]
    dev = [{"text": "good film", "label": 1}] * 3 + [{"text": "bad film", "label": 0}]
    spec = read_spec(_write_task(tmp_path / "t", train, dev))
    rows = {"train": {"text": [r["text"] for r in train], "label": [r["label"] for r in train]},
            "dev": {"text": [r["text"] for r in dev], "label": [r["label"] for r in dev]}}  # fmt: skip
    assert majority_floor(spec, rows["train"], rows["dev"])["score"] == pytest.approx(25.0)  # class 0 from train
    assert bag_of_words_floor(spec, rows["train"], rows["dev"])["score"] >= 25.0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model"
    path.mkdir()
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tok = BertTokenizer.from_pretrained(path)
    torch.manual_seed(1)
    model = HBertForMaskedLM(HBertConfig.from_preset("hbert-v1", vocab_size=len(tok), hidden_size=32,
                                                      num_hidden_layers=2, num_attention_heads=2, intermediate_size=64))  # fmt: skip
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)  # "pretrained": far from any fresh initialisation
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_random_init_twin_shares_every_setting_but_the_weights(checkpoint, tmp_path):
    from safetensors.torch import load_file

    twin = random_init_twin(checkpoint, tmp_path / "twin", seed=3)
    again = random_init_twin(checkpoint, tmp_path / "again", seed=3)
    config, twin_config = (json.loads((Path(p) / "config.json").read_text()) for p in (checkpoint, twin))
    assert {k: v for k, v in config.items() if k != "transformers_version"} == {
        k: v for k, v in twin_config.items() if k != "transformers_version"
    }
    original = BertTokenizer.from_pretrained(checkpoint)
    copied = BertTokenizer.from_pretrained(twin)
    assert original.get_vocab() == copied.get_vocab()
    weights, fresh, same_seed = (load_file(os.path.join(p, "model.safetensors")) for p in (checkpoint, twin, again))
    assert weights.keys() == fresh.keys()
    assert all(not torch.equal(weights[k], fresh[k]) for k in weights if weights[k].numel() > 1)
    assert all(torch.equal(fresh[k], same_seed[k]) for k in fresh)  # seeded: the control is reproducible


def test_random_init_control_is_fine_tuned_with_the_same_settings(checkpoint, tmp_path, monkeypatch):
    import hbert.finetune.trainer as trainer

    seen = []
    real = trainer.finetune

    def spy(ckpt, task, config, save=None):
        seen.append((ckpt, config))
        return real(ckpt, task, config, save)

    monkeypatch.setattr(trainer, "finetune", spy)
    train = [{"text": f"the film was {'good' if i % 2 else 'bad'}", "label": i % 2} for i in range(40)]
    spec = _write_task(tmp_path / "task", train, train[:10])
    config = make_config({"epochs": 1, "batch_size": 8, "lr": 1e-3, "seed": 5, "progress": False})
    result = real(checkpoint, spec, config)
    (ckpt, used), *_ = seen
    assert ckpt != checkpoint and used == dataclasses.replace(config, floors="none")
    assert set(result["floors"]) == {"majority", "bag_of_words", "random_init"}
    assert result["below_majority"] == (result["validation"]["score"] <= result["floors"]["majority"]["score"])


def test_verdict_follows_the_seed_spread():
    assert spread_verdict([80.0, 81.0, 82.0], [77.0, 78.0, 79.5]) == EXCEEDS
    assert spread_verdict([77.0, 78.0], [80.0, 81.0]) == EXCEEDS  # either direction
    assert spread_verdict([80.0, 81.0, 82.0], [79.0, 80.5, 81.0]) == WITHIN  # overlapping ranges
    assert spread_verdict([80.0], [70.0, 71.0]) == NOT_CALLED
    recipe = Recipe(name="r", base="b", budget="1m", arms={"a": [], "b": []}, seeds=[0, 1], suite=["t"])
    rows = [{"arm": "a", "seed": s, "heldout_mlm_acc": 0.20 + 0.01 * s, "heldout_mlm_loss": 6.0 + 0.1 * s,
             "suite_avg_scores": f"{70 + s};{71 + s}", "suite_avg_twin_scores": "60;61"} for s in (0, 1)]  # fmt: skip
    rows += [{"arm": "b", "seed": s, "heldout_mlm_acc": 0.205 + 0.01 * s, "heldout_mlm_loss": 5.5 + 0.1 * s,
              "suite_avg_scores": "60;62", "suite_avg_twin_scores": "61;63"} for s in (0, 1)]  # fmt: skip
    lines = "\n".join(verdict_lines(recipe, rows))
    assert (
        f"`a` against its random-init twin, suite average: +10.5 points ([70.0, 72.0] vs [60.0, 61.0]): {EXCEEDS}"
        in lines
    )
    assert (
        f"`b` against its random-init twin, suite average: -1.0 points ([60.0, 62.0] vs [61.0, 63.0]): {WITHIN}"
        in lines
    )
    assert f"`b` against `a`, held-out MLM accuracy: +0.0050 ([0.2050, 0.2150] vs [0.2000, 0.2100]): {WITHIN}" in lines
    # the loss can separate arms whose accuracy still sits on the plateau
    assert (
        f"`b` against `a`, held-out MLM loss (lower is better): -0.500 ([5.500, 5.600] vs [6.000, 6.100]): {EXCEEDS}"
        in lines
    )
    assert f"`b` against `a`, suite average: -10.0 points ([60.0, 62.0] vs [70.0, 72.0]): {EXCEEDS}" in lines


def _share(corpus, out, monkeypatch, got: float) -> float:
    """The CPU share a pretraining run records when it gets ``got`` of every thread it may use: the process's CPU
    clock is simulated from the wall clock, so the machine's real load does not enter the measurement."""
    from hbert.training import pretrain

    threads = torch.get_num_threads()
    monkeypatch.setattr(MachineShare, "cpu_clock", staticmethod(lambda: got * threads * time.perf_counter()))
    summary = pretrain(tiny_config(corpus, out, "budget=10-steps", "train.checkpoint_every=0"))
    return summary["machine"]["cpu_share"]


def test_load_flag_trips_when_a_competing_process_halves_the_throughput(tmp_path, monkeypatch):
    corpus = make_corpus(tmp_path, seq_len=64)
    shares = {name: _share(corpus, tmp_path / name, monkeypatch, got)
              for name, got in (("idle", 1.0), ("a little busy", 0.9), ("halved", 0.5))}  # fmt: skip
    assert shares["idle"] == pytest.approx(1.0, abs=0.02) and shares["halved"] == pytest.approx(0.5, abs=0.02)
    assert flag_low_share(shares) == {"idle": False, "a little busy": False, "halved": True}, shares


def test_plateau_recipe_report_contains_the_floors_and_verdicts(tmp_path):
    corpus = make_corpus(tmp_path)
    words = [f"w{i}" for i in range(80)]
    rows = [{"text": f"{words[i % 80]} {words[(i * 7) % 80]} {words[(i * 3) % 80]}", "label": int(i % 80 < 40)}
            for i in range(160)]  # fmt: skip
    spec = _write_task(tmp_path / "task", rows[:120], rows[120:])
    base = tmp_path / "base.yaml"
    config = {}
    for item in TINY_RUN:
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        config.setdefault(section, {})[name] = yaml.safe_load(value)
    base.write_text(yaml.safe_dump(config))
    recipe = Recipe.load("recipes/plateau-short-cpu.yaml", [f"base={base}", f"corpus_path={corpus}", f"suite=[{spec}]",
                                                   "budget=4-steps", "finetune={epochs: 1, batch_size: 16}",
                                                   f"out={tmp_path / 'demo'}", "inference=false"])  # fmt: skip
    recipe.arms = {name: [x for x in items if not x.startswith("budget=")] for name, items in recipe.arms.items()}
    report = (run_recipe(recipe) / "REPORT.md").read_text()
    for text in ("majority class", "bag-of-words", "random-init twin of", "against its random-init twin", "## Floors"):
        assert text in report, text


def test_finetune_json_carries_the_floors(checkpoint, tmp_path, capsys):
    train = [{"text": f"the film was {'good' if i % 3 else 'bad'}", "label": int(i % 3 > 0)} for i in range(30)]
    spec = _write_task(tmp_path / "task", train, train[:9])
    assert main(["finetune", checkpoint, spec, "epochs=1", "batch_size=8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["floors"]["majority"]["score"] == pytest.approx(66.66666, abs=1e-3)
    assert "random_init" in result["floors"] and "below_majority" in result


def test_eval_reports_floors_twin_spread_and_verdict(checkpoint, tmp_path, capsys):
    train = [{"text": f"the film was {'good' if i % 3 else 'bad'}", "label": int(i % 3 > 0)} for i in range(30)]
    spec = _write_task(tmp_path / "task", train, train[:9])
    assert main(["eval", checkpoint, "epochs=1", "batch_size=8", "--suite", spec, "--seeds", "2", "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)["tasks"][spec]
    floors = entry["floors"]
    assert floors["majority"] == pytest.approx(66.66666, abs=1e-3) and "bag_of_words" in floors
    twin = floors["random_init"]
    assert len(twin["scores"]) == 2 and twin["median"] == pytest.approx(sum(twin["scores"]) / 2)
    assert entry["gain_over_random_init"] == pytest.approx(entry["validation"]["median"] - twin["median"])
    assert entry["verdict"] == spread_verdict(entry["validation"]["scores"], twin["scores"])
    assert entry["below_majority"] == (entry["validation"]["median"] <= floors["majority"])


def test_report_table_shows_the_held_out_loss_beside_the_accuracy():
    from hbert.experiments.report import _main_table

    recipe = Recipe(name="r", base="b", budget="1m", arms={"a": [], "old": []}, seeds=[0, 1], suite=[], inference=False)
    row = {"parameters": 10, "tokens": 100, "steps": 1, "cpu_share": 1.0}
    rows = [{**row, "arm": "a", "seed": s, "heldout_mlm_acc": 0.2, "heldout_mlm_loss": 5.0 + s} for s in (0, 1)]
    for r in rows:
        r["charged_seconds"] = 60.0
    rows.append({**row, "arm": "old", "seed": 0, "heldout_mlm_acc": 0.1})  # a row from before losses were recorded
    header, _, a_line, old_line = _main_table(recipe, rows, {})
    assert a_line.split(" | ")[4] == "60" and old_line.split(" | ")[4] == "-"  # the time column, after steps
    assert "held-out MLM loss" in header
    assert a_line.endswith("| 0.2000 | 5.500 [5.000, 6.000] |") and old_line.endswith("| 0.1000 | - |")


def test_twin_gets_its_own_fine_tuning_seeds_when_the_recipe_asks(tmp_path):
    # one fine-tuning per pretrained model, two pretraining seeds: the shared twin is fine-tuned three times, so the
    # gain over it compares two spreads rather than a spread against a single run
    corpus = make_corpus(tmp_path)
    rows = [{"text": f"w{i % 40} w{(i * 7) % 40} w{(i * 3) % 40}", "label": int(i % 40 < 20)} for i in range(120)]
    spec = _write_task(tmp_path / "task", rows[:90], rows[90:])
    base = tmp_path / "base.yaml"
    config = {}
    for item in TINY_RUN:
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        config.setdefault(section, {})[name] = yaml.safe_load(value)
    base.write_text(yaml.safe_dump(config))
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(
        yaml.safe_dump(
            {
                "name": "twin-seeds",
                "base": str(base),
                "budget": "3-steps",
                "seeds": [0, 1],
                "corpus_path": corpus,
                "arms": {"bert": ["model=bert"]},
                "suite": [spec],
                "finetune": {"epochs": 1, "batch_size": 16},
                "finetune_seeds": 1,
                "twin_finetune_seeds": 3,
                "inference": False,
                "out": str(tmp_path / "out"),
            }
        )
    )
    out = run_recipe(Recipe.load(str(recipe_file)))
    for seed in (0, 1):
        arm = json.loads((out / "arms" / "bert" / f"seed{seed}" / "downstream.json").read_text())
        assert len(arm[spec]["scores"]) == 1
    (twin,) = (out / "twins").iterdir()
    assert len(json.loads((twin / "downstream.json").read_text())[spec]["scores"]) == 3
    assert "1 fine-tuning seed(s) per pretrained model and 3 per random-init twin" in (out / "REPORT.md").read_text()
    with pytest.raises(ValueError, match="twin_finetune_seeds=-1"):
        Recipe.load(str(recipe_file), ["twin_finetune_seeds=-1"])
