"""Bad input through the real command line: every case runs ``python -m hbert`` in a subprocess and must end with a
non-zero exit, exactly one error line that names the problem (and, where there is a choice, what is accepted), no
traceback, nothing left behind in its folder and nothing changed in the shared run, corpus and checkpoints.

Every case answers "y" to any question on its standard input: a loader that asked whether to run a checkpoint's
own code would run it, and the planted code would leave a file in a folder that must stay byte-identical.

The tiny corpus, run and checkpoints are built once for the module; the cases run two at a time. ``CASES`` holds
the first pass, ``ISSUE_CASES`` the inputs the second hostile-input pass reported, ``OWN_CASES`` further inputs
found while fixing those."""

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


EVIL_TOKENIZER = """import pathlib
pathlib.Path(MARKER).write_text("remote code ran")
from transformers import BertTokenizer


class EvilTokenizer(BertTokenizer):
    pass
"""


def plant_tokenizer_code(folder: Path) -> Path:
    """Make the tokenizer in ``folder`` name a class of its own, defined in a shipped file that leaves a marker."""
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = "EvilTokenizer"
    config["auto_map"] = {"AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "tokenization_evil.py").write_text(EVIL_TOKENIZER.replace("MARKER", repr(str(folder / "RAN"))))
    return folder


SHARED = ("run", "spec", "evil", "evil_tok", "evil_tokdir", "evil_corpus", "tokens")
PLANTED = ("evil", "evil_tok", "evil_tokdir", "evil_corpus/tokenizer")


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
    evil_tok = plant_tokenizer_code(Path(shutil.copytree(run / "final", base / "evil_tok")))
    evil_tokdir = plant_tokenizer_code(Path(shutil.copytree(Path(corpus) / "tokenizer", base / "evil_tokdir")))
    evil_corpus = Path(shutil.copytree(corpus, base / "evil_corpus"))
    plant_tokenizer_code(evil_corpus / "tokenizer")
    tokens = base / "tokens"
    tokens.mkdir()
    rows = "".join(json.dumps({"words": [f"w{i}", f"w{i + 1}"], "tags": ["B-X", "O"]}) + "\n" for i in range(8))
    (tokens / "train.jsonl").write_text(rows)
    (tokens / "spec.yaml").write_text(
        "name: tags\nfiles: {train: train.jsonl, validation: train.jsonl}\ntext_fields: [words]\nlabel_field: tags\n"
        "kind: token-classification\nlabel_names: [O, B-X]\nmetrics: [entity_f1]\n"
    )
    return {"base": base, "corpus": corpus, "run": run, "ckpt": run / "final", "spec": spec, "evil": evil,
            "evil_tok": evil_tok, "evil_tokdir": evil_tokdir, "evil_corpus": evil_corpus, "tokens": tokens}  # fmt: skip


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


def interrupted_copy(w: dict, into: Path) -> Path:
    """A copy of the finished run as it was before final/ and summary.json: a run --resume continues."""
    run = copy_run(w, into)
    shutil.rmtree(run / "final")
    (run / "summary.json").unlink()
    return run


def edited_config_run(w: dict, into: Path) -> Path:
    run = interrupted_copy(w, into)
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(re.sub(r"\n  lr: [^\n]+", "\n  lr: 0.1", text, count=1))
    return run


def all_checkpoints_damaged(w: dict, into: Path) -> Path:
    run = interrupted_copy(w, into)
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


def lying_checkpoint(w: dict, into: Path, model_type: str = "bert") -> Path:
    """An hbert checkpoint whose config.json names another model type: none of its weights fit that type."""
    ckpt = checkpoint_copy(w, into)
    config = json.loads((ckpt / "config.json").read_text())
    config["model_type"] = model_type
    config.pop("auto_map", None)
    (ckpt / "config.json").write_text(json.dumps(config))
    return ckpt


def partial_weights(w: dict, into: Path) -> Path:
    """An hbert checkpoint whose weights file lacks one encoder tensor (the file itself reads fine)."""
    from safetensors.torch import load_file, save_file

    ckpt = checkpoint_copy(w, into)
    tensors = load_file(ckpt / "model.safetensors")
    del tensors["hbert.encoder.layers.1.ffn.out.weight"]
    save_file(tensors, ckpt / "model.safetensors", metadata={"format": "pt"})
    return ckpt


def without_tokenizer(w: dict, into: Path) -> Path:
    ckpt = checkpoint_copy(w, into)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (ckpt / name).unlink(missing_ok=True)
    return ckpt


def finished_run_without_checkpoints(w: dict, into: Path) -> Path:
    run = copy_run(w, into)
    shutil.rmtree(run / "checkpoints")
    return run


def interrupted_run_without_latest(w: dict, into: Path) -> Path:
    """A run that stopped after its checkpoints were written but before final/, its ``latest`` pointer lost."""
    run = interrupted_copy(w, into)
    (run / "checkpoints" / "latest").unlink()
    return run


def regression_spec(folder: Path, labels: list[str]) -> Path:
    write(folder / "train.csv", "text,label\n" + "".join(f"w{i} w{i + 1},{v}\n" for i, v in enumerate(labels)))
    return write(
        folder / "spec.yaml",
        "name: r\nfiles: {train: train.csv, validation: train.csv}\ntext_fields: [text]\nkind: regression\n"
        "metrics: [pearson]\n",
    )


def jsonl_spec(folder: Path, rows: list[dict]) -> Path:
    return spec_with(folder, "{train: t.jsonl}", train="".join(json.dumps(r) + "\n" for r in rows), name="t.jsonl")


def named_spec(folder: Path, name: str) -> Path:
    write(folder / "train.csv", "text,label\nw1 w2,0\nw3 w4,1\n")
    return write(
        folder / "spec.yaml",
        f"name: {name}\nfiles: {{train: train.csv, validation: train.csv}}\ntext_fields: [text]\n"
        "kind: classification\nnum_labels: 2\nmetrics: [accuracy]\n",
    )


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
    Case(
        "pretrain-out-not-permitted",
        lambda w, d: [*pre(w), "out=/sys/hbert-run"],
        r"(not permitted|Permission denied): /sys/hbert-run",
    ),
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
        r"epochs: expected an integer, got 'many'",
    ),
    Case(
        "finetune-epochs-0",
        lambda w, d: ["finetune", str(w["ckpt"]), "rt-polarity", "epochs=0"],
        rf"epochs=0; {A}: a whole number >= 1",
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
        rf"unknown protocol 'quick'; {A}: sane, small, minilm, author",
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
        "recipe-arm-setting-out-of-range",
        lambda w, d: cmp_(d, "arms: {a: [masking=entropy, masking.pool=0.5]}\n"),
        r"arm 'a'.*masking\.pool=0\.5; accepted: a number >= 1",
    ),
    Case(
        "recipe-override-without-value",
        lambda w, d: ["compare", str(recipe_with(d, "arms: {a: []}\n")), "seeds"],
        r"expected key=value, got 'seeds'",
    ),
]


