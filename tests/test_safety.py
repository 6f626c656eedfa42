"""Safety: foreign code runs only on an explicit opt-in, resume state never unpickles code, a damaged checkpoint
falls back to the newest intact one, temporary folders of killed processes are cleaned, and a failure after
training never loses the trained weights."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hbert
from hbert.cli import _parse, main
from hbert.training import TrainingError, pretrain
from hbert.training import loop as loop_mod
from hbert.training.checkpoint import load_checkpoint, write_manifest

from .test_bad_inputs import make_foreign_checkpoint
from .training_helpers import make_corpus, tiny_config

SOURCES = str(Path(hbert.__file__).resolve().parents[1])


class Crash(Exception):
    pass


def crash_after_checkpoint(monkeypatch, step: int) -> None:
    """The process 'dies' right after writing its checkpoint at ``step``."""
    real_save = loop_mod.save_checkpoint

    def save_then_crash(run_dir, model, tokenizer, state, *args, **kwargs):
        path = real_save(run_dir, model, tokenizer, state, *args, **kwargs)
        if state["budget"]["steps"] == step:
            raise Crash
        return path

    monkeypatch.setattr(loop_mod, "save_checkpoint", save_then_crash)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def interrupted(corpus, tmp_path_factory):
    """A run of 6 steps that died after its step-4 checkpoint: checkpoints step-2 and step-4, no final/."""
    run = tmp_path_factory.mktemp("interrupted") / "run"
    with pytest.MonkeyPatch.context() as mp:
        crash_after_checkpoint(mp, 4)
        with pytest.raises(Crash):
            pretrain(tiny_config(corpus, run, "budget=6-steps", "train.checkpoint_every=2-steps"))
    return run


def _copy(run: Path, into: Path) -> Path:
    shutil.copytree(run, into)
    return into


def _hbert(*args, cwd, **env):
    full = {**os.environ, "PYTHONPATH": os.pathsep.join([SOURCES, os.environ.get("PYTHONPATH", "")]),
            "HF_HUB_OFFLINE": "1", "HF_HOME": str(Path(cwd) / "hf"), **env}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "hbert", *args], cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=3600)  # fmt: skip


# ------------------------------------------------------------------------------------------ remote code


def test_hbert_checkpoints_need_no_remote_code(interrupted):
    from transformers import AutoModelForSequenceClassification

    from hbert.bench.inference import load_encoder
    from hbert.remote import auto_from_pretrained

    model = interrupted / "checkpoints" / "step-00000004" / "model"
    assert "auto_map" in json.loads((model / "config.json").read_text())  # it ships code, and needs none of it
    encoder = load_encoder(str(model), 32, trust_remote_code=False)
    assert type(encoder).__module__.startswith("hbert.")  # the registered class, not a copy of the shipped code
    classifier = auto_from_pretrained(AutoModelForSequenceClassification, str(model), False, num_labels=2)
    assert type(classifier).__module__.startswith("hbert.")


def test_foreign_code_runs_only_with_the_opt_in(tmp_path, corpus):
    from transformers import AutoConfig

    from hbert.remote import RemoteCodeError, auto_from_pretrained

    refused = make_foreign_checkpoint(tmp_path / "refused")
    with pytest.raises(RemoteCodeError, match="ships its own Python code"):
        auto_from_pretrained(AutoConfig, str(refused), False)
    assert not (refused / "RAN").exists()
    # with the opt-in, each command does run the shipped code (the marker file appears)
    bench = make_foreign_checkpoint(tmp_path / "bench")
    _hbert("bench", "inference", str(bench), "--trust-remote-code", cwd=tmp_path)
    assert (bench / "RAN").exists()
    spec = tmp_path / "spec.yaml"
    (tmp_path / "train.csv").write_text("text,label\na,0\nb,1\n")
    spec.write_text("name: t\nfiles: {train: train.csv, validation: train.csv}\ntext_fields: [text]\n"
                    "kind: classification\nnum_labels: 2\nmetrics: [accuracy]\n")  # fmt: skip
    finetune = make_foreign_checkpoint(tmp_path / "finetune")
    _hbert("finetune", str(finetune), str(spec), "--trust-remote-code", cwd=tmp_path)
    assert (finetune / "RAN").exists()
    teacher = make_foreign_checkpoint(tmp_path / "teacher")
    _hbert("pretrain", f"corpus={corpus}", "out=run", "budget=2-steps", "masking=entropy", f"masking.teacher={teacher}",
           "masking.trust_remote_code=true", cwd=tmp_path)  # fmt: skip
    assert (teacher / "RAN").exists()  # (each command then fails: the shipped code defines no model)


# ------------------------------------------------------------------------------------------ resume state


def test_resume_state_is_plain_tensors_and_numbers(interrupted):
    state = torch.load(interrupted / "checkpoints" / "step-00000004" / "state.pt", weights_only=True)
    assert isinstance(state["rng"]["torch"], torch.Tensor) and state["budget"]["steps"] == 4


def test_a_planted_pickle_never_runs_and_the_older_checkpoint_takes_over(interrupted, tmp_path, capsys):
    run = _copy(interrupted, tmp_path / "run")
    marker = tmp_path / "PLANTED-CODE-RAN"

    class Planted:
        def __reduce__(self):
            return (os.makedirs, (str(marker),))

    newest = run / "checkpoints" / "step-00000004"
    state = torch.load(newest / "state.pt", weights_only=True)
    state["payload"] = Planted()
    torch.save(state, newest / "state.pt")
    (newest / "manifest.json").unlink()
    write_manifest(newest)  # an attacker can rewrite the manifest too: loading must still not unpickle code
    summary = pretrain(None, resume=str(run))
    assert not marker.exists()
    err = capsys.readouterr().err
    assert (
        "step-00000004" in err
        and f"resuming from the newest intact one, {run / 'checkpoints' / 'step-00000002'}" in err
    )
    assert summary["status"] == "completed" and summary["steps"] == 6
    steps = [r["step"] for r in map(json.loads, open(run / "log.jsonl")) if "lr" in r]
    assert steps[-2:] == [5, 6] and steps.count(3) == 2  # steps 3-4 were trained again from the step-2 checkpoint


@pytest.mark.parametrize(
    "damage",
    ["truncated-weights", "missing-state", "truncated-state", "corrupt-config", "flipped-byte"],
)
def test_a_damaged_latest_checkpoint_falls_back_to_the_newest_intact_one(interrupted, tmp_path, capsys, damage):
    run = _copy(interrupted, tmp_path / "run")
    newest = run / "checkpoints" / "step-00000004"
    weights = newest / "model" / "model.safetensors"
    if damage == "truncated-weights":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "missing-state":
        (newest / "state.pt").unlink()
    elif damage == "truncated-state":
        (newest / "state.pt").write_bytes((newest / "state.pt").read_bytes()[:50])
    elif damage == "corrupt-config":
        (newest / "model" / "config.json").write_text("{")
    else:
        data = bytearray(weights.read_bytes())
        data[-10] ^= 0xFF
        weights.write_bytes(bytes(data))
    path, _, state = load_checkpoint(run)
    assert path.name == "step-00000002" and state["budget"]["steps"] == 2
    err = capsys.readouterr().err
    assert "skipping damaged checkpoint(s) step-00000004" in err and str(path) in err


def test_a_checkpoint_from_before_manifests_still_resumes(interrupted, tmp_path):
    run = _copy(interrupted, tmp_path / "run")
    for manifest in (run / "checkpoints").glob("step-*/manifest.json"):
        manifest.unlink()
    path, _, state = load_checkpoint(run)
    assert path.name == "step-00000004" and state["budget"]["steps"] == 4


def test_resume_refuses_a_config_edited_in_a_results_setting_but_not_in_a_speed_one(interrupted, tmp_path):
    run = _copy(interrupted, tmp_path / "run")
    original = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(original.replace("  log_every: 1\n", "  log_every: 2\n"))
    assert pretrain(None, resume=str(run))["steps"] == 6  # impl.* only: accepted
    run2 = _copy(interrupted, tmp_path / "run2")
    (run2 / "config.yaml").write_text(original.replace("  seed: 0\n", "  seed: 5\n", 1))
    with pytest.raises(TrainingError, match=r"differs from the configuration stored in the checkpoint .*train\.seed"):
        pretrain(None, resume=str(run2))


# ------------------------------------------------------------------------------------------ temporary folders


def _dead_pid() -> int:
    """The id of a process that existed and is gone (it was killed)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    proc.kill()
    proc.wait()
    return proc.pid


