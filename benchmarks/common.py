"""Pieces every benchmark script shares (they run as scripts: `python benchmarks/NAME.py`)."""

from __future__ import annotations


def offline_corpus(seq_len: int = 128) -> str:
    """The offline English bundle at ``seq_len``, prepared once and then found in the cache."""
    from hbert.data.corpus import CorpusSettings, prepare_corpus
    from hbert.data.tasks import evaluation_hashes

    settings = CorpusSettings(seq_len=seq_len)
    return str(prepare_corpus(settings, progress=False, decontamination=lambda: evaluation_hashes(("offline",))))


def emit(markdown: str, path: str | None) -> None:
    """Print the result table, and write it where asked."""
    print("\n" + markdown)
    if path:
        with open(path, "w") as f:
            f.write(markdown)
