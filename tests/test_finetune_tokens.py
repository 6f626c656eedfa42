"""Token-level fine-tuning (``hbert finetune`` on a local CoNLL-style task) with seqeval entity scores."""

import json
import random
import subprocess
import sys

import pytest
from transformers import BertTokenizer

from hbert import HBertForMaskedLM
from hbert.data.tasks import TaskError, read_spec
from hbert.finetune import finetune, make_config
from hbert.finetune.metrics import entity_metrics
from hbert.optim import adamw

from .conftest import tiny_config

PEOPLE = ["alice", "bob", "carol", "dave"]
PLACES = [["paris"], ["new", "york"], ["rome"], ["san", "francisco"]]
FILLER = ["went", "to", "saw", "in", "and", "the", "met", "from", "today"]
TAGS = ["O", "B-PER", "B-LOC", "I-LOC"]


def _sentence(rng):
    words, tags = [], []

    def add(ws, kind):
        words.extend(ws)
        tags.extend([f"B-{kind}"] + [f"I-{kind}"] * (len(ws) - 1) if kind else ["O"] * len(ws))

    add([rng.choice(PEOPLE)], "PER")
    add([rng.choice(FILLER)], None)
    add(rng.choice(PLACES), "LOC")
    add(rng.sample(FILLER, 2), None)
    if rng.random() < 0.5:
        add([rng.choice(PEOPLE)], "PER")
    return words, tags


def _conll(path, n, seed):
    rng = random.Random(seed)
    lines = ["-DOCSTART- O", ""]
    for _ in range(n):
        words, tags = _sentence(rng)
        lines += [f"{w} X {t}" for w, t in zip(words, tags)] + [""]
    path.write_text("\n".join(lines))


@pytest.fixture
def task(tmp_path):
    _conll(tmp_path / "train.conll", 240, 0)
    _conll(tmp_path / "dev.conll", 40, 1)
    (tmp_path / "ner.yaml").write_text(
        "name: toy-ner\nfiles: {train: train.conll, validation: dev.conll}\ntext_fields: [tokens]\n"
        "label_field: ner_tags\nkind: token-classification\nlabel_names: [O, B-PER, I-PER, B-LOC, I-LOC]\n"
        "metrics: [entity_f1, entity_precision, entity_recall, accuracy]\n"
    )
    words = sorted({w for p in PLACES for w in p} | set(PEOPLE) | set(FILLER))
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tokenizer = BertTokenizer.from_pretrained(tmp_path)
    model = HBertForMaskedLM(tiny_config("hbert-v1", vocab_size=len(tokenizer)))
    model.save_pretrained(tmp_path / "ckpt")
    tokenizer.save_pretrained(tmp_path / "ckpt")
    return tmp_path


def test_entity_metrics_are_span_level():
    gold = [["B-LOC", "I-LOC", "O", "B-PER"]]
    half = [["B-LOC", "O", "O", "B-PER"]]  # the location's end is wrong: that entity does not count
    scores = entity_metrics(gold, half)
    assert scores["entity_precision"] == scores["entity_recall"] == scores["entity_f1"] == pytest.approx(0.5)
    assert scores["accuracy"] == pytest.approx(0.75)
    assert entity_metrics(gold, gold)["entity_f1"] == 1.0


def test_finetune_cli_learns_a_token_task(task):
    save = task / "tagger"
    result = subprocess.run(
        [sys.executable, "-m", "hbert", "finetune", str(task / "ckpt"), str(task / "ner.yaml"), "lr=0.003",
         "epochs=4", "batch_size=16", "device=cpu", "progress=false", "--json", "--save", str(save)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    val = report["validation"]
    assert val["entity_f1"] > 0.9, val
    assert val["score"] == pytest.approx(100 * val["entity_f1"])
    config = json.loads((save / "config.json").read_text())
    assert config["architectures"] == ["HBertForTokenClassification"]
    assert config["id2label"]["3"] == "B-LOC"


def test_unknown_tag_is_one_clear_line(task):
    (task / "dev.conll").write_text("alice B-ORG\n")
    result = subprocess.run(
        [sys.executable, "-m", "hbert", "finetune", str(task / "ckpt"), str(task / "ner.yaml"), "device=cpu"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode != 0
    assert "tag 'B-ORG'; accepted: O, B-PER, I-PER, B-LOC, I-LOC" in result.stderr
    assert "Traceback" not in result.stderr


def test_token_spec_needs_tag_names(tmp_path):
    (tmp_path / "bad.yaml").write_text(
        "name: x\nfiles: {train: t.conll}\ntext_fields: [tokens]\nkind: token-classification\n"
        "num_labels: 3\nmetrics: [entity_f1]\n"
    )
    with pytest.raises(TaskError, match="label_names"):
        read_spec(tmp_path / "bad.yaml")


def test_token_tasks_share_the_loop_optimizer_and_floors(task, monkeypatch):
    from hbert.finetune import trainer

    optimizers = []
    monkeypatch.setattr(trainer, "adamw", lambda *a, **k: optimizers.append(a) or adamw(*a, **k))
    config = make_config({"lr": 3e-3, "epochs": 3, "batch_size": 16, "device": "cpu", "progress": False})
    result = finetune(str(task / "ckpt"), str(task / "ner.yaml"), config)
    assert len(optimizers) == 2  # the model's and its random-init twin's: AdamW without decay on norms and biases
    floors = result["floors"]
    assert set(floors) == {"majority", "bag_of_words", "random_init"}
    assert floors["majority"]["score"] == 0.0  # every word tagged O: no entity found
    assert floors["bag_of_words"]["score"] > 50.0  # each word's most frequent tag: names and places are lexical
    assert (
        result["below_majority"] is False and result["validation"]["score"] == 100 * result["validation"]["entity_f1"]
    )


def test_no_import_cycle_in_finetune():
    """The fine-tuning modules import each other in one direction only (at module top, where readers see it)."""
    import ast
    from pathlib import Path

    import hbert.finetune

    folder = Path(hbert.finetune.__file__).parent
    edges = {}
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text())
        edges[path.stem] = {
            n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module
        }
    done, visiting = set(), []

    def visit(module):
        assert module not in visiting, " -> ".join([*visiting, module])
        if module in done:
            return
        visiting.append(module)
        for target in edges.get(module, ()):
            visit(target)
        visiting.pop()
        done.add(module)

    for module in edges:
        visit(module)