def test_stale_checkpoint_and_export_temps_are_cleaned_on_the_next_start(interrupted, tmp_path):
    run = _copy(interrupted, tmp_path / "run")
    pid = _dead_pid()
    stale = [run / "checkpoints" / f".step-00000006.tmp-{pid}", run / f".final.tmp-{pid}"]
    live = run / f".final.tmp-{os.getppid()}"  # a running process's temp folder is left alone
    for folder in [*stale, live]:
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"half")
    pretrain(None, resume=str(run))
    assert not any(p.exists() for p in stale) and live.exists()
    assert (run / "final" / "model.safetensors").exists()


def test_stale_prepare_temp_is_cleaned_on_the_next_prepare(tmp_path):
    pid = _dead_pid()
    stale = tmp_path / f".corpus.tmp-{pid}"
    stale.mkdir()
    (stale / "train.bin").write_bytes(b"\0" * 10)
    make_corpus(tmp_path)
    assert not stale.exists() and (tmp_path / "corpus" / "manifest.json").exists()


# ------------------------------------------------------------------------------------------ nothing lost


def test_final_weights_are_saved_before_the_last_evaluation(corpus, tmp_path, monkeypatch):
    run = tmp_path / "run"

    def broken(*args, **kwargs):
        raise RuntimeError("evaluation broke")

    monkeypatch.setattr(loop_mod, "evaluate", broken)
    with pytest.raises(RuntimeError, match="evaluation broke"):
        pretrain(tiny_config(corpus, run, "budget=3-steps"))
    assert (run / "final" / "model.safetensors").exists()
    assert (run / "checkpoints" / "latest").read_text() == "step-00000003"


