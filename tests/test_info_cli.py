import json
import subprocess
import sys

import pytest
import torch

from hbert import HBertForMaskedLM
from hbert.cli import main
from hbert.modeling.info import flops_per_token, parameter_breakdown, resolve_config

from .conftest import tiny_config


@pytest.mark.parametrize("preset", ["bert", "additive", "hbert-v1", "hbert-v2", "hbert-mix"])
def test_breakdown_adds_up_to_the_model(preset):
    config = tiny_config(preset)
    parts = parameter_breakdown(config)
    model = HBertForMaskedLM(config)
    assert sum(p.params for p in parts) == sum(p.numel() for p in model.parameters())
    layers = [p for p in parts if p.name.startswith("layer")]
    assert [p.kind.split("/")[0] for p in layers] == config.layer_types


def test_flops_follow_the_architecture():
    bert, additive = tiny_config("bert"), tiny_config("additive")
    short, long = flops_per_token(bert, seq_len=128), flops_per_token(bert, seq_len=4096)
    assert long["attention_mixing"] == 32 * short["attention_mixing"]  # softmax mixing grows with length
    assert flops_per_token(additive, 4096)["attention_mixing"] == flops_per_token(additive, 128)["attention_mixing"]
    assert short["train"] == 3 * short["forward"]
    assert short["head_sparse"] == pytest.approx(0.15 * short["head_dense"])


def test_info_cli_table_and_json(capsys, tmp_path):
    assert main(["info", "hbert-v1", "hidden_size=64", "num_hidden_layers=4", "num_attention_heads=4"]) == 0
    out = capsys.readouterr().out
    assert "layer 1       additive/subln" in out and "training" in out
    assert main(["info", "hbert-v2", "num_hidden_layers=2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["layer_types"] == ["additive", "softmax"]
    model = HBertForMaskedLM(tiny_config("hbert-mix"))
    model.save_pretrained(tmp_path / "ckpt")
    assert main(["info", str(tmp_path / "ckpt"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_parameters"] == sum(p.numel() for p in model.parameters())


def test_info_reads_a_hf_bert_checkpoint(tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    bert = BertForMaskedLM(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2))
    bert.save_pretrained(tmp_path)
    config = resolve_config(str(tmp_path))
    assert config.layer_pattern == "SS"
    total = sum(p.params for p in parameter_breakdown(config))
    assert total == sum(p.numel() for p in bert.parameters())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["info", "bert", "hiden_size=3"], "unknown config key 'hiden_size' (did you mean 'hidden_size'?)"),
        (["info", "no-such-preset"], "neither a preset"),
        (["info", "bert", "layer_types=SAS"], "layer_types has 3 entries"),
        (["info", "bert", "hidden_size"], "expected key=value"),
    ],
)
def test_info_errors_are_clear(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "hbert", "info", "additive", "num_hidden_layers=2"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "layer 1       additive/post" in result.stdout


def test_showcase_writes_a_table(tmp_path):
    from hbert.showcase import run_showcase

    torch.manual_seed(0)
    rows = run_showcase(
        str(tmp_path),
        seq_len=16,
        batch_size=2,
        repeats=1,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=2000,
    )
    assert [r["preset"] for r in rows] == ["bert", "additive", "hbert-v1", "hbert-v2", "hbert-mix"]
    table = (tmp_path / "showcase.md").read_text()
    for r in rows:
        assert f"| {r['preset']} | {r['layers']} |" in table and r["train_tokens_per_s"] > 0