PLANTED_CODE = r"ships its own Python code"
BAD_LABEL_ROWS = "text,label\na,0\nb,5\n"
NO_MASK_VOCAB = "[PAD]\n[UNK]\n[CLS]\n[SEP]\na\n"
THREE_FIELDS = "name: t\nfiles: {train: t.csv}\ntext_fields: [a, b, c]\nkind: regression\nmetrics: [pearson]\n"
FT = ["epochs=1", "floors=none", "progress=false"]


def ft(w: dict, checkpoint, *items: str, spec: str | None = None) -> list[str]:
    """A one-epoch fine-tuning command line on the shared tiny task."""
    return ["finetune", str(checkpoint), spec or str(w["spec"] / "spec.yaml"), *FT, *items]


def prep(w: dict, d: Path, *options: str) -> list[str]:
    """A quick ``data prepare`` of the shared corpus's text with its vocabulary into the case's folder."""
    return ["data", "prepare", "--corpus", f"files:{w['base'] / 'corpus-src' / 'text'}/*.txt", "--out",
            str(d / "out"), "--decontaminate", "none", "--quiet", "--seq-len", "32",
            "--tokenizer", f"vocab:{w['base'] / 'corpus-src' / 'vocab.txt'}", *options]  # fmt: skip


def conv(source, out=None) -> list[str]:
    """``hbert convert SOURCE OUT`` (OUT: a new path in the case's folder, never created by a refused case)."""
    return ["convert", str(source), str(out or "out")]


def classifier_config(w: dict, into: Path) -> Path:
    """A copy of the shared checkpoint whose config.json says it is a fine-tuned classifier."""
    ckpt = checkpoint_copy(w, into)
    config = json.loads((ckpt / "config.json").read_text())
    config["architectures"] = ["HBertForSequenceClassification"]
    (ckpt / "config.json").write_text(json.dumps(config))
    return ckpt


def cmp_(d: Path, body: str, *items: str) -> list[str]:
    """``hbert compare`` of a recipe (GOOD_ARMS plus ``body``) written into the case's folder."""
    return ["compare", str(recipe_with(d, body)), f"out={d / 'o'}", *items]