def test_unwritable_final_folder_is_one_line_naming_the_saved_checkpoint(corpus, tmp_path, monkeypatch, capsys):
    def read_only(run_dir, model, tokenizer):
        raise PermissionError(13, "Permission denied", str(run_dir / "final"))

    monkeypatch.setattr(loop_mod, "export_final", read_only)
    run = tmp_path / "run"
    assert main(["pretrain", *[f"{k}={v}" for k, v in (("corpus", corpus), ("out", run))], "budget=2-steps",
                 "model.hidden_size=32", "model.num_hidden_layers=2", "model.num_attention_heads=2",
                 "model.intermediate_size=64", "train.batch_size=8", "train.eval_blocks=16", "impl.progress=false",
                 "impl.tensorboard=false"]) != 0  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Permission denied" in err[0] and "step-00000002" in err[0], err


# ------------------------------------------------------------------------------------------ command line


def test_overrides_after_options_are_accepted():
    args = _parse(["eval", "CKPT", "--suite", "glue", "--seeds", "3", "out=DIR", "lr=1e-4"])
    assert args.overrides == ["out=DIR", "lr=1e-4"] and args.seeds == 3 and args.suite == "glue"
    args = _parse(["pretrain", "--resume", "RUN", "impl.compile=true"])
    assert args.items == ["impl.compile=true"] and args.resume == "RUN"


def test_debug_variable_shows_the_traceback(tmp_path):
    quiet = _hbert("data", "info", str(tmp_path), cwd=tmp_path)
    loud = _hbert("data", "info", str(tmp_path), cwd=tmp_path, HBERT_DEBUG="1")
    assert quiet.returncode != 0 and "Traceback" not in quiet.stderr
    assert loud.returncode != 0 and "Traceback" in loud.stderr and "CorpusError" in loud.stderr


# ------------------------------------------------------------------------------------------ second pass: consent


