"""Bad input through the real command line: every case runs ``python -m hbert`` in a subprocess and must end with a
non-zero exit, exactly one error line that names the problem (and, where there is a choice, what is accepted), no
traceback, nothing left behind in its folder and nothing changed in the shared run, corpus and checkpoints.

The tiny corpus, run and checkpoints are built once for the module; the cases run two at a time."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

import hbert
from hbert.training import pretrain

from .training_helpers import make_corpus, tiny_config

SOURCES = str(Path(hbert.__file__).resolve().parents[1])  # the hbert under test, also from another folder
EVIL_CODE = """import pathlib
pathlib.Path(MARKER).write_text("remote code ran")  # transformers runs a copy of this file: an absolute path
from transformers import PretrainedConfig


class EvilConfig(PretrainedConfig):
    model_type = "evil"
"""


def make_foreign_checkpoint(folder: Path) -> Path:
    """A checkpoint folder shipping Python code (model type unknown to transformers) that leaves a marker if run."""
    folder.mkdir(parents=True, exist_ok=True)
    auto = {k: "configuration_evil.EvilConfig" for k in ("AutoConfig", "AutoModel", "AutoModelForMaskedLM")}
    (folder / "config.json").write_text(json.dumps({"model_type": "evil", "auto_map": auto}))
    (folder / "configuration_evil.py").write_text(EVIL_CODE.replace("MARKER", repr(str(folder / "RAN"))))
    return folder


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``folder`` (folders as 'dir')."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("shared")
    corpus = make_corpus(base / "corpus-src")
    run = base / "run"
    pretrain(tiny_config(corpus, run, "budget=4-steps", "train.checkpoint_every=2-steps"))
    spec = base / "task"
    spec.mkdir()
    (spec / "train.csv").write_text("text,label\n" + "".join(f"w{i} w{i + 1},{i % 2}\n" for i in range(20)))
    (spec / "dev.csv").write_text("text,label\nw1 w2,0\nw3 w4,1\n")
    (spec / "spec.yaml").write_text(
        "name: tiny\nfiles: {train: train.csv, validation: dev.csv}\ntext_fields: [text]\nkind: classification\n"
        "num_labels: 2\nmetrics: [accuracy]\n"
    )
    evil = make_foreign_checkpoint(base / "evil")
    return {"base": base, "corpus": corpus, "run": run, "ckpt": run / "final", "spec": spec, "evil": evil}


# ------------------------------------------------------------------------------------------ case helpers


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def copy_corpus(w: dict, into: Path) -> Path:
    return Path(shutil.copytree(w["corpus"], into))


def truncated_corpus(w: dict, into: Path) -> Path:
    corpus = copy_corpus(w, into)
    data = (corpus / "train.bin").read_bytes()
    (corpus / "train.bin").write_bytes(data[: len(data) // 2])
    return corpus


def corpus_beyond_vocabulary(w: dict, into: Path) -> Path:
    """A consistent corpus (checksums updated) whose train blocks hold an id outside its tokenizer's vocabulary."""
    import numpy as np

    corpus = copy_corpus(w, into)
    manifest = json.loads((corpus / "manifest.json").read_text())
    blocks = np.fromfile(corpus / "train.bin", dtype=manifest["dtype"])
    blocks[5] = 60000
    blocks.tofile(corpus / "train.bin")
    manifest["splits"]["train"]["sha256"] = hashlib.sha256((corpus / "train.bin").read_bytes()).hexdigest()
    (corpus / "manifest.json").write_text(json.dumps(manifest))
    return corpus


def copy_run(w: dict, into: Path) -> Path:
    return Path(shutil.copytree(w["run"], into))


def edited_config_run(w: dict, into: Path) -> Path:
    run = copy_run(w, into)
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(re.sub(r"\n  lr: [^\n]+", "\n  lr: 0.1", text, count=1))
    return run


def all_checkpoints_damaged(w: dict, into: Path) -> Path:
    run = copy_run(w, into)
    for weights in (run / "checkpoints").glob("step-*/model/model.safetensors"):
        weights.write_bytes(weights.read_bytes()[:100])
    return run


