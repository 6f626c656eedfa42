"""Small file-system helpers shared by every writer of hbert: the temp-then-rename write of a file
(``write_atomic``) or a folder (``atomic_dir``), the cleanup of the temporary files and folders (``.NAME.tmp-PID``)
that a killed process leaves behind, the exclusive lock of an output folder (``folder_lock``), the check that an
output is a new or empty folder (``new_folder_problem``), YAML / JSON readers whose errors name the file, and the
checksum of a file (``file_digest``)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

_TEMP = re.compile(r"^\..+\.tmp-(\d+)$")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` next to ``path`` and rename it into place: a reader sees the old or the new file, never half."""
    path = Path(path)
    tmp = path.with_name(temp_name(path.name))
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """A new, empty temporary folder next to ``final`` (``.NAME.tmp-PID``) to write into; when the block ends
    without an error it replaces ``final``. On an error or an interrupt it is removed and ``final`` is left as it
    was: a folder at ``final`` is always a complete one, and a kill leaves only a temporary folder that
    ``remove_stale_temps`` recognises."""
    final = Path(final)
    tmp = final.with_name(temp_name(final.name))
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def temp_name(name: str) -> str:
    """The hidden temporary name of ``name`` for this process (``.NAME.tmp-PID``)."""
    return f".{name}.tmp-{os.getpid()}"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(folder: Path, quiet: bool = False) -> list[Path]:
    """Remove ``.NAME.tmp-PID`` folders / files in ``folder`` whose process no longer runs (a killed save or
    ``data prepare``); returns what was removed."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _TEMP.match(entry.name)
        if not match or _alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    if removed and not quiet:
        names = ", ".join(p.name for p in removed)
        print(f"hbert: removed temporary files left by an interrupted process in {folder}: {names}", file=sys.stderr)
    return removed


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (``algorithm``: a ``hashlib`` name), read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class FileFormatError(ValueError):
    """A YAML / JSON file that cannot be parsed; the message names the file and the place."""


def _unique_key_loader():
    """A YAML SafeLoader that refuses a mapping with the same key twice (YAML would keep the last one silently:
    a recipe listing an arm twice would lose the first)."""

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # an unhashable key: construct_mapping reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} appears twice in one mapping (keep one)", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep)

    return UniqueKeyLoader


def load_yaml_text(text: str):
    """``yaml.safe_load(text)``, refusing a mapping that gives a key twice (as ``read_yaml``)."""
    return yaml.load(text, Loader=_unique_key_loader())  # a SafeLoader subclass: no Python tags


def read_yaml(path: str | os.PathLike):
    """The parsed YAML of ``path``; a syntax error or a key given twice names the file and line."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=_unique_key_loader())  # a SafeLoader subclass: no Python tags
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise FileFormatError(f"{path}{where}: not valid YAML ({problem})") from None
    except UnicodeDecodeError:
        raise FileFormatError(f"{path}: not a text file (YAML expected)") from None


def strict_json(data, **kwargs) -> str:
    """``json.dumps`` that always writes valid JSON: a number that is not finite (a diverged loss, an undefined
    correlation) becomes null instead of the invalid ``NaN`` / ``Infinity``."""

    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(data), allow_nan=False, **kwargs)


def read_json(path: str | os.PathLike):
    """The parsed JSON of ``path``; a syntax error names the file and line."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FileFormatError(f"{path} line {err.lineno}: not valid JSON ({err.msg})") from None
    except UnicodeDecodeError:
        raise FileFormatError(f"{path}: not a text file (JSON expected)") from None


# ------------------------------------------------------------------------------------------ output folders


class FolderBusyError(RuntimeError):
    """Another process holds the lock of an output folder."""


RUN_MARKERS = ("config.yaml", "checkpoints", "final", "summary.json", "log.jsonl")


def _ours(name: str) -> bool:
    """hbert's own bookkeeping in a folder: temporary files of a write in progress, and lock files."""
    return bool(_TEMP.match(name)) or (name.startswith(".") and name.endswith(".lock"))


