"""Small file-system helpers shared by every writer of hbert: the temp-then-rename write of a file
(``write_atomic``) or a folder (``atomic_dir``) and the cleanup of the temporary files and folders
(``.NAME.tmp-PID``) that a killed process leaves behind."""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


class FileFormatError(ValueError):
    """A YAML / JSON file that cannot be parsed; the message names the file and the place."""


def read_yaml(path: str | os.PathLike):
    """The parsed YAML of ``path``; a syntax error names the file and line."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise FileFormatError(f"{path}{where}: not valid YAML ({problem})") from None
    except UnicodeDecodeError:
        raise FileFormatError(f"{path}: not a text file (YAML expected)") from None


def read_json(path: str | os.PathLike):
    """The parsed JSON of ``path``; a syntax error names the file and line."""
    import json

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FileFormatError(f"{path} line {err.lineno}: not valid JSON ({err.msg})") from None
    except UnicodeDecodeError:
        raise FileFormatError(f"{path}: not a text file (JSON expected)") from None
