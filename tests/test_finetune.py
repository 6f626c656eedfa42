"""Fine-tuning and evaluation: metrics, GLUE arithmetic, the loop end to end on tiny models and generated tasks."""

import json
import random

import pytest
import torch
import yaml
from transformers import BertConfig, BertForMaskedLM, BertTokenizer

from hbert import HBertConfig, HBertForMaskedLM
from hbert.cli import main
from hbert.finetune import (
    FinetuneError,
    MetricError,
    compute_metrics,
    evaluate_suite,
    finetune,
    glue_score,
    make_config,
    trainer,
)
from hbert.finetune.trainer import batches

WORDS = ["good", "bad", "film", "plot", "actor", "scene", "story", "music", "the", "a", "was", "is", "very", "not"]


def test_metrics_equal_hand_computed_values():
    labels = [1, 1, 1, 0, 0, 0, 1, 0]
    preds = [1, 1, 0, 0, 0, 1, 1, 0]
    m = compute_metrics(("accuracy", "f1", "matthews_correlation"), preds, labels, "classification")
    # tp 3, fp 1, fn 1, tn 3: accuracy 6/8, precision = recall = 3/4, MCC = (9 - 1) / sqrt(4 * 4 * 4 * 4) = 0.5
    assert m["accuracy"] == pytest.approx(0.75) and m["f1"] == pytest.approx(0.75)
    assert m["matthews_correlation"] == pytest.approx(0.5)
    r = compute_metrics(("pearson", "spearmanr"), [1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 5.0], "regression")
    # pearson by hand: x - mean = (-1.5, -.5, .5, 1.5), y - mean = (-1.75, .25, -.75, 2.25)
    num = 1.5 * 1.75 - 0.5 * 0.25 - 0.5 * 0.75 + 1.5 * 2.25
    den = (1.5**2 * 2 + 0.5**2 * 2) ** 0.5 * (1.75**2 + 0.25**2 + 0.75**2 + 2.25**2) ** 0.5
    assert r["pearson"] == pytest.approx(num / den)
    assert r["spearmanr"] == pytest.approx(1 - 6 * (0 + 1 + 1 + 0) / (4 * 15))  # rank differences 0, 1, 1, 0


def test_metric_kind_mismatch_is_an_error():
    with pytest.raises(MetricError, match="needs class labels but the task is a regression"):
        compute_metrics(("accuracy",), [0.5, 1.2], [0.4, 1.0], "regression")
    with pytest.raises(MetricError, match="needs real-valued labels"):
        compute_metrics(("pearson",), [0, 1], [1, 0], "classification")


def test_glue_score_arithmetic():
    scores = {
        "cola": 50.0,
        "sst2": 90.0,
        "mrpc": 85.0,
        "stsb": 80.0,
        "qqp": 88.0,
        "mnli-m": 80.0,
        "mnli-mm": 82.0,
        "qnli": 87.0,
        "rte": 60.0,
        "wnli": 40.0,
    }
    g = glue_score(scores)
    tasks = [50, 90, 85, 80, 88, 81, 87, 60, 40]
    assert g["tasks"] == 9
    assert g["glue"] == pytest.approx(sum(tasks) / 9)
    assert g["glue_without_wnli"] == pytest.approx(sum(tasks[:-1]) / 8)
    from hbert.finetune import task_score

    assert task_score({"f1": 0.9, "accuracy": 0.8}, ("f1", "accuracy"), True) == pytest.approx(85.0)
    assert task_score({"pearson": 0.9, "spearmanr": 0.7}, ("pearson", "spearmanr"), True) == pytest.approx(80.0)


def test_length_grouped_batches_cover_everything_once():
    lengths = [random.Random(i).randint(3, 60) for i in range(1000)]
    out = batches(lengths, 32, True, random.Random(0), True)
    flat = sorted(i for b in out for i in b)
    assert flat == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in out) / len(out)
    assert spread < 10  # grouped: each batch holds similar lengths


# ------------------------------------------------------------------------------------------ tiny end to end


def _tokenizer(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    return BertTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def hbert_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "hbert"
    tok = _tokenizer(path)
    torch.manual_seed(0)
    model = HBertForMaskedLM(HBertConfig.from_preset("hbert-v1", vocab_size=len(tok), hidden_size=32,
                                                      num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                                      type_vocab_size=0))  # fmt: skip
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def bert_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "bert"
    tok = _tokenizer(path)
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64)).save_pretrained(path)  # fmt: skip
    tok.save_pretrained(path)
    return str(path)


