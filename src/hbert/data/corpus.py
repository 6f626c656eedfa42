"""Prepared pretraining corpora: documents -> train / held-out split -> tokens -> fixed-length blocks
``[CLS] ... [SEP]`` in memory-mapped integer arrays, with a manifest, cached by a hash of the settings.

Memory does not grow with the corpus: documents stream through in batches (``batch_documents``) and blocks are
appended to the arrays as they are filled. A preparation that fails leaves nothing behind: it writes into a
temporary folder that is renamed into place only when complete.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from ..files import atomic_dir, file_digest, folder_lock, read_json, remove_stale_temps
from ..remote import tokenizer_from_pretrained
from .fetch import FetchError, cache_root
from .sources import Source, parse_corpus
from .tokenizer import load_tokenizer, parse_train_size, save_tokenizer, train_wordpiece

PIPELINE_VERSION = 1
SPLITS = ("train", "heldout")


class CorpusError(ValueError):
    """The corpus cannot be prepared or read; the message says why and what would be accepted."""


# ------------------------------------------------------------------------------------------ sentence hashing

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_NON_WORD = re.compile(r"[^0-9a-z]+")


def split_sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text) if s]


def sentence_key(sentence: str) -> str:
    """Normalised form used to recognise the same sentence: lowercase letters and digits, single spaces."""
    return _NON_WORD.sub(" ", sentence.lower()).strip()


def sentence_hash(sentence: str) -> int:
    return int.from_bytes(hashlib.blake2b(sentence_key(sentence).encode(), digest_size=8).digest(), "little")


def decontaminate(document: str, banned: set[int]) -> tuple[str, int]:
    """Remove every sentence whose normalised hash is banned; returns (text, sentences removed)."""
    if not banned:
        return document, 0
    kept, removed = [], 0
    for sentence in split_sentences(document):
        key = sentence_key(sentence)
        if len(key) >= 8 and sentence_hash(sentence) in banned:
            removed += 1
        else:
            kept.append(sentence)
    return (" ".join(kept), removed) if removed else (document, 0)


def unit_hash(text: str, seed: int) -> float:
    """A deterministic uniform number in [0, 1) for a text, keyed by the seed."""
    digest = hashlib.blake2b(text.encode(), digest_size=8, key=str(seed).encode()).digest()
    return int.from_bytes(digest, "little") / 2**64


# ------------------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class CorpusSettings:
    """Everything that determines the prepared corpus; its hash is the cache key."""

    corpus: str = "offline-en"
    seq_len: int = 128
    tokenizer: str = "bert-base-uncased"
    heldout_fraction: float = 0.05
    seed: int = 0
    extras: tuple[str, ...] = ()
    text_column: str = "text"
    streaming: bool = False
    decontaminate: tuple[str, ...] = ("offline",)
    max_documents: int | None = None  # per source; for quick slices
    repeat: int = 1  # read every source this many times (for scaling benchmarks)

    def validate(self) -> None:
        if self.seq_len < 8:
            raise CorpusError(f"seq_len={self.seq_len} is too short; accepted: >= 8 (typical 128 or 512)")
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise CorpusError(f"heldout_fraction={self.heldout_fraction}; accepted: 0 <= fraction < 1")
        if self.repeat < 1:
            raise CorpusError(f"repeat={self.repeat}; accepted: >= 1")

    def key(self) -> str:
        payload = json.dumps({**asdict(self), "pipeline": PIPELINE_VERSION}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def default_dir(settings: CorpusSettings) -> Path:
    return cache_root() / "corpora" / settings.key()


# ------------------------------------------------------------------------------------------ packing


class BlockWriter:
    """Packs documents into blocks ``[CLS] t_1 ... t_{L-2} [SEP]`` (documents joined by ``[SEP]``) and appends
    full blocks to a raw integer file. The tail that does not fill a block is dropped and counted."""

    def __init__(self, path: Path, seq_len: int, cls_id: int, sep_id: int, dtype: np.dtype, flush_blocks: int = 2048):
        self.file = open(path, "wb")
        self.seq_len, self.cls_id, self.sep_id, self.dtype = seq_len, cls_id, sep_id, dtype
        self.body = seq_len - 2
        self.buffer: list[int] = []
        self.pending: list[list[int]] = []
        self.flush_blocks = flush_blocks
        self.blocks = 0
        self.documents = 0
        self.content_tokens = 0  # document tokens written into blocks (separators excluded)
        self.sha = hashlib.sha256()

    def add(self, ids: list[int]) -> None:
        if not ids:
            return
        if self.documents:
            self.buffer.append(self.sep_id)
        self.documents += 1
        self.buffer.extend(ids)
        while len(self.buffer) >= self.body:
            chunk, self.buffer = self.buffer[: self.body], self.buffer[self.body :]
            self.pending.append([self.cls_id, *chunk, self.sep_id])
            if len(self.pending) >= self.flush_blocks:
                self._flush()

    def _flush(self) -> None:
        if self.pending:
            array = np.asarray(self.pending, dtype=self.dtype)
            data = array.tobytes()
            self.file.write(data)
            self.sha.update(data)
            self.blocks += len(self.pending)
            self.content_tokens += int((array[:, 1:-1] != self.sep_id).sum())
            self.pending = []

    def close(self) -> int:
        """Flush and close; returns the number of tokens dropped from the unfinished last block."""
        self._flush()
        self.file.close()
        dropped = len(self.buffer)
        self.buffer = []
        return dropped


# ------------------------------------------------------------------------------------------ preparation


@dataclass
class _SourceStats:
    name: str
    licence: str
    description: str
    documents: dict[str, int] = field(default_factory=lambda: {s: 0 for s in SPLITS})
    words: dict[str, int] = field(default_factory=lambda: {s: 0 for s in SPLITS})
    tokens: dict[str, int] = field(default_factory=lambda: {s: 0 for s in SPLITS})
    sentences_removed: int = 0
    replaced_characters: int = 0


def _progress(iterable, desc: str, enabled: bool):
    if not enabled:
        return iterable
    return tqdm(iterable, desc=desc, unit=" docs", mininterval=1.0, leave=False)


def _split_documents(
    source: Source, settings: CorpusSettings, banned: set[int], stats: _SourceStats
) -> Iterator[tuple[str, str]]:
    """(split, text) for every document of a source after decontamination."""
    for doc in _raw_documents(source, settings, stats):
        split, doc, removed = _place(doc, settings.seed, settings.heldout_fraction, banned)
        stats.sentences_removed += removed
        if doc:
            yield split, doc


def _raw_documents(source: Source, settings: CorpusSettings, stats: _SourceStats) -> Iterator[str]:
    """A source's documents as read (``repeat`` times, at most ``max_documents`` each time)."""
    for _ in range(settings.repeat):
        for number, doc in enumerate(source.documents()):
            if settings.max_documents is not None and number >= settings.max_documents:
                break
            yield doc
        stats.replaced_characters += source.replaced


