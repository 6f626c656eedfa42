"""Concepts written once: the atomic folder write, the "hbert or HF BERT" loader, the key=value reader."""

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM

from hbert.cli import UsageError, parse_overrides
from hbert.config import ConfigError, parse_override
from hbert.experiments.recipe import RecipeError
from hbert.files import atomic_dir, remove_stale_temps, write_atomic
from hbert.modeling import HBertForMaskedLM
from hbert.modeling.convert import hbert_config_of, load_hbert_or_bert

from .conftest import padded_batch, tiny_config


def test_atomic_dir_replaces_only_when_complete(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "new.txt").write_text("half")
            raise RuntimeError("killed mid-write")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left behind
    assert (final / "old.txt").read_text() == "old"
    with atomic_dir(final) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.tmp-") and not any(tmp.iterdir())
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_file_write_and_stale_temps(tmp_path):
    target = tmp_path / "latest"
    write_atomic(target, "step-1")
    write_atomic(target, "step-2")
    assert target.read_text() == "step-2" and [p.name for p in tmp_path.iterdir()] == ["latest"]
    stale = tmp_path / ".out.tmp-999999999"  # a pid that does not run
    stale.mkdir()
    assert remove_stale_temps(tmp_path, quiet=True) == [stale]


def test_one_loader_for_hbert_and_bert_checkpoints(tmp_path):
    bert = BertForMaskedLM(BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=64)).eval()  # fmt: skip
    bert.save_pretrained(tmp_path / "bert")
    ours = HBertForMaskedLM(tiny_config("hbert-v1")).eval()
    ours.save_pretrained(tmp_path / "hbert")
    ids, mask = padded_batch()
    with torch.no_grad():
        converted = load_hbert_or_bert(tmp_path / "bert").eval()
        assert torch.allclose(converted(ids, attention_mask=mask).logits, bert(ids, attention_mask=mask).logits,
                              atol=1e-5)  # fmt: skip
        again = load_hbert_or_bert(tmp_path / "hbert").eval()
        assert torch.equal(again(ids, attention_mask=mask).logits, ours(ids, attention_mask=mask).logits)
    assert hbert_config_of(tmp_path / "bert").layer_pattern == "SS"
    assert hbert_config_of(tmp_path / "hbert").layer_pattern == "SASA"
    (tmp_path / "vit").mkdir()
    (tmp_path / "vit" / "config.json").write_text('{"model_type": "vit"}')
    with pytest.raises(ValueError, match="model_type 'vit' is not supported; accepted: hbert, bert"):
        load_hbert_or_bert(tmp_path / "vit")


def test_one_key_value_reader():
    assert parse_override("train.lr=0.001") == ("train.lr", 0.001)
    assert parse_override("model.layer_types=SASA") == ("model.layer_types", "SASA")
    assert parse_override("model.layer_types=[softmax, additive]") == ("model.layer_types", ["softmax", "additive"])
    assert parse_override("out=") == ("out", "")
    assert parse_override("budget=1e3", text_keys=("budget",)) == ("budget", "1e3")
    with pytest.raises(ConfigError, match="expected key=value, got 'lr'"):
        parse_override("lr")
    with pytest.raises(RecipeError, match=r"seeds: cannot read the value '\[0, 1'"):
        parse_override("seeds=[0, 1", error=RecipeError)
    # the CLI's model-field overrides read values the same way, and add their own unknown-key check
    assert parse_overrides(["hidden_size=64", "layer_types=SASA"], ["hidden_size", "layer_types"]) == {
        "hidden_size": 64,
        "layer_types": "SASA",
    }
    with pytest.raises(UsageError, match="did you mean 'hidden_size'"):
        parse_overrides(["hiden_size=64"], ["hidden_size"])
