"""The recipe runner end to end on a tiny generated corpus and task."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

from hbert.cli import main
from hbert.experiments import Recipe, RecipeError, run_recipe

from .training_helpers import TINY_RUN, make_corpus


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    corpus = make_corpus(root)
    base = root / "base.yaml"
    config = {}
    for item in TINY_RUN:
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        config.setdefault(section, {})[name] = yaml.safe_load(value)
    config["train"]["eval_every"] = "3-steps"
    base.write_text(yaml.safe_dump(config))
    task = root / "task"
    task.mkdir()
    rows = [{"text": f"w{i % 80} w{(i * 7) % 80} w{(i * 3) % 80}", "label": int(i % 80 < 40)} for i in range(200)]
    for name, part in (("train", rows[:150]), ("dev", rows[150:])):
        (task / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in part) + "\n")
    spec = {
        "name": "toy",
        "files": {"train": "train.jsonl", "validation": "dev.jsonl"},
        "text_fields": ["text"],
        "kind": "classification",
        "num_labels": 2,
        "metrics": ["accuracy"],
    }
    (task / "spec.yaml").write_text(yaml.safe_dump(spec))
    return root, corpus, str(base), str(task / "spec.yaml")


def _recipe(root, corpus, base, spec, name="two-arms", budget="6-steps", arms=None):
    data = {"name": name, "base": base, "budget": budget, "seeds": [0, 1], "corpus_path": corpus,
            "arms": arms or {"bert": ["model=bert"], "hbert-v1": ["model=hbert-v1"]}, "suite": [spec],
            "finetune": {"epochs": 1, "batch_size": 16}, "out": str(root / name)}  # fmt: skip
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_two_arm_recipe_end_to_end(setup, capsys):
    root, corpus, base, spec = setup
    out = run_recipe(Recipe.load(_recipe(root, corpus, base, spec)))
    printed = capsys.readouterr()
    for arm in ("bert", "hbert-v1"):  # a line as every fine-tuning starts: which model, task and seed
        for seed in (0, 1):
            assert f"  fine-tuning {out / 'arms' / arm / f'seed{seed}'} on {spec}, seed 0\n" in printed.out
    assert re.search(rf"  fine-tuning the random-init twin \w+ of {re.escape(str(out))}\S+ on \S+, seed 0", printed.out)
    assert f"  floors on {spec}: majority class and bag-of-words" in printed.out
    assert printed.err.count("  toy: 150 training examples") == 6  # each fine-tuning, once its model and data are ready
    for name in ("results.csv", "REPORT.md", "heldout_accuracy.png", "downstream.png"):
        assert (out / name).stat().st_size > 0, name
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [(r["arm"], r["seed"]) for r in rows] == [("bert", "0"), ("bert", "1"), ("hbert-v1", "0"), ("hbert-v1", "1")]
    report = (out / "REPORT.md").read_text()
    for arm in ("bert", "hbert-v1"):
        arm_rows = [r for r in rows if r["arm"] == arm]
        accs = sorted(float(r["heldout_mlm_acc"]) for r in arm_rows)
        scores = sorted(float(r[spec]) for r in arm_rows)
        median_acc = (accs[0] + accs[1]) / 2
        line = next(x for x in report.splitlines() if x.startswith(f"| {arm} |"))
        assert f"{median_acc:.4f}" in line and f"{(scores[0] + scores[1]) / 2:.1f}" in line
        assert f"{int(arm_rows[0]['parameters']):,}" in line


def test_rerun_skips_finished_arms_and_resumes_an_interrupted_one(setup):
    root, corpus, base, spec = setup
    path = _recipe(
        root,
        corpus,
        base,
        spec,
        name="resume",
        budget="40-steps",
        arms={"a": ["model=bert", "train.checkpoint_every=2-steps"], "b": ["model=additive"]},
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "hbert", "compare", path], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    log = root / "resume" / "arms" / "a" / "seed1" / "log.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (log.exists() and sum(1 for _ in open(log)) >= 6):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # a hard kill in the middle of the second run of arm a
    proc.wait(timeout=60)
    finished = root / "resume" / "arms" / "a" / "seed0" / "summary.json"
    assert json.loads(finished.read_text())["status"] == "completed"
    stamp = os.path.getmtime(finished)
    assert main(["compare", path]) == 0
    assert os.path.getmtime(finished) == stamp  # not redone
    resumed = [json.loads(x) for x in open(log) if '"lr"' in x]
    assert [r["step"] for r in resumed][-1] == 40
    rows = list(csv.DictReader(open(root / "resume" / "results.csv")))
    assert len(rows) == 4 and all(r["steps"] == "40" for r in rows)


def test_sigterm_stops_the_recipe_with_one_line_and_a_rerun_resumes_it(setup, capsys):
    root, corpus, base, spec = setup
    path = _recipe(root, corpus, base, spec, name="sigterm", budget="30-steps", arms={"a": ["model=bert"]})
    data = yaml.safe_load(open(path))
    data.update(seeds=[0], floors=False)
    open(path, "w").write(yaml.safe_dump(data))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "hbert", "compare", path], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    run_dir = root / "sigterm" / "arms" / "a" / "seed0"
    log = run_dir / "log.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (log.exists() and sum(1 for _ in open(log)) >= 4):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # in the middle of the pretraining
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert "Traceback (most recent" not in stderr and "KeyError" not in stderr and "heldout_mlm_acc" not in stderr
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert len(lines) == 1, stderr
    assert "recipe stopped" in lines[0] and f"interrupted {run_dir} " in lines[0], lines[0]
    assert f"same command, hbert compare {path}:" in lines[0] and "interrupted one resumes" in lines[0], lines[0]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps"] < 30
    assert main(["compare", path]) == 0  # the same command again: the interrupted run resumes and finishes
    assert f"resuming {run_dir}" in capsys.readouterr().out
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    steps = [json.loads(x)["step"] for x in open(log) if '"lr"' in x]
    assert steps[-1] == 30 and steps == sorted(steps)


def test_unknown_key_in_an_arm_fails_before_training(setup, capsys):
    root, corpus, base, spec = setup
    path = _recipe(root, corpus, base, spec, name="bad", arms={"ok": ["model=bert"], "typo": ["train.lrr=0.1"]})
    assert main(["compare", path]) == 2
    err = capsys.readouterr().err
    assert "arm 'typo'" in err and "train.lrr" in err and "did you mean 'train.lr'" in err
    assert not (root / "bad" / "arms").exists()
    with pytest.raises(RecipeError, match="unknown recipe key"):
        Recipe.load(path, ["colour=red"])


def test_shipped_recipes_are_valid(tmp_path):
    """Every shipped recipe loads and validates; a recipe whose teacher is a hub id (the GPU recipes'
    bert-base-uncased) is validated with its ``reference`` pointed at a local folder, as on a machine without the
    hub, and without it is refused up front naming the teacher."""
    from hbert import HBertConfig
    from hbert.experiments import validate

    local_teacher = tmp_path / "teacher"
    HBertConfig.from_preset("bert", hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=64).save_pretrained(local_teacher)  # fmt: skip
    folder = os.path.join(os.path.dirname(__file__), "..", "recipes")
    names = sorted(os.listdir(folder))
    for kind in ("hbert", "entropy", "ratio"):
        for size in ("cpu", "gpu"):
            assert f"{kind}-{size}.yaml" in names
    cwd = os.getcwd()
    os.chdir(os.path.join(folder, ".."))
    try:
        for name in names:
            recipe = Recipe.load(os.path.join("recipes", name))
            if recipe.reference and not os.path.isdir(recipe.reference):
                with pytest.raises(RecipeError, match=f"teacher '{recipe.reference}' cannot be loaded"):
                    validate(recipe)
                recipe = Recipe.load(os.path.join("recipes", name), [f"reference={local_teacher}"])
            try:
                validate(recipe)
            except RecipeError as err:  # a teacher made by another recipe's run (entropy-short-cpu's): not here yet
                missing = re.search(r"teacher '([^']+)' cannot be loaded: no such folder", str(err))
                assert missing and not os.path.exists(missing.group(1)), (name, err)
    finally:
        os.chdir(cwd)


def test_demo_runs_the_demo_recipe(tmp_path, monkeypatch, capsys):
    import hbert.experiments as experiments
    from hbert.demo import run_demo

    seen = {}

    def fake_run(recipe):
        seen["recipe"] = recipe
        out = tmp_path / "demo"
        out.mkdir()
        (out / "REPORT.md").write_text("| arm |\n")
        return out

    monkeypatch.setattr(experiments, "run_recipe", fake_run)
    monkeypatch.chdir(os.path.join(os.path.dirname(__file__), ".."))
    run_demo(str(tmp_path / "demo"), "2m")
    recipe = seen["recipe"]
    assert list(recipe.arms) == ["bert-minilm", "v2-minilm"] and recipe.references == {"minilm": "registry:minilm-l6"}
    assert recipe.budget == "2m" and recipe.out == str(tmp_path / "demo") and recipe.suite == ["vader-amazon"]
    assert recipe.finetune_seeds >= 2 and recipe.twin_finetune_seeds >= 2 and recipe.floors  # verdicts need a spread
    tuned = {task for name in os.listdir("recipes") if name != "demo-cpu.yaml"  # the held-back task stays held back
             for task in Recipe.load(os.path.join("recipes", name)).suite}  # fmt: skip
    assert not tuned & set(recipe.suite)
    out = capsys.readouterr().out
    assert "| arm |" in out and "What to look at" in out
    from hbert.demo import DEMO_RECIPE

    shipped = Recipe.load("recipes/demo-cpu.yaml")  # the installed-package fallback is the same recipe
    assert {k: getattr(shipped, k) for k in DEMO_RECIPE} == DEMO_RECIPE


def test_references_per_arm_seeds_and_inference_lengths(setup):
    """A reference checkpoint is fine-tuned as it is beside the arms (the ceiling), an arm may name its own seeds,
    and the inference benchmark measures every length asked for, the reference included."""
    root, corpus, base, spec = setup
    first = run_recipe(Recipe.load(_recipe(root, corpus, base, spec, name="ref-source", arms={"bert": []})))
    reference = str(first / "arms" / "bert" / "seed0" / "final")
    path = _recipe(root, corpus, base, spec, name="with-refs",
                   arms={"bert": ["model=bert"], "one-seed": ["model=hbert-v1", "seeds=[1]"]})  # fmt: skip
    data = yaml.safe_load(open(path))
    data.update({"references": {"ceiling": reference}, "inference": True, "inference_lengths": [16, 32],
                 "twin_finetune_seeds": 2, "teacher": {"config": base, "budget": "4-steps"}})  # fmt: skip
    open(path, "w").write(yaml.safe_dump(data))
    out = run_recipe(Recipe.load(path))
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [(r["arm"], r["seed"]) for r in rows] == [("bert", "0"), ("bert", "1"), ("one-seed", "1"), ("ceiling", "")]
    assert not (out / "arms" / "one-seed" / "seed0").exists()
    ceiling = rows[-1]
    assert ceiling["reference"] == reference and len(ceiling[f"{spec}_scores"].split(";")) == 2
    assert all(float(r["inference_seq_per_s"]) > 0 and float(r["inference_seq_per_s_32"]) > 0 for r in rows)
    report = (out / "REPORT.md").read_text()
    assert "## References (fine-tuned as they are)" in report and "(b32, s32, fp32)" in report
    assert "(one-seed: [1])" in report
    teacher = json.loads((out / "pretrained" / "teacher" / "summary.json").read_text())
    line = next(x for x in report.splitlines() if x.startswith("| teacher |"))  # under "## Pretrained first"
    assert f"{teacher['heldout_mlm_acc']:.4f}" in line and f"{teacher['tokens']:,}" in line
    assert sum(line.startswith("- `") and "against `ceiling`" in line for line in report.splitlines()) == 2


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"references": {"r": "no/such/folder"}}, "is not a checkpoint folder"),
        ({"references": {"r": "registry:nope"}}, "unknown registry encoder"),
        ({"references": ["x"]}, "references: expected a mapping"),
        ({"inference_lengths": [0]}, "inference_lengths=[0]"),
        ({"arms": {"a": ["seeds=[-1]"]}}, "seeds=[-1]"),
    ],
)
def test_bad_references_lengths_and_arm_seeds_are_refused_before_training(setup, change, expected):
    from hbert.experiments.recipe import validate

    root, corpus, base, spec = setup
    path = _recipe(root, corpus, base, spec, name="bad-refs")
    data = yaml.safe_load(open(path))
    data.update(change)
    open(path, "w").write(yaml.safe_dump(data))
    with pytest.raises(RecipeError, match=re_escape(expected)):
        validate(Recipe.load(path))
    assert not (root / "bad-refs").exists()


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_every_shipped_recipe_and_its_arms_are_valid_settings():
    """Each recipe under recipes/ reads, and every arm's config passes the settings check a run makes first."""
    from hbert.experiments.recipe import load_arms

    folder = os.path.join(os.path.dirname(__file__), "..", "recipes")
    for name in sorted(os.listdir(folder)):
        recipe = Recipe.load(os.path.join(folder, name))
        arms = load_arms(recipe)
        assert list(arms) == list(recipe.arms), name
        assert all(arm.config.budget == arm.budget for arm in arms.values()), name