# The inputs the second hostile-input pass reported (each fixed; the case shows the fix through the CLI).
ISSUE_CASES = [
    # ---- consent: without the opt-in every loading path refuses a checkpoint's or tokenizer's own code
    Case(
        "info-planted-config",
        lambda w, d: ["info", str(w["evil"])],
        rf"{PLANTED_CODE}, which loading it would run; hbert does not run",
    ),
    Case(
        "init-source-planted-config",
        lambda w, d: pre(w, "init=complete", f"init.source={w['evil']}"),
        rf"init\.source .*{PLANTED_CODE}",
    ),
    Case(
        "token-task-planted-config",
        lambda w, d: ft(w, w["evil"], spec=str(w["tokens"] / "spec.yaml")),
        rf"{PLANTED_CODE}.*--trust-remote-code",
    ),
    Case("finetune-planted-tokenizer", lambda w, d: ft(w, w["evil_tok"]), rf"{PLANTED_CODE}.*--trust-remote-code"),
    Case(
        "token-task-planted-tokenizer",
        lambda w, d: ft(w, w["evil_tok"], spec=str(w["tokens"] / "spec.yaml")),
        rf"evil_tok {PLANTED_CODE}",
    ),
    Case(
        "teacher-planted-tokenizer",
        lambda w, d: pre(w, "masking=entropy", f"masking.teacher={w['evil_tok']}"),
        rf"{PLANTED_CODE}.*masking\.trust_remote_code=true",
    ),
    Case(
        "corpus-planted-tokenizer",
        lambda w, d: [*pre(w), f"corpus={w['evil_corpus']}"],
        rf"evil_corpus/tokenizer {PLANTED_CODE}.*; hbert does not run such code here",
    ),
    Case(
        "prepare-planted-tokenizer",
        lambda w, d: [*prep(w, d), "--tokenizer", str(w["evil_tokdir"])],
        rf"evil_tokdir {PLANTED_CODE}",
    ),
    Case(
        "spec-name-climbs-out",
        lambda w, d: ft(w, w["ckpt"], f"out={d / 'o'}", spec=str(named_spec(d / "s", "../../../X"))),
        r"task name '\.\./\.\./\.\./X' is not a safe file name",
    ),
    Case(
        "spec-name-absolute",
        lambda w, d: ["data", "tasks", "--check", str(named_spec(d, "/tmp/hbert-x"))],
        r"task name '/tmp/hbert-x' is not a safe file name",
    ),
    # ---- nothing overwritten
    Case(
        "finetune-save-onto-its-checkpoint",
        lambda w, d: ft(w, w["ckpt"], "--save", str(w["ckpt"])),
        r"--save .*final would overwrite the checkpoint being fine-tuned",
    ),
    Case(
        "finetune-save-existing-file",
        lambda w, d: ft(w, w["ckpt"], "--save", str(write(d / "m.bin", "mine"))),
        r"--save=.*m\.bin is a file; accepted: a new or empty folder",
    ),
    Case(
        "finetune-out-existing-file",
        lambda w, d: ft(w, w["ckpt"], f"out={write(d / 'o.txt', 'mine')}"),
        r"out=.*o\.txt is a file",
    ),
    Case(
        "pretrain-over-finished-run-without-checkpoints",
        lambda w, d: [*pre(w), f"out={finished_run_without_checkpoints(w, d / 'r')}"],
        r"already holds a run \(finished",
    ),
    Case(
        "pretrain-over-run-missing-latest",
        lambda w, d: [*pre(w), f"out={interrupted_run_without_latest(w, d / 'r')}"],
        r"already holds a run; resume it with --resume",
    ),
    Case(
        "pretrain-over-user-files",
        lambda w, d: [*pre(w), f"out={write(d / 'mine' / 'notes.txt', 'mine').parent}"],
        r"holds other files \(notes\.txt\); accepted: a new or empty folder",
    ),
    Case(
        "resume-finished-run",
        lambda w, d: ["pretrain", "--resume", str(copy_run(w, d / "r"))],
        r"the run is finished \(4 steps, final/ exported\); nothing to resume",
    ),
    # ---- nothing silently wrong
    Case("recipe-seed-twice", lambda w, d: cmp_(d, "arms: {a: []}\nseeds: [0, 0]\n"), r"repeats 0"),
    Case(
        "recipe-arm-twice",
        lambda w, d: cmp_(d, "arms:\n  a: [train.lr=0.001]\n  a: [train.lr=0.01]\n"),
        r"line \d+: not valid YAML \(key 'a' appears twice",
    ),
    Case(
        "finetune-config-names-another-model-type",
        lambda w, d: ft(w, lying_checkpoint(w, d / "c")),
        r"weights are not in the checkpoint .*model_type 'bert'\) does not describe its weights",
    ),
    Case(
        "task-regression-label-nan",
        lambda w, d: ["data", "tasks", "--check", str(regression_spec(d, ["0.5", "nan", "1"]))],
        r"row 2: label 'nan' is not a finite number",
    ),
    Case(
        "task-regression-label-infinite",
        lambda w, d: ["data", "tasks", "--check", str(regression_spec(d, ["inf", "0", "1"]))],
        r"row 1: label 'inf' is not a finite number",
    ),
    Case(
        "recipe-suite-label-outside-classes",
        lambda w, d: cmp_(d, f"arms: {{a: []}}\nsuite: [{spec_with(d / 's', train=BAD_LABEL_ROWS)}]\n"),
        r"row 2: label 5 outside 0\.\.1",
    ),
    Case(
        "finetune-fractional-epochs",
        lambda w, d: ["finetune", str(w["ckpt"]), str(w["spec"] / "spec.yaml"), "epochs=1.9"],
        r"epochs: expected an integer, got 1\.9",
    ),
    Case("finetune-fractional-seed", lambda w, d: ft(w, w["ckpt"], "seed=0.5"), r"seed: expected an integer, got 0\.5"),
    # ---- hangs
    Case(
        "info-hundred-thousand-layers",
        lambda w, d: ["info", "bert", "num_hidden_layers=100000"],
        r"num_hidden_layers=100000; accepted: a whole number >= 1 and <= 1024",
    ),
]

