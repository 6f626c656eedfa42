"""hbert checkpoints are ordinary Hugging Face checkpoints: Auto classes, remote code, pipelines."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    BertTokenizer,
    pipeline,
)

from hbert import HBertConfig, HBertForMaskedLM, HBertForSequenceClassification, HBertModel

from .conftest import padded_batch, tiny_config


def _save(tmp_path, preset="hbert-v1", **overrides):
    model = HBertForMaskedLM(tiny_config(preset, **overrides)).eval()
    path = tmp_path / "ckpt"
    model.save_pretrained(path)
    return model, path


def test_checkpoint_is_safetensors_with_auto_map_and_code(tmp_path):
    _, path = _save(tmp_path)
    files = set(os.listdir(path))
    assert {"model.safetensors", "config.json", "modeling_hbert.py", "configuration_hbert.py"} <= files
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "hbert"
    assert config["attention_kinds"] == ["softmax", "additive", "softmax", "additive"]
    assert set(config["auto_map"]) == {
        "AutoConfig",
        "AutoModel",
        "AutoModelForMaskedLM",
        "AutoModelForSequenceClassification",
        "AutoModelForTokenClassification",
        "AutoModelForQuestionAnswering",
        "AutoModelForMultipleChoice",
    }


@pytest.mark.parametrize("preset", ["bert", "additive", "hbert-v1", "hbert-v2", "hbert-mix"])
def test_round_trip_in_process(tmp_path, preset):
    model, path = _save(tmp_path, preset, position_embedding_type="sinusoidal")
    again = AutoModelForMaskedLM.from_pretrained(path).eval()
    assert isinstance(again, HBertForMaskedLM)
    assert again.head.decoder.weight is again.hbert.embeddings.word_embeddings.weight
    ids, mask = padded_batch()
    with torch.no_grad():
        assert torch.equal(model(ids, attention_mask=mask).logits, again(ids, attention_mask=mask).logits)
    assert isinstance(AutoModel.from_pretrained(path), HBertModel)
    assert isinstance(AutoConfig.from_pretrained(path), HBertConfig)


def test_trust_remote_code_in_a_fresh_process_without_hbert(tmp_path):
    """A process that never imports hbert (and could not: hbert is removed from its path) loads the checkpoint."""
    model, path = _save(tmp_path, "hbert-mix")
    ids, mask = padded_batch()
    torch.save({"ids": ids, "mask": mask}, tmp_path / "inputs.pt")
    with torch.no_grad():
        expected = model(ids, attention_mask=mask).logits
    script = textwrap.dedent(
        f"""
        import sys, builtins, torch
        real_import = builtins.__import__
        def guard(name, *args, **kwargs):
            if name == "hbert" or name.startswith("hbert."):
                raise ImportError("hbert must not be imported here")
            return real_import(name, *args, **kwargs)
        builtins.__import__ = guard
        from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification
        model = AutoModelForMaskedLM.from_pretrained({str(path)!r}, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        inputs = torch.load({str(tmp_path / "inputs.pt")!r})
        with torch.no_grad():
            logits = model(inputs["ids"], attention_mask=inputs["mask"]).logits
        torch.save(logits, {str(tmp_path / "out.pt")!r})
        clf = AutoModelForSequenceClassification.from_pretrained({str(path)!r}, trust_remote_code=True, num_labels=3)
        assert clf(inputs["ids"]).logits.shape == (3, 3)
        from transformers import (
            AutoModelForMultipleChoice, AutoModelForQuestionAnswering, AutoModelForTokenClassification
        )
        for auto, head in [(AutoModelForTokenClassification, "HBertForTokenClassification"),
                           (AutoModelForQuestionAnswering, "HBertForQuestionAnswering"),
                           (AutoModelForMultipleChoice, "HBertForMultipleChoice")]:
            m = auto.from_pretrained({str(path)!r}, trust_remote_code=True).eval()
            assert type(m).__name__ == head and type(m).__module__.startswith("transformers_modules")
        tagger = AutoModelForTokenClassification.from_pretrained({str(path)!r}, trust_remote_code=True, num_labels=5)
        assert tagger(inputs["ids"], attention_mask=inputs["mask"]).logits.shape == (*inputs["ids"].shape, 5)
        qa = AutoModelForQuestionAnswering.from_pretrained({str(path)!r}, trust_remote_code=True)
        assert qa(inputs["ids"]).start_logits.shape == inputs["ids"].shape
        mc = AutoModelForMultipleChoice.from_pretrained({str(path)!r}, trust_remote_code=True)
        assert mc(inputs["ids"][None].expand(2, -1, -1)).logits.shape == (2, 3)
        attn = model(inputs["ids"], attention_mask=inputs["mask"], output_attentions=True).attentions
        assert len(attn) == 4
        model.activation_checkpointing_enable()
        print("loaded", type(model).__name__)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    env["HF_HOME"] = str(tmp_path / "hf_home")
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded HBertForMaskedLM" in result.stdout
    assert torch.equal(torch.load(tmp_path / "out.pt"), expected)


def test_sequence_classifier_from_an_mlm_checkpoint(tmp_path):
    mlm, path = _save(tmp_path, "hbert-v2")
    clf = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    assert isinstance(clf, HBertForSequenceClassification)
    assert torch.equal(clf.hbert.embeddings.word_embeddings.weight, mlm.hbert.embeddings.word_embeddings.weight)
    layer = "encoder.layers.1.attention.inner.qkv.weight"
    assert torch.equal(clf.hbert.get_parameter(layer), mlm.hbert.get_parameter(layer))


def test_fill_mask_pipeline(tmp_path):
    words = ["the", "cat", "dog", "sat", "on", "mat", "a", "ran"]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer.from_pretrained(tmp_path)
    model = HBertForMaskedLM(tiny_config("hbert-v1", vocab_size=len(vocab))).eval()
    fill = pipeline("fill-mask", model=model, tokenizer=tokenizer, device="cpu")
    results = fill("the cat [MASK] on the mat", top_k=3)
    assert len(results) == 3 and all(r["token_str"] in vocab for r in results)
    assert abs(sum(r["score"] for r in fill("the [MASK]", top_k=len(vocab))) - 1.0) < 1e-4