def _place(doc: str, seed: int, heldout_fraction: float, banned: set[int]) -> tuple[str, str, int]:
    """(split, decontaminated text, sentences removed) of one document."""
    doc, removed = decontaminate(doc, banned)
    split = "heldout" if unit_hash(doc, seed) < heldout_fraction else "train"
    return split, doc, removed


# ------------------------------------------------------------------------------------------ parallel packing


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _Packer:
    """Decontaminates, splits and tokenises a batch of documents: the CPU-bound part of preparation, run in
    worker processes for large corpora (each result depends on its document alone, so the output is the same
    for any number of workers)."""

    def __init__(self, encode: Callable[[list[str]], list[list[int]]], seed: int, fraction: float, banned: set[int]):
        self.encode, self.seed, self.fraction, self.banned = encode, seed, fraction, banned

    def __call__(self, docs: list[str]) -> list[tuple[str, str, int, list[int]]]:
        placed = [_place(doc, self.seed, self.fraction, self.banned) for doc in docs]
        kept = [p for p in placed if p[1]]
        ids = iter(self.encode([doc for _, doc, _ in kept]) if kept else [])
        return [(split, doc, removed, next(ids) if doc else []) for split, doc, removed in placed]


_WORKER: _Packer | None = None


def _start_worker(tokenizer_file: str, seed: int, fraction: float, banned: set[int]) -> None:
    global _WORKER
    tokenizer = Tokenizer.from_file(tokenizer_file)
    _WORKER = _Packer(
        lambda texts: [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)], seed, fraction, banned
    )


def _run_worker(docs: list[str]):
    return _WORKER(docs)