# Further inputs of the same kinds, tried while fixing the ones above.
OWN_CASES = [
    # ---- model shapes refused at once
    Case("info-zero-layers", lambda w, d: ["info", "bert", "num_hidden_layers=0"], r"num_hidden_layers=0; accepted"),
    Case("info-negative-width", lambda w, d: ["info", "bert", "hidden_size=-8"], r"hidden_size=-8; accepted"),
    Case("info-dropout-1.5", lambda w, d: ["info", "bert", "hidden_dropout_prob=1.5"], r"in \[0, 1\)"),
    Case("info-huge-vocab", lambda w, d: ["info", "bert", "vocab_size=10000000000"], r"vocab_size=10000000000"),
    Case("info-zero-layer-norm-eps", lambda w, d: ["info", "bert", "layer_norm_eps=0"], r"layer_norm_eps=0"),
    Case("info-classifier-dropout-2", lambda w, d: ["info", "bert", "classifier_dropout=2"], r"classifier_dropout=2"),
    Case("info-fractional-layers", lambda w, d: ["info", "bert", "num_hidden_layers=2.5"], r"expected an integer"),
    Case("info-bool-width", lambda w, d: ["info", "bert", "hidden_size=true"], r"hidden_size: expected an integer"),
    Case(
        "info-a-file",
        lambda w, d: ["info", str(write(d / "model.bin", "x"))],
        r"is neither a preset .* nor a checkpoint folder",
    ),
    Case(
        "info-unsupported-model-type",
        lambda w, d: ["info", str(write(d / "m" / "config.json", '{"model_type": "vit"}').parent)],
        r"model_type 'vit' is not supported; accepted: hbert, bert",
    ),
    Case("showcase-5000-layers", lambda w, d: ["showcase", "num_hidden_layers=5000"], r"num_hidden_layers=5000"),
    Case("info-heads-beyond-limit", lambda w, d: ["info", "bert", "num_attention_heads=8192"], r"num_attention_heads"),
    # ---- pretraining: the run folder and the settings
    Case("pretrain-out-is-a-file", lambda w, d: [*pre(w), f"out={write(d / 'f', 'x')}"], r"out=.*f is a file"),
    Case("pretrain-out-is-root", lambda w, d: [*pre(w), "out=/"], r"/ is a file-system root"),
    Case(
        "pretrain-config-key-twice",
        lambda w, d: ["pretrain", str(write(d / "c.yaml", "train:\n  lr: 0.1\ntrain:\n  lr: 0.2\n"))],
        r"c\.yaml line 3: not valid YAML \(key 'train' appears twice",
    ),
    Case(
        "pretrain-nested-key-twice",
        lambda w, d: ["pretrain", str(write(d / "c.yaml", "train: {lr: 0.1, lr: 0.2}\n"))],
        r"key 'lr' appears twice",
    ),
    Case("pretrain-100000-layers", lambda w, d: pre(w, "model.num_hidden_layers=100000"), r"num_hidden_layers=100000"),
    Case("pretrain-negative-dropout", lambda w, d: pre(w, "model.hidden_dropout_prob=-0.1"), r"hidden_dropout_prob"),
    Case(
        "pretrain-init-source-lying-type",
        lambda w, d: pre(w, "init=complete", f"init.source={lying_checkpoint(w, d / 'c')}"),
        r"init\.source .*weights are not in the checkpoint",
    ),
    Case(
        "pretrain-init-source-partial-weights",
        lambda w, d: pre(w, "init=complete", f"init.source={partial_weights(w, d / 'c')}"),
        r"1 of the model's \d+ weights are not in the checkpoint \(first: hbert\.encoder\.layers\.1\.ffn\.out",
    ),
    Case(
        "pretrain-teacher-lying-type",
        lambda w, d: pre(w, "masking=entropy", f"masking.teacher={lying_checkpoint(w, d / 'c')}"),
        r"weights are not in the checkpoint",
    ),
    Case(
        "pretrain-kd-teacher-planted-config",
        lambda w, d: pre(w, "objective.kd.alpha=0.5", f"objective.kd.teacher={w['evil']}"),
        rf"{PLANTED_CODE}.*masking\.trust_remote_code=true",
    ),
    Case(
        "pretrain-corpus-manifest-a-list",
        lambda w, d: pre(w, f"corpus={write(copy_corpus(w, d / 'c') / 'manifest.json', '[]').parent}"),
        r"manifest\.json: not a corpus manifest",
    ),
    Case("pretrain-corpus-a-file", lambda w, d: pre(w, f"corpus={write(d / 'c.bin', 'x')}"), r"not a prepared corpus"),
    Case(
        "resume-folder-of-user-files",
        lambda w, d: ["pretrain", "--resume", str(write(d / "r" / "notes.txt", "x").parent)],
        r"no config\.yaml there",
    ),
    Case(
        "resume-config-a-list",
        lambda w, d: ["pretrain", "--resume", str(write(d / "r" / "config.yaml", "- a\n").parent)],
        r"not a run configuration",
    ),
    Case(
        "resume-config-key-twice",
        lambda w, d: ["pretrain", "--resume", str(write(d / "r" / "config.yaml", "out: a\nout: b\n").parent)],
        r"key 'out' appears twice",
    ),
    Case("pretrain-fractional-seed", lambda w, d: pre(w, "train.seed=1.5"), r"train\.seed: expected an integer"),
    Case("pretrain-fractional-batch", lambda w, d: pre(w, "train.batch_size=8.5"), r"expected an integer"),
    Case(
        "pretrain-negative-budget", lambda w, d: pre(w, "budget=-5-steps"), r"cannot parse budget '-5-steps'; accepted"
    ),
    Case(
        "pretrain-checkpoint-every-often",
        lambda w, d: pre(w, "train.checkpoint_every=often"),
        r"train\.checkpoint_every: cannot parse .*'often'; accepted",
    ),
    Case("pretrain-pattern-too-long", lambda w, d: pre(w, "model.layer_types=SAS"), r"layer_types has 3 entries"),
    Case("pretrain-section-as-value", lambda w, d: pre(w, "train=5"), r"train is a section; set one of its keys"),
    # ---- data prepare
    Case("prepare-out-is-a-file", lambda w, d: prep(w, d, "--out", str(write(d / "f", "x"))), r"is a file"),
    Case(
        "prepare-tokenizer-empty-folder",
        lambda w, d: [*prep(w, d), "--tokenizer", str((d / "tok").mkdir() or d / "tok")],
        r"tok holds no tokenizer \(tokenizer\.json, tokenizer_config\.json or vocab\.txt\); accepted",
    ),
    Case("prepare-train-size-10", lambda w, d: [*prep(w, d), "--tokenizer", "train:10"], r"train:10 is too small"),
    Case("prepare-train-size-words", lambda w, d: [*prep(w, d), "--tokenizer", "train:lots"], r"train:N with N"),
    Case("prepare-seq-len-4", lambda w, d: [*prep(w, d), "--seq-len", "4"], r"seq_len=4 is too short"),
    Case(
        "prepare-vocab-without-mask",
        lambda w, d: [*prep(w, d), "--tokenizer", f"vocab:{write(d / 'v.txt', NO_MASK_VOCAB)}"],
        r"lacks the special tokens \[MASK\]",
    ),
    Case(
        "prepare-empty-text-file",
        lambda w, d: [*prep(w, d), "--corpus", f"files:{write(d / 'e.txt', '')}"],
        r"produced no documents",
    ),
    Case(
        "prepare-into-another-corpus",
        lambda w, d: prep(w, d, "--out", str(copy_corpus(w, d / "c")), "--seq-len", "16"),
        r"holds a different corpus",
    ),
    Case(
        "prepare-decontaminate-unknown-task",
        lambda w, d: [*prep(w, d), "--decontaminate", "nosuchtask"],
        r"unknown task 'nosuchtask'",
    ),
    Case("prepare-zero-documents", lambda w, d: [*prep(w, d), "--max-documents", "0"], r"--max-documents: expected"),
    Case(
        "data-info-manifest-a-list",
        lambda w, d: ["data", "info", str(write(d / "c" / "manifest.json", "[]").parent)],
        r"manifest\.json: not a corpus manifest",
    ),
    # ---- task specs
    Case(
        "task-name-with-slash",
        lambda w, d: ["data", "tasks", "--check", str(named_spec(d, "a/b"))],
        r"task name 'a/b' is not a safe file name",
    ),
    Case(
        "task-name-hidden-file",
        lambda w, d: ["data", "tasks", "--check", str(named_spec(d, ".hidden"))],
        r"task name '\.hidden' is not a safe file name",
    ),
    Case(
        "task-fractional-class",
        lambda w, d: ["data", "tasks", "--check", str(jsonl_spec(d, [{"text": "a", "label": 1.5}]))],
        r"row 1: label 1\.5; accepted: 0\.\.1",
    ),
    Case(
        "task-boolean-class",
        lambda w, d: ["data", "tasks", "--check", str(jsonl_spec(d, [{"text": "a", "label": True}]))],
        r"row 1: label True; accepted",
    ),
    Case(
        "task-text-null",
        lambda w, d: ["data", "tasks", "--check", str(jsonl_spec(d, [{"text": None, "label": 0}]))],
        r"row 1: text is null, not a text",
    ),
    Case(
        "task-text-a-list",
        lambda w, d: ["data", "tasks", "--check", str(jsonl_spec(d, [{"text": ["a"], "label": 0}]))],
        r"text is \[\"a\"\], not a text",
    ),
    Case(
        "task-spec-key-twice",
        lambda w, d: ["data", "tasks", "--check", str(spec_with(d, extra="kind: regression\n"))],
        r"key 'kind' appears twice",
    ),
    Case(
        "task-three-text-fields",
        lambda w, d: ["data", "tasks", "--check", str(write(d / "s.yaml", THREE_FIELDS))],
        r"text_fields must name 1 or 2 columns",
    ),
    Case(
        "task-files-empty-mapping",
        lambda w, d: ["data", "tasks", "--check", str(spec_with(d, "{}"))],
        r"files must map split names",
    ),
    # ---- fine-tuning, evaluation, benchmarks
    Case(
        "finetune-save-folder-with-files",
        lambda w, d: ft(w, w["ckpt"], "--save", str(write(d / "m" / "keep.txt", "mine").parent)),
        r"--save=.*m already holds files \(keep\.txt\)",
    ),
    Case(
        "finetune-save-around-checkpoint",
        lambda w, d: ft(w, w["ckpt"], "--save", str(w["run"])),
        r"would overwrite the checkpoint being fine-tuned",
    ),
    Case(
        "finetune-save-inside-checkpoint",
        lambda w, d: ft(w, w["ckpt"], "--save", str(w["ckpt"] / "classifier")),
        r"would overwrite the checkpoint being fine-tuned",
    ),
    Case(
        "finetune-fractional-batch",
        lambda w, d: ft(w, w["ckpt"], "batch_size=2.5"),
        r"batch_size: expected an integer, got 2\.5",
    ),
    Case(
        "finetune-patience-true",
        lambda w, d: ft(w, w["ckpt"], "patience=true"),
        r"patience: expected an integer, got True",
    ),
    Case("finetune-infinite-lr", lambda w, d: ft(w, w["ckpt"], "lr=.inf"), r"lr=inf; accepted"),
    Case("finetune-fp16", lambda w, d: ft(w, w["ckpt"], "precision=fp16"), r"precision='fp16'; accepted: fp32, bf16"),
    Case("finetune-floors-some", lambda w, d: ft(w, w["ckpt"], "floors=some"), r"floors='some'; accepted"),
    Case(
        "finetune-checkpoint-a-file",
        lambda w, d: ft(w, write(d / "m.safetensors", "x")),
        r"is a file; accepted: a checkpoint folder",
    ),
    Case(
        "finetune-partial-weights",
        lambda w, d: ft(w, partial_weights(w, d / "c")),
        r"1 of the model's \d+ weights are not in the checkpoint",
    ),
    Case("finetune-no-tokenizer", lambda w, d: ft(w, without_tokenizer(w, d / "c")), r"has no tokenizer"),
    Case(
        "token-task-lying-type",
        lambda w, d: ft(w, lying_checkpoint(w, d / "c"), spec=str(w["tokens"] / "spec.yaml")),
        r"weights are not in the checkpoint",
    ),
    Case("eval-out-a-file", lambda w, d: ["eval", str(w["ckpt"]), f"out={write(d / 'e', 'x')}"], r"out=.*e is a file"),
    Case(
        "eval-planted-tokenizer",
        lambda w, d: ["eval", str(w["evil_tok"]), "--suite", str(w["spec"] / "spec.yaml"), "floors=none"],
        rf"{PLANTED_CODE}.*--trust-remote-code",
    ),
    Case(
        "bench-lying-type",
        lambda w, d: ["bench", "inference", str(lying_checkpoint(w, d / "c")), "--lengths", "8", "--repeats", "1"],
        r"weights are not in the checkpoint",
    ),
    Case(
        "bench-partial-weights",
        lambda w, d: ["bench", "inference", str(partial_weights(w, d / "c")), "--lengths", "8", "--repeats", "1"],
        r"1 of the model's \d+ weights are not in the checkpoint",
    ),
    # ---- recipes
    Case(
        "recipe-fractional-finetune-seeds",
        lambda w, d: cmp_(d, "arms: {a: []}\nfinetune_seeds: 2.5\n"),
        r"finetune_seeds: expected an integer",
    ),
    Case("recipe-eval-points-words", lambda w, d: cmp_(d, "arms: {a: []}\neval_points: many\n"), r"eval_points"),
    Case(
        "recipe-suite-twice",
        lambda w, d: cmp_(d, "arms: {a: []}\nsuite: [rt-polarity, rt-polarity]\n"),
        r"suite lists rt-polarity more than once",
    ),
    Case("recipe-unknown-corpus-key", lambda w, d: cmp_(d, "arms: {a: []}\ncorpus: {seqlen: 64}\n"), r"seqlen"),
    Case("recipe-corpus-seq-len-4", lambda w, d: cmp_(d, "arms: {a: []}\ncorpus: {seq_len: 4}\n"), r"too short"),
    Case(
        "recipe-floors-maybe",
        lambda w, d: cmp_(d, "arms: {a: []}\nfloors: maybe\n"),
        r"floors: expected true or false, got 'maybe'",
    ),
    Case(
        "recipe-base-a-list",
        lambda w, d: cmp_(d, "arms: {a: []}\n", "base=[a, b]"),
        r"base: expected a text, got \['a', 'b'\]",
    ),
    Case(
        "recipe-teacher-a-list", lambda w, d: cmp_(d, "arms: {a: []}\nteacher: [x]\n"), r"teacher: expected a mapping"
    ),
    Case(
        "recipe-override-arm-twice",
        lambda w, d: cmp_(d, "arms: {a: []}\n", "arms={a: [], a: []}"),
        r"key 'a' appears twice",
    ),
    Case(
        "recipe-out-a-file",
        lambda w, d: ["compare", str(recipe_with(d, "arms: {a: []}\n")), f"out={write(d / 'f', 'x')}"],
        r"out=.*f is a file",
    ),
    Case(
        "recipe-out-user-files",
        lambda w, d: ["compare", str(recipe_with(d, "arms: {a: []}\n")), f"out={write(d / 'u' / 'k', 'x').parent}"],
        r"holds other files \(k\) and no recipe\.yaml",
    ),
    Case("recipe-unknown-baseline", lambda w, d: cmp_(d, "arms: {a: []}\nbaseline: b\n"), r"baseline 'b' is not"),
    # ---- hbert convert: what it reads is checked, what it writes is new, whole and outside its source
    Case("convert-missing-source", lambda w, d: conv(d / "none"), rf"none is not a folder; {A}: a checkpoint folder"),
    Case("convert-source-a-file", lambda w, d: conv(write(d / "m.bin", "x")), rf"m\.bin is not a folder; {A}"),
    Case(
        "convert-foreign-model-type",
        lambda w, d: conv(w["evil"]),
        rf"model_type 'evil' cannot be converted; {A}: bert, hbert",
    ),
    Case(
        "convert-corrupt-config-json",
        lambda w, d: conv(corrupt_config_json(w, d / "c")),
        rf"config\.json is not readable JSON .*; {A}: a checkpoint folder whose config\.json is valid JSON",
    ),
    Case(
        "convert-config-a-list",
        lambda w, d: conv(write(checkpoint_copy(w, d / "c") / "config.json", "[]").parent),
        rf"model_type None cannot be converted; {A}",
    ),
    Case("convert-out-exists", lambda w, d: conv(w["ckpt"], w["run"]), rf"run already exists; {A}: a path that does"),
    Case("convert-onto-its-source", lambda w, d: conv(w["ckpt"], w["ckpt"]), r"final already exists; accepted"),
    Case(
        "convert-out-inside-source",
        lambda w, d: conv(w["ckpt"], w["ckpt"] / "bert"),
        rf"bert is inside the checkpoint being converted .*; {A}: a new path outside it",
    ),
    Case("convert-out-parent-missing", lambda w, d: conv(w["ckpt"], d / "no" / "out"), rf"no is not a folder; {A}"),
    Case(
        "convert-out-unwritable",
        lambda w, d: conv(w["ckpt"], "/proc/hbert-convert"),
        rf"/proc/hbert-convert cannot be written \(.*\); {A}",
    ),
    Case("convert-registry-unknown", lambda w, d: conv("registry:minilm"), rf"encoder 'minilm'; {A}: minilm-l6"),
    Case(
        "convert-registry-to-bert",
        lambda w, d: [*conv("registry:minilm-l6"), "--to", "bert"],
        rf"converts to an hbert checkpoint only; {A}: --to hbert or auto",
    ),
    Case(
        "convert-hbert-to-hbert",
        lambda w, d: [*conv(w["ckpt"]), "--to", "hbert"],
        rf"is an hbert checkpoint, which converts to bert; {A}: --to bert or auto",
    ),
    Case("convert-unknown-direction", lambda w, d: [*conv(w["ckpt"]), "--to", "onnx"], r"invalid choice: 'onnx'"),
    Case("convert-lying-type", lambda w, d: conv(lying_checkpoint(w, d / "c")), r"weights are not in the checkpoint"),
    Case(
        "convert-partial-weights",
        lambda w, d: conv(partial_weights(w, d / "c")),
        r"1 of the model's \d+ weights are not in the checkpoint \(first: hbert\.encoder\.layers\.1\.ffn\.out",
    ),
    Case(
        "convert-truncated-weights",
        lambda w, d: conv(truncated_weights(w, d / "c")),
        rf"the weights cannot be read \(.*\); {A}: a complete checkpoint folder",
    ),
    Case(
        "convert-a-classifier",
        lambda w, d: conv(classifier_config(w, d / "c")),
        rf"holds a HBertForSequenceClassification, which has no masked-LM head to convert; {A}",
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
    proc = subprocess.run(  # the timeout bounds a hang only: on a busy machine a case may take minutes
        [sys.executable, "-m", "hbert", *argv], cwd=folder, env=env, capture_output=True, text=True, timeout=3600,
        input="y\n" * 8,  # "yes" to any question: code a loader asked about would run, and be caught
    )  # fmt: skip
    return {"rc": proc.returncode, "stderr": proc.stderr, "before": before, "after": snapshot(folder)}


ALL_CASES = CASES + ISSUE_CASES + OWN_CASES


def _shared(world: dict) -> dict:
    return {k: snapshot(world[k]) for k in SHARED} | {"corpus": snapshot(Path(world["corpus"]))}


def _selected(request) -> list[Case]:
    """The cases this session runs (all of them, unless ``-k`` picked some: iterating on a few takes seconds)."""
    names = set()
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if getattr(item, "module", None) is request.module and "case" in params:
            names.add(params["case"].name)
    return [c for c in ALL_CASES if c.name in names] or ALL_CASES


@pytest.fixture(scope="module")
def results(world, request) -> dict:
    shared = _shared(world)
    cases = _selected(request)
    with ThreadPoolExecutor(2) as pool:
        done = dict(zip([c.name for c in cases], pool.map(lambda c: _run_case(world, c), cases)))
    done["__shared__"] = (shared, _shared(world))
    return done


def test_at_least_fifty_distinct_cases():
    assert len(CASES) >= 50 and len({c.name for c in ALL_CASES}) == len(ALL_CASES)


def test_at_least_sixty_own_inputs_beyond_the_reported_ones():
    assert len(OWN_CASES) >= 60


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.name for c in ALL_CASES])
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
    assert not any((world["base"] / planted / "RAN").exists() for planted in PLANTED)
    assert not (world["base"] / "x").exists() and not (world["base"] / "cases" / "x").exists()