def spec_with(
    folder: Path, files: str = "{train: train.csv}", extra: str = "", train: str | None = None, name: str = "train.csv"
) -> Path:
    if train is not None:
        write(folder / name, train)
    return write(
        folder / "spec.yaml",
        f"name: t\nfiles: {files}\ntext_fields: [text]\nkind: classification\nnum_labels: 2\n"
        f"metrics: [accuracy]\n{extra}",
    )


def recipe(folder: Path, body: str) -> Path:
    return write(folder / "recipe.yaml", body)


GOOD_ARMS = "name: r\nbase: base.yaml\nbudget: 2-steps\n"


def recipe_with(folder: Path, body: str) -> Path:
    write(folder / "base.yaml", "train:\n  batch_size: 8\n")
    return recipe(folder, GOOD_ARMS + body)


def checkpoint_copy(w: dict, into: Path) -> Path:
    return Path(shutil.copytree(w["ckpt"], into))


def corrupt_config_json(w: dict, into: Path) -> Path:
    ckpt = checkpoint_copy(w, into)
    (ckpt / "config.json").write_text('{"model_type": "hbert", ')
    return ckpt


def truncated_weights(w: dict, into: Path) -> Path:
    ckpt = checkpoint_copy(w, into)
    data = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(data[:200])
    return ckpt


def pre(w: dict, *items: str) -> list[str]:
    """A tiny pretraining command line on the shared corpus."""
    tiny = [
        "model.hidden_size=32",
        "model.num_hidden_layers=2",
        "model.num_attention_heads=2",
        "model.intermediate_size=64",
        "train.batch_size=8",
        "train.eval_blocks=16",
        "impl.progress=false",
        "impl.tensorboard=false",
        "impl.precision=fp32",
    ]
    return ["pretrain", f"corpus={w['corpus']}", "out=run", "budget=2-steps", *tiny, *items]


@dataclass
class Case:
    name: str
    argv: Callable[[dict, Path], list[str]]  # (shared world, the case's own empty folder) -> hbert arguments
    expect: str  # regex the error line must match


