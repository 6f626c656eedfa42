"""What a pretraining run leaves for Hugging Face users: a tokenizer that knows the model's length limit and loads
without remote code, in every checkpoint and in ``final/``, and a model card with model-index metadata."""

import json
import os
import pty
import subprocess
import sys
import textwrap
import time

import pytest
from huggingface_hub import ModelCard

from hbert import __version__

from .training_helpers import TINY_RUN, make_corpus


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    corpus = make_corpus(root / "data")
    out = root / "run"
    args = [f"corpus={corpus}", f"out={out}", "budget=4-steps", "model=hbert-v1", "train.checkpoint_every=2-steps"]
    result = subprocess.run(
        [sys.executable, "-m", "hbert", "pretrain", *args, *TINY_RUN], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def _saved_folders(run):
    return [run / "final", *sorted(p / "model" for p in (run / "checkpoints").glob("step-*"))]


def test_tokenizers_carry_the_model_length_limit(run):
    folders = _saved_folders(run)
    assert len(folders) >= 2
    for folder in folders:
        limit = json.loads((folder / "config.json").read_text())["max_position_embeddings"]
        tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
        assert tokenizer_config["model_max_length"] == limit, folder
        assert tokenizer_config["tokenizer_class"] == "BertTokenizer", folder


def test_plain_transformers_truncates_and_fills_long_inputs_without_a_prompt(run, tmp_path):
    """In a process without hbert and with a terminal on stdin (where transformers would ask its remote-code
    question), the tokenizer loads at once, truncation cuts at the model's limit, and fill-mask takes a text
    longer than the model allows."""
    final = run / "final"
    script = textwrap.dedent(
        f"""
        import time
        from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline
        start = time.time()
        tok = AutoTokenizer.from_pretrained({str(final)!r}, trust_remote_code=False)
        print("tokenizer", type(tok).__name__, round(time.time() - start, 1))
        model = AutoModelForMaskedLM.from_pretrained({str(final)!r}, trust_remote_code=True)
        text = "w1 [MASK] " + " ".join(f"w{{i % 80}}" for i in range(1000))
        print("truncated", len(tok(text, truncation=True)["input_ids"]), tok.model_max_length)
        fill = pipeline("fill-mask", model=model, tokenizer=tok, device="cpu")
        print("filled", len(fill(text, top_k=2, tokenizer_kwargs={{"truncation": True}})))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"))
    primary, secondary = pty.openpty()
    try:
        started = time.time()
        result = subprocess.run(
            [sys.executable, "-c", script], stdin=secondary, capture_output=True, text=True, env=env, timeout=300
        )
    finally:
        os.close(primary)
        os.close(secondary)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.strip().splitlines())
    name, seconds = lines["tokenizer"].split()
    assert name == "BertTokenizer" and float(seconds) < 10  # no 15 s question
    kept, limit = map(int, lines["truncated"].split())
    assert kept == limit == json.loads((final / "config.json").read_text())["max_position_embeddings"]
    assert lines["filled"] == "2"
    assert time.time() - started < 300


def test_final_has_a_model_card_with_model_index(run):
    card = ModelCard.load(run / "final" / "README.md")
    summary = json.loads((run / "summary.json").read_text())
    results = card.data.eval_results
    assert len(results) == 1 and results[0].task_type == "fill-mask"
    assert results[0].metric_value == pytest.approx(summary["heldout_mlm_acc"], abs=1e-6)
    meta = card.data.to_dict()["hbert"]
    assert meta["version"] == __version__
    assert meta["command"].startswith("hbert pretrain ") and "model=hbert-v1" in meta["command"]
    assert meta["architecture"]["layer_pattern"] == "SA"
    assert meta["parameters"] == summary["parameters"]
    assert meta["tokens_seen"] == summary["tokens"] and meta["budget"]["steps"] == summary["steps"] == 4
    sources = meta["corpus"]["sources"]
    assert sources and all(s["licence"] for s in sources)
    assert "model-index" in card.content and "Held-out MLM accuracy" in card.text


def test_every_saved_tokenizer_carries_the_wordpiece_vocab_txt(run):
    """``vocab.txt`` beside ``tokenizer.json`` in ``final/`` and every checkpoint: BERT's plain vocabulary file, one
    token per line in id order, which a BertTokenizer built from it alone reads back to the same ids."""
    from transformers import AutoTokenizer, BertTokenizer

    for folder in _saved_folders(run):
        vocab = folder / "vocab.txt"
        assert vocab.is_file(), folder
        saved = AutoTokenizer.from_pretrained(folder)
        plain = BertTokenizer(vocab=str(vocab))
        assert plain.get_vocab() == saved.get_vocab(), folder
        text = "w1 w2 w17 . w3"
        assert plain(text)["input_ids"] == saved(text)["input_ids"]


def test_card_metadata_names_licence_and_datasets_from_the_corpus_sources():
    from hbert.training.card import card_datasets, card_license

    offline = [{"name": "gcide", "licence": "GPL-2.0-or-later"}, {"name": "austen", "licence": "public domain"}]
    assert card_license(offline) == ("other", "corpus-licences")
    assert card_datasets(offline) == ["gcide", "austen"]
    hub = [{"name": "hf:wikitext:wikitext-103-raw-v1", "licence": "see the dataset card"}]
    assert card_license(hub) == ("unknown", None) and card_datasets(hub) == ["wikitext"]
    local = [{"name": "files:data/*.txt", "licence": "user supplied"}]
    assert card_license(local) == ("unknown", None) and card_datasets(local) == []


def test_card_carries_license_and_the_base_model_of_a_warm_start(run, tmp_path):
    card = ModelCard.load(run / "final" / "README.md")
    assert card.data.license == "unknown"  # the test corpus is local files, whose licence hbert cannot know
    assert card.data.base_model is None  # a random initialisation has no base model
    corpus = run.parent / "data" / "corpus"  # the fixture's corpus
    warm = tmp_path / "warm"
    args = [f"corpus={corpus}", f"out={warm}", "budget=2-steps", "model=hbert-v1", "init=complete",
            f"init.source={run / 'final'}"]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "hbert", "pretrain", *args, *TINY_RUN], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    warm_card = ModelCard.load(warm / "final" / "README.md")
    assert warm_card.data.base_model == run.name  # the source's own card names its run
    assert f"Initialised from: `{run.name}`" in warm_card.text