def _packed_batches(batches: Iterable[list[str]], packer: _Packer, workers: int, tokenizer_file: Path | None):
    """``packer`` applied to every batch, in order; with ``workers`` > 1 (and a fast tokenizer), in that many
    processes with at most two batches per worker in flight, so memory stays flat however large the corpus."""
    if workers <= 1 or tokenizer_file is None or not tokenizer_file.exists():
        yield from map(packer, batches)
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one thread per worker process
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    args = (str(tokenizer_file), packer.seed, packer.fraction, packer.banned)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=args) as pool:
        pending: deque = deque()
        for batch in batches:
            pending.append(pool.submit(_run_worker, batch))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _batched(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _encode(tokenizer, texts: list[str]) -> list[list[int]]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def _usable_sources(sources: list[Source]) -> tuple[list[Source], list[dict]]:
    usable, skipped = [], []
    for source in sources:
        try:
            source.prefetch()
            usable.append(source)
        except FetchError as err:
            warnings.warn(f"skipping source {source.name}: {err}", stacklevel=2)
            skipped.append({"name": source.name, "reason": str(err)})
    if not usable:
        reasons = "; ".join(f"{s['name']}: {s['reason']}" for s in skipped)
        raise CorpusError(f"no source of the corpus could be fetched ({reasons})")
    return usable, skipped


def prepare_corpus(
    settings: CorpusSettings,
    out: str | os.PathLike | None = None,
    decontamination: Callable[[], tuple[set[int], dict]] | None = None,
    progress: bool = True,
    batch_documents: int = 256,
    sources: list[Source] | None = None,
    workers: int = 1,
) -> Path:
    """Prepare (or find in the cache) the corpus for ``settings``; returns its folder.

    ``decontamination`` returns the sentence hashes of evaluation texts to keep out and a report of the tasks
    they came from (``hbert.data.tasks.evaluation_hashes``); it is called only when the corpus is not cached.
    ``workers`` (a speed setting: the corpus is the same for any value) tokenises in that many processes.
    """
    settings.validate()
    out_dir = Path(out) if out is not None else default_dir(settings)
    # one process per corpus folder: a second is refused (--out), or waits and then finds it ready (the cache)
    with folder_lock(out_dir, "--out" if out is not None else None, wait=out is None):
        return _prepare_locked(settings, out_dir, decontamination, progress, batch_documents, sources, workers)


def _prepare_locked(settings: CorpusSettings, out_dir: Path, decontamination, progress: bool, batch_documents: int,
                    sources: list[Source] | None, workers: int) -> Path:  # fmt: skip
    if _is_prepared(out_dir, settings):
        return out_dir
    if sources is None:
        sources = parse_corpus(settings.corpus, list(settings.extras), settings.text_column, settings.streaming)
    sources, skipped = _usable_sources(sources)
    banned, decontamination_report = decontamination() if decontamination is not None else (set(), {})
    remove_stale_temps(out_dir.parent)
    started = time.time()
    with atomic_dir(out_dir) as tmp:  # an existing out_dir is empty (checked above) and replaced at the end
        tokenizer, tok_info = _corpus_tokenizer(settings, sources, banned, tmp / "tokenizer")
        cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
        if cls_id is None or sep_id is None:
            raise CorpusError(f"tokenizer {settings.tokenizer} has no [CLS] / [SEP] token; accepted: a BERT tokenizer")
        dtype = np.dtype(np.uint16 if len(tokenizer) <= 65535 else np.uint32)
        writers = {s: BlockWriter(tmp / f"{s}.bin", settings.seq_len, cls_id, sep_id, dtype) for s in SPLITS}
        packer = _Packer(lambda texts: _encode(tokenizer, texts), settings.seed, settings.heldout_fraction, banned)
        packing = (batch_documents, workers, tmp / "tokenizer" / "tokenizer.json", progress)
        all_stats = [_pack_source(source, settings, packer, writers, *packing) for source in sources]
        dropped = {s: w.close() for s, w in writers.items()}
        _check_not_empty(settings, all_stats, writers)
        manifest = {
            "format": "hbert-corpus",
            "version": PIPELINE_VERSION,
            "key": settings.key(),
            "settings": asdict(settings),
            "seq_len": settings.seq_len,
            "dtype": dtype.name,
            "tokenizer": _tokenizer_entry(tokenizer, tok_info),
            "sources": [asdict(s) for s in all_stats],
            "skipped_sources": skipped,
            "splits": {s: _split_entry(s, writers[s], dropped[s], settings.seq_len) for s in SPLITS},
            "words": sum(sum(s.words.values()) for s in all_stats),
            "decontamination": {
                **(decontamination_report or {}),
                "sentences_removed": sum(s.sentences_removed for s in all_stats),
            },
            "replaced_characters": sum(s.replaced_characters for s in all_stats),
            "seconds": round(time.time() - started, 1),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out_dir


def _is_prepared(out_dir: Path, settings: CorpusSettings) -> bool:
    """True when ``out_dir`` holds the corpus of ``settings``; an error when it holds anything else."""
    if out_dir.exists() and not out_dir.is_dir():
        raise CorpusError(f"--out {out_dir} is a file; accepted: a new or empty folder")
    manifest_path = out_dir / "manifest.json"
    if manifest_path.exists():
        manifest = read_json(manifest_path)
        if not isinstance(manifest, dict):
            raise CorpusError(f"{manifest_path}: not a corpus manifest; choose another --out or delete that folder")
        if manifest.get("key") == settings.key():
            return True
        raise CorpusError(
            f"{out_dir} holds a different corpus (key {manifest.get('key')}, wanted {settings.key()}); "
            f"choose another --out or delete that folder"
        )
    if out_dir.exists() and any(out_dir.iterdir()):
        raise CorpusError(f"{out_dir} exists and is not a prepared corpus; choose an empty or new folder")
    return False


def _corpus_tokenizer(settings: CorpusSettings, sources: list[Source], banned: set[int], folder: Path):
    """The corpus's tokenizer (a named one, or a WordPiece trained on the train split) saved in ``folder``, and
    the manifest's description of it."""
    train_size = parse_train_size(settings.tokenizer)
    if train_size is not None:
        throwaway = [_SourceStats(s.name, s.licence, s.description) for s in sources]
        train_texts = (
            doc
            for source, stats in zip(sources, throwaway)
            for split, doc in _split_documents(source, settings, banned, stats)
            if split == "train"
        )
        tokenizer = train_wordpiece(train_texts, train_size, folder)
        tok_info = {"name": settings.tokenizer, "source": "trained on the train split"}
    else:
        tokenizer, tok_info = load_tokenizer(settings.tokenizer)
    save_tokenizer(tokenizer, folder)
    return tokenizer, tok_info


def _pack_source(
    source: Source,
    settings: CorpusSettings,
    packer: _Packer,
    writers: dict[str, BlockWriter],
    batch_documents: int,
    workers: int,
    tokenizer_file: Path,
    progress: bool,
) -> _SourceStats:
    """Split, clean, tokenise and pack one source's documents into the split writers; returns its statistics."""
    stats = _SourceStats(source.name, source.licence, source.description)
    docs = _progress(_raw_documents(source, settings, stats), f"{source.name}", progress)
    batches = _batched(docs, batch_documents)
    for packed in _packed_batches(batches, packer, workers, tokenizer_file):
        for split, doc, removed, ids in packed:
            stats.sentences_removed += removed
            if not doc:
                continue
            stats.documents[split] += 1
            stats.words[split] += len(doc.split())
            stats.tokens[split] += len(ids)
            writers[split].add(ids)
    return stats


def _check_not_empty(settings: CorpusSettings, all_stats: list[_SourceStats], writers: dict[str, BlockWriter]) -> None:
    total_docs = sum(sum(s.documents.values()) for s in all_stats)
    if total_docs == 0:
        raise CorpusError(f"corpus {settings.corpus!r} produced no documents (empty or all filtered out)")
    if writers["train"].blocks == 0:
        tokens = sum(s.tokens["train"] for s in all_stats)
        raise CorpusError(
            f"corpus {settings.corpus!r} has {tokens} train tokens: fewer than one block of seq_len "
            f"{settings.seq_len}; add text or lower --seq-len"
        )


def _tokenizer_entry(tokenizer, tok_info: dict) -> dict:
    return {
        **tok_info,
        "vocab_size": len(tokenizer),
        "cls_id": tokenizer.cls_token_id,
        "sep_id": tokenizer.sep_token_id,
        "pad_id": tokenizer.pad_token_id,
        "mask_id": tokenizer.mask_token_id,
    }


def _split_entry(split: str, writer: BlockWriter, dropped: int, seq_len: int) -> dict:
    return {
        "file": f"{split}.bin",
        "blocks": writer.blocks,
        "documents": writer.documents,
        "tokens": writer.blocks * seq_len,
        "content_tokens": writer.content_tokens,
        "dropped_tail_tokens": dropped,
        "sha256": writer.sha.hexdigest(),
    }


# ------------------------------------------------------------------------------------------ reading


class Corpus:
    """A prepared corpus: ``corpus.blocks("train")`` is a read-only (n_blocks, seq_len) memory map."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        manifest = self.path / "manifest.json"
        if not manifest.exists():
            hint = "it does not exist" if not self.path.exists() else "it has no manifest.json"
            raise CorpusError(
                f"{self.path} is not a prepared corpus ({hint}); prepare one with "
                f"`hbert data prepare --corpus offline-en --out {self.path}`"
            )
        self.manifest = read_json(manifest)
        try:
            self.seq_len = int(self.manifest["seq_len"])
            self.dtype = np.dtype(self.manifest["dtype"])
            {s: self.manifest["splits"][s]["blocks"] for s in SPLITS}
        except (KeyError, TypeError, ValueError) as err:
            raise CorpusError(f"{manifest}: not a corpus manifest ({err!r} missing or wrong); prepare the corpus "
                              f"again") from None  # fmt: skip
        self._maps: dict[str, np.ndarray] = {}

    def blocks(self, split: str = "train") -> np.ndarray:
        if split not in SPLITS:
            raise CorpusError(f"unknown split {split!r}; accepted: {', '.join(SPLITS)}")
        if split not in self._maps:
            info = self.manifest["splits"][split]
            if info["blocks"] == 0:
                self._maps[split] = np.zeros((0, self.seq_len), dtype=self.dtype)
            else:
                self._check_size(split, info)
                self._maps[split] = np.memmap(
                    self.path / info["file"], dtype=self.dtype, mode="r", shape=(info["blocks"], self.seq_len)
                )
        return self._maps[split]

    def _check_size(self, split: str, info: dict) -> None:
        path = self.path / info["file"]
        expected = info["blocks"] * self.seq_len * self.dtype.itemsize
        actual = path.stat().st_size if path.is_file() else -1
        if actual != expected:
            found = "missing" if actual < 0 else f"{actual:,} bytes"
            raise CorpusError(f"{path}: {found}, the manifest says {expected:,} bytes (truncated or replaced); "
                              f"prepare the corpus again")  # fmt: skip

    def check_vocabulary(self, vocab_size: int) -> None:
        """Every token id of every split must be below ``vocab_size`` (a corpus / tokenizer mix-up otherwise
        crashes deep inside the embedding)."""
        for split in SPLITS:
            blocks = self.blocks(split)
            top = int(np.max(blocks)) if blocks.size else -1
            if top >= vocab_size:
                raise CorpusError(f"{self.path / self.manifest['splits'][split]['file']}: token id {top} is outside "
                                  f"the tokenizer's vocabulary of {vocab_size}; prepare the corpus again with this "
                                  f"tokenizer")  # fmt: skip

    def tokenizer(self):
        """The corpus's tokenizer; one that ships its own code is refused (hbert never runs it from a corpus)."""
        return tokenizer_from_pretrained(self.path / "tokenizer", trust_remote_code=False, option=None)

    def verify(self) -> None:
        """Check the arrays against the manifest's checksums (raises CorpusError)."""
        for split in SPLITS:
            info = self.manifest["splits"][split]
            self._check_size(split, info)
            digest = file_digest(self.path / info["file"])
            if digest != info["sha256"]:
                raise CorpusError(f"{self.path / info['file']}: checksum mismatch; prepare the corpus again")


def format_manifest(manifest: dict) -> str:
    lines = [
        f"corpus {manifest['settings']['corpus']}  key {manifest['key']}  seq_len {manifest['seq_len']}",
        f"tokenizer {manifest['tokenizer']['name']} (vocab {manifest['tokenizer']['vocab_size']:,})",
        "",
        f"{'source':<18}{'licence':<26}{'docs train':>12}{'docs held':>10}{'words':>12}{'tokens':>12}",
    ]
    for s in manifest["sources"]:
        lines.append(
            f"{s['name'][:17]:<18}{s['licence'][:25]:<26}{s['documents']['train']:>12,}{s['documents']['heldout']:>10,}"
            f"{sum(s['words'].values()):>12,}{sum(s['tokens'].values()):>12,}"
        )
    lines.append("")
    for split, info in manifest["splits"].items():
        lines.append(
            f"{split:<8} {info['blocks']:>10,} blocks  {info['tokens']:>12,} tokens  "
            f"(dropped tail {info['dropped_tail_tokens']:,})  sha256 {info['sha256'][:16]}"
        )
    d = manifest["decontamination"]
    lines.append(
        f"decontamination: {d.get('sentences_removed', 0):,} sentences removed; tasks checked: "
        f"{', '.join(d.get('tasks_checked', [])) or 'none'}"
    )
    if d.get("tasks_skipped"):
        lines.append(f"  not checked: {', '.join(d['tasks_skipped'])}")
    if manifest.get("skipped_sources"):
        lines.append(
            "skipped sources: " + "; ".join(f"{s['name']} ({s['reason']})" for s in manifest["skipped_sources"])
        )
    lines.append(f"replaced undecodable characters: {manifest['replaced_characters']:,}")
    return "\n".join(lines)
