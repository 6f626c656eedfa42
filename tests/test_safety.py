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
                          timeout=600)  # fmt: skip


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
