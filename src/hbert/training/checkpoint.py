"""Checkpoints of a pretraining run: written atomically with a manifest (sizes and SHA-256 of every file, written
last), verified on load, with a fall-back to the newest intact checkpoint. The resumable state holds only tensors,
numbers and strings, so that it loads with ``torch.load(weights_only=True)``: resuming never unpickles code.

A checkpoint without a manifest is not trusted silently: in a run whose other checkpoints carry one it counts as
damaged; a run from an hbert before manifests resumes from it with a warning that it cannot be verified. Pruning
old checkpoints never removes the newest verified one."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

from ..data.tokenizer import save_with_model
from ..files import atomic_dir, file_digest, remove_stale_temps, write_atomic
from ..modeling import HBertForMaskedLM
from ..remote import check_complete

MANIFEST = "manifest.json"
NO_MANIFEST = "no manifest.json (saved by an hbert before manifests, or not by hbert)"


class CheckpointError(RuntimeError):
    """No intact checkpoint to resume from."""


def write_manifest(folder: Path) -> None:
    """Record size and hash of every file under ``folder``; written last, so its presence means the rest is whole."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    entries = {str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": file_digest(p)} for p in files}
    (folder / MANIFEST).write_text(json.dumps({"files": entries}, indent=1))


def checkpoint_problem(folder: Path) -> str | None:
    """Why ``folder`` is not an intact checkpoint, or None when it is."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return NO_MANIFEST
    try:
        entries = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError, TypeError) as err:
        return f"unreadable manifest.json ({err})"
    for name, meta in entries.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != meta["size"]:
            return f"{name} has {path.stat().st_size} bytes, the manifest says {meta['size']}"
        if file_digest(path) != meta["sha256"]:
            return f"{name} does not match its checksum"
    return None


def _quiet_save(obj, path) -> None:
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        obj.save_pretrained(path)
    finally:
        if was:
            hf_logging.enable_progress_bar()


def save_checkpoint(run_dir: Path, model, tokenizer, state: dict, keep: int = 2) -> Path:
    """Write ``checkpoints/step-N`` into a temporary folder (model, tokenizer, state.pt, then the manifest), rename
    it into place, then point ``latest`` at it. A kill or a full disk during the save leaves the previous
    checkpoint intact (and ``latest`` on it)."""
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{state['budget']['steps']:08d}"
    final = root / name
    with atomic_dir(final) as tmp:
        _quiet_save(model, tmp / "model")
        save_with_model(tokenizer, tmp / "model", model.config.max_position_embeddings)
        torch.save(state, tmp / "state.pt")
        write_manifest(tmp)
    write_atomic(root / "latest", name)
    _prune(root, final, keep)
    return final


def _prune(root: Path, newest: Path, keep: int) -> None:
    """Remove all but the ``keep`` newest checkpoints, never the newest verified one: when none of the kept ones
    verifies (e.g. the one just written reads back damaged), the newest older one that does is kept too."""
    steps = sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-")), reverse=True)
    kept = [newest, *[p for p in steps if p != newest][: max(0, keep - 1)]]
    if checkpoint_problem(newest) is not None and not any(checkpoint_problem(p) is None for p in kept[1:]):
        verified = next((p for p in steps if p not in kept and checkpoint_problem(p) is None), None)
        if verified is not None:
            kept.append(verified)
    for p in steps:
        if p not in kept:
            shutil.rmtree(p, ignore_errors=True)


def verified_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint of ``run_dir`` whose files match its manifest, or None (what an error message may
    call intact)."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return None
    return next((p for p in _candidates(run_dir) if checkpoint_problem(p) is None), None)


def intact_note(run_dir: Path) -> str:
    """Where the trained weights safely are, for an error message: the newest verified checkpoint, or that there
    is none."""
    path = verified_checkpoint(run_dir)
    return f"the newest verified checkpoint is {path}" if path else f"{run_dir} holds no verified checkpoint"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint ``latest`` points at (not verified; see ``load_checkpoint``)."""
    pointer = run_dir / "checkpoints" / "latest"
    if not pointer.exists():
        return None
    path = run_dir / "checkpoints" / pointer.read_text().strip()
    return path if (path / "state.pt").exists() else None


def _candidates(run_dir: Path) -> list[Path]:
    """``latest`` first, then every other ``step-N`` checkpoint, newest first."""
    root = run_dir / "checkpoints"
    steps = sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-")), reverse=True)
    pointer = root / "latest"
    first = root / pointer.read_text().strip() if pointer.is_file() else None
    return ([first] if first in steps else []) + [p for p in steps if p != first]


def _load_one(path: Path, manifests_expected: bool):
    problem = checkpoint_problem(path)
    if problem and (problem != NO_MANIFEST or manifests_expected):
        raise CheckpointError(problem)  # without a manifest in a run that has none (older hbert): loading checks
    state = torch.load(path / "state.pt", weights_only=True, map_location="cpu")
    model, info = HBertForMaskedLM.from_pretrained(path / "model", output_loading_info=True)
    check_complete(model, info, path / "model", new_head=False)
    return model, state


def load_checkpoint(run_dir: Path):
    """(path, model, state) of the newest intact checkpoint of ``run_dir``; a damaged newer one is named and
    skipped. Raises CheckpointError when none is intact."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        raise CheckpointError(f"--resume {run_dir}: no checkpoint to resume from (no checkpoints folder)")
    remove_stale_temps(root)
    damaged = []
    candidates = _candidates(run_dir)
    manifests_expected = any((p / MANIFEST).exists() for p in candidates)
    for path in candidates:
        try:
            model, state = _load_one(path, manifests_expected)
        except Exception as err:  # any damage (truncated file, planted pickle, bad config) means: try an older one
            damaged.append(f"{path.name} ({str(err).splitlines()[0][:160] if str(err) else type(err).__name__})")
            continue
        if damaged:
            print(f"hbert pretrain: skipping damaged checkpoint(s) {'; '.join(damaged)}; resuming from the newest "
                  f"intact one, {path}", file=sys.stderr)  # fmt: skip
        if not manifests_expected:
            print(f"hbert pretrain: {path} has no manifest.json (written by an hbert before manifests): its files "
                  f"cannot be verified; resuming from it as it loads", file=sys.stderr)  # fmt: skip
        return path, model, state
    found = "; ".join(damaged) if damaged else "none found"
    raise CheckpointError(f"--resume {run_dir}: no intact checkpoint to resume from ({found})")


def _flat(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict) and key != "fields" and key != "layer_map":
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changed_result_settings(current: dict, stored: dict) -> list[str]:
    """Keys (other than the speed-only ``impl.*`` and the run folder) whose value differs between the config a
    resumption would use and the one stored in its checkpoint."""
    a, b = _flat(current), _flat(stored)
    keys = sorted(set(a) & set(b))  # a key only one side knows is a setting added to hbert since: its default
    return [k for k in keys if not k.startswith("impl.") and k != "out" and a.get(k) != b.get(k)]


def export_final(run_dir: Path, model, tokenizer) -> Path:
    """``final/``: the trained model and the tokenizer (with the model's length limit), written to a temporary
    folder and renamed into place. The model card follows once the held-out evaluation is known."""
    final = run_dir / "final"
    with atomic_dir(final) as tmp:
        _quiet_save(model, tmp)
        save_with_model(tokenizer, tmp, model.config.max_position_embeddings)
    return final