def test_the_opt_in_reaches_token_tasks_and_tokenizers(interrupted, tmp_path):
    from .test_bad_inputs import plant_tokenizer_code

    tokens = tmp_path / "tokens"
    tokens.mkdir()
    (tokens / "train.jsonl").write_text(json.dumps({"words": ["a", "b"], "tags": ["B-X", "O"]}) + "\n")
    (tokens / "spec.yaml").write_text(
        "name: tags\nfiles: {train: train.jsonl, validation: train.jsonl}\ntext_fields: [words]\nlabel_field: tags\n"
        "kind: token-classification\nlabel_names: [O, B-X]\nmetrics: [entity_f1]\n"
    )
    tagger = make_foreign_checkpoint(tmp_path / "tagger")
    _hbert("finetune", str(tagger), str(tokens / "spec.yaml"), "--trust-remote-code", cwd=tmp_path)
    assert (tagger / "RAN").exists()  # the token-classification path honours --trust-remote-code
    model = interrupted / "checkpoints" / "step-00000004" / "model"
    planted = plant_tokenizer_code(Path(shutil.copytree(model, tmp_path / "planted")))
    _hbert("finetune", str(planted), str(_tiny_spec(tmp_path / "task")), "epochs=1", "floors=none",
           "--trust-remote-code", cwd=tmp_path)  # fmt: skip
    assert (planted / "RAN").exists()  # and so does the tokenizer's loading


def test_the_random_init_twin_asks_for_consent_too(tmp_path):
    from hbert.finetune.floors import random_init_twin
    from hbert.remote import RemoteCodeError

    evil = make_foreign_checkpoint(tmp_path / "evil")
    with pytest.raises(RemoteCodeError, match=r"ships its own Python code.*--trust-remote-code"):
        random_init_twin(str(evil), tmp_path / "twin")
    assert not (evil / "RAN").exists() and not (tmp_path / "twin").exists()


def test_every_load_in_hbert_decides_about_remote_code_explicitly():
    """No ``from_pretrained`` call in hbert leaves ``trust_remote_code`` unset (transformers would then ask on the
    terminal), except on hbert's and BERT's own classes, which never run shipped code."""
    import ast

    concrete = {"HBertForMaskedLM", "BertForMaskedLM"}
    unset = []
    for path in sorted(Path(SOURCES, "hbert").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            receiver = getattr(node.func.value, "id", "")
            loads = node.func.attr == "from_pretrained" or (node.func.attr == "from_config" and receiver[:4] == "Auto")
            if loads and receiver not in concrete and "trust_remote_code" not in {k.arg for k in node.keywords}:
                unset.append(f"{path.name}:{node.lineno}")
    assert unset == []


# ------------------------------------------------------------------------------------------ second pass: one writer


LOCK_HOLDER = """import sys
from hbert.files import folder_lock
with folder_lock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


def _hold(folder: Path) -> subprocess.Popen:
    """A process that holds the lock of ``folder`` until its standard input closes."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SOURCES, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(folder)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _listing(folder: Path) -> dict:
    from .test_bad_inputs import snapshot

    return snapshot(folder)


def test_two_writers_of_one_folder_are_refused(corpus, tmp_path):
    from .test_bad_inputs import recipe_with

    out = tmp_path / "out"
    holder = _hold(out)
    try:
        before = _listing(tmp_path)
        commands = {
            "pretrain": ["pretrain", f"corpus={corpus}", f"out={out}", "budget=2-steps"],
            "data": ["data", "prepare", "--corpus", f"files:{Path(corpus).parent / 'text'}/*.txt", "--out", str(out),
                     "--tokenizer", f"vocab:{Path(corpus).parent / 'vocab.txt'}", "--decontaminate", "none"],
            "compare": ["compare", str(recipe_with(tmp_path, "arms: {a: []}\n")), f"out={out}"],
        }  # fmt: skip
        before = _listing(tmp_path)
        for command, argv in commands.items():
            proc = _hbert(*argv, cwd=tmp_path)
            errors = [line for line in proc.stderr.splitlines() if "error:" in line]
            assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
            assert len(errors) == 1 and errors[0].startswith(f"hbert {command}: error: "), proc.stderr
            assert f"{out} is in use by another hbert process (pid {holder.pid})" in errors[0], errors[0]
        assert _listing(tmp_path) == before and not out.exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=600)
    assert not (tmp_path / ".out.lock").exists()  # released and removed: nothing left behind


def test_a_released_lock_lets_the_next_writer_in(tmp_path):
    from hbert.files import FolderBusyError, folder_lock

    with folder_lock(tmp_path / "a"):
        with pytest.raises(FolderBusyError, match="in use by another hbert process"):
            with folder_lock(tmp_path / "a"):
                pass
    with folder_lock(tmp_path / "a") as locked:
        assert locked == (tmp_path / "a").resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing created by locking alone


