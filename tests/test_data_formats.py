"""Pretraining corpora as users hold them (Parquet, Arrow, ``save_to_disk`` folders, with a chosen text field), and
multi-process tokenisation that writes the same corpus as one process."""

import json
import random
import subprocess
import sys

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

WORDS = [f"w{i}" for i in range(60)]


def _docs(n=300, seed=0):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 60))) + " ." for _ in range(n)]


@pytest.fixture
def vocab(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *WORDS]) + "\n")
    return path


def _prepare(corpus, out, vocab, *extra):
    args = [sys.executable, "-m", "hbert", "data", "prepare", "--corpus", corpus, "--out", str(out), "--seq-len",
            "32", "--tokenizer", f"vocab:{vocab}", "--decontaminate", "none", "--quiet", "--json", *extra]  # fmt: skip
    return subprocess.run(args, capture_output=True, text=True, timeout=600)


def _splits(result):
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads(result.stdout)
    return {s: (v["sha256"], v["blocks"], v["documents"]) for s, v in manifest["splits"].items()}


def test_parquet_arrow_and_disk_folders_give_the_jsonl_corpus(tmp_path, vocab):
    docs = _docs()
    (tmp_path / "docs.jsonl").write_text("\n".join(json.dumps({"body": d, "id": i}) for i, d in enumerate(docs)))
    table = pa.table({"id": list(range(len(docs))), "body": docs})
    (tmp_path / "pq").mkdir()
    pq.write_table(table.slice(0, 150), tmp_path / "pq" / "part-0.parquet", row_group_size=40)
    pq.write_table(table.slice(150), tmp_path / "pq" / "part-1.parquet", row_group_size=40)
    data = datasets.Dataset.from_dict({"id": list(range(len(docs))), "body": docs})
    datasets.DatasetDict({"train": data}).save_to_disk(str(tmp_path / "saved"))
    arrow = sorted((tmp_path / "saved" / "train").glob("*.arrow"))
    reference = _splits(_prepare(f"files:{tmp_path}/docs.jsonl", tmp_path / "c-jsonl", vocab, "--text-column", "body"))
    for name, corpus in [
        ("parquet", f"files:{tmp_path}/pq/*.parquet"),
        ("arrow", f"files:{arrow[0]}"),
        ("disk", f"disk:{tmp_path / 'saved'}"),
        ("disk-split", f"disk:{tmp_path / 'saved'}@train"),
    ]:
        got = _splits(_prepare(corpus, tmp_path / f"c-{name}", vocab, "--text-field", "body", "--workers", "2"))
        assert got == reference, name


def test_more_workers_write_the_same_corpus(tmp_path, vocab):
    (tmp_path / "text").mkdir()
    for part in range(3):
        (tmp_path / "text" / f"{part}.txt").write_text("\n\n".join(_docs(400, seed=part)))
    corpus = f"files:{tmp_path}/text/*.txt"
    one = _splits(_prepare(corpus, tmp_path / "one", vocab, "--workers", "1"))
    three = _splits(_prepare(corpus, tmp_path / "three", vocab, "--workers", "3"))
    assert one == three and one["train"][1] > 100


def test_a_missing_text_field_names_the_columns(tmp_path, vocab):
    datasets.Dataset.from_dict({"content": ["a b c"], "id": [0]}).save_to_disk(str(tmp_path / "saved"))
    result = _prepare(f"disk:{tmp_path / 'saved'}", tmp_path / "c", vocab)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "no 'text' column (columns: content, id); set --text-field" in result.stderr
    assert not (tmp_path / "c").exists()
    wrong_split = _prepare(f"disk:{tmp_path / 'saved'}@validation", tmp_path / "c", vocab, "--text-field", "content")
    assert wrong_split.returncode != 0