A = "accepted"
LIST_LINE = "[1, 2]\n"
CASES = [
    # ---- hbert info / showcase / the parser itself
    Case(
        "info-non-number",
        lambda w, d: ["info", "bert", "hidden_size=abc"],
        r"hidden_size: expected an integer, got 'abc'",
    ),
    Case("info-negative-seq-len", lambda w, d: ["info", "bert", "--seq-len", "-5"], r"--seq-len: expected a whole"),
    Case("info-mask-ratio-above-1", lambda w, d: ["info", "bert", "--mask-ratio", "2"], r"--mask-ratio: expected"),
    Case("info-unknown-preset", lambda w, d: ["info", "bertt"], r"'bertt' is neither a preset \(bert"),
    Case("info-unknown-key", lambda w, d: ["info", "bert", "hiden_size=8"], r"unknown config key 'hiden_size'"),
    Case("info-override-without-value", lambda w, d: ["info", "bert", "hidden_size"], r"expected key=value"),
    Case("info-heads-do-not-divide", lambda w, d: ["info", "bert", "num_attention_heads=5"], rf"divisible.*{A}"),
    Case("info-unknown-layer-kind", lambda w, d: ["info", "bert", "layer_types=XYZ"], rf"attention kind 'X'; {A}"),
    Case("info-unparsable-value", lambda w, d: ["info", "bert", "hidden_size=["], r"hidden_size: cannot read"),
    Case("showcase-zero-batch", lambda w, d: ["showcase", "--batch-size", "0"], r"--batch-size: expected a whole"),
    Case("unknown-command", lambda w, d: ["trian"], r"invalid choice: 'trian' \(choose from"),
    Case("stray-option", lambda w, d: ["info", "bert", "--sequence", "3"], r"unrecognized arguments: --sequence"),
    # ---- hbert pretrain: settings checked before anything trains
    Case("pretrain-eval-blocks-0", lambda w, d: pre(w, "train.eval_blocks=0"), rf"train.eval_blocks=0; {A}"),
    Case("pretrain-batch-0", lambda w, d: pre(w, "train.batch_size=0"), rf"train.batch_size=0; {A}"),
    Case("pretrain-huge-budget", lambda w, d: pre(w, "budget=" + "9" * 400 + "-steps"), rf"too large; {A}"),
    Case("pretrain-unparsable-budget", lambda w, d: pre(w, "budget=soon"), rf"cannot parse budget 'soon'; {A}"),
    Case("pretrain-mask-ratio-1.5", lambda w, d: pre(w, "masking.ratio=1.5"), rf"masking.ratio=1.5; {A}"),
    Case("pretrain-unknown-schedule", lambda w, d: pre(w, "train.schedule=steep"), rf"'steep'; {A}: linear"),
    Case("pretrain-lr-not-a-number", lambda w, d: pre(w, "train.lr=fast"), r"train.lr: expected a number"),
    Case("pretrain-unknown-masking", lambda w, d: pre(w, "masking=span"), rf"masking.kind='span'; {A}: random"),
    Case("pretrain-micro-batch", lambda w, d: pre(w, "impl.micro_batch_size=3"), r"micro_batch_size=3 does not"),
    Case("pretrain-kd-alpha-2", lambda w, d: pre(w, "objective.kd.alpha=2"), rf"objective.kd.alpha=2.0; {A}"),
    Case("pretrain-interval-in-tokens", lambda w, d: pre(w, "train.eval_every=5-tokens"), r"train.eval_every"),
    Case("pretrain-unknown-key", lambda w, d: pre(w, "train.lrate=1"), r"unknown config key 'train.lrate'"),
    Case("pretrain-unparsable-value", lambda w, d: pre(w, "train.betas=[0.9,"), r"train.betas: cannot read"),
    Case("pretrain-fp16-on-cpu", lambda w, d: pre(w, "impl.device=cpu", "impl.precision=fp16"), r"fp16 needs"),
    Case("pretrain-complete-init-no-source", lambda w, d: pre(w, "init=complete"), r"init.kind=complete needs"),
    Case("pretrain-missing-config", lambda w, d: ["pretrain", "nope.yaml"], r"config file nope.yaml does not"),
    Case(
        "pretrain-malformed-yaml",
        lambda w, d: ["pretrain", str(write(d / "c.yaml", "train: [1,\n"))],
        r"c\.yaml line \d+: not valid YAML",
    ),
    Case(
        "pretrain-config-is-a-list",
        lambda w, d: ["pretrain", str(write(d / "c.yaml", "- a\n- b\n"))],
        r"c\.yaml: a config is a YAML mapping",
    ),
    Case("pretrain-no-corpus", lambda w, d: pre(w, f"corpus={d / 'nothing'}"), r"not a prepared corpus"),
    Case(
        "pretrain-truncated-corpus",
        lambda w, d: pre(w, f"corpus={truncated_corpus(w, d / 'c')}"),
        r"train\.bin: [\d,]+ bytes, the manifest says",
    ),
    Case(
        "pretrain-ids-beyond-vocab",
        lambda w, d: pre(w, f"corpus={corpus_beyond_vocabulary(w, d / 'c')}"),
        r"token id 60000 is outside the tokenizer's vocabulary",
    ),
    Case(
        "pretrain-corpus-manifest-not-json",
        lambda w, d: pre(w, f"corpus={write(copy_corpus(w, d / 'c') / 'manifest.json', '{oops').parent}"),
        r"manifest\.json line 1: not valid JSON",
    ),
    Case(
        "pretrain-foreign-code-teacher",
        lambda w, d: pre(w, "masking=entropy", f"masking.teacher={w['evil']}"),
        r"ships its own Python code.*masking\.trust_remote_code=true",
    ),
    Case("pretrain-onto-an-existing-run", lambda w, d: [*pre(w), f"out={w['run']}"], r"already holds a run"),
    Case("pretrain-out-unwritable", lambda w, d: [*pre(w), "out=/proc/hbert-run"], r"/proc/hbert-run"),
    Case("pretrain-out-not-permitted", lambda w, d: [*pre(w), "out=/sys/hbert-run"], r"not permitted: /sys/hbert-run"),
    Case("resume-nothing-there", lambda w, d: ["pretrain", "--resume", str(d / "none")], r"no config\.yaml there"),
    Case(
        "resume-with-results-override",
        lambda w, d: ["pretrain", "--resume", str(w["run"]), "train.lr=1"],
        r"only impl\.\* \(speed\) overrides are accepted",
    ),
    Case(
        "resume-hand-edited-config",
        lambda w, d: ["pretrain", "--resume", str(edited_config_run(w, d / "r"))],
        r"config\.yaml differs .* train\.lr",
    ),
    Case(
        "resume-every-checkpoint-damaged",
        lambda w, d: ["pretrain", "--resume", str(all_checkpoints_damaged(w, d / "r"))],
        r"no intact checkpoint to resume from \(step-00000004",
    ),
    # ---- hbert data
    Case("prepare-negative-seq-len", lambda w, d: ["data", "prepare", "--seq-len", "-1"], r"--seq-len: expected"),
    Case("prepare-heldout-1.5", lambda w, d: ["data", "prepare", "--heldout", "1.5"], r"--heldout: expected"),
    Case(
        "prepare-no-matching-file",
        lambda w, d: [
            "data",
            "prepare",
            "--corpus",
            f"files:{d}/*.txt",
            "--out",
            str(d / "out"),
            "--decontaminate",
            "none",
            "--quiet",
        ],
        rf"no file matches .*{A}",
    ),
    Case(
        "prepare-binary-file",
        lambda w, d: [
            "data",
            "prepare",
            "--corpus",
            f"files:{write(d / 'x.txt', bytes(range(256)) * 40)}",
            "--out",
            str(d / "out"),
            "--decontaminate",
            "none",
            "--quiet",
            "--tokenizer",
            f"vocab:{w['base'] / 'corpus-src' / 'vocab.txt'}",
        ],
        rf"x\.txt looks like a binary file, not text; {A}",
    ),
    Case(
        "prepare-jsonl-line-not-object",
        lambda w, d: [
            "data",
            "prepare",
            "--corpus",
            f"files:{write(d / 'x.jsonl', LIST_LINE)}",
            "--out",
            str(d / "out"),
            "--decontaminate",
            "none",
            "--quiet",
            "--tokenizer",
            f"vocab:{w['base'] / 'corpus-src' / 'vocab.txt'}",
        ],
        r"x\.jsonl:1: a JSON line must be an object",
    ),
    Case(
        "prepare-into-a-foreign-folder",
        lambda w, d: ["data", "prepare", "--out", str(write(d / "o" / "keep.txt", "mine").parent), "--quiet"],
        r"exists and is not a prepared corpus",
    ),
    Case("prepare-unknown-corpus-kind", lambda w, d: ["data", "prepare", "--corpus", "ftp:x", "--quiet"], r"ftp:x"),
    Case("data-info-not-a-corpus", lambda w, d: ["data", "info", str(d)], r"not a prepared corpus"),
    Case(
        "data-info-manifest-without-keys",
        lambda w, d: ["data", "info", str(write(d / "c" / "manifest.json", "{}").parent)],
        r"manifest\.json: not a corpus manifest",
    ),
    Case("task-spec-missing", lambda w, d: ["data", "tasks", "--check", str(d / "s.yaml")], r"s\.yaml does not"),
    Case(
        "task-spec-malformed-yaml",
        lambda w, d: ["data", "tasks", "--check", str(write(d / "s.yaml", "a: [\n"))],
        r"s\.yaml line \d+: not valid YAML",
    ),
    Case(
        "task-spec-file-outside",
        lambda w, d: ["data", "tasks", "--check", str(spec_with(d / "in", "{train: ../outside.csv}"))],
        rf"files\.train='\.\./outside\.csv' points outside the spec's folder; {A}",
    ),
    Case(
        "task-spec-absolute-file",
        lambda w, d: ["data", "tasks", "--check", str(spec_with(d, "{train: /etc/hostname}"))],
        r"points outside the spec's folder",
    ),
    Case(
        "task-empty-train-csv",
        lambda w, d: ["data", "tasks", "--check", str(spec_with(d, train="text,label\n"))],
        rf"train\.csv: no rows; {A}",
    ),
    Case(
        "task-jsonl-not-object",
        lambda w, d: [
            "data",
            "tasks",
            "--check",
            str(spec_with(d, "{train: t.jsonl}", train='{"text": "a", "label": 0}\n[1]\n', name="t.jsonl")),
        ],
        r"t\.jsonl line 2: a JSON object",
    ),
    Case(
        "task-jsonl-broken-json",
        lambda w, d: [
            "data",
            "tasks",
            "--check",
            str(spec_with(d, "{train: t.jsonl}", train='{"text": "a",\n', name="t.jsonl")),
        ],
        r"t\.jsonl line 1: not valid JSON",
    ),
    Case(
        "task-unknown-spec-key",
        lambda w, d: ["data", "tasks", "--check", str(spec_with(d, extra="lables: 2\n"))],
        rf"unknown key\(s\) lables; {A}",
    ),
    Case(
        "task-label-out-of-range",
        lambda w, d: ["data", "tasks", "--check", str(spec_with(d, train="text,label\na,0\nb,7\n"))],
        r"row 2: label 7 outside 0\.\.1",
    ),
    Case(
        "task-missing-column",
        lambda w, d: ["data", "tasks", "--check", str(spec_with(d, train="txt,label\na,0\n"))],
        r"column 'text' missing \(columns: txt, label\)",
    ),
    Case(
        "task-unsupported-file-type",
        lambda w, d: ["data", "tasks", "--check", str(spec_with(d, "{train: t.xlsx}", train="x", name="t.xlsx"))],
        rf"unsupported file type; {A}: \.csv",
    ),
    Case(
        "task-files-not-a-mapping",
        lambda w, d: ["data", "tasks", "--check", str(spec_with(d, "train.csv"))],
        r"files must map split names to data files",
    ),
    # ---- hbert finetune / eval / bench
    Case(
        "finetune-hub-name-unreachable",  # a hub id is tried (offline here), not refused unseen
        lambda w, d: ["finetune", "someorg/somemodel", str(w["spec"] / "spec.yaml")],
        r"someorg/somemodel is not a local folder, nor loadable from the hub \(.*\); accepted",
    ),
    Case("finetune-unknown-task", lambda w, d: ["finetune", str(w["ckpt"]), "sst3"], rf"unknown task 'sst3'; {A}"),
    Case(
        "finetune-missing-checkpoint",
        lambda w, d: ["finetune", str(d / "ckpt"), str(w["spec"] / "spec.yaml")],
        r"ckpt does not exist; accepted: a checkpoint folder",
    ),
    Case(
        "finetune-foreign-code",
        lambda w, d: ["finetune", str(w["evil"]), str(w["spec"] / "spec.yaml")],
        r"ships its own Python code.*--trust-remote-code",
    ),
    Case(
        "finetune-corrupt-config-json",
        lambda w, d: ["finetune", str(corrupt_config_json(w, d / "c")), str(w["spec"] / "spec.yaml")],
        r"c is not a model checkpoint folder \(.*config\.json.*\); accepted",
    ),
    Case(
        "finetune-truncated-weights",
        lambda w, d: ["finetune", str(truncated_weights(w, d / "c")), str(w["spec"] / "spec.yaml")],
        rf"the weights cannot be read .*{A}",
    ),
    Case(
        "finetune-epochs-not-a-number",
        lambda w, d: ["finetune", str(w["ckpt"]), "rt-polarity", "epochs=many"],
        r"epochs: cannot use 'many' \(expected int\)",
    ),
    Case(
        "finetune-epochs-0",
        lambda w, d: ["finetune", str(w["ckpt"]), "rt-polarity", "epochs=0"],
        rf"epochs=0; {A}: >= 1",
    ),
    Case("finetune-negative-lr", lambda w, d: ["finetune", str(w["ckpt"]), "rt-polarity", "lr=-1"], rf"lr=-1.0; {A}"),
    Case(
        "finetune-unknown-setting",
        lambda w, d: ["finetune", str(w["ckpt"]), "rt-polarity", "epoch=1"],
        r"unknown fine-tuning setting 'epoch'; did you mean 'epochs'",
    ),
    Case(
        "finetune-unknown-protocol",
        lambda w, d: ["finetune", str(w["ckpt"]), "rt-polarity", "protocol=quick"],
        rf"unknown protocol 'quick'; {A}: sane, small, author",
    ),
    Case("eval-zero-seeds", lambda w, d: ["eval", str(w["ckpt"]), "--seeds", "0"], r"--seeds: expected a whole"),
    Case(
        "eval-override-after-options",
        lambda w, d: ["eval", str(w["ckpt"]), "--suite", "nosuchtask", "--seeds", "2", f"out={d / 'o'}"],
        rf"unknown task 'nosuchtask'; {A}",
    ),
    Case("bench-foreign-code", lambda w, d: ["bench", "inference", str(w["evil"])], r"ships its own Python code"),
    Case("bench-zero-length", lambda w, d: ["bench", "inference", "bert", "--lengths", "0,128"], r"--lengths"),
    Case("bench-missing-folder", lambda w, d: ["bench", "inference", str(d / "x")], rf"not a checkpoint folder; {A}"),
    # ---- hbert compare
    Case("recipe-missing", lambda w, d: ["compare", str(d / "r.yaml")], r"recipe .*r\.yaml does not exist"),
    Case(
        "recipe-malformed-yaml",
        lambda w, d: ["compare", str(recipe(d, "arms: {a: [\n"))],
        r"recipe\.yaml line \d+: not valid YAML",
    ),
    Case(
        "recipe-arms-a-list",
        lambda w, d: ["compare", str(recipe_with(d, "arms: [bert, hbert]\n"))],
        r"arms must map arm names to lists of overrides",
    ),
    Case(
        "recipe-arm-escapes-out",
        lambda w, d: ["compare", str(recipe_with(d, "arms: {../../x: [model=bert]}\n"))],
        rf"arm name '\.\./\.\./x' is not a safe folder name; {A}",
    ),
    Case(
        "recipe-name-escapes-runs",
        lambda w, d: ["compare", str(recipe(d, "name: ../x\nbase: b\nbudget: 1m\narms: {a: []}\n"))],
        r"name '\.\./x' is not a safe folder name",
    ),
    Case(
        "recipe-bad-seeds",
        lambda w, d: ["compare", str(recipe_with(d, "arms: {a: []}\nseeds: [zero]\n"))],
        rf"seeds=\['zero'\]; {A}",
    ),
    Case(
        "recipe-unknown-key",
        lambda w, d: ["compare", str(recipe_with(d, "arms: {a: []}\nseed: [0]\n"))],
        rf"unknown recipe key\(s\) seed; {A}",
    ),
    Case(
        "recipe-arm-unknown-config-key",
        lambda w, d: ["compare", str(recipe_with(d, "arms: {a: [train.lrate=1]}\n")), f"out={d / 'o'}"],
        r"arm 'a'.*unknown config key 'train\.lrate'",
    ),
    Case(
        "recipe-override-without-value",
        lambda w, d: ["compare", str(recipe_with(d, "arms: {a: []}\n")), "seeds"],
        r"expected key=value, got 'seeds'",
    ),
]