# ------------------------------------------------------------------------------------------ second pass: checkpoints


def test_a_checkpoint_without_its_manifest_is_not_trusted_beside_verified_ones(interrupted, tmp_path):
    run = _copy(interrupted, tmp_path / "run")
    newest = run / "checkpoints" / "step-00000004"
    (newest / "manifest.json").unlink()
    weights = newest / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF  # damage that loading alone does not notice
    weights.write_bytes(bytes(data))
    proc = _hbert("pretrain", "--resume", str(run), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "skipping damaged checkpoint(s) step-00000004 (no manifest.json" in proc.stderr
    assert f"resuming from the newest intact one, {run / 'checkpoints' / 'step-00000002'}" in proc.stderr
    steps = [r["step"] for r in map(json.loads, open(run / "log.jsonl")) if "lr" in r]
    assert steps.count(3) == 2 and steps[-1] == 6  # steps 3-4 trained again from the verified checkpoint


def test_pruning_never_removes_the_newest_verified_checkpoint(interrupted, tmp_path):
    from hbert.training.checkpoint import _prune, intact_note, verified_checkpoint

    run = _copy(interrupted, tmp_path / "run")
    root = run / "checkpoints"
    weights = root / "step-00000004" / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + bytes([weights.read_bytes()[-1] ^ 1]))
    _prune(root, root / "step-00000004", keep=1)
    assert (root / "step-00000002").exists()  # the only verified one stays although keep=1
    assert verified_checkpoint(run) == root / "step-00000002"
    assert intact_note(run) == f"the newest verified checkpoint is {root / 'step-00000002'}"
    intact = _copy(interrupted, tmp_path / "intact")
    _prune(intact / "checkpoints", intact / "checkpoints" / "step-00000004", keep=1)
    assert not (intact / "checkpoints" / "step-00000002").exists()  # the newest verifies: the older one goes
    shutil.rmtree(root / "step-00000002")
    assert intact_note(run) == f"{run} holds no verified checkpoint"


# ------------------------------------------------------------------------------------------ second pass: the CLI


def _tiny_spec(folder: Path, kind: str = "classification", labels=("0", "1", "0", "1")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"w{i} w{i + 1},{label}\n" for i, label in enumerate(labels))
    (folder / "train.csv").write_text("text,label\n" + rows)
    metrics = "[accuracy]\nnum_labels: 2" if kind == "classification" else "[pearson, spearmanr]"
    (folder / "spec.yaml").write_text(f"name: t\nfiles: {{train: train.csv, validation: train.csv}}\n"
                                      f"text_fields: [text]\nkind: {kind}\nmetrics: {metrics}\n")  # fmt: skip
    return folder / "spec.yaml"


def test_folder_names_stay_as_written(interrupted, tmp_path):
    ckpt = str(interrupted / "checkpoints" / "step-00000004" / "model")
    spec = _tiny_spec(tmp_path / "task")
    for out in ("007", "on", "exp #3"):
        proc = _hbert("finetune", ckpt, str(spec), "epochs=1", "floors=none", "progress=false", f"out={out}",
                      cwd=tmp_path)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / out / "t-seed0.json").is_file()
    assert not any((tmp_path / name).exists() for name in ("7", "True", "exp"))