def _task(folder, kind="classification", n=600, missing_label=False):
    rng = random.Random(0)
    rows = []
    for _ in range(n):
        words = [rng.choice(WORDS[2:]) for _ in range(rng.randint(3, 12))]
        polarity = rng.random() < 0.35  # imbalanced: majority class 0 at ~65%
        words.insert(rng.randrange(len(words) + 1), "good" if polarity else "bad")
        value = (1.0 if polarity else -1.0) + 0.05 * len(words)
        rows.append({"text": " ".join(words), "label": (int(polarity) if kind == "classification" else value)})
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", rows[: int(0.7 * n)]), ("dev", rows[int(0.7 * n) :])):
        with open(folder / f"{name}.jsonl", "w") as f:
            for row in part:
                if missing_label:
                    row = {"text": row["text"]}
                f.write(json.dumps(row) + "\n")
    spec = {
        "name": f"toy-{kind}",
        "files": {"train": "train.jsonl", "validation": "dev.jsonl"},
        "text_fields": ["text"],
        "kind": kind,
        "metrics": ["accuracy", "f1"] if kind == "classification" else ["pearson", "spearmanr"],
    }
    if kind == "classification":
        spec["num_labels"] = 2
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    return str(folder / "spec.yaml"), rows


FAST = {"epochs": 4, "lr": 3e-3, "batch_size": 16, "progress": False}


@pytest.mark.parametrize("which", ["hbert", "bert"])
def test_finetuning_beats_the_majority_class(tmp_path, hbert_ckpt, bert_ckpt, which):
    spec, rows = _task(tmp_path / "task")
    result = finetune(hbert_ckpt if which == "hbert" else bert_ckpt, spec, make_config(FAST))
    dev = rows[int(0.7 * len(rows)) :]
    majority = max(sum(r["label"] for r in dev), len(dev) - sum(r["label"] for r in dev)) / len(dev)
    assert result["validation"]["accuracy"] > majority + 0.1, (result["validation"], majority)


def test_regression_predicts_one_float(tmp_path, hbert_ckpt):
    from hbert.finetune.kinds import load_classifier

    spec, _ = _task(tmp_path / "task", kind="regression")
    result = finetune(hbert_ckpt, spec, make_config(FAST))
    assert result["validation"]["pearson"] > 0.5
    model, tok = load_classifier(hbert_ckpt, __import__("hbert.data.tasks", fromlist=["read_spec"]).read_spec(spec))
    assert model(**tok(["good film"], return_tensors="pt", return_token_type_ids=False)).logits.shape == (1, 1)


def test_early_stopping_stops_and_restores_the_best_epoch(tmp_path, hbert_ckpt):
    spec, _ = _task(tmp_path / "task", n=200)
    config = make_config({"protocol": "author", "epochs": 30, "lr": 2e-2, "batch_size": 8, "patience": 2,
                          "progress": False})  # fmt: skip
    result = finetune(hbert_ckpt, spec, config)
    losses = [h["loss"] for h in result["history"]]
    best = min(range(len(losses)), key=losses.__getitem__)
    assert result["epochs_run"] < 30 and result["epochs_run"] == best + 1 + 2  # stopped 2 epochs after the best
    assert result["best_epoch"] == best + 1
    assert result["validation"]["loss"] == pytest.approx(losses[best], rel=1e-5)  # the best epoch's model is kept


def test_a_finetuning_without_a_terminal_writes_progress_lines(tmp_path, hbert_ckpt, capsys, monkeypatch):
    monkeypatch.setattr(trainer, "PROGRESS_EVERY_S", 0.0)  # a line at every step instead of once a minute
    spec, _ = _task(tmp_path / "task", n=200)
    finetune(hbert_ckpt, spec, make_config({**FAST, "epochs": 2, "progress": True, "floors": "none"}))
    err = capsys.readouterr().err  # captured: not a terminal, so no bar is drawn
    lines = err.splitlines()
    assert "  toy-classification: 140 training examples, 18 steps (2 epochs at most)" in lines
    assert [x for x in lines if ": step " in x][:2] == ["  finetune toy-classification: step 1/18",
                                                         "  finetune toy-classification: step 2/18"]  # fmt: skip
    assert "  finetune toy-classification: step 18/18" in lines
    assert any(x.startswith("  toy-classification epoch 2/2: validation score") for x in lines)