def folder_entries(folder: Path) -> list[str]:
    """The names in ``folder`` other than hbert's temporary and lock files (empty when it does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(e.name for e in folder.iterdir() if not _ours(e.name))


def new_folder_problem(folder: Path, option: str) -> str | None:
    """Why ``folder`` cannot receive a new output (an existing file, or a folder holding anything), or None when
    it is new or empty. A folder is never written into when it holds something: nothing of the user's is
    overwritten or mixed with hbert's files."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        return f"{option}={folder} is a file; accepted: a new or empty folder"
    entries = folder_entries(folder)
    if entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        return f"{option}={folder} already holds files ({shown}); accepted: a new or empty folder"
    return None


def overlaps(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths are the same folder or one lies inside the other (writing one would change the other)."""
    a, b = Path(a).resolve(), Path(b).resolve()
    return a == b or a in b.parents or b in a.parents


def check_writable_target(path: Path, option: str) -> None:
    """Refuse, before any work, an output path that is an existing file or whose nearest existing parent is not a
    writable folder (a failure there would come only after the work was done)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{option}={path} is a file; accepted: a folder (new or existing)")
    parent = path if path.exists() else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(f"{option}={path}: {parent} is a file, not a folder; accepted: a folder path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(13, "Permission denied", str(parent))


def _lock_path(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.lock"


@contextmanager
def folder_lock(folder: str | os.PathLike, option: str | None = "out", wait: bool = False) -> Iterator[Path]:
    """Hold an exclusive lock on the output folder ``folder`` while the block runs, so that two hbert processes
    never write into the same folder (their files would mix, or one would replace the other's work). A second
    process is refused at once (``wait=False``) or waits for the first (``wait=True``, for the shared corpus
    cache, where the second then finds the corpus ready).

    The lock is ``fcntl.flock`` on ``.NAME.lock`` next to the folder: the standard library, and the kernel
    releases it when its process dies, so a killed run never leaves a stale lock behind. It lives beside the
    folder (not in it) and is removed on release, so a refused command leaves every folder as it found it; a
    process that opened the file just before it was removed notices (the path then names another file or none)
    and locks the new one. Missing parent folders are created and, if the block fails while they are still
    empty, removed again. On a system without ``fcntl`` (Windows) no lock is taken."""
    try:
        import fcntl  # not on Windows (the except below)
    except ImportError:  # pragma: no cover - not on Linux or macOS
        yield Path(folder)
        return
    folder = Path(folder).resolve()
    if folder == folder.parent:
        raise ValueError(f"{folder} is a file-system root; accepted: an output folder of its own")
    created = [p for p in [folder, *folder.parents] if not p.exists()]  # removed again if left empty on failure
    lock = _lock_path(folder)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        fd = _acquire(fcntl, lock, folder, option, wait)
    except OSError as err:
        _remove_empty(created)
        if not err.strerror:
            raise
        raise type(err)(err.errno, err.strerror, str(folder)) from None
    except BaseException:
        _remove_empty(created)
        raise
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield folder
    except BaseException:
        _remove_empty(created)
        raise
    finally:
        try:
            os.unlink(lock)  # while still holding it: see the docstring
        except OSError:
            pass
        os.close(fd)


def _acquire(fcntl, lock: Path, folder: Path, option: str, wait: bool) -> int:
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(lock)
                if not wait:
                    other = f", or choose another {option}" if option else ""
                    raise FolderBusyError(
                        f"{folder} is in use by another hbert process ({holder}) writing into it; wait until it "
                        f"finishes{other}"
                    ) from None
                print(f"hbert: waiting for another hbert process ({holder}) writing {folder}", file=sys.stderr)
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the holder removed the file as we opened it: lock the current one


def _holder(lock: Path) -> str:
    try:
        text = lock.read_text().strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "pid unknown"


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders of ``folders`` that exist and are empty (deepest first)."""
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            pass