def test_json_output_stays_valid_when_a_metric_is_undefined(interrupted, tmp_path):
    """Equal regression labels make the correlations undefined: reported as null, never as the invalid NaN."""
    ckpt = str(interrupted / "checkpoints" / "step-00000004" / "model")
    spec = _tiny_spec(tmp_path / "task", "regression", labels=("0.5",) * 4)
    proc = _hbert("finetune", ckpt, str(spec), "epochs=1", "floors=none", "progress=false", "--json",
                  f"out={tmp_path / 'o'}", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr

    def refuse(constant):
        raise ValueError(f"invalid JSON constant {constant}")

    printed = json.loads(proc.stdout.strip().splitlines()[-1], parse_constant=refuse)
    assert printed["validation"]["pearson"] is None
    json.loads((tmp_path / "o" / "t-seed0.json").read_text(), parse_constant=refuse)


def test_a_kill_during_save_leaves_no_half_written_folder(interrupted, tmp_path, monkeypatch):
    from hbert.finetune import trainer
    from hbert.finetune.kinds import load_classifier
    from hbert.finetune.trainer import _save

    spec = __import__("hbert.data.tasks", fromlist=["read_spec"]).read_spec(_tiny_spec(tmp_path / "task"))
    model, tokenizer = load_classifier(str(interrupted / "checkpoints" / "step-00000004" / "model"), spec)

    def dies(*args, **kwargs):
        raise KeyboardInterrupt  # as a kill in the middle of the save: the model is written, the tokenizer is not

    monkeypatch.setattr(trainer, "save_with_model", dies)
    with pytest.raises(KeyboardInterrupt):
        _save(str(tmp_path / "saved"), model, tokenizer, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["task"]  # no saved/, no temporary folder


def test_debug_variable_set_to_off_keeps_errors_to_one_line(tmp_path):
    for off in ("0", "false", "False", "no", ""):
        quiet = _hbert("data", "info", str(tmp_path), cwd=tmp_path, HBERT_DEBUG=off)
        assert quiet.returncode != 0 and "Traceback" not in quiet.stderr, off
        assert len(quiet.stderr.strip().splitlines()) == 1, quiet.stderr


def test_wordpiece_training_is_bounded_on_a_huge_unbroken_token(tmp_path):
    """One 5 MB 'word' (hours of WordPiece training before) is left out of training; the corpus is prepared."""
    text = tmp_path / "text"
    text.mkdir()
    (text / "docs.txt").write_text("\n\n".join(f"the cat sat on mat number {i} ." for i in range(300)))
    (text / "long.txt").write_text("x" * 5_000_000 + " end .")
    proc = _hbert("data", "prepare", "--corpus", f"files:{text}/*.txt", "--tokenizer", "train:200", "--out",
                  str(tmp_path / "c"), "--decontaminate", "none", "--quiet", "--seq-len", "16", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    vocab = json.loads((tmp_path / "c" / "tokenizer" / "tokenizer.json").read_text())["model"]["vocab"]
    assert "cat" in vocab and max(len(token) for token in vocab) <= 100


def test_without_long_words_keeps_ordinary_and_cjk_text():
    from hbert.data.tokenizer import without_long_words

    ordinary = "A sentence, with punctuation; and a URL-like-thing-that-is-long " * 3
    assert without_long_words(ordinary) == ordinary
    chinese = "我们" * 100  # 200 characters without a space: every character is a word of its own
    assert without_long_words(chinese).split() == list(chinese)
    assert without_long_words("short " + "y" * 101 + " tail") == "short  tail"


def test_compare_identifies_runs_by_their_settings(corpus, tmp_path):
    from .test_bad_inputs import snapshot

    base = tmp_path / "base.yaml"
    base.write_text("model:\n  hidden_size: 32\n  num_hidden_layers: 1\n  num_attention_heads: 2\n"
                    "  intermediate_size: 64\ntrain:\n  batch_size: 8\n  eval_blocks: 8\nimpl:\n  tensorboard: false\n")  # fmt: skip
    recipe = tmp_path / "recipe.yaml"
    body = (f"name: r\nbase: {base}\nbudget: 2-steps\ncorpus_path: {corpus}\ninference: false\nfloors: false\n"
            "eval_points: 0\narms:\n  a: [train.lr=0.001]\n")  # fmt: skip
    recipe.write_text(body)
    out = tmp_path / "out"
    first = _hbert("compare", str(recipe), f"out={out}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    recipe.write_text(body.replace("train.lr=0.001", "train.lr=0.002"))
    before = snapshot(out)
    changed = _hbert("compare", str(recipe), f"out={out}", cwd=tmp_path)
    errors = [line for line in changed.stderr.splitlines() if "error:" in line]
    assert changed.returncode != 0 and len(errors) == 1 and "Traceback" not in changed.stderr, changed.stderr
    assert "trained with other settings (train.lr: 0.001 there, 0.002 now)" in errors[0], errors[0]
    assert snapshot(out) == before
    recipe.write_text(body)
    again = _hbert("compare", str(recipe), f"out={out}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"pretraining {out}" not in again.stdout and f"resuming {out}" not in again.stdout  # reused as it is