def _run_case(world: dict, case: Case) -> dict:
    folder = world["base"] / "cases" / case.name
    folder.mkdir(parents=True)
    argv = case.argv(world, folder)
    before = snapshot(folder)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([SOURCES, os.environ.get("PYTHONPATH", "")]),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HBERT_CACHE": str(world["base"] / "cache"),
        "HBERT_DEBUG": "",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "hbert", *argv], cwd=folder, env=env, capture_output=True, text=True, timeout=300
    )
    return {"rc": proc.returncode, "stderr": proc.stderr, "before": before, "after": snapshot(folder)}


@pytest.fixture(scope="module")
def results(world) -> dict:
    shared = {k: snapshot(world[k]) for k in ("run", "spec", "evil")}
    shared["corpus"] = snapshot(Path(world["corpus"]))
    with ThreadPoolExecutor(2) as pool:
        done = dict(zip([c.name for c in CASES], pool.map(lambda c: _run_case(world, c), CASES)))
    done["__shared__"] = (
        shared,
        {k: snapshot(world[k]) for k in ("run", "spec", "evil")} | {"corpus": snapshot(Path(world["corpus"]))},
    )
    return done


def test_at_least_fifty_distinct_cases():
    assert len(CASES) >= 50 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gets_one_clear_line(results, case):
    got = results[case.name]
    stderr = got["stderr"]
    assert got["rc"] != 0, stderr
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, stderr
    assert re.search(case.expect, errors[0]), errors[0]
    assert "HBERT_DEBUG" not in errors[0], errors[0]  # an expected error, not an internal one
    assert got["after"] == got["before"], "the case's folder changed: something was half-written or left behind"


def test_nothing_shared_changed_and_no_foreign_code_ran(results, world):
    before, after = results["__shared__"]
    assert before == after
    assert not (world["evil"] / "RAN").exists()
    assert not (world["base"] / "x").exists() and not (world["base"] / "cases" / "x").exists()