def test_seeds_repeat_and_suites_report_median_and_spread(tmp_path, hbert_ckpt):
    spec, _ = _task(tmp_path / "task", n=200)
    config = make_config({**FAST, "epochs": 1})
    a, b = finetune(hbert_ckpt, spec, config), finetune(hbert_ckpt, spec, config)
    assert a["validation"] == b["validation"]
    result = evaluate_suite(hbert_ckpt, [spec], 3, config)
    entry = result["tasks"][spec]["validation"]
    assert len(entry["scores"]) == 3 and entry["min"] <= entry["median"] <= entry["max"]
    assert entry["median"] == sorted(entry["scores"])[1]


def test_finetune_cli_json_save_and_linear_probe(tmp_path, hbert_ckpt, capsys):
    spec, _ = _task(tmp_path / "task", n=200)
    argv = [
        "finetune",
        hbert_ckpt,
        spec,
        "epochs=1",
        "progress=false",
        "freeze_encoder=true",
        f"out={tmp_path / 'o'}",
        "--save",
        str(tmp_path / "saved"),
        "--json",
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["task"] == "toy-classification" and "accuracy" in result["validation"]
    assert (tmp_path / "saved" / "model.safetensors").exists() and (tmp_path / "o").is_dir()
    from safetensors.torch import load_file

    before, after = load_file(f"{hbert_ckpt}/model.safetensors"), load_file(tmp_path / "saved" / "model.safetensors")
    key = "hbert.encoder.layers.0.ffn.out.weight"
    assert torch.equal(before[key], after[key])  # frozen encoder


def test_bad_input_is_clear(tmp_path, hbert_ckpt, capsys):
    with pytest.raises(Exception, match=r"unknown task 'sst-2'.*sst2"):
        finetune(hbert_ckpt, "sst-2", make_config(FAST))
    spec, _ = _task(tmp_path / "task", n=50, missing_label=True)
    with pytest.raises(Exception, match="column 'label' missing"):
        finetune(hbert_ckpt, spec, make_config(FAST))
    good_spec, _ = _task(tmp_path / "task2", n=50)
    (tmp_path / "vit").mkdir()
    (tmp_path / "vit" / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(FinetuneError, match="not a classifier-compatible encoder"):
        finetune(str(tmp_path / "vit"), good_spec, make_config(FAST))
    with pytest.raises(FinetuneError, match="not a model checkpoint"):
        finetune(str(tmp_path / "task"), good_spec, make_config(FAST))
    with pytest.raises(FinetuneError, match="unknown fine-tuning setting 'learning_rate'"):
        make_config({"learning_rate": 1})
    with pytest.raises(FinetuneError, match="unknown protocol"):
        make_config({"protocol": "fast"})
    assert main(["finetune", hbert_ckpt, "nope"]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err


def test_eval_cli_writes_json_and_markdown(tmp_path, hbert_ckpt, capsys):
    spec, _ = _task(tmp_path / "task", n=120)
    argv = [
        "eval",
        hbert_ckpt,
        "epochs=1",
        "progress=false",
        f"out={tmp_path / 'out'}",
        "--suite",
        spec,
        "--seeds",
        "2",
    ]
    assert main(argv) == 0
    assert "| task | median | min | max |" in capsys.readouterr().out
    data = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert len(data["tasks"][spec]["validation"]["scores"]) == 2
    assert (tmp_path / "out" / "eval.md").read_text().startswith("Checkpoint")


def test_suite_glue_score_uses_mnli_matched_and_mismatched(monkeypatch):
    from hbert.finetune import suite

    def fake_finetune(checkpoint, task, config, save=None):
        score = {"cola": 40.0, "mnli": 70.0, "wnli": 50.0}[task] + config.seed
        out = {"validation": {"score": score}}
        if task == "mnli":
            out["validation_mismatched"] = {"score": score + 2}
        return out

    monkeypatch.setattr(suite, "finetune", fake_finetune)
    result = suite.evaluate_suite("ckpt", ["cola", "mnli", "wnli"], 3, make_config({"floors": "none"}))
    assert result["tasks"]["cola"]["validation"] == {"median": 41.0, "min": 40.0, "max": 42.0,
                                                     "scores": [40.0, 41.0, 42.0]}  # fmt: skip
    assert result["glue"]["glue"] == pytest.approx((41 + (71 + 73) / 2 + 51) / 3)
    assert result["glue"]["glue_without_wnli"] == pytest.approx((41 + 72) / 2)


def test_bench_inference_side_by_side(hbert_ckpt, bert_ckpt, capsys):
    assert main(["bench", "inference", hbert_ckpt, bert_ckpt, "--lengths", "16", "--batch", "4", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "| fp32 | 16 | batch 4 throughput |" in out and "| bf16 | 16 | batch 1 latency |" in out
